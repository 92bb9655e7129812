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
import concurrent.futures
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import rawhttp  # noqa: E402 -- the tests' HTTP client and launcher: one copy of each
from servers import ServerFailed, start_server  # noqa: E402

from bench.run import lesson_help  # noqa: E402

FREE_THREADED = ["python3.13t", "python3.14t"]
REQUEST_SECONDS = 120  # one /work answer may take this long before the run gives up


def ask_work(port, n):
    """GET /work?n=N over a new connection; the body (the count)."""
    response = rawhttp.request(port, "/work?n=%d" % n, timeout=REQUEST_SECONDS)
    if response.status != 200:
        raise RuntimeError("GET /work answered %d" % response.status)
    return response.body.strip().decode()


def wall_time(port, n, k):
    """Seconds from sending K /work requests at once until the last answer is in."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(k) as clients:  # a client's error is raised here
        answers = list(clients.map(lambda _: ask_work(port, n), range(k)))
    elapsed = time.perf_counter() - started
    if len(set(answers)) != 1:
        raise RuntimeError("expected %d equal answers, got %r" % (k, answers))
    return elapsed


def measure(python, script, options, n, k, rounds):
    """(one alone, k at once): median wall seconds of each."""
    server = start_server(script, "--quiet", *options, python=python)
    try:
        ask_work(server.port, 1000)  # warm up: a pool's workers, the first import
        alone = statistics.median(wall_time(server.port, n, 1) for _ in range(rounds))
        together = statistics.median(wall_time(server.port, n, k) for _ in range(rounds))
        return alone, together
    finally:
        server.stop()


def gil_enabled(python):
    """False if this interpreter runs without a GIL (sys._is_gil_enabled() is False)."""
    try:
        out = subprocess.run([python, "-c", "import sys; print(getattr(sys, '_is_gil_enabled', "
                                            "lambda: True)())"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return True
    return out != "False"


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
    if not args.server.is_file():
        parser.error("no such file: %s" % args.server)
    shown = args.server.relative_to(REPO) if args.server.is_relative_to(REPO) else args.server
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    print("GET /work?n=%d on %s: 1 alone, then %d at once; %d CPU(s); median of %d rounds"
          % (args.n, shown, args.k, cores, args.rounds))
    print("%-40s %9s %11s %7s" % ("how /work counts", "1 alone", "%d at once" % args.k, "ratio"))
    here = "python%d.%d" % sys.version_info[:2]
    has_cpu = "--cpu" in lesson_help(args.server)  # the lesson has none: that is exercise 10
    threads = ["--cpu", "threads"] if has_cpu else []
    runs = [("threads, %s (%s)" % (here, "GIL" if gil_enabled(sys.executable) else "no GIL"),
             sys.executable, threads)]
    missing = []
    if has_cpu:
        runs.append(("processes, %s" % here, sys.executable, ["--cpu", "processes"]))
    else:
        missing.append("%-40s not available: %s has no --cpu (that is exercise 10)"
                       % ("processes, %s" % here, args.server.name))
    for name in FREE_THREADED:
        python = shutil.which(name)
        if python is None:
            missing.append("%-40s not present" % ("threads, %s (no GIL)" % name))
        elif gil_enabled(python):
            missing.append("%-40s present, but its GIL is on" % ("threads, %s" % name))
        else:
            runs.append(("threads, %s (no GIL)" % name, python, threads))
    for label, python, options in runs:
        try:
            alone, together = measure(python, args.server, options, args.n, args.k, args.rounds)
        except (ServerFailed, RuntimeError, OSError) as error:
            print("%-40s failed: %s" % (label, str(error).splitlines()[0]))
            continue
        print("%-40s %8.2fs %10.2fs %6.2fx" % (label, alone, together, together / alone),
              flush=True)
    for line in missing:
        print(line)
    print("ratio = %d at once / 1 alone: about %d with one core's worth of work at a time, "
          "about %.1f on %d cores in parallel" % (args.k, args.k, args.k / min(args.k, cores),
                                                  cores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
