"""Every server lesson against the same load, side by side, with nginx and http.server as anchors.

    python -m bench.run            # the full run (about 9 minutes): bench/results/latest.md
    python -m bench.run --quick    # the CI smoke run, under a minute
    python -m bench.run --lessons 12_static_nonblocking 13_static_epoll --no-anchors

In three rounds (one with --quick), every server in turn is started on the
same docroot (one 2 KB file), checked byte-exact with bench.loadgen (first
round), measured with wrk at each concurrency (keep-alive) and stopped; the
median of its rounds is kept, so that a burst of other work on the machine
lands in one run of every server rather than in all runs of one.  Then each
server, restarted alone, takes the C10K hold test: N connections opened,
then one GET on each, every byte checked, its peak memory recorded.  With
two CPUs the server is pinned to one and the load to the other (taskset).
Results: one markdown table with ratios to nginx and to http.server *from
the same run*, a JSON file and a PNG plot, in bench/results/.

The anchors: ``python -m http.server`` (what a student would otherwise
use) and nginx with one worker, tuned (sendfile, open_file_cache, no
access log), when it is installed; a missing anchor is skipped, and the
table says so.  From a notebook: ``bench.run.measure(...)``.
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
        "wrk": tool_version(["wrk", "-v"]) if shutil.which("wrk") else None,
        "nginx": tool_version([nginx_binary(), "-v"]) if nginx_binary() else None,
        "server_cpu": server_cpu,
        "load_cpu": load_cpu,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


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
    """A lesson script, or python -m http.server, launched the way the tests launch it."""

    def __init__(self, name, label, script, args=()):
        self.name, self.label, self.script, self.args = name, label, Path(script), list(args)
        self.process = None

    def start(self, docroot, cpu, log_folder):
        self.process = start_server(self.script, *self.args, directory=docroot,
                                    log_path=log_folder / (self.name + ".log"),
                                    output_limit=1024 * 1024)
        pin(self.process.pid, cpu)
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
    server_cpu, load_cpu = cpus
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
    server_cpu, load_cpu = cpus
    hold = min(settings["hold"], HOLD_LIMITS.get(server.name[:2], settings["hold"]))
    port = server.start(docroot, server_cpu, log_folder)
    try:
        row["hold"] = hold_test(server, port, docroot / FILE_NAME, hold, settings, load_cpu)
    finally:
        problems = server.stop()
        if not row["hold"].get("stopped_over_memory_budget"):  # else we killed it ourselves
            row["problems"] += problems


def servers_to_measure(lesson_ids=None, anchors=True):
    """The lesson servers that exist (06-13, or those named), then the anchors."""
    servers, skipped = [], []
    if lesson_ids is None:
        scripts = sorted(path for path in LESSONS.glob("[0-9][0-9]_static_*.py")
                         if 6 <= int(path.name[:2]) <= 13)
    else:
        scripts = [LESSONS / (name + ".py") for name in lesson_ids]
    for script in scripts:
        if not script.exists():
            skipped.append((script.stem, "no such lesson"))
            continue
        help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                                   text=True, timeout=30).stdout
        args = ["--timeout", LESSON_TIMEOUT] if "--timeout" in help_text else []
        if "--quiet" in help_text:
            args.append("--quiet")  # no access log, as nginx below
        servers.append(Lesson(script.stem, script.stem, script, args))
    if anchors:
        servers.append(Lesson("http.server", "python -m http.server", http.server.__file__))
        if nginx_binary():
            servers.append(Nginx())
        else:
            skipped.append(("nginx", "not installed (apt install nginx-light)"))
    return servers, skipped


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
            hold=None, log=print):
    """Measure the lessons (default: every server lesson 06-13 that exists) and the anchors.

    Returns a list of dicts, one per server: name, label, smoke (loadgen
    report), throughput ({concurrency: wrk figures, median req/s}), hold
    (loadgen report of the C10K test, with peak_memory_bytes), problems; or
    name and skipped.  The first element is the environment (name
    "environment").  quick=True is the CI smoke setting; hold overrides the
    number of connections of the hold test.
    """
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
    results = [dict(name="environment", **environment(*cpus), settings=settings,
                    concurrency=list(concurrency), quick=quick)]
    servers, skipped = servers_to_measure(lesson_ids, anchors)
    with tempfile.TemporaryDirectory(prefix="bench-") as folder, on_load_cpu(cpus[1]):
        folder = Path(folder)
        docroot = make_docroot(folder / "docroot")
        rows = [{"name": server.name, "label": server.label, "throughput": {},
                 "wrk_runs": {}, "problems": [], "seconds": 0.0} for server in servers]
        # Round by round, every server in turn: a burst of other work on the
        # machine then lands in one run of each, not in all runs of one.
        phases = [(throughput_round, (concurrency, settings, cpus, folder), "round %d of %d"
                   % (number + 1, settings["wrk_runs"])) for number in range(settings["wrk_runs"])]
        phases.append((hold_round, (settings, cpus, folder), "hold test"))
        for phase, arguments, title in phases:
            for server, row in zip(servers, rows):
                if "failed" in row:
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
        results += rows
    results[0]["load_average_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    results += [{"name": name, "label": name, "skipped": reason} for name, reason in skipped]
    return results


# -- Reporting -----------------------------------------------------------------------

def load_average(values):
    return ", ".join("%.1f" % value for value in values) if values else "unknown"


def median_rps(row, connections):
    figures = row.get("throughput", {}).get(str(connections))
    return figures["median"] if figures else None


def ratio(value, reference):
    if not value or not reference:
        return "–"
    times = value / reference
    return "%.2f ×" % times if times < 10 else "%.0f ×" % times


def markdown(results):
    env, rows = results[0], results[1:]
    concurrency = env["concurrency"]
    settings = env["settings"]
    by_name = {row["name"]: row for row in rows}
    nginx, floor = by_name.get("nginx", {}), by_name.get("http.server", {})
    reference = concurrency[min(1, len(concurrency) - 1)]
    lines = ["# Static servers side by side", "",
             "`python -m bench.run%s`, %s. %s, %d CPUs (%s), Python %s, %s, %s." % (
                 " --quick" if env["quick"] else "", env["date"],
                 env["system"], env["cpus"], env["cpu_model"], env["python"],
                 env["wrk"] or "wrk missing", env["nginx"] or "nginx missing"), ""]
    if env["server_cpu"] is not None:
        lines.append("Each server pinned to CPU %d, the load (wrk, bench.loadgen) to CPU %d "
                     "(taskset)." % (env["server_cpu"], env["load_cpu"]))
    else:
        lines.append("Not pinned: fewer than two CPUs (or no taskset); server and load share.")
    lines += ["One %d-byte file, keep-alive. Throughput: `wrk -t1 -cN`, median of %d × %d s. "
              "Hold: N connections opened, then one GET on each, every byte checked. "
              "Lessons run with `--quiet` where they have it (no access log, as nginx). "
              "Load average (1, 5, 15 min) at the start: %s; at the end: %s (other work "
              "on the machine makes every figure noisier)." % (
                  FILE_SIZE, settings["wrk_runs"], settings["wrk_seconds"],
                  load_average(env.get("load_average")),
                  load_average(env.get("load_average_after"))), ""]
    header = ["Server"] + ["req/s c=%d" % c for c in concurrency] + [
        "× nginx c=%d" % c for c in concurrency if c >= reference] + [
        "× http.server c=%d" % reference, "Hold: byte-exact", "Hold time", "Peak memory"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if "skipped" in row or "failed" in row:
            lines.append("| %s | %s |" % (row["label"], "skipped: " + row["skipped"]
                                          if "skipped" in row else "failed: " + row["failed"]))
            continue
        cells = [row["label"]]
        for c in concurrency:
            figures = row["throughput"].get(str(c))
            if not figures:
                cells.append("–")
                continue
            errors = figures["socket_errors"] + figures["non_2xx"]
            cells.append("{:,.0f}".format(figures["median"])
                         + (" (%d err)" % errors if errors else ""))
        cells += [ratio(median_rps(row, c), median_rps(nginx, c)) for c in concurrency
                  if c >= reference]
        cells.append(ratio(median_rps(row, reference), median_rps(floor, reference)))
        hold = row.get("hold", {})
        held = "%d/%d" % (hold.get("successes", 0), hold.get("connections", 0))
        if hold.get("stopped_over_memory_budget"):
            held += " (stopped: over %d GB)" % (MEMORY_BUDGET // 1024 ** 3)
        cells += [held, "%.1f s" % hold["wall_seconds"] if "wall_seconds" in hold else "–",
                  "%.0f MB" % (hold.get("peak_memory_bytes", 0) / 1e6)]
        lines.append("| " + " | ".join(cells) + " |")
    problems = [(row["label"], problem) for row in rows for problem in row.get("problems", [])]
    smoke_failures = [row["label"] for row in rows
                      if "smoke" in row and row["smoke"]["successes"] != row["smoke"]["requests"]]
    lines.append("")
    if smoke_failures:
        lines.append("Not byte-exact under the smoke load: %s." % ", ".join(smoke_failures))
    for label, problem in problems:
        lines.append("- %s: %s" % (label, problem))
    lines.append("Peak memory: the peak resident size (VmHWM) of the largest process, or the "
                 "largest sum of PSS over the server's processes (shared pages counted once), "
                 "whichever is larger.")
    lines.append("Caps on the hold test: %s (a process per connection costs megabytes each); "
                 "a server above %d GB is stopped." % (
                     ", ".join("lesson %s at %d" % item for item in HOLD_LIMITS.items()),
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
    figure, axes = pyplot.subplots(figsize=(10, 5))
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


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke run: c=100 for 1 s, hold 500, under a minute")
    parser.add_argument("--lessons", nargs="+", metavar="ID",
                        help="lesson ids (default: every server lesson 06-13 that exists)")
    parser.add_argument("--no-anchors", action="store_true",
                        help="skip python -m http.server and nginx")
    parser.add_argument("--hold", type=int, metavar="N", help="connections in the hold test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is not installed (apt install wrk): throughput is skipped", file=sys.stderr)
    results = measure(args.lessons, QUICK_CONCURRENCY if args.quick else CONCURRENCY,
                      args.quick, not args.no_anchors, args.hold,
                      log=lambda text: print(text, file=sys.stderr, flush=True))
    written = save(results, args.out)
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
