"""The course's measuring instrument: every server lesson, side by side.

bench.loadgen  -- many concurrent HTTP/1.1 connections from one asyncio loop,
                  every response checked byte for byte (importable and a CLI).
bench.run      -- starts each server lesson and the anchors (http.server,
                  nginx), drives them with wrk and the load generator, and
                  prints one table.  ``python3 -m bench.run --quick`` for CI.

See bench/README.md.
"""
