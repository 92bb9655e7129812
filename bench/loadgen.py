"""Many concurrent HTTP/1.1 connections from one asyncio loop, every response checked.

    python3 -m bench.loadgen http://127.0.0.1:7890/ --connections 10000
    python3 -m bench.loadgen http://127.0.0.1:7890/app.js -c 100 -n 50 --expect-file html/app.js

It opens all the connections first (so that the server holds them all at
once: the C10K "hold" test), then sends the requests on every one of them
at the same time, each connection asking ``--requests`` times in a row
(keep-alive; if the server closes, the next request opens a new
connection).  Every response must be ``200`` with exactly the expected body:
a wrong byte, a short body, a timeout or a reset is an error, never a
success.  It reports successes, errors by kind, wall time, requests per
second and latency percentiles.

wrk measures throughput better (it is C); this tool is for what wrk does
not do: ten thousand connections held open at once, and byte-exact checks.
Standard library only.
"""

import argparse
import asyncio
import collections
import json
import math
import resource
import sys
import time
import urllib.parse
import urllib.request

CONNECT_CONCURRENCY = 100  # connects in flight at once: below the lessons' listen(128)
DEFAULT_TIMEOUT = 10.0  # seconds for one connect, or one request and its response
MAX_HEAD = 64 * 1024


def raise_descriptor_limit():
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft


class BadResponse(Exception):
    """A response that is not the expected one; str() is the kind of error."""


def check_response(head, body, expected_body):
    """Raise BadResponse unless head and body are a 200 with exactly expected_body.

    Returns whether the server keeps the connection open after it.
    """
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if rest[:3] != "200":
        raise BadResponse("status %s" % (rest[:3] or "missing"))
    if body != expected_body:
        raise BadResponse("wrong body")
    connection = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "connection":
            connection = value.lower()
    options = {option.strip() for option in connection.split(",")}
    if version == "HTTP/1.1":
        return "close" not in options
    return "keep-alive" in options


def content_length(head):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise BadResponse("bad Content-Length") from None
    raise BadResponse("no Content-Length")


class Client(asyncio.Protocol):
    """One connection: sends a request, collects the response, tells who waits.

    A Protocol, not streams: at ten thousand connections the load generator
    must cost less than the server it measures.
    """

    def __init__(self, run):
        self.run = run
        self.transport = None
        self.received = bytearray()
        self.head = None  # the response head once complete
        self.body_size = None
        self.answer = None  # future: keep-alive flag, or BadResponse / OSError
        self.deadline = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def ask(self, request, deadline):
        self.received.clear()
        self.head = self.body_size = None
        self.answer = asyncio.get_running_loop().create_future()
        self.deadline = deadline
        self.transport.write(request)
        return self.answer

    def data_received(self, data):
        self.received += data
        if self.answer is None or self.answer.done():
            return  # bytes nobody asked for; the next request will fail on them
        try:
            if self.head is None:
                end = self.received.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.received) > MAX_HEAD:
                        raise BadResponse("head too long")
                    return
                self.head = bytes(self.received[:end])
                del self.received[:end + 4]
                self.body_size = content_length(self.head)
            if len(self.received) < self.body_size:
                return
            body = bytes(self.received[:self.body_size])
            del self.received[:self.body_size]
            self.answer.set_result(check_response(self.head, body, self.run.expected_body))
        except BadResponse as error:
            self.answer.set_exception(error)

    def connection_lost(self, error):
        self.closed = True
        if self.answer is not None and not self.answer.done():
            if error is not None:
                self.answer.set_exception(error)
            elif self.head is None:
                self.answer.set_exception(BadResponse(
                    "closed before the head" if not self.received else "short head"))
            else:
                self.answer.set_exception(BadResponse("short body"))

    def time_out(self):
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(BadResponse("timeout"))
        self.transport.abort()


class Run:
    """One load run: the tallies every connection adds to."""

    def __init__(self, host, port, path, expected_body, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self.request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path, host, port)).encode()
        self.expected_body = expected_body
        self.successes = 0
        self.errors = collections.Counter()
        self.latencies = []
        self.opened = 0
        self.clients = set()  # open connections, for the timeout sweep
        self.connect_slots = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(self):
        loop = asyncio.get_running_loop()
        async with self.connect_slots:
            try:
                _, client = await asyncio.wait_for(
                    loop.create_connection(lambda: Client(self), self.host, self.port),
                    self.timeout)
            except asyncio.TimeoutError:
                self.errors["connect timeout"] += 1
                return None
            except OSError as error:
                self.errors["connect: %s" % (error.strerror or type(error).__name__)] += 1
                return None
        self.opened += 1
        self.clients.add(client)
        return client

    async def ask(self, client):
        """One request; return whether the connection stays usable."""
        started = time.perf_counter()
        try:
            keep_alive = await client.ask(self.request, time.monotonic() + self.timeout)
        except BadResponse as error:
            self.errors[str(error)] += 1
            return False
        except OSError as error:  # reset, broken pipe
            self.errors[type(error).__name__] += 1
            return False
        self.latencies.append(time.perf_counter() - started)
        self.successes += 1
        return keep_alive and not client.closed

    async def client(self, client, requests):
        """Ask `requests` times, reconnecting when the server closed the connection."""
        try:
            for number in range(requests):
                if client is None:
                    if number == 0:
                        return  # its first connect failed: already counted
                    client = await self.connect()
                    if client is None:
                        return
                if not await self.ask(client):
                    self.forget(client)
                    client = None
        finally:
            if client is not None:
                self.forget(client)

    def forget(self, client):
        client.transport.abort()  # no lingering: the run is over for this connection
        self.clients.discard(client)

    async def sweep_timeouts(self):
        """Once a second, fail the requests whose deadline passed (cheaper than a timer each)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for client in list(self.clients):
                if client.answer is not None and not client.answer.done() and client.deadline < now:
                    client.time_out()


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def run_load(host, port, path, expected_body, connections, requests=1,
                   timeout=DEFAULT_TIMEOUT, connect_deadline=None):
    """Open `connections` connections, then ask `requests` times on each; return a report.

    Connects still pending connect_deadline seconds after the start are
    abandoned (a server that cannot take them all must not hold the run
    forever).  The report is a dict: connections, opened, requests,
    successes, errors ({kind: count}), wall_seconds (first connect to last
    answer), connect_seconds, requests_per_second, latency_ms ({p50, p90,
    p99, max}).
    """
    run = Run(host, port, path, expected_body, timeout)
    sweeper = asyncio.ensure_future(run.sweep_timeouts())
    started = time.perf_counter()
    connects = [asyncio.ensure_future(run.connect()) for _ in range(connections)]
    _, pending = await asyncio.wait(connects, timeout=connect_deadline)
    for connect in pending:
        connect.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:
        run.errors["connect phase over"] += len(pending)
    clients = [connect.result() for connect in connects if not connect.cancelled()]
    connected = time.perf_counter()
    await asyncio.gather(*(run.client(client, requests) for client in clients))
    finished = time.perf_counter()
    sweeper.cancel()
    latencies = sorted(run.latencies)
    wall = finished - started
    return {
        "connections": connections,
        "opened": run.opened,
        "requests": connections * requests,
        "successes": run.successes,
        "errors": dict(run.errors),
        "wall_seconds": round(wall, 3),
        "connect_seconds": round(connected - started, 3),
        "requests_per_second": round(run.successes / wall, 1) if wall > 0 else None,
        "latency_ms": {name: round(value * 1000, 2) if value is not None else None
                       for name, value in [("p50", percentile(latencies, 0.50)),
                                           ("p90", percentile(latencies, 0.90)),
                                           ("p99", percentile(latencies, 0.99)),
                                           ("max", latencies[-1] if latencies else None)]},
    }


def load(url, expected_body, connections, requests=1, timeout=DEFAULT_TIMEOUT,
         connect_deadline=None):
    """run_load() for a URL, from synchronous code; raises the descriptor limit first."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    raise_descriptor_limit()
    return asyncio.run(run_load(parts.hostname, parts.port or 80, path, expected_body,
                                connections, requests, timeout, connect_deadline))


def summary(report):
    latency = report["latency_ms"]
    lines = ["%d/%d responses byte-exact on %d connections (%d opened) in %.2f s: %s req/s"
             % (report["successes"], report["requests"], report["connections"],
                report["opened"], report["wall_seconds"], report["requests_per_second"]),
             "latency ms: p50 %s, p90 %s, p99 %s, max %s"
             % (latency["p50"], latency["p90"], latency["p99"], latency["max"])]
    if report["errors"]:
        lines.append("errors: " + ", ".join("%s %d" % item for item in
                                            sorted(report["errors"].items())))
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="e.g. http://127.0.0.1:7890/")
    parser.add_argument("-c", "--connections", type=int, default=100,
                        help="connections opened before any request (default %(default)s)")
    parser.add_argument("-n", "--requests", type=int, default=1,
                        help="requests per connection, one after another (default %(default)s)")
    parser.add_argument("--expect-file", metavar="PATH",
                        help="the body every response must have (default: what one GET"
                             " returns before the run)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds per connect and per request (default %(default)s)")
    parser.add_argument("--connect-deadline", type=float, metavar="SECONDS",
                        help="abandon connects still pending this long after the start")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.expect_file:
        with open(args.expect_file, "rb") as file:
            expected = file.read()
    else:
        with urllib.request.urlopen(args.url, timeout=args.timeout) as response:
            expected = response.read()
    limit = raise_descriptor_limit()
    if args.connections > limit - 10:
        sys.exit("%d connections need more descriptors than RLIMIT_NOFILE allows (%d);"
                 " raise the hard limit (ulimit -Hn shows it; /etc/security/limits.conf"
                 " raises it)" % (args.connections, limit))
    report = load(args.url, expected, args.connections, args.requests, args.timeout,
                  args.connect_deadline)
    print(json.dumps(report) if args.json else summary(report))
    return 0 if report["successes"] == report["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
