"""Plumbing for the course notebooks: start lesson servers, always stop them, measure them.

The notebooks show the interesting code (raw sockets, bytes, timings) in their
own cells; what lives here is what a student should not have to read twice:

* ``LessonServers`` starts lesson scripts through the test harness's launcher
  (tests/servers.py), so a notebook launches servers exactly as the tests do:
  on port 0, reading the startup line, stopped with Ctrl+C (SIGINT to the
  server's process group).  Servers are stopped by ``stop_all()`` (the
  notebooks' last cell), by ``with LessonServers() as servers:``, by ``atexit``
  when the kernel shuts down, and -- if the kernel was killed outright so that
  neither ran -- by the next kernel that imports this module, which sweeps up
  the servers a dead kernel left behind (``sweep_orphans``).
* ``group_memory`` / ``group_cpu_seconds`` read /proc for a server's whole
  process group, so forking servers are measured with their children.
* ``hold`` and ``load`` measure through bench/, the course's measuring
  instrument: its load generator (every connection held at once, every byte
  checked) and its wrk runner.
"""

import atexit
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
REPO = NOTEBOOKS.parent
HTML = REPO / "html"
LESSONS = REPO / "lessons"

# The harness the tests use: one launcher for tests and notebooks alike.
for folder in (REPO / "tests", REPO):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
import servers as harness  # noqa: E402  (tests/servers.py)

try:
    from bench import run as bench_run  # noqa: E402  (the course's measuring instrument)
except ImportError:  # bench/ not there: the notebooks say what they skip
    bench_run = None

QUICK = os.environ.get("QUICK", "").strip().lower() not in ("", "0", "no", "false")

# `python -m http.server` prints the same startup line as the lessons (they
# copied it), so the harness can launch it as a script too.
HTTP_SERVER_MODULE = Path(http.server.__file__)
REGISTRY = Path(tempfile.gettempdir()) / ("course-notebook-servers-%d.json" % os.getuid())


def find_lesson(prefix):
    """The lesson whose file name starts with prefix ('04'), or None."""
    matches = sorted(LESSONS.glob(prefix + "_*.py"))
    return matches[0] if matches else None


def missing(what, why):
    """Say plainly that a part of the notebook is skipped, and why."""
    print("SKIPPED: %s -- %s" % (what, why))


def warn(what, why):
    """Say plainly that a part of the notebook measures less than it should, and why."""
    print("WARNING: %s -- %s" % (what, why))


def raise_descriptor_limit():
    """Raise this kernel's soft RLIMIT_NOFILE to the hard limit, as the lessons do.

    The servers and bench/loadgen.py raise their own; wrk inherits ours.
    Returns (soft before, soft now, hard).
    """
    import resource  # POSIX only, like the rest of this notebook's /proc reading
    from bench import loadgen  # its raise_descriptor_limit() copes with an unlimited hard limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, loadgen.raise_descriptor_limit(), hard


# ---------------------------------------------------------------------------
# Starting and always stopping servers
# ---------------------------------------------------------------------------

def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid):
    try:
        return Path("/proc/%d/cmdline" % pid).read_bytes().replace(b"\0", b" ").decode(
            "utf-8", "replace")
    except OSError:
        return ""


def _read_registry():
    try:
        return json.loads(REGISTRY.read_text())
    except (OSError, ValueError):
        return []


def _write_registry(entries):
    temporary = REGISTRY.with_suffix(".%d.tmp" % os.getpid())
    temporary.write_text(json.dumps(entries))
    os.replace(temporary, REGISTRY)


def sweep_orphans():
    """Stop servers that a notebook kernel started and then died without stopping.

    Only servers whose owning kernel is gone are touched, and only if the
    process still runs the script it was started with (pids get reused).
    """
    kept, swept = [], []
    for entry in _read_registry():
        if _alive(entry["owner"]):
            kept.append(entry)
        elif _alive(entry["pid"]) and entry["script"] in _cmdline(entry["pid"]):
            for sig in (signal.SIGINT, signal.SIGKILL):
                try:
                    os.killpg(entry["pid"], sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + 3
                while _alive(entry["pid"]) and time.monotonic() < deadline:
                    time.sleep(0.05)
            swept.append(entry["pid"])
    _write_registry(kept)
    return swept


class LessonServers:
    """The servers one notebook started.

    Use ``with LessonServers() as servers:`` for a block, or keep one for the
    whole notebook and call ``stop_all()`` in its last cell; ``atexit`` stops
    whatever is left when the kernel exits.
    """

    def __init__(self):
        self.running = []
        atexit.register(self.stop_all)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop_all()

    def start(self, script, *args, directory=None, **options):
        """Start a script (a lesson path, a lesson id, or http.server) on port 0."""
        script = Path(script)
        if not script.suffix:
            script = harness.script_path(str(script))
        server = harness.start_server(script, *args, directory=directory, **options)
        self.running.append(server)
        entries = _read_registry()
        entries.append({"pid": server.pid, "owner": os.getpid(), "script": str(script)})
        _write_registry(entries)
        return server

    def start_reference(self, *args, directory=None):
        """`python -m http.server`, the server a student would otherwise reach for."""
        return self.start(HTTP_SERVER_MODULE, *args, directory=directory or HTML)

    def stop(self, server):
        """Ctrl+C, then a check that it exited cleanly; returns the problems found."""
        problems = server.stop()
        if server in self.running:
            self.running.remove(server)
        _write_registry([entry for entry in _read_registry() if entry["pid"] != server.pid])
        return problems

    def stop_all(self):
        report = {}
        for server in list(self.running):
            name = "%s (port %s)" % (server.script.name, server.port)
            report[name] = self.stop(server) or "stopped cleanly"
        return report


sweep_orphans()  # a kernel that was killed outright leaves its servers to us


# ---------------------------------------------------------------------------
# Reading /proc for a whole process group
# ---------------------------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def group_pids(server):
    """The server's process and any children it forked (same process group)."""
    return server.group_members() or ([server.pid] if _alive(server.pid) else [])


def process_memory(pid):
    """(RSS, PSS) in bytes.  PSS splits pages shared by forked children fairly."""
    rss = pss = 0
    try:
        for line in Path("/proc/%d/smaps_rollup" % pid).read_text().splitlines():
            name, _, value = line.partition(":")
            if name == "Rss":
                rss = int(value.split()[0]) * 1024
            elif name == "Pss":
                pss = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return rss, pss


def group_memory(server):
    """Sum of RSS and of PSS over the server's process group, in bytes."""
    totals = [0, 0]
    for pid in group_pids(server):
        rss, pss = process_memory(pid)
        totals[0] += rss
        totals[1] += pss
    return {"processes": len(group_pids(server)), "rss": totals[0], "pss": totals[1]}


def process_cpu_seconds(pid):
    """(user, system) CPU seconds a live process has used so far."""
    try:
        fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def group_cpu_seconds(server):
    user = system = 0.0
    for pid in group_pids(server):
        u, s = process_cpu_seconds(pid)
        user += u
        system += s
    return user, system


def migrations(pid):
    """How often the scheduler moved this process to another CPU."""
    try:
        for line in Path("/proc/%d/sched" % pid).read_text().splitlines():
            if line.startswith("se.nr_migrations"):
                return int(line.split(":")[1])
    except (OSError, ValueError):
        pass
    return None


def context_switches(pids):
    """{(pid, tid): voluntary + nonvoluntary context switches} of every thread of these processes."""
    counts = {}
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue  # it exited meanwhile
        for tid in tids:
            try:
                status = Path("/proc/%d/task/%s/status" % (pid, tid)).read_text()
            except OSError:
                continue
            total = 0
            for line in status.splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split(":")[1])
            counts[(pid, int(tid))] = total
    return counts


class SwitchCounter:
    """Counts a server's context switches while a load runs, over all its processes and threads.

    A forking server's children exit when their connection closes, and their
    counts go with them: so /proc is sampled every `interval` seconds and the
    last count seen of each thread is kept.  What a thread does after its last
    sample is missed (a few switches at most: the count is a floor).
    """

    def __init__(self, server, interval=0.05):
        self.server = server
        self.interval = interval
        self.before = {}
        self.last = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.last.update(context_switches(group_pids(self.server)))
            self._stop.wait(self.interval)

    @property
    def total(self):
        return sum(count - self.before.get(task, 0) for task, count in self.last.items())

    def __enter__(self):
        self.before = context_switches(group_pids(self.server))
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        self.last.update(context_switches(group_pids(self.server)))


def start_with_cpu_route(servers, lesson, *args):
    """Start a lesson through notebooks/cpu_route.py: the lesson unchanged, plus one
    CPU-bound path, /cpu-burn?seconds=S (see that file)."""
    return servers.start(NOTEBOOKS / "cpu_route.py", *args, leading_args=(str(lesson),))


def cpu_stall(server, seconds=2.0, probes=5):
    """While one client's /cpu-burn request computes, how long do other clients wait?

    Starts the CPU-bound request, waits until the server says it has started
    computing, then times `probes` ordinary requests for /index.html one after
    the other.  Returns (slow request's seconds, [each probe's seconds]), or
    (None, None) if the lesson never started computing (cpu_route.py wraps the
    shared block's answer(): a lesson that answers otherwise has no /cpu-burn).
    """
    import rawhttp  # tests/rawhttp.py
    slow = {}

    def burn():
        started = time.monotonic()
        rawhttp.request(server.port, "/cpu-burn?seconds=%g" % seconds, timeout=seconds + 30)
        slow["seconds"] = time.monotonic() - started

    burner = threading.Thread(target=burn, daemon=True)
    burner.start()
    try:
        harness.wait_for_output(server, r"^cpu-burn: .* starts$", timeout=10)
    except AssertionError:  # the lesson does not answer through the shared answer()
        burner.join(seconds + 35)
        return None, None
    waits = []
    for _ in range(probes):
        started = time.monotonic()
        rawhttp.request(server.port, "/index.html", timeout=seconds + 30)
        waits.append(time.monotonic() - started)
    burner.join(seconds + 35)
    return slow.get("seconds"), waits


def read_first_line(path, default="(not available here)"):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


# ---------------------------------------------------------------------------
# Load: the course's measuring instrument, bench/ (its load generator and its wrk runner)
# ---------------------------------------------------------------------------

WRK = shutil.which("wrk")
HAS_LOADGEN = bench_run is not None


def cpus():
    """(server CPU, load CPU), as bench/ pins them on a machine with two CPUs, else (None, None)."""
    return bench_run.cpus_for() if bench_run else (None, None)


def pin(server, cpu):
    """Keep a server (its threads, its children, and those it forks later) on one CPU."""
    if bench_run and cpu is not None:
        bench_run.pin_group(server.pid, group_pids(server), cpu)


def load(port, concurrency, seconds, cpu=None):
    """Throughput: wrk (one thread, keep-alive) at `concurrency` connections, via bench/.

    Returns bench's report: requests_per_second, requests, latency_ms (p50, p90, p99),
    socket_errors, non_2xx.
    """
    if WRK is None or bench_run is None:
        raise RuntimeError("needs wrk (apt-get install wrk) and bench/")
    return bench_run.run_wrk(port, concurrency, seconds, cpu)


def hold(port, connections, requests=2, timeout=5, cpu=None):
    """bench/loadgen.py: open every connection first, hold them all at once, then ask
    `requests` times on each; every response checked byte for byte against html/index.html.

    It runs in its own process (its own descriptors and CPU; and an asyncio program cannot
    run inside a notebook's own event loop).  Returns its report, or None without bench/.
    """
    if not HAS_LOADGEN:
        return None
    name = bench_run.FILE_NAME
    command = bench_run.on_cpu(
        [sys.executable, "-m", "bench.loadgen", "http://127.0.0.1:%d/%s" % (port, name),
         "--connections", str(connections), "--requests", str(requests), "--timeout",
         str(timeout), "--expect-file", str(HTML / name), "--json"], cpu)
    # Worst case: every connect waits out its timeout, 100 connects in flight at a time.
    limit = 60 + (connections // 100 + 1) * timeout * 2 + requests * timeout
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=limit)
    try:
        return json.loads(run.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError("bench.loadgen gave no report:\n" + run.stdout + run.stderr) from None


class MemorySampler:
    """Samples a server group's memory in the background while a load runs; keeps the peak."""

    def __init__(self, server, interval=0.1):
        self.server = server
        self.interval = interval
        self.peak = {"rss": 0, "pss": 0, "processes": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            sample = group_memory(self.server)
            for key in self.peak:
                self.peak[key] = max(self.peak[key], sample[key])
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
