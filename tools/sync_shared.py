"""Copy the plumbing that several lessons share from its one source into every copy.

    python3 -m tools.sync_shared           # refresh every copy in lessons/ and solutions/
    python3 -m tools.sync_shared --check   # change nothing; list the copies that differ

Each lesson is a standalone file, so the plumbing it shares with other lessons
(HTTP parsing, paths, answers, the command line; the blocking or non-blocking
connection) stands in it as a fenced block, byte-identical in every lesson
that carries it.  A fix is made once, in the block's source lesson (the one
whose page explains it), and this script copies it everywhere else.

A solution may change a shared block where its exercise needs to: such copies
are listed in SOLUTION_CHANGES with the reason, are left alone here, and must
differ from the source (tests/test_shared_blocks.py checks both ways).
"""

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("lessons", "solutions")

# Block name -> the lesson that holds its source (and whose page explains it).
SOURCES = {
    "http": "lessons/06_static_single.py",
    "blocking connection": "lessons/07_static_multiprocessing.py",
    "non-blocking connection": "lessons/12_static_nonblocking.py",
}

# (solution file, block) -> why the exercise changes that block.
SOLUTION_CHANGES = {
    ("solutions/06_static_single.py", "http"):
        "a folder without index.html is listed: translate_path() raises Unindexed, answer() "
        "lists it",
    ("solutions/07_static_multiprocessing.py", "http"):
        "every answer names its worker: response_head() adds X-Worker-PID",
    ("solutions/09_static_socketserver.py", "http"):
        "Range requests: file_head() adds Accept-Ranges, answer() asks part_answer() first, "
        "an Answer carries its file's offset",
    ("solutions/09_static_socketserver.py", "blocking connection"):
        "Range requests: send_answer() streams a file from the Answer's offset",
    ("solutions/11_static_gevent.py", "http"):
        "gzip: answer() asks gzip_answer() first, file_head() adds Content-Encoding and Vary",
}

FENCE = re.compile(r'^# ==== (end of )?shared block "([^"]+)" =*$', re.M)


class FenceError(Exception):
    pass


def blocks(text, where="text"):
    """{name: (start, end)}: each block's span, from its opening fence line to its closing one."""
    found = {}
    opened = None
    for match in FENCE.finditer(text):
        closing, name = bool(match[1]), match[2]
        if not closing:
            if opened:
                raise FenceError('%s: block "%s" opens inside "%s"' % (where, name, opened[0]))
            if name in found:
                raise FenceError('%s: block "%s" appears twice' % (where, name))
            opened = (name, match.start())
        else:
            if not opened or opened[0] != name:
                raise FenceError('%s: block "%s" closes without opening' % (where, name))
            found[name] = (opened[1], match.end())
            opened = None
    if opened:
        raise FenceError('%s: block "%s" never closes' % (where, opened[0]))
    return found


def block_text(path, name):
    text = path.read_text(encoding="utf-8")
    start, end = blocks(text, path)[name]
    return text[start:end]


def copies():
    """Every (file, block name) pair in lessons/ and solutions/."""
    for folder in FOLDERS:
        for path in sorted((REPO / folder).glob("[0-9][0-9]_*.py")):
            for name in blocks(path.read_text(encoding="utf-8"), path):
                yield path, name


def stale_copies():
    """(file, block) pairs whose copy differs from the source and may not."""
    sources = {name: block_text(REPO / source, name) for name, source in SOURCES.items()
               if name in blocks((REPO / source).read_text(encoding="utf-8"))}
    for path, name in copies():
        relative = path.relative_to(REPO).as_posix()
        if name not in sources:
            raise FenceError('%s: unknown shared block "%s"' % (relative, name))
        if (relative, name) in SOLUTION_CHANGES:
            continue
        if block_text(path, name) != sources[name]:
            yield path, name, sources[name]


def sync():
    changed = []
    for path, name, source in list(stale_copies()):
        text = path.read_text(encoding="utf-8")
        start, end = blocks(text, path)[name]
        path.write_text(text[:start] + source + text[end:], encoding="utf-8")
        changed.append((path, name))
    return changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a copy differs from its source")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = [(path, name) for path, name, _ in stale_copies()]
        else:
            stale = sync()
    except FenceError as error:
        sys.exit(str(error))
    for path, name in stale:
        print('%s: block "%s" %s' % (path.relative_to(REPO), name,
                                     "differs from its source" if args.check else "refreshed"))
    if args.check and stale:
        print("Run: python3 -m tools.sync_shared")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
