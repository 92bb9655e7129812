"""Where a submission runs, and how every process it started is found and stopped.

Two modes:
  * a student grading their own answers: the programs run as that student,
    with the grader's environment plus one marker variable;
  * Gradescope or a batch run (--sandbox-user NAME, the grader runs as root):
    each program runs as that unprivileged user, with a minimal environment,
    in a working folder of its own, with a cap on its number of processes.

Either way every program's processes carry the marker COURSE_GRADER_PROGRAM
in their environment, and a process belongs to the submission when it
carries the run's marker, descends from a program the grader started, is in
a program's process group, or (sandbox) runs as the sandbox user.  Leaving
the session (setsid) or the process group escapes none of these; in the
sandbox, neither does clearing the environment.
"""

import errno
import os
import pwd
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

MARKER = "COURSE_GRADER_PROGRAM"
MAX_PROCESSES = 256  # per sandbox user: a fork bomb ends here, a prefork server of 8 does not
MAX_FILE_SIZE = 256 * 1024 * 1024  # bytes one file written by the submission may reach
KILL_ROUNDS = 50  # a process may fork while we kill: kill until none is left, this many times

# Errors that say the machine ran short, not that the submission is wrong.
ENVIRONMENT_ERRNOS = {errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.ENOSPC,
                      errno.ENOBUFS}


def environment_problem(error):
    """A short description when error is the grading machine's, not the submission's."""
    if isinstance(error, MemoryError):
        return "out of memory (MemoryError)"
    if isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS:
        return "%s: %s" % (errno.errorcode.get(error.errno, error.errno),
                           error.strerror or error)
    if isinstance(error, RuntimeError) and "can't start new thread" in str(error):
        return "the grader could not start a thread: %s" % error
    return None


def accessible_to_others(path):
    """True if a user with no special rights can reach and run path."""
    path = Path(path).resolve()
    for folder in path.parents:
        if not folder.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IXOTH)


def let_through(path):
    """Let other users pass through path and every folder above it (not list them)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(folder, mode | 0o711)


def student_python(preferred=None):
    """The interpreter the sandbox user runs: ours if it can reach it, else the system's."""
    for candidate in (preferred, sys.executable, "/usr/local/bin/python3", "/usr/bin/python3"):
        if candidate and Path(candidate).exists() and accessible_to_others(candidate):
            return str(candidate)
    raise RuntimeError("no python3 the sandbox user can run (tried %s and /usr/bin/python3)"
                       % sys.executable)


def ensure_user(name):
    """The sandbox user (created, as a system user without a home or a shell, if absent)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--user-group", name],
                       check=True, capture_output=True, timeout=60)
        return pwd.getpwnam(name)


class Sandbox:
    """How this run starts the submission's programs, and which processes are its."""

    def __init__(self, user=None, work=None, python=None):
        self.run_id = uuid.uuid4().hex[:12]
        self.user = ensure_user(user) if user else None
        self.python = student_python(python) if self.user else sys.executable
        self.work = Path(work) if work else None
        self.programs_started = 0
        self.live = {}  # token -> pid of each program started and not yet killed

    # -- starting a program ------------------------------------------------------

    def options(self, exercise):
        """Keyword arguments for servers.start_server / ServerProcess for one program."""
        self.programs_started += 1
        token = "%s/%d" % (self.run_id, self.programs_started)
        if self.user is None:
            return token, {"env": {**os.environ, MARKER: token}}
        folder = self.work / ("ex" + exercise)
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, self.user.pw_uid, self.user.pw_gid)
        os.chmod(folder, 0o700)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(folder),
               "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONIOENCODING": "utf-8", MARKER: token}
        return token, {"env": env, "cwd": str(folder), "python": self.python,
                       "popen_options": {"user": self.user.pw_uid, "group": self.user.pw_gid,
                                         "extra_groups": []}}

    def started(self, token, pid):
        """Limits applied right after start (inherited by everything the program forks)."""
        self.live[token] = pid
        KNOWN_CHILDREN.add(pid)
        if self.user is None:
            return
        import resource
        for limit, value in ((resource.RLIMIT_NPROC, MAX_PROCESSES),
                             (resource.RLIMIT_FSIZE, MAX_FILE_SIZE),
                             (resource.RLIMIT_CORE, 0)):
            try:
                resource.prlimit(pid, limit, (value, value))
            except (OSError, ValueError):
                pass  # it exited already, or the platform has no such limit

    def readable(self, folder):
        """Let the sandbox user read a docroot the grader made (and reach it)."""
        if self.user is None:
            return
        folder = Path(folder)
        top = folder.parent  # the docroot and its "-outside" sibling
        for path, folders, files in os.walk(top):
            os.chmod(path, os.stat(path).st_mode | 0o755)
            for name in files:
                full = os.path.join(path, name)
                if not os.path.islink(full):
                    os.chmod(full, os.stat(full).st_mode | 0o444)
        let_through(top.parent)

    # -- finding and stopping its processes --------------------------------------

    def processes(self):
        """{pid: (ppid, pgid, uid, state, marker)} of every process on the machine."""
        table = {}
        for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                uid = (entry / "stat").stat().st_uid
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue  # gone meanwhile, or not ours to read
            key = b"\0" + MARKER.encode() + b"="
            at = (b"\0" + environ).find(key)
            marker = None if at == -1 else (
                (b"\0" + environ)[at + len(key):].split(b"\0", 1)[0].decode("ascii", "replace"))
            table[int(entry.name)] = (int(fields[1]), int(fields[2]), uid, fields[0], marker)
        return table

    def members(self, token, pid, table=None):
        """Pids (zombies too) of one program: its marker, its group, its descendants."""
        table = self.processes() if table is None else table
        found = {p for p, (ppid, pgid, uid, state, marker) in table.items()
                 if marker == token or pgid == pid or p == pid}
        found = self._descendants(found, table)
        if self.user is not None:
            # Its user's processes that no other live program claims: one that cleared
            # its environment, left its session and was orphaned is still the submission's.
            others = set()
            for other, other_pid in self.live.items():
                if other != token:
                    others |= self._descendants(
                        {p for p, row in table.items()
                         if row[4] == other or row[1] == other_pid or p == other_pid}, table)
            found |= {p for p, row in table.items()
                      if row[2] == self.user.pw_uid and p not in others}
        return found

    @staticmethod
    def _descendants(found, table):
        found = set(found)
        while True:
            children = {p for p, row in table.items() if row[0] in found} - found
            if not children:
                return found
            found |= children

    def ours(self, table):
        """Pids of every process of this run: its marker, or the sandbox user."""
        prefix = self.run_id + "/"
        return {p for p, (ppid, pgid, uid, state, marker) in table.items()
                if (marker or "").startswith(prefix)
                or (self.user is not None and uid == self.user.pw_uid)}

    def kill(self, select):
        """SIGKILL the processes select(table) names until none is left; reap our orphans."""
        for _ in range(KILL_ROUNDS):
            table = self.processes()
            alive = {p for p in select(table) if table[p][3] != "Z" and p != os.getpid()}
            if not alive:
                break
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.02)  # a killed process needs a moment to be gone from /proc
        reap_orphans()

    def kill_program(self, token, pid):
        self.kill(lambda table: self.members(token, pid, table))
        self.live.pop(token, None)

    def kill_all(self):
        self.kill(self.ours)
        self.live.clear()


KNOWN_CHILDREN = set()  # pids of programs the grader started with Popen: Popen reaps those


def reap_orphans():
    """Reap exited processes that were re-parented to the grader (a child subreaper)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) in KNOWN_CHILDREN:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == me:
            try:
                os.waitpid(int(entry.name), os.WNOHANG)
            except ChildProcessError:
                pass


def become_subreaper():
    """PR_SET_CHILD_SUBREAPER (Linux): orphans of the submission become our children,
    not init's, so they stay visible as the submission's until killed and reaped."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # 36 = PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False
