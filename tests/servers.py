"""Launching lesson scripts as real processes, the way a student runs them.

A ServerProcess starts a script on port 0 in its own session (process group),
learns the port from the startup line, keeps everything the script prints in
a log, and stops it the way a person does: Ctrl+C (SIGINT to the whole
foreground group).  Its stop() reports anything short of a clean exit.
"""

import importlib.util
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The folder whose scripts the tests launch: lessons/, unless LESSONS_FOLDER
# names another, as when CI holds solutions/ to the same contract.
LESSONS = Path(os.environ.get("LESSONS_FOLDER", REPO / "lessons")).resolve()

# Every lesson that serves files keeps the shared contract (tests/test_contract.py).
# A new server lesson joins it by adding its id here.
STATIC_SERVERS = [
    "06_static_single",
    "07_static_multiprocessing",
    "08_static_fork",
    "09_static_socketserver",
    "10_static_threading",
    "11_static_gevent",
    "12_static_nonblocking",
    "13_static_epoll",
    "14_static_asyncio",
    "15_static_reuseport",
]

# Servers that serve many connections at once, with keep-alive and streamed
# files (tests/test_concurrent_servers.py): every static server but lesson 06,
# which serves one client at a time.
# Lessons whose worker processes live as long as the server (lesson 15): an
# idle server is its main process and that many workers, not the main process
# alone.  Lesson id -> the worker count when the command line gives no --workers.
RESIDENT_WORKERS = {"15_static_reuseport": os.cpu_count() or 1}

CONCURRENT_SERVERS = [lesson for lesson in STATIC_SERVERS if lesson != "06_static_single"]

STARTUP_LINE = re.compile(
    r"Serving HTTP on (?P<host>\S+) port (?P<port>\d+) \(http://(?P<url_host>\S+):(?P=port)/\) \.\.\.")
# The echo servers of lesson 02 speak no HTTP, so they say what they do serve,
# and how to talk to them:  Serving TCP echo on 127.0.0.1 port 54321 (nc 127.0.0.1 54321) ...
ECHO_STARTUP_LINE = re.compile(
    r"Serving (?P<protocol>TCP|UDP) echo on (?P<host>\S+) port (?P<port>\d+) "
    r"\(nc (?:-u )?(?P<url_host>\S+) (?P=port)\) \.\.\.")
STARTUP_TIMEOUT = 20.0  # gevent and a cold disk can be slow to import
STOP_TIMEOUT = 10.0
# Output kept per process: beyond it, a script that floods its output is
# drained (so it never blocks on a full pipe) and counted, not stored.
OUTPUT_LIMIT = 16 * 1024 * 1024
LONGEST_LINE = 64 * 1024  # a longer "line" is cut, so a flood without "\n" stays bounded
LONGEST_STARTUP_LINE = 4096  # the real one is under 100 characters


def script_path(lesson_id, folder=LESSONS):
    return Path(folder) / (lesson_id + ".py")


def resident_workers(lesson_id, command):
    """How many long-lived workers this command starts besides its main process."""
    if lesson_id not in RESIDENT_WORKERS:
        return 0
    if "--workers" in command[:-1]:
        return int(command[command.index("--workers") + 1])
    return RESIDENT_WORKERS[lesson_id]


class ServerFailed(AssertionError):
    pass


class ServerProcess:
    def __init__(self, script, args=(), log_path=None, cwd=None, env=None,
                 output_limit=OUTPUT_LIMIT, python=None, popen_options=None):
        self.script = Path(script)
        self.command = [python or sys.executable, "-u", str(self.script), *map(str, args)]
        self.log_path = log_path
        self.lines = []
        self.output_limit = output_limit
        self.kept_size = 0
        self.dropped_size = 0  # bytes of output beyond output_limit
        self._first_line = queue.Queue()
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd, env=env,
            **(popen_options or {}))
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        try:
            self._reader.start()
        except BaseException:  # "can't start new thread": never leave the program running
            self.kill()
            raise
        self.host = self.port = None
        # Which processes belong to this program: by default its process group.
        # The exercise grader widens this to every process the program started.
        self.member_filter = lambda: (lambda pid, pgid: pgid == self.pid)
        self.resident_workers = resident_workers(self.script.stem, self.command)

    def _read_output(self):
        log = open(self.log_path, "w", encoding="utf-8") if self.log_path else None
        pending = b""
        try:
            # Chunks, not lines: a script that prints without "\n" must not
            # make us buffer without limit.
            while chunk := self.process.stdout.read1(65536):
                if self.kept_size >= self.output_limit:
                    self.dropped_size += len(chunk)
                    continue
                *complete, pending = (pending + chunk).split(b"\n")
                longest = LONGEST_LINE if self.lines or complete else LONGEST_STARTUP_LINE
                if len(pending) > longest:
                    complete.append(pending)
                    pending = b""
                for raw in complete:
                    self._keep(raw, log)
            if pending:
                self._keep(pending, log)
        finally:
            self._first_line.put(None)
            if log:
                log.close()

    def _keep(self, raw, log):
        if self.kept_size >= self.output_limit:
            self.dropped_size += len(raw) + 1
            return
        line = raw.decode("utf-8", "replace")
        if not self.lines:
            self._first_line.put(line)
        self.lines.append(line)
        self.kept_size += len(raw) + 1
        if log:
            log.write(line + "\n")
            log.flush()

    @property
    def pid(self):
        return self.process.pid

    def wait_for_startup(self, timeout=STARTUP_TIMEOUT, startup_line=STARTUP_LINE):
        """Block until the startup line arrives; return self with port and host set."""
        try:
            line = self._first_line.get(timeout=timeout)
        except queue.Empty:
            raise ServerFailed("no startup line within %.0f s\n%s" % (timeout, self.output()))
        match = startup_line.fullmatch(line or "")
        if not match:
            self._reader.join(2)
            if line is None:
                raise ServerFailed("exited (status %s) without printing the startup line\n%s"
                                   % (self.process.poll(), self.output()))
            raise ServerFailed("first line is not the startup line: %r\n%s"
                               % (line[:200], self.output()))
        self.host, self.port = match["host"], int(match["port"])
        return self

    def output(self):
        text = "\n".join(self.lines)
        if self.dropped_size:
            text += "\n[... %d more bytes of output, not kept]" % self.dropped_size
        return text

    def group_processes(self):
        """{pid: state letter} of every process in the server's group, zombies ("Z") too
        (for a graded submission: of every process it started, see tests/exercises)."""
        states = {}
        is_member = self.member_filter()
        for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            state, pgid = fields[0], int(fields[2])
            if is_member(int(entry.name), pgid):
                states[int(entry.name)] = state
        return states

    def group_members(self):
        """Live (non-zombie) processes still in the server's process group."""
        return [pid for pid, state in self.group_processes().items() if state != "Z"]

    def workers(self):
        """The group's live processes other than the program itself (its forked workers)."""
        return sorted(pid for pid in self.group_members() if pid != self.pid)

    def zombies(self):
        """Exited processes of the group that nobody has reaped yet (Linux)."""
        return [pid for pid, state in self.group_processes().items() if state == "Z"]

    def open_descriptors(self, pids=None, sockets_only=False):
        """How many descriptors these processes (default: the group's live ones) hold (Linux)."""
        count = 0
        for pid in self.group_members() if pids is None else pids:
            folder = "/proc/%d/fd" % pid
            try:
                names = os.listdir(folder)
            except OSError:
                continue  # it exited meanwhile
            for name in names:
                try:
                    if sockets_only and not os.readlink(folder + "/" + name).startswith("socket:"):
                        continue
                except OSError:
                    continue  # closed meanwhile
                count += 1
        return count

    def idle_descriptors(self, sockets_only=False, timeout=10.0):
        """The descriptors the server holds with no connection open: a baseline (Linux).

        Right after a reply has arrived, the child or thread that sent it may
        still be closing its copy: wait until only the main process (and its
        resident workers) is left and the count has held still for three readings.
        """
        assert wait_for(lambda: len(self.group_members()) == 1 + self.resident_workers
                        and self.pid in self.group_members(), timeout), \
            "connections still being served, no baseline to take\n" + self.report()
        readings = []

        def steady():
            readings.append(self.open_descriptors(sockets_only=sockets_only))
            return len(readings) >= 3 and len(set(readings[-3:])) == 1
        assert wait_for(steady, timeout), "descriptors never settled: %s" % readings[-10:]
        return readings[-1]

    def report(self):
        """What each process of the group is doing and the server's TCP connections (Linux):
        for the message of a failed assertion about descriptors or processes."""
        lines = []
        for pid, state in sorted(self.group_processes().items()):
            try:
                waiting_in = Path("/proc/%d/wchan" % pid).read_text()
            except OSError:
                waiting_in = "?"
            lines.append("pid %d state %s in %s: %d sockets" % (
                pid, state, waiting_in or "-", self.open_descriptors([pid], sockets_only=True)))
        try:
            sockets = subprocess.run(
                ["ss", "-tnoi", "state", "all", "( sport = :%d )" % self.port],
                capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.TimeoutExpired) as error:
            sockets = "(ss: %s)" % error
        return "\n".join(lines) + "\n" + sockets

    def thread_count(self):
        """How many threads the server's main process runs (Linux)."""
        return len(os.listdir("/proc/%d/task" % self.pid))

    def resident_bytes(self):
        """{pid: resident memory (VmRSS) in bytes} of the group's live processes (Linux)."""
        sizes = {}
        for pid in self.group_members():
            try:
                status = Path("/proc/%d/status" % pid).read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    sizes[pid] = int(line.split()[1]) * 1024
        return sizes

    def cpu_seconds(self):
        """CPU time (user + system) the group's live processes have used so far (Linux)."""
        ticks = 0
        for pid in self.group_members():
            try:
                fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it exited meanwhile
            ticks += int(fields[11]) + int(fields[12])  # utime and stime, in clock ticks
        return ticks / os.sysconf("SC_CLK_TCK")

    def interrupt(self):
        """Ctrl+C: SIGINT to the whole foreground group, as a terminal sends it."""
        try:
            os.killpg(self.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def kill(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass

    def stop(self):
        """Ctrl+C, then check the exit; returns a list of problems (empty when clean)."""
        problems = []
        if self.process.poll() is None:
            self.interrupt()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            problems.append("still running %.0f s after Ctrl+C" % STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)
        deadline = time.monotonic() + 2.0
        while self.group_members() and time.monotonic() < deadline:
            time.sleep(0.05)
        leftovers = self.group_members()
        if leftovers:
            problems.append("processes left behind after Ctrl+C: %s" % leftovers)
        self.kill()
        if self.process.returncode not in (0, None) and not problems:
            problems.append("exit status %s after Ctrl+C" % self.process.returncode)
        if "Traceback" in self.output():
            problems.append("a traceback in the output")
        return problems


def wait_for(condition, timeout=10.0, interval=0.05):
    """Poll condition() until it is true or timeout seconds pass; return its last value.

    For states a test can observe but not be told about (a child exiting, a
    descriptor closing), never as a stand-in for a reply that will arrive.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def cpu_used_over(server, seconds):
    """CPU seconds the server's processes use in the next `seconds`: a measuring window."""
    before = server.cpu_seconds()
    time.sleep(seconds)
    return server.cpu_seconds() - before


def start_server(script, *args, log_path=None, cwd=None, env=None, directory=None,
                 port=0, bind="127.0.0.1", startup_timeout=STARTUP_TIMEOUT,
                 output_limit=OUTPUT_LIMIT, leading_args=(), startup_line=STARTUP_LINE,
                 python=None):
    """Start a lesson server on port 0 and wait for its startup line.

    leading_args go before the port: a mode word, as in `01_server_overview.py server 0`.
    """
    command_args = [*leading_args, port, "--bind", bind]
    if directory is not None:
        command_args += ["--directory", directory]
    server = ServerProcess(script, [*command_args, *args], log_path=log_path, cwd=cwd, env=env,
                           output_limit=output_limit, python=python)
    try:
        return server.wait_for_startup(startup_timeout, startup_line)
    except BaseException:
        server.kill()
        raise


def wait_for_output(server, pattern, timeout=10.0):
    """Wait until a server has printed a line matching pattern (a regex); return the output.

    Its output is read by another thread, so a line the server has printed may
    not be in server.output() yet: poll, with a deadline.
    """
    deadline = time.monotonic() + timeout
    while not re.search(pattern, server.output(), re.MULTILINE):
        if time.monotonic() > deadline:
            raise AssertionError("no output matching %r within %.0f s:\n%s"
                                 % (pattern, timeout, server.output()))
        time.sleep(0.02)
    return server.output()


def run_script(script, *args, timeout=30, cwd=None, env=None):
    """Run a script to its end, as a student would: the CompletedProcess, output as text."""
    return subprocess.run([sys.executable, "-u", str(script), *map(str, args)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def one_line_error(result):
    """The message of a script that refused to run: it must exit non-zero with one
    line on stderr, no traceback.  Returns that line for the caller's checks."""
    assert result.returncode != 0, "exited 0: %r" % result.stdout[-500:]
    message = result.stderr.strip()
    assert "Traceback" not in message, message
    assert len(message.splitlines()) == 1, message
    return message


def import_lesson(lesson_id, folder=LESSONS):
    """A lesson as a module, to test its pure functions without a socket."""
    spec = importlib.util.spec_from_file_location("lesson_" + lesson_id,
                                                  script_path(lesson_id, folder))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_docroot(root):
    """The docroot the contract tests serve: small, known bytes, and traps."""
    root = Path(root)
    outside = root.parent / (root.name + "-outside")
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_text("SECRET: outside the docroot\n")
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "index.html": "<!DOCTYPE html>\n<title>Test home</title>\n<h1>Test home</h1>\n",
        "style.css": "body { font-family: sans-serif; }\n",
        "app.js": "console.log('hello');\n",
        "notes.txt": "plain text\n",
        "sub/index.html": "<!DOCTYPE html>\n<title>Sub</title>\n<p>nested index</p>\n",
        "sub/page.html": "<p>a page in sub</p>\n",
        "noindex/readme.txt": "a folder without index.html\n",
        "中文.html": "<!DOCTYPE html>\n<meta charset=\"utf-8\">\n<p>你好，世界</p>\n",
        "with space.txt": "a file name with a space\n",
        "empty.txt": "",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "image.png").write_bytes(bytes(range(256)) * 8)  # binary, every byte value
    for link, target in [("link-out.txt", outside / "secret.txt"), ("link-dir", outside)]:
        if not (root / link).is_symlink():
            os.symlink(target, root / link)
    if hasattr(os, "mkfifo") and not (root / "fifo").exists():
        os.mkfifo(root / "fifo")
    return root


class Launcher:
    """Starts scripts for one test; stops each with Ctrl+C and checks the exit."""

    def __init__(self, log_folder):
        self.log_folder = log_folder
        self.servers = []

    def __call__(self, script, *args, **options):
        log_path = self.log_folder / ("server-%d.log" % len(self.servers))
        server = start_server(script, *args, log_path=log_path, **options)
        self.servers.append(server)
        return server

    def stop_all(self):
        problems = []
        for server in self.servers:
            for problem in server.stop():
                problems.append("%s: %s" % (server.script.name, problem))
            # Captured output of a teardown is shown only when the test fails.
            print("---- output of %s ----\n%s" % (" ".join(server.command[2:]), server.output()))
        return problems
