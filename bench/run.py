"""Every server lesson against the same load, side by side, with nginx and http.server as anchors.

    python3 -m bench.run              # the full run, caches on and off: bench/results/latest.md
    python3 -m bench.run --reference  # the same, and bench/RESULTS.{md,json}, the committed record
    python3 -m bench.run --quick      # the CI smoke run
    python3 -m bench.run --caches on --lessons 12_static_nonblocking 13_static_epoll --no-anchors

In three rounds (one with --quick), every server in turn is started on the
same docroot (one 2 KB file), checked byte-exact with bench.loadgen (first
round), measured with wrk at each concurrency (keep-alive) and stopped; the
median of its rounds is kept, so that a burst of other work on the machine
lands in one run of every server rather than in all runs of one.  Each
lesson runs twice per round, with its caches on (its default) and off
(--no-cache, when its --help offers it), so that the models can be
compared on the same work per request.  Then each server, restarted alone
with its caches on, takes the C10K hold test: N connections opened, then
one GET on each, every byte checked, its peak memory recorded.  With two
CPUs the server is pinned to one and the load to the other (taskset).
Results: markdown tables with ratios to nginx and to http.server *from the
same run*, a JSON file and a PNG plot, in bench/results/.

The anchors: ``python3 -m http.server`` (what a student would otherwise
use) and nginx with one worker, tuned (sendfile, open_file_cache, no
access log), when it is installed; each is measured once, and a missing
one is skipped, and the table says so.  From a notebook:
``bench.run.measure(...)``.
"""

import argparse
import contextlib
import datetime
import http.server
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from servers import LESSONS, start_server  # noqa: E402 -- the tests' launcher: one copy

from bench import loadgen  # noqa: E402

RESULTS = REPO / "bench" / "results"
REFERENCE = REPO / "bench"  # RESULTS.md and RESULTS.json, committed
FILE_NAME = "index.html"
FILE_SIZE = 2048
CONCURRENCY = (10, 100, 1000)
FULL = {"wrk_seconds": 3, "wrk_runs": 3, "hold": 10_000, "connect_deadline": 30.0, "timeout": 10.0}
QUICK = {"wrk_seconds": 1, "wrk_runs": 1, "hold": 500, "connect_deadline": 3.0, "timeout": 3.0}
QUICK_CONCURRENCY = (100,)
LESSON_TIMEOUT = "120"  # --timeout for lessons: held connections must outlive the connect phase
# How far the hold test goes per lesson, so the machine survives: a process
# per connection costs megabytes each.  Lessons not named here get the full N.
HOLD_LIMITS = {"06": 1000, "07": 2000, "08": 2000, "09": 2000}
MEMORY_BUDGET = 4 * 1024 ** 3  # a server group above this is stopped mid-test
SMOKE = {"connections": 20, "requests": 10}  # byte-exact check before measuring
CACHE_MODES = ("on", "off", "both")
# Above this share of the CPUs' time taken by other processes, the table
# says plainly that other work shared the machine.
OTHER_WORK_SHARE = 0.10
CACHE_LABELS = {True: " · caches on", False: " · caches off"}
# Lessons measured in several setups, each a row of its own (in both cache
# modes): stem -> [(variant, extra options, pinned to the server's CPU)].
# Lesson 15 with one worker, pinned as every server is, and with two workers,
# one per CPU (--cpu-pin), the second sharing its CPU with the load.
VARIANTS = {"15_static_reuseport": [("1 worker", ["--workers", "1"], True),
                                    ("2 workers", ["--workers", "2", "--cpu-pin"], False)]}
NO_CACHE_OPTION = "its --help has no --no-cache"


# -- The machine ---------------------------------------------------------------

def cpus_for(server_and_load=True):
    """(server CPU, load CPU) when two CPUs are usable and taskset exists, else (None, None)."""
    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if server_and_load and len(usable) >= 2 and shutil.which("taskset"):
        return usable[0], usable[1]
    return None, None


def pin(pid, cpu):
    """Pin every thread of pid (and what it starts later) to cpu."""
    if cpu is not None:
        subprocess.run(["taskset", "-a", "-c", "-p", str(cpu), str(pid)],
                       check=True, stdout=subprocess.DEVNULL)


def pin_group(leader, members, cpu):
    """Pin a server and the processes of its group to cpu.

    Children forked before the parent was pinned (lesson 15's workers, started
    right after the startup line) need their own call; later ones inherit it.
    """
    pin(leader, cpu)
    for pid in members:
        if pid != leader:
            with contextlib.suppress(subprocess.CalledProcessError):  # it has ended meanwhile
                pin(pid, cpu)


def on_cpu(command, cpu):
    return ["taskset", "-c", str(cpu), *command] if cpu is not None else list(command)


def tool_version(command):
    """"wrk 4.1.0", "nginx 1.22.1": the name and the first version-looking word."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = re.search(r"(\d+\.\d+(?:\.\d+)?)", result.stdout + result.stderr)
    return "%s %s" % (Path(command[0]).name, version.group(1) if version else "?")


def environment(server_cpu, load_cpu):
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "system": "%s %s" % (platform.system(), platform.release()),
        "python": platform.python_version(),
        # False on a free-threaded build (3.13t and later) with the GIL off.
        "gil": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "wrk": tool_version(["wrk", "-v"]) if shutil.which("wrk") else None,
        "nginx": tool_version([nginx_binary(), "-v"]) if nginx_binary() else None,
        "server_cpu": server_cpu,
        "load_cpu": load_cpu,
        "load_average": load_now(),
    }


def load_now():
    """The load average (1, 5, 15 min), or None where the system has none."""
    return [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else None


def usable_cpus():
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def cpu_work(cpus):
    """A reading of the CPU time spent so far: on these CPUs in all, by us, by the kernel.

    "busy": seconds the CPUs ran anything (user, nice, system, irq, softirq;
    from /proc/stat), "steal": seconds the hypervisor gave them to other
    guests, "ours": seconds this process and every child it has waited for
    ran (os.times: the servers, wrk, the load generator, and their own
    reaped children), "kernel": seconds of the kernel's threads.  None
    where /proc/stat is missing.
    """
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = steal = 0
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, stolen = map(int, fields[:8])
            busy += user + nice + system + irq + softirq
            steal += stolen
    times = os.times()
    return {"wall": time.monotonic(), "busy": busy / ticks, "steal": steal / ticks,
            "ours": times.user + times.system + times.children_user + times.children_system,
            "kernel": kernel_thread_ticks() / ticks}


def kernel_thread_ticks():
    """CPU time of the kernel's threads (children of kthreadd, pid 2), in clock ticks.

    Much of the loopback network's work runs in ksoftirqd when it is busy:
    the benchmark's work, done by a kernel thread, counted apart from others'.
    """
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[1] == "2":  # the parent is kthreadd
                total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def cpu_work_between(before, after):
    """CPU-seconds over a run: available, busy, ours, kernel threads, others (the rest), steal."""
    if not before or not after:
        return None
    cpus = len(usable_cpus()) or 1
    wall = after["wall"] - before["wall"]
    busy = after["busy"] - before["busy"]
    ours = after["ours"] - before["ours"]
    kernel = after["kernel"] - before["kernel"]
    return {"cpus": cpus, "seconds": round(wall, 1), "available": round(wall * cpus, 1),
            "busy": round(busy, 1), "ours": round(ours, 1), "kernel_threads": round(kernel, 1),
            "others": round(max(busy - ours - kernel, 0.0), 1),
            "steal": round(after["steal"] - before["steal"], 1)}


def make_docroot(folder):
    """One 2 KB HTML file, the same bytes for every server."""
    folder.mkdir(parents=True, exist_ok=True)
    # Readable by all: nginx's worker drops root for "nobody" (mkdtemp made us 0700).
    for path in (folder.parent, folder):
        path.chmod(0o755)
    line = b"<p>The same two kilobytes for every server in the benchmark.</p>\n"
    body = (b"<!DOCTYPE html>\n<title>bench</title>\n" + line * 40)[:FILE_SIZE - 1] + b"\n"
    (folder / FILE_NAME).write_bytes(body)
    return folder


# -- Starting and stopping what we measure ----------------------------------------

class Lesson:
    """A lesson script, or python3 -m http.server, launched the way the tests launch it."""

    def __init__(self, name, label, script, args=(), cache=True, anchor=False, variant=None,
                 pinned=True):
        self.name, self.label, self.script, self.args = name, label, Path(script), list(args)
        self.cache, self.anchor, self.variant, self.pinned = cache, anchor, variant, pinned
        self.process = None

    def start(self, docroot, cpu, log_folder):
        log_name = "-".join([self.name] + ([self.variant.replace(" ", "-")] if self.variant
                                           else []) + ([] if self.cache else ["no-cache"]))
        self.process = start_server(self.script, *self.args, directory=docroot,
                                    log_path=log_folder / (log_name + ".log"),
                                    output_limit=1024 * 1024)
        pin_group(self.process.pid, self.processes(), cpu)  # cpu is None when not pinned
        return self.process.port

    def processes(self):
        return self.process.group_members()

    def stop(self):
        problems = self.process.stop()
        self.process = None
        if self.name == "http.server":
            # It prints a traceback for each client that resets: its normal output.
            problems = [problem for problem in problems if "traceback" not in problem]
        return problems


class Nginx:
    """nginx with one worker, tuned as for static files, on a config written to a temp dir."""

    name = "nginx"
    label = "nginx (1 worker, tuned)"
    cache = True  # open_file_cache: its cache of open descriptors and file sizes
    anchor = True
    variant = None
    pinned = True
    args = []

    def __init__(self):
        self.process = None
        self.folder = None

    def start(self, docroot, cpu, log_folder):
        self.folder = Path(tempfile.mkdtemp(prefix="bench-nginx-", dir=log_folder))
        port = free_port()
        descriptors = loadgen.raise_descriptor_limit()
        (self.folder / "nginx.conf").write_text(NGINX_CONFIG % {
            "folder": self.folder, "port": port, "docroot": docroot,
            "descriptors": descriptors, "connections": max(descriptors - 100, 1024)})
        with open(self.folder / "stderr.log", "w") as log:  # nginx keeps its own copy
            self.process = subprocess.Popen(
                on_cpu([nginx_binary(), "-e", str(self.folder / "error.log"),
                        "-p", str(self.folder), "-c", str(self.folder / "nginx.conf")], cpu),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return port
            if self.process.poll() is not None:
                break
            time.sleep(0.05)  # nginx prints no startup line to wait for
        self.stop()
        raise RuntimeError("nginx did not start: %s" % (self.folder / "error.log").read_text())

    def processes(self):
        return [self.process.pid] + children_of(self.process.pid)

    def stop(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        return []


NGINX_CONFIG = """\
# Written by bench/run.py for one run.
worker_processes 1;
worker_rlimit_nofile %(descriptors)d;
daemon off;
pid %(folder)s/nginx.pid;
events { worker_connections %(connections)d; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    types { text/html html; }
    client_body_temp_path %(folder)s/client_body;
    proxy_temp_path %(folder)s/proxy;
    fastcgi_temp_path %(folder)s/fastcgi;
    uwsgi_temp_path %(folder)s/uwsgi;
    scgi_temp_path %(folder)s/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        root %(docroot)s;
    }
}
"""


def nginx_binary():
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)),
        None)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children_of(pid):
    try:
        return [int(child) for child in
                Path("/proc/%d/task/%d/children" % (pid, pid)).read_text().split()]
    except OSError:
        return []


def proportional_bytes(pids):
    """The processes' memory, shared pages counted once (the sum of PSS).

    Summing RSS would count the parent's pages again in every forked child
    that shares them copy-on-write: 500 children of a 10 MB server are not
    5 GB.
    """
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path("/proc/%d/smaps_rollup" % pid).read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def peak_resident_bytes(pid):
    """VmHWM: the largest resident size the process ever had."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/%d/status" % pid).read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class MemoryWatch(threading.Thread):
    """Samples a server's memory (sum of PSS); stops the server above the budget."""

    def __init__(self, server, budget=MEMORY_BUDGET, interval=0.2):
        super().__init__(daemon=True)
        self.server, self.budget, self.interval = server, budget, interval
        self.peak = 0
        self.over_budget = False
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(self.interval):
            pids = self.server.processes()
            self.peak = max(self.peak, proportional_bytes(pids))
            if self.peak > self.budget:
                self.over_budget = True
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return

    def stop(self):
        self.done.set()
        self.join()


# -- Measuring -----------------------------------------------------------------------

def run_wrk(port, connections, seconds, cpu):
    command = on_cpu(["wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--latency",
                      "--timeout", "5s", "http://127.0.0.1:%d/%s" % (port, FILE_NAME)], cpu)
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    return parse_wrk(output)


def parse_wrk(output):
    def number(pattern, default=0.0):
        match = re.search(pattern, output)
        return float(match.group(1)) if match else default

    def milliseconds(label):
        match = re.search(r"^\s+%s\s+([\d.]+)(us|ms|s)\s*$" % label, output, re.M)
        if not match:
            return None
        return round(float(match.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[match.group(2)], 3)

    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests_per_second": number(r"Requests/sec:\s+([\d.]+)"),
        "requests": int(number(r"(\d+) requests in")),
        "latency_ms": {"p50": milliseconds("50%"), "p90": milliseconds("90%"),
                       "p99": milliseconds("99%")},
        "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
        "non_2xx": int(number(r"Non-2xx or 3xx responses: (\d+)")),
    }


def hold_test(server, port, expected, connections, settings, cpu):
    """The C10K test: N connections at once, then one GET on each, in a pinned loadgen process."""
    connect_deadline = settings["connect_deadline"]
    command = on_cpu([sys.executable, "-m", "bench.loadgen",
                      "http://127.0.0.1:%d/%s" % (port, FILE_NAME), "--json",
                      "--connections", str(connections), "--expect-file", str(expected),
                      "--connect-deadline", str(connect_deadline),
                      "--timeout", str(settings["timeout"])], cpu)
    watch = MemoryWatch(server)
    watch.start()
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                                timeout=connect_deadline + 180)
    finally:
        watch.stop()
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        report = {"connections": connections, "successes": 0,
                  "errors": {"load generator failed": 1}, "stderr": result.stderr[-2000:]}
    # The sampled total catches a crowd of children; VmHWM the peak of one
    # process between two samples.
    report["peak_memory_bytes"] = max([watch.peak] + [peak_resident_bytes(pid)
                                                       for pid in server.processes()])
    report["stopped_over_memory_budget"] = watch.over_budget
    return report


def smoke_test(port, expected_body, timeout):
    return loadgen.load("http://127.0.0.1:%d/%s" % (port, FILE_NAME), expected_body,
                        SMOKE["connections"], SMOKE["requests"], timeout)


def throughput_round(server, row, docroot, concurrency, settings, cpus, log_folder):
    """Start the server, check it (first round only), run wrk once at each concurrency, stop."""
    server_cpu, load_cpu = cpus if server.pinned else (None, cpus[1])
    port = server.start(docroot, server_cpu, log_folder)
    try:
        if "smoke" not in row:
            row["smoke"] = smoke_test(port, (docroot / FILE_NAME).read_bytes(),
                                      settings["timeout"])
        for connections in concurrency if shutil.which("wrk") else ():
            row["wrk_runs"].setdefault(str(connections), []).append(
                run_wrk(port, connections, settings["wrk_seconds"], load_cpu))
    finally:
        row["problems"] += server.stop()


def summarize_throughput(row):
    """The median run at each concurrency, with every run's req/s beside it."""
    for connections, runs in row.pop("wrk_runs").items():
        middle = sorted(runs, key=lambda run: run["requests_per_second"])[len(runs) // 2]
        row["throughput"][connections] = dict(
            middle, runs=[run["requests_per_second"] for run in runs],
            median=statistics.median(run["requests_per_second"] for run in runs))


def hold_round(server, row, docroot, settings, cpus, log_folder):
    """The hold test on a freshly started server, alone on the machine."""
    server_cpu, load_cpu = cpus if server.pinned else (None, cpus[1])
    hold = min(settings["hold"], HOLD_LIMITS.get(server.name[:2], settings["hold"]))
    port = server.start(docroot, server_cpu, log_folder)
    try:
        row["hold"] = hold_test(server, port, docroot / FILE_NAME, hold, settings, load_cpu)
    finally:
        problems = server.stop()
        if not row["hold"].get("stopped_over_memory_budget"):  # else we killed it ourselves
            row["problems"] += problems


def lesson_help(script):
    return subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                          text=True, timeout=30).stdout


def servers_to_measure(lesson_ids=None, anchors=True, caches="both", folder=None):
    """The servers to measure, in table order, and what is skipped.

    Every server lesson that exists (06-15, or those named), each with its
    caches on and/or off (caches: "on", "off" or "both"); then the anchors,
    measured once.  Returns (servers, skipped), skipped as result rows
    (name, label, cache, skipped: reason), each in its place in the table.
    """
    folder = Path(folder) if folder is not None else LESSONS
    entries = []  # Lesson objects and skipped rows, in table order
    if lesson_ids is None:
        scripts = sorted(path for path in folder.glob("[0-9][0-9]_static_*.py")
                         if 6 <= int(path.name[:2]) <= 15)
    else:
        scripts = [folder / (name + ".py") for name in lesson_ids]
    for script in scripts:
        if not script.exists():
            entries.append({"name": script.stem, "label": script.stem, "cache": True,
                            "skipped": "no such lesson"})
            continue
        help_text = lesson_help(script)
        args = ["--timeout", LESSON_TIMEOUT] if "--timeout" in help_text else []
        if "--quiet" in help_text:
            args.append("--quiet")  # no access log, as nginx below
        for variant, extra, pinned in VARIANTS.get(script.stem, [(None, [], True)]):
            label = script.stem + (" (%s)" % variant if variant else "")
            if caches in ("on", "both"):
                entries.append(Lesson(script.stem, label + CACHE_LABELS[True], script,
                                      args + extra, variant=variant, pinned=pinned))
            if caches in ("off", "both"):
                if "--no-cache" in help_text:
                    entries.append(Lesson(script.stem, label + CACHE_LABELS[False], script,
                                          args + extra + ["--no-cache"], cache=False,
                                          variant=variant, pinned=pinned))
                else:
                    entries.append({"name": script.stem, "label": label + CACHE_LABELS[False],
                                    "cache": False, "skipped": NO_CACHE_OPTION,
                                    **({"variant": variant} if variant else {})})
    if anchors:
        entries.append(Lesson("http.server", "python3 -m http.server", http.server.__file__,
                              cache=False, anchor=True))
        if nginx_binary():
            entries.append(Nginx())
        else:
            entries.append({"name": "nginx", "label": Nginx.label, "cache": True,
                            "anchor": True,
                            "skipped": "not installed (apt-get install nginx-light)"})
    servers = [entry for entry in entries if not isinstance(entry, dict)]
    return servers, entries


@contextlib.contextmanager
def on_load_cpu(cpu):
    """Keep this process (its threads, the in-process smoke load) off the server's CPU."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def measure(lesson_ids=None, concurrency=CONCURRENCY, quick=False, anchors=True,
            hold=None, log=print, caches="both", folder=None):
    """Measure the lessons (default: every server lesson 06-15 that exists) and the anchors.

    Returns a list of dicts.  The first describes the machine and the
    settings (name "environment").  Then one per server, in table order: a
    lesson with its caches on, then the same lesson with its caches off
    (--no-cache), then the anchors (measured once).  Each has name, label,
    cache (True/False), options (what the server was started with), smoke
    (loadgen report), throughput ({concurrency: wrk figures, median req/s}),
    hold (loadgen report of the C10K test, with peak_memory_bytes; caches on
    and anchors only), problems; or skipped / failed with a reason.
    quick=True is the CI smoke setting; hold overrides the number of
    connections of the hold test; caches is "on", "off" or "both"; folder
    holds the lesson scripts (default lessons/).
    """
    if caches not in CACHE_MODES:
        raise ValueError("caches must be one of %s, not %r" % (CACHE_MODES, caches))
    settings = dict(QUICK if quick else FULL)
    if hold is not None:
        settings["hold"] = hold
    # Started in the background by a non-interactive shell, we inherit SIGINT
    # as "ignored", and so would every server we start: Ctrl+C would not stop
    # them.  Give them the default back, as tests/conftest.py does.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    loadgen.raise_descriptor_limit()
    cpus = cpus_for()
    usable = usable_cpus()
    results = [dict(name="environment", **environment(*cpus), settings=settings,
                    concurrency=list(concurrency), quick=quick, caches=caches)]
    servers, entries = servers_to_measure(lesson_ids, anchors, caches, folder)
    work_before = cpu_work(usable)
    with tempfile.TemporaryDirectory(prefix="bench-") as folder, on_load_cpu(cpus[1]):
        folder = Path(folder)
        docroot = make_docroot(folder / "docroot")
        rows = [{"name": server.name, "label": server.label, "cache": server.cache,
                 **({"anchor": True} if server.anchor else {}),
                 **({"variant": server.variant} if server.variant else {}),
                 **({} if server.pinned else {"pinned": False}),
                 "options": list(server.args), "throughput": {},
                 "wrk_runs": {}, "problems": [], "seconds": 0.0} for server in servers]
        # Round by round, every server in turn (a lesson with its caches on,
        # then off, side by side): a burst of other work on the machine then
        # lands in one run of each, not in all runs of one.
        phases = [(throughput_round, (concurrency, settings, cpus, folder), "round %d of %d"
                   % (number + 1, settings["wrk_runs"]), False)
                  for number in range(settings["wrk_runs"])]
        # The hold test with the caches on only: it measures how many
        # connections a model holds, which the caches of one small file do
        # not change, and it is the longest part of a run.
        phases.append((hold_round, (settings, cpus, folder), "hold test", True))
        for phase, arguments, title, caches_on_only in phases:
            for server, row in zip(servers, rows):
                if "failed" in row or (caches_on_only and not server.cache
                                       and not server.anchor):
                    continue
                log("%s: %s ..." % (title, server.label))
                started = time.monotonic()
                try:
                    phase(server, row, docroot, *arguments)
                except Exception as error:  # one broken server must not lose the others' figures
                    row["failed"] = "%s: %s" % (type(error).__name__, error)
                row["seconds"] = round(row["seconds"] + time.monotonic() - started, 1)
        for row in rows:
            summarize_throughput(row)
    results[0]["load_average_after"] = load_now()
    results[0]["cpu_work"] = cpu_work_between(work_before, cpu_work(usable))
    measured = iter(rows)
    results += [entry if isinstance(entry, dict) else next(measured) for entry in entries]
    return results


# -- Reporting -----------------------------------------------------------------------

def load_average(values):
    return ", ".join("%.1f" % value for value in values) if values else "unknown"


def median_rps(row, connections):
    figures = row.get("throughput", {}).get(str(connections))
    return figures["median"] if figures else None


def row_key(row):
    """What tells a row's caches-on twin: its lesson, and its variant (lesson 15's workers)."""
    return row["name"], row.get("variant")


def ratio(value, reference):
    if not value or not reference:
        return "–"
    times = value / reference
    return "%.2f ×" % times if times < 10 else "%.0f ×" % times


def cores_clause(env):
    """What the run says about several cores, from how it was pinned (a fixed sentence part)."""
    if env.get("server_cpu") is not None:
        where = "with every server pinned to one CPU here"
    elif (env.get("cpus") or 1) == 1:
        where = "on this one-CPU machine"
    else:
        return ("not pinned here (no taskset), its processes may use several CPUs where a "
                "single-threaded server uses one, so it is not compared like for like")
    return ("%s, it does not show what processes have over threads, Python running on "
            "several cores at once" % where)


def gil_clause(env):
    if env.get("gil", True):
        return ("threads overlap while they wait on the network but take turns, under the "
                "GIL, to run Python, so its row is one core's worth of Python work shared "
                "by the threads, plus the cost of handing the GIL from one to the next")
    return ("this run's CPython is free-threaded, so its threads may run Python at once"
            + (", though the server is pinned to one CPU" if env.get("server_cpu") is not None
               else ""))


def two_workers_clauses(env):
    """Where lesson 15's two rows ran, from how the run was pinned (fixed sentence parts)."""
    if env.get("server_cpu") is not None:
        return (", pinned to one CPU as every server is,",
                "runs one worker on each of the first two CPUs (`--cpu-pin`), the second on the "
                "CPU of wrk and the load generator, which need a core of their own")
    if (env.get("cpus") or 1) == 1:
        return ("", "runs both workers on this one CPU, beside the load generator")
    return (", not pinned here (no taskset),",
            "runs one worker on each of the first two CPUs (`--cpu-pin`), beside the load "
            "generator, which is not pinned either")


def model_sentences(env):
    """One sentence per model, keyed by lesson number: what its row shows and what it does not.

    Fixed text about the model, true whatever the figures; the parts that
    depend on the run (pinning, the GIL, the hold caps) are filled in from it.
    """
    caps = {lesson: "{:,}".format(limit) for lesson, limit in HOLD_LIMITS.items()}
    return {
        "06": "**06 · one connection at a time**: one process, one thread, one answer per "
              "connection, so its row is the cost of a new TCP connection plus Python's "
              "parse and answer for every request while wrk's other connections wait in the "
              "listen queue; it shows no concurrency at all, and its hold figure (capped at "
              "%s) counts the waiting clients it answered one after another before they gave "
              "up, not connections held at once." % caps["06"],
        "07": "**07 · a process per connection (multiprocessing)**: the parent accepts and a "
              "new child process serves each connection for as long as it stays open, so "
              "with wrk's long-lived keep-alive connections its row is Python's per-request "
              "work spread over many processes, not the cost of starting one per request; "
              "%s, and its hold test stops at %s connections because each child costs "
              "megabytes." % (cores_clause(env), caps["07"]),
        "08": "**08 · fork per connection (os.fork)**: lesson 07's model with the system calls "
              "in plain sight (the child closes the listener, serves and leaves with "
              "`os._exit`; the parent closes its copy and reaps), so its row measures what "
              "07's does without multiprocessing's bookkeeping; %s, and its hold test stops "
              "at %s connections." % (cores_clause(env), caps["08"]),
        "09": "**09 · socketserver (ForkingMixIn)**: the standard library's fork per "
              "connection, in the lesson's default forking mode (its `--threads` mode is not "
              "measured), so its row is 08's model run by the library's `serve_forever` loop; "
              "%s, and its hold test stops at %s connections." % (cores_clause(env), caps["09"]),
        "10": "**10 · a thread per connection**: %s; it does not show a pool of threads, and "
              "its hold test needs an OS thread, with its stack, for every connection held."
              % gil_clause(env),
        "11": "**11 · a greenlet per connection (gevent)**: one thread runs every connection as "
              "a greenlet, switched by gevent's hub (an event loop on epoll) wherever it "
              "would wait, so its row is one core's event loop running lesson 10's "
              "blocking-style code; it does not show a greenlet that computes for long or "
              "calls something gevent did not patch, which stalls every connection at once.",
        "12": "**12 · non-blocking sockets, polled**: one thread calls `recv` on every socket "
              "in turn and sleeps `--poll-interval` after a pass in which nothing happened, so "
              "its row is that loop on one core with every connection kept busy by wrk; it "
              "does not show the CPU the loop burns while idle, and "
              "only the hold test, where every pass also walks the connections that have "
              "nothing to say, shows what idle connections cost it.",
        "13": "**13 · an epoll event loop**: one thread, one loop, one core, and the kernel "
              "returns only the ready sockets, so its row is mostly Python's cost of parsing "
              "and answering each request; it does not show requests that need CPU time (one "
              "slow request stalls every connection), nor how nginx uses more cores, one such "
              "loop per core.",
        "14": "**14 · asyncio streams**: one thread, a coroutine per connection, on asyncio's "
              "default loop (selectors: epoll here), so its row is lesson 13's model with "
              "asyncio's transports, tasks and stream objects added to each request's cost; "
              "it does not show that the same code runs on kqueue (macOS) unchanged, nor "
              "uvloop, a faster drop-in loop outside the standard library.",
        "15": "**15 · SO_REUSEPORT workers**: lesson 13's event loop (on `selectors`) in "
              "worker processes, each accepting from its own listener on the one port, the "
              "kernel choosing the listener by a hash of each connection's 4-tuple. Its "
              "**1 worker** row%s is that loop plus a parent that only waits, so it shows "
              "what the selectors layer and the extra process cost next to lesson 13's row; "
              "its **2 workers** row %s: it shows the kernel spreading the connections over "
              "two loops, not a speed-up, since what the second worker adds is CPU taken from "
              "the load generator. Neither row shows the per-core scaling that is the model's point "
              "(that needs more cores than the load takes), nor the rest of C10M (RSS/RPS, "
              "io_uring, kernel bypass)." % two_workers_clauses(env),
    }


def machine_state(env):
    """The load and the CPU time of others, and a plain word when other work shared the machine."""
    cpus = env.get("cpus") or 1
    before, after = env.get("load_average"), env.get("load_average_after")
    text = ["Load average (1, 5, 15 min) at the start: %s; at the end: %s; %d CPUs." % (
        load_average(before), load_average(after), cpus)]
    work = env.get("cpu_work")
    others_share = None
    if work and work["available"]:
        others_share = work["others"] / work["available"]
        text.append("During the run (%s s) its CPUs were busy %s of %s CPU-seconds: %s for the "
                    "benchmark and the servers it started, %s for the kernel's threads (its "
                    "network work for us among them), %s (%.0f %%) for other processes%s." % (
                        "{:,.0f}".format(work["seconds"]), "{:,.0f}".format(work["busy"]),
                        "{:,.0f}".format(work["available"]), "{:,.0f}".format(work["ours"]),
                        "{:,.0f}".format(work.get("kernel_threads", 0)),
                        "{:,.0f}".format(work["others"]), 100 * others_share,
                        "; the hypervisor took %s more (steal)" % "{:,.0f}".format(work["steal"])
                        if work["steal"] >= 1 else ""))
    busy_at_start = before is not None and before[0] > cpus
    busy_during = others_share is not None and others_share > OTHER_WORK_SHARE
    if busy_at_start or busy_during:
        reasons = []
        if busy_at_start:
            reasons.append("the load average at the start, %.1f, is above the number of CPUs"
                           % before[0])
        if busy_during:
            reasons.append("other processes took %.0f %% of the CPUs' time"
                           % (100 * others_share))
        text.append("**Other work shared the machine** (%s): every figure is "
                    "noisier and lower than on an idle machine; compare rows within this run, "
                    "and run it again before reading much into a small difference."
                    % " and ".join(reasons))
    elif before is not None:
        text.append("No sign of other work: the load average at the start was below the "
                    "number of CPUs%s." % (
                        " and other processes took %.0f %% of the CPUs' time" % (
                            100 * others_share) if others_share is not None else ""))
    if after is not None and after[0] > cpus:
        text.append("The load average at the end counts the benchmark's own work too: a "
                    "server holding thousands of connections in threads or processes makes "
                    "them runnable all at once, and the 1-minute average decays slowly.")
    return " ".join(text)


def throughput_cells(row, concurrency):
    cells = []
    for c in concurrency:
        figures = row.get("throughput", {}).get(str(c))
        if not figures:
            cells.append("–")
            continue
        errors = figures["socket_errors"] + figures["non_2xx"]
        cells.append("{:,.0f}".format(figures["median"]) + (" (%d err)" % errors if errors else ""))
    return cells


def table(rows, concurrency, reference, nginx, floor, with_hold, caches_on_rows=None):
    """A markdown table: req/s, ratios to the anchors, then the hold test or the caches' worth."""
    header = ["Server"] + ["req/s c=%d" % c for c in concurrency] + [
        "× nginx c=%d" % c for c in concurrency if c >= reference] + [
        "× http.server c=%d" % reference]
    if with_hold:
        header += ["Hold: byte-exact", "Hold time", "Peak memory"]
    if caches_on_rows is not None:
        header += ["caches on ÷ off c=%d" % reference]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if "skipped" in row or "failed" in row:
            lines.append("| %s | %s |" % (row["label"], "skipped: " + row["skipped"]
                                          if "skipped" in row else "failed: " + row["failed"]))
            continue
        cells = [row["label"]] + throughput_cells(row, concurrency)
        cells += [ratio(median_rps(row, c), median_rps(nginx, c)) for c in concurrency
                  if c >= reference]
        cells.append(ratio(median_rps(row, reference), median_rps(floor, reference)))
        if with_hold:
            hold = row.get("hold", {})
            if hold:
                held = "%d/%d" % (hold.get("successes", 0), hold.get("connections", 0))
                if hold.get("stopped_over_memory_budget"):
                    held += " (stopped: over %d GB)" % (MEMORY_BUDGET // 1024 ** 3)
                cells += [held, "%.1f s" % hold["wall_seconds"] if "wall_seconds" in hold
                          else "–", "%.0f MB" % (hold.get("peak_memory_bytes", 0) / 1e6)]
            else:
                cells += ["–", "–", "–"]
        if caches_on_rows is not None:
            on = caches_on_rows.get(row_key(row)) if not row.get("anchor") else None
            cells.append(ratio(median_rps(on, reference), median_rps(row, reference))
                         if on else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(results, reference_file=False):
    env, rows = results[0], results[1:]
    concurrency = env["concurrency"]
    settings = env["settings"]
    anchors = [row for row in rows if row.get("anchor") or row["name"] in ("nginx", "http.server")]
    lessons = [row for row in rows if row not in anchors]
    by_name = {row["name"]: row for row in anchors}
    nginx, floor = by_name.get("nginx", {}), by_name.get("http.server", {})
    reference = concurrency[min(1, len(concurrency) - 1)]
    on_rows = [row for row in lessons if row.get("cache", True)]
    off_rows = [row for row in lessons if not row.get("cache", True)]
    command = "python3 -m bench.run" + (" --quick" if env["quick"] else "") + (
        " --caches %s" % env["caches"] if env.get("caches", "both") != "both" else "") + (
        " --reference" if reference_file else "")
    lines = []
    if reference_file:
        lines += ["<!-- Written by `%s` (%s). Do not edit: run it again. The same figures, "
                  "as data: RESULTS.json (schema in README.md). -->" % (command, env["date"]), ""]
    lines += ["# Static servers side by side", "",
              "`%s`, %s. %s, %d CPUs (%s), Python %s, %s, %s." % (
                  command, env["date"], env["system"], env["cpus"], env["cpu_model"],
                  env["python"], env["wrk"] or "wrk missing", env["nginx"] or "nginx missing"),
              "", "**The machine.** " + machine_state(env), ""]
    if env["server_cpu"] is not None:
        pinning = ("Each server is pinned to CPU %d and the load (wrk, bench.loadgen) to CPU %d "
                   "(taskset), so no server uses more than one core%s." % (
                       env["server_cpu"], env["load_cpu"],
                       "; except lesson 15 with 2 workers, one worker per CPU (see below)"
                       if any(row.get("pinned") is False for row in rows) else ""))
    else:
        pinning = "Not pinned: fewer than two CPUs (or no taskset); server and load share."
    lines += ["**How.** %s One %d-byte file, keep-alive. Throughput: `wrk -t1 -cN`, median of "
              "%d × %d s, round by round (every server in turn, a lesson's caches-on and "
              "caches-off runs side by side). Hold: N connections opened, then one GET on each, "
              "every byte checked; with the caches on only (the caches of one small file do not "
              "change how many connections a model holds). Lessons run with `--quiet` where "
              "they have it (no access log, as nginx). **Caches on** is each lesson's default; "
              "**caches off** is its `--no-cache`: no file cache, no Date cache, no parsed-head "
              "cache, so every request does its full work; a lesson whose `--help` has no "
              "`--no-cache` has no caches-off figures. The anchors are measured once and "
              "shown in both tables: nginx keeps its `open_file_cache`, http.server has no "
              "cache. Ratios are to the anchors in this same run." % (
                  pinning, FILE_SIZE, settings["wrk_runs"], settings["wrk_seconds"]), ""]
    if on_rows or not off_rows:
        lines += ["## Caches on (each lesson's default)", ""]
        lines += table(on_rows + anchors, concurrency, reference, nginx, floor, with_hold=True)
        lines.append("")
    if off_rows:
        lines += ["## Caches off (`--no-cache`): the same work per request in every lesson", ""]
        lines += table(off_rows + anchors, concurrency, reference, nginx, floor, with_hold=False,
                       caches_on_rows={row_key(row): row for row in on_rows
                                       if "throughput" in row})
        lines.append("")
    sentences = model_sentences(env)
    present = sorted({row["name"][:2] for row in lessons} & set(sentences))
    if present:
        lines += ["## What each row shows, and what it does not", ""]
        lines += ["- " + sentences[number] for number in present]
        lines.append("")
    problems = [(row["label"], problem) for row in rows for problem in row.get("problems", [])]
    smoke_failures = [row["label"] for row in rows
                      if "smoke" in row and row["smoke"]["successes"] != row["smoke"]["requests"]]
    if smoke_failures:
        lines.append("Not byte-exact under the smoke load: %s." % ", ".join(smoke_failures))
    for label, problem in problems:
        lines.append("- %s: %s" % (label, problem))
    lines.append("Peak memory: the peak resident size (VmHWM) of the largest process, or the "
                 "largest sum of PSS over the server's processes (shared pages counted once), "
                 "whichever is larger.")
    lines.append("Caps on the hold test: %s (a process per connection costs megabytes each); "
                 "a server above %d GB is stopped." % (
                     ", ".join("lesson %s at %s" % (lesson, "{:,}".format(limit))
                               for lesson, limit in HOLD_LIMITS.items()),
                     MEMORY_BUDGET // 1024 ** 3))
    return "\n".join(lines) + "\n"


def plot(results, path):
    """Bar chart of req/s at each concurrency (log scale); False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError:
        return False
    env, rows = results[0], [row for row in results[1:] if row.get("throughput")]
    concurrency = env["concurrency"]
    figure, axes = pyplot.subplots(figsize=(max(10, 0.7 * len(rows)), 5))
    width = 0.8 / max(len(concurrency), 1)
    for index, c in enumerate(concurrency):
        values = [median_rps(row, c) or 0 for row in rows]
        axes.bar([i + index * width for i in range(len(rows))], values, width, label="c=%d" % c)
    axes.set_yscale("log")
    axes.set_xticks([i + width * (len(concurrency) - 1) / 2 for i in range(len(rows))])
    axes.set_xticklabels([row["label"] for row in rows], rotation=30, ha="right")
    axes.set_ylabel("requests per second (log)")
    axes.set_title("Static servers, one %d-byte file, keep-alive (%s)" % (FILE_SIZE, env["date"]))
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return True


def save(results, folder=RESULTS):
    """bench/results/<date>.{md,json,png} and latest.*: every run's own record (git-ignored)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = results[0]["date"].replace(":", "")
    written = []
    for name in (stamp, "latest"):
        (folder / (name + ".json")).write_text(json.dumps(results, indent=1))
        (folder / (name + ".md")).write_text(markdown(results))
        written += [folder / (name + ".json"), folder / (name + ".md")]
        if plot(results, folder / (name + ".png")):
            written.append(folder / (name + ".png"))
    return written


def save_reference(results, folder=REFERENCE):
    """The committed record: RESULTS.md (the tables), RESULTS.json (latest.json's data)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "RESULTS.json").write_text(json.dumps(results, indent=1) + "\n")
    (folder / "RESULTS.md").write_text(markdown(results, reference_file=True))
    return [folder / "RESULTS.md", folder / "RESULTS.json"]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke run: c=100 for 1 s, hold 500, one round")
    parser.add_argument("--caches", choices=CACHE_MODES, default="both",
                        help="measure each lesson with its caches on, off (--no-cache), or "
                             "both side by side (default: both; the anchors run once)")
    parser.add_argument("--lessons", nargs="+", metavar="ID",
                        help="lesson ids (default: every server lesson 06-15 that exists)")
    parser.add_argument("--no-anchors", action="store_true",
                        help="skip python3 -m http.server and nginx")
    parser.add_argument("--hold", type=int, metavar="N", help="connections in the hold test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    parser.add_argument("--reference", action="store_true",
                        help="also write bench/RESULTS.md and bench/RESULTS.json, the committed "
                             "reference: the full run only (every lesson, both cache modes, "
                             "the anchors)")
    args = parser.parse_args(argv)
    if args.reference:
        narrowed = [option for option, given in (
            ("--quick", args.quick), ("--lessons", args.lessons),
            ("--no-anchors", args.no_anchors), ("--hold", args.hold is not None),
            ("--caches %s" % args.caches, args.caches != "both")) if given]
        if narrowed:
            parser.error("--reference is the full run; it does not go with %s"
                         % ", ".join(narrowed))
    return args


def main(argv=None):
    args = parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk): throughput is skipped",
              file=sys.stderr)
    results = measure(args.lessons, QUICK_CONCURRENCY if args.quick else CONCURRENCY,
                      args.quick, not args.no_anchors, args.hold,
                      log=lambda text: print(text, file=sys.stderr, flush=True),
                      caches=args.caches)
    written = save(results, args.out)
    if args.reference:
        written += save_reference(results)
    print(markdown(results))
    print("Written: %s" % ", ".join(str(path) for path in written), file=sys.stderr)
    rows = results[1:]
    broken = [row["label"] for row in rows if "failed" in row or (
        "smoke" in row and row["smoke"]["successes"] != row["smoke"]["requests"])]
    if broken:
        print("Not serving correctly under load: %s" % ", ".join(broken), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
