"""What a failing exercise test shows the student, and the tools that record it.

Every connection a test opens through a Transcript remembers the bytes it
sent and received, in order, and how it ended ("connection closed", "no
answer in N s").  When a test fails, conftest.py turns the transcript into a
report: the bytes, a command that reproduces the request by hand (curl, or
printf | nc when curl cannot send those bytes), the test's hint, and the
output of the program under test, marked as the program's.
"""

import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import rawhttp
from servers import OUTPUT_LIMIT, STARTUP_LINE, ServerFailed, ServerProcess

STARTUP_TIMEOUT = 15.0  # a submission that says nothing for this long costs its exercise only
STOP_GRACE = 2.0  # seconds a program gets to exit after Ctrl+C before it is killed
OUTPUT_KEPT = 256 * 1024  # of a program's output; a flood beyond it is drained and counted
SHOWN_BYTES = 2000  # of each direction of a connection, in a report
SHOWN_OUTPUT_LINES = 40  # of a program's output, in a report
SHOWN_CONNECTIONS = 3  # the last ones a test opened
COURSE_SITE_PORT = 7890  # the course's own site, likely running: never reproduce there

assert OUTPUT_KEPT <= OUTPUT_LIMIT


class NotGradable(AssertionError):
    """The exercise cannot be graded: not submitted, or the program did not start."""


# ---------------------------------------------------------------------------
# Connections that remember what went over them
# ---------------------------------------------------------------------------

class Connection:
    """A client socket that records the conversation; rawhttp can read from it."""

    def __init__(self, server, timeout):
        self.server = server
        self.events = []  # [direction, bytearray], direction ">" sent, "<" received
        self.ending = None  # how the conversation ended, as a student should read it
        self.reader = rawhttp.ResponseReader(self)
        self.sock = None

    def open(self, timeout):
        try:
            self.sock = rawhttp.connect(self.server.port, timeout=timeout)
        except OSError as error:
            self.ending = "could not connect to port %d: %s" % (self.server.port,
                                                               error.strerror or error)
            raise

    def _record(self, direction, data):
        if self.events and self.events[-1][0] == direction:
            self.events[-1][1] += data
        else:
            self.events.append([direction, bytearray(data)])

    def sent(self):
        return b"".join(bytes(data) for direction, data in self.events if direction == ">")

    def received(self):
        return b"".join(bytes(data) for direction, data in self.events if direction == "<")

    def sendall(self, data):
        self._record(">", data)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.ending = "the program closed the connection while the grader was still sending"
            raise

    def recv(self, size):
        try:
            data = self.sock.recv(size)
        except socket.timeout:
            self.ending = "no answer in %.1f s" % self.sock.gettimeout()
            raise
        except ConnectionResetError:
            self.ending = "connection reset by the program"
            raise
        if data:
            self._record("<", data)
        else:
            self.ending = "connection closed by the program"
        return data

    def read_response(self, method="GET"):
        return self.reader.read_response(method)

    def silent_for(self, seconds):
        """True if nothing arrives, and the connection stays open, for that long.

        It peeks: a byte that does arrive is left for read_response() to read.
        """
        self.sock.settimeout(seconds)
        try:
            early = self.sock.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(rawhttp.TIMEOUT)
        if not early:
            self.ending = "connection closed by the program"
        return False

    def read_until_close(self):
        return self.reader.read_until_close()

    def __getattr__(self, name):  # settimeout, gettimeout, shutdown, setsockopt, close...
        return getattr(self.sock, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.sock is not None:
            self.sock.close()


class Transcript:
    """Everything one test did: the programs it started and the connections it opened."""

    def __init__(self, exercise):
        self.exercise = exercise
        self.connections = []
        self.programs = []  # ServerProcess objects whose output belongs in the report
        self.own_programs = []  # the ones this test started and must stop
        self.notes = []  # (title, text or a function giving it) a student needs to see too

    # -- talking to a server -------------------------------------------------

    def connect(self, server, timeout=rawhttp.TIMEOUT):
        connection = Connection(server, timeout)
        self.connections.append(connection)
        connection.open(timeout)
        return connection

    def request(self, server, path="/", method="GET", headers=(), body=b"",
                version="HTTP/1.1", timeout=rawhttp.TIMEOUT):
        """One request on a fresh connection that asks to be closed; the parsed response."""
        headers = list(headers)
        if not any(name.lower() == "connection" for name, _ in headers):
            headers.append(("Connection", "close"))
        with self.connect(server, timeout) as connection:
            connection.sendall(rawhttp.build_request(path, method, headers, version, body))
            response = connection.read_response(method)
        response.connection = connection
        return response

    def exchange(self, server, data, timeout=rawhttp.TIMEOUT):
        """Send raw bytes, then read until the program closes; what came back."""
        with self.connect(server, timeout) as connection:
            try:
                connection.sendall(data)
                connection.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the program may answer and close before reading everything
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    if not connection.recv(65536):
                        break
                except ConnectionResetError:
                    break
            return connection.received()

    def note(self, title, text):
        self.notes.append((title, text))

    # -- programs ------------------------------------------------------------

    def started(self, program, own=True):
        if program not in self.programs:
            self.programs.append(program)
        if own:
            self.own_programs.append(program)
        return program

    def stop_own_programs(self):
        for program in self.own_programs:
            dispose(program)

    # -- the report ----------------------------------------------------------

    def report(self, check, hint):
        parts = [check]
        if self.connections:
            shown = self.connections[-SHOWN_CONNECTIONS:]
            first = len(self.connections) - len(shown) + 1
            for number, connection in enumerate(shown, first):
                parts.append("What the grader sent and received (connection %d of %d):\n%s"
                             % (number, len(self.connections), show_conversation(connection)))
            reproduce = reproduction(self.connections[-1], self.exercise.reproduce_port,
                                     self.exercise.keep_site)
            if reproduce:
                parts.append("Reproduce it yourself (the last connection):\n" + reproduce)
        for title, text in self.notes:
            parts.append("%s:\n%s" % (title, text() if callable(text) else text))
        if hint:
            parts.append("Hint: " + hint)
        for program in self.programs:
            parts.append(show_program_output(program))
        return "\n\n".join(parts)


# ---------------------------------------------------------------------------
# Starting and stopping the program under test
# ---------------------------------------------------------------------------

def start_program(script, args, log_path, sandbox, exercise):
    """Start a submission's program the sandbox's way; every process it starts is tracked."""
    token, options = sandbox.options(exercise)
    program = ServerProcess(script, args, log_path=log_path, output_limit=OUTPUT_KEPT,
                            **options)
    sandbox.started(token, program.pid)
    program.token, program.sandbox = token, sandbox
    # Every process it started, not only its process group: one that called
    # setsid() or left the group still counts (CPU, process counts, leftovers).
    program.member_filter = lambda: (
        lambda pid, pgid, found=sandbox.members(token, program.pid): pid in found)
    return program


def launch(script, args, log_path, sandbox, exercise, directory=None, leading_args=(),
           startup_line=STARTUP_LINE):
    """Start a submission as a server; NotGradable with a clear reason if it does not start."""
    typed = command_of(script, args, directory, leading_args)
    if directory is not None:
        sandbox.readable(directory)
    server = start_program(script, typed[2:], log_path, sandbox, exercise)  # after python3 FILE
    try:
        server.wait_for_startup(STARTUP_TIMEOUT, startup_line)
    except ServerFailed as failure:
        dispose(server)
        reason, _, output = str(failure).partition("\n")
        if reason.startswith("no startup line"):
            reason = ("it printed no startup line within %.0f s (it must print 'Serving HTTP "
                      "on HOST port PORT (http://HOST:PORT/) ...' first, and flush it)"
                      % STARTUP_TIMEOUT)
        elif reason.startswith("first line"):
            reason = "its " + reason
        else:
            reason = "it " + reason
        raise NotGradable("Your program did not start: %s.\nCommand: %s\n%s"
                          % (reason, " ".join(map(shlex.quote, typed)),
                             fenced_output(output.splitlines(), script))) from None
    except BaseException:
        dispose(server)
        raise
    server.typed_command = typed
    server.directory = directory
    return server


def run_program(script, args, timeout, log_path, sandbox, exercise):
    """Run a submission that is a client to the end; (exit status, ServerProcess)."""
    program = start_program(script, args, log_path, sandbox, exercise)
    try:
        status = program.process.wait(timeout)
    except subprocess.TimeoutExpired:
        dispose(program)
        raise NotGradable("Your program did not finish within %.0f s.\n%s"
                          % (timeout, fenced_output(program.lines, script))) from None
    except BaseException:
        dispose(program)
        raise
    program._reader.join(STOP_GRACE)
    program.kill()  # anything it left running in its group
    program.sandbox.kill_program(program.token, program.pid)  # and anywhere else
    return status, program


def dispose(program):
    """Stop a program under test without judging how it stops: Ctrl+C, then SIGKILL
    to its group and to every other process it started (setsid() escapes no one)."""
    if program.process.poll() is None:
        program.interrupt()
        try:
            program.process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass
    program.kill()  # the whole process group: forked children too
    sandbox = getattr(program, "sandbox", None)
    if sandbox is not None:
        sandbox.kill_program(program.token, program.pid)
    program._reader.join(STOP_GRACE)


def command_of(script, args, directory=None, leading_args=(), port=0):
    """The command line launch() runs, as a student would type it."""
    command = ["python3", relative(script), *map(str, leading_args), str(port),
               "--bind", "127.0.0.1"]
    if directory is not None:
        command += ["--directory", str(directory)]
    return command + [str(arg) for arg in args]


# ---------------------------------------------------------------------------
# Showing bytes and output to a student
# ---------------------------------------------------------------------------

def printable(data):
    """Bytes as readable text: one line per received line, \\r and \\n made visible."""
    text = data.decode("utf-8", "backslashreplace")
    text = re.sub(r"[\x00-\x09\x0b-\x1f\x7f]",
                  lambda match: {"\r": "\\r", "\t": "\\t"}.get(match[0],
                                                               "\\x%02x" % ord(match[0])),
                  text)
    lines = text.split("\n")
    shown = [line + "\\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    return shown


def show_bytes(data):
    if len(data) > SHOWN_BYTES:
        head, tail = data[:SHOWN_BYTES - 400], data[-400:]
        lines = printable(head) + ["[... %d bytes not shown ...]" % (len(data) - len(head)
                                                                   - len(tail))]
        lines += printable(tail)
    else:
        lines = printable(data)
    return "\n".join("      " + line for line in lines)


def show_conversation(connection):
    lines = []
    for direction, data in connection.events:
        if direction == ">":
            lines.append("  >>> the grader sent %d bytes:" % len(data))
        else:
            lines.append("  <<< your program sent back %d bytes:" % len(data))
        lines.append(show_bytes(bytes(data)))
    if not any(direction == "<" for direction, _ in connection.events):
        lines.append("  <<< your program sent back nothing")
    lines.append("  --- then: %s" % (connection.ending or "the grader closed the connection"))
    return "\n".join(lines)


REQUEST = re.compile(rb"(?P<method>[A-Z]+) (?P<target>/\S*) (?P<version>HTTP/1\.[01])\r\n"
                     rb"(?P<headers>(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [\x20-\x7e]*\r\n)*)\r\n")


def curl_command(sent, port):
    """The curl command that sends the same request, or None if curl cannot."""
    match = REQUEST.match(sent)
    if not match:
        return None
    headers = [line.split(": ", 1) for line in match["headers"].decode().split("\r\n") if line]
    body = sent[match.end():]
    length = next((int(value) for name, value in headers if name.lower() == "content-length"), 0)
    if len(body) != length or (body and not body.isascii()):
        return None  # pipelined requests, or a body curl would not send byte for byte
    method = match["method"].decode()
    command = ["curl", "-v", "--path-as-is"]
    if match["version"] == b"HTTP/1.0":
        command.append("--http1.0")
    if method == "HEAD":
        command.append("--head")
    elif method != "GET" or body:
        command += ["-X", method]
    for name, value in headers:
        if name.lower() not in ("host", "content-length"):
            command += ["-H", "%s: %s" % (name, value)]
    if body:
        command += ["--data-binary", body.decode()]
    command.append("http://127.0.0.1:%d%s" % (port, match["target"].decode()))
    return " ".join(map(shlex.quote, command))


def printf_command(sent, port):
    if len(sent) > SHOWN_BYTES:
        return None
    escaped = "".join(
        "\\\\" if byte == 0x5C else "%%" if byte == 0x25 else "'\\''" if byte == 0x27
        else "\\r" if byte == 0x0D else "\\n" if byte == 0x0A
        else chr(byte) if 0x20 <= byte < 0x7F else "\\%03o" % byte
        for byte in sent)
    return "printf '%s' | nc 127.0.0.1 %d" % (escaped, port)


def free_port():
    """A port nothing listens on now, and not the course site's: for reproduce commands."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port != COURSE_SITE_PORT:
            return port


def reproduction(connection, port, keep_site=None):
    """Commands that start the program as the grader did and send the same bytes.

    keep_site(directory) returns a copy of the docroot that outlives the run.
    """
    typed = getattr(connection.server, "typed_command", None)
    if typed is None:
        return None
    typed = list(typed)
    port_index = typed.index("--bind") - 1
    typed[port_index] = str(port)
    directory = getattr(connection.server, "directory", None)
    if directory is not None and keep_site is not None and "--directory" in typed:
        typed[typed.index("--directory") + 1] = relative(keep_site(directory))
    start = " ".join(map(shlex.quote, typed))
    sent = connection.sent()
    ask = curl_command(sent, port) or printf_command(sent, port)
    if ask is None:
        ask = "(the %d bytes sent are too many to retype: see above)" % len(sent)
    return "  %s      # in one terminal\n  %s      # in another" % (start, ask)


def copy_site(source, target):
    """Copy a docroot's folder (the docroot and its "-outside" sibling) to target:
    links that pointed inside it point inside the copy, a FIFO is made anew."""
    source, target = Path(source), Path(target)
    if target.exists():
        shutil.rmtree(target)
    for folder, folders, files in os.walk(source):
        here = target / Path(folder).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        for name in folders + files:
            path, copy = Path(folder) / name, here / name
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                link = os.readlink(path)
                if os.path.isabs(link) and Path(link).is_relative_to(source):
                    link = str(target / Path(link).relative_to(source))
                os.symlink(link, copy)
                if name in folders:
                    folders.remove(name)  # do not walk into a linked folder
            elif stat.S_ISFIFO(mode):
                os.mkfifo(copy)
            elif stat.S_ISREG(mode):
                shutil.copy2(path, copy)


def relative(path):
    """The path as typed from the folder pytest runs in, when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def collapse_repeats(lines):
    """A flood of one line repeated, shown as one line and a count."""
    collapsed = []
    for line in lines:
        if collapsed and collapsed[-1][0] == line:
            collapsed[-1][1] += 1
        else:
            collapsed.append([line, 1])
    return [(line if len(line) <= 300 else line[:300] + "[... %d more characters]"
             % (len(line) - 300)) + ("    [the same line %d times]" % count if count > 1 else "")
            for line, count in collapsed]


def fenced_output(lines, script):
    collapsed = collapse_repeats(lines)
    shown = collapsed[-SHOWN_OUTPUT_LINES:]
    title = "output of your program, %s" % script.name
    if len(shown) < len(collapsed):
        title += " (its end only)"
    if not shown:
        return "==== %s: nothing ====" % title
    return "\n".join(["==== %s ====" % title, *shown,
                      "==== end of your program's output ===="])


def show_program_output(program):
    text = fenced_output(program.lines, program.script)
    if program.dropped_size:
        text += "\n(and %d more bytes of output the grader did not keep)" % program.dropped_size
    return text
