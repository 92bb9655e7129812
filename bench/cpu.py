"""CPU-bound requests on lesson 10: threads against processes (and free-threaded CPython).

    python3 -m bench.cpu [--server FILE] [-k K] [-n N] [--rounds R]

Starts lesson 10's server (by default solutions/10_static_threading.py, which
has the exercise's --cpu processes; a student's my_answers/ copy works too),
asks GET /work?n=N once alone, then K times at once, and prints the wall
times and their ratio for each way of counting:

* threads: the connection's own thread counts, on CPython's default build,
  where the GIL lets one thread at a time run Python bytecode;
* processes: a pool of worker processes counts (--cpu processes);
* threads on python3.13t / python3.14t, the free-threaded builds
  (PEP 703), when one is on PATH ("not present" otherwise).

With the GIL, K requests at once take about K times as long as one, however
many cores there are; with processes (or without a GIL) about K / cores
times.  Each figure is the median of R rounds.  Only loopback is used; every
socket has a timeout.
"""

import argparse
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FREE_THREADED = ["python3.13t", "python3.14t"]
STARTUP_SECONDS = 15
REQUEST_SECONDS = 120  # one /work answer may take this long before the run gives up


class Server:
    """A lesson-10 server on a free port, stopped with Ctrl+C (SIGINT to its group)."""

    def __init__(self, python, script, options):
        self.process = subprocess.Popen(
            [python, "-u", str(script), "0", "--bind", "127.0.0.1", "--quiet", *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        line = self._first_line()
        if not line.startswith("Serving HTTP on"):
            error = self.process.stderr.read().decode(errors="replace").strip().splitlines()
            self.stop()
            raise RuntimeError(error[-1] if error else "no startup line")
        self.port = int(line.split(" port ")[1].split()[0])

    def _first_line(self):
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(STARTUP_SECONDS):
                return ""
        return self.process.stdout.readline().decode(errors="replace")

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


def ask_work(port, n):
    """GET /work?n=N over a new connection; the body (the count)."""
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_SECONDS) as sock:
        sock.sendall(b"GET /work?n=%d HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % n)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("GET /work answered %r" % head.split(b"\r\n")[0])
    return body.strip().decode()


def wall_time(port, n, k):
    """Seconds from sending K /work requests at once until the last answer is in."""
    results = []
    threads = [threading.Thread(target=lambda: results.append(ask_work(port, n)))
               for _ in range(k)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(REQUEST_SECONDS)
    elapsed = time.perf_counter() - started
    if len(results) != k or len(set(results)) != 1:
        raise RuntimeError("expected %d equal answers, got %r" % (k, results))
    return elapsed


def measure(python, script, options, n, k, rounds):
    """(one alone, k at once): median wall seconds of each."""
    server = Server(python, script, options)
    try:
        ask_work(server.port, 1000)  # warm up: a pool's workers, the first import
        alone = statistics.median(wall_time(server.port, n, 1) for _ in range(rounds))
        together = statistics.median(wall_time(server.port, n, k) for _ in range(rounds))
        return alone, together
    finally:
        server.stop()


def gil_disabled(python):
    """True if this interpreter runs without a GIL (sys._is_gil_enabled() is False)."""
    try:
        out = subprocess.run([python, "-c", "import sys; print(getattr(sys, '_is_gil_enabled', "
                                            "lambda: True)())"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out == "False"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = REPO / "solutions" / "10_static_threading.py"
    if not default.exists():
        default = REPO / "lessons" / "10_static_threading.py"
    parser.add_argument("--server", type=Path, default=default,
                        help="lesson 10's file to run (default %(default)s)")
    parser.add_argument("-k", type=int, default=4, help="requests at once (default %(default)s)")
    parser.add_argument("-n", type=int, default=300_000,
                        help="/work?n=N: count the primes below N (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds per figure; the median is shown (default %(default)s)")
    args = parser.parse_args(argv)

    print("GET /work?n=%d on %s: 1 alone, then %d at once; %d CPU(s); median of %d rounds"
          % (args.n, args.server.relative_to(REPO) if args.server.is_relative_to(REPO)
             else args.server, args.k, os.cpu_count() or 1, args.rounds))
    print("%-40s %9s %11s %7s" % ("how /work counts", "1 alone", "%d at once" % args.k, "ratio"))
    here = "python%d.%d" % sys.version_info[:2]
    runs = [("threads, %s (GIL)" % here, sys.executable, ["--cpu", "threads"]),
            ("processes, %s" % here, sys.executable, ["--cpu", "processes"])]
    missing = []
    for name in FREE_THREADED:
        python = shutil.which(name)
        if python is None:
            missing.append("%-40s not present" % ("threads, %s (no GIL)" % name))
        elif not gil_disabled(python):
            missing.append("%-40s present, but its GIL is on" % ("threads, %s" % name))
        else:
            runs.append(("threads, %s (no GIL)" % name, python, ["--cpu", "threads"]))
    for label, python, options in runs:
        try:
            alone, together = measure(python, args.server, options, args.n, args.k, args.rounds)
        except (RuntimeError, OSError) as error:
            if options == ["--cpu", "threads"]:  # the lesson itself has no --cpu at all
                try:
                    alone, together = measure(python, args.server, [], args.n, args.k,
                                              args.rounds)
                except (RuntimeError, OSError) as again:
                    print("%-40s failed: %s" % (label, again))
                    continue
            else:
                print("%-40s not available: %s" % (label, error))
                continue
        print("%-40s %8.2fs %10.2fs %6.2fx" % (label, alone, together, together / alone),
              flush=True)
    for line in missing:
        print(line)
    print("ratio = %d at once / 1 alone: about %d with one core's worth of work at a time, "
          "about %.1f on %d cores in parallel" % (args.k, args.k, args.k / min(
              args.k, os.cpu_count() or 1), os.cpu_count() or 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
