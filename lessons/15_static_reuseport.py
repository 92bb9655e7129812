#!/usr/bin/env python3
"""Lesson 15 · SO_REUSEPORT workers (15. C10M问题(单机1000万网络并发连接和数据处理能力))

The idea: one event loop uses one core.  To use them all, nginx runs one
loop per core in N worker processes.  Here each worker owns its listening
socket, all bound to the same address and port with SO_REUSEPORT: for each
new connection the kernel hashes its 4-tuple (client address and port,
server address and port) and puts it in the queue of one listener of the
group.  No lock, no shared accept queue; one connection stays with one
worker.  ``--shared`` shows the older way: the workers inherit ONE listener
from the parent, each new connection wakes every waiting worker (the
thundering herd, 惊群), one accept() wins, the others get EAGAIN.

The source's point (15.1): past C10K the kernel itself is the bottleneck
(内核正是导致C10M问题的关键), so C10M needs more than this file (the page
says more): RSS/RPS spread the packets of a flow over the cores' queues,
io_uring batches system calls (no epoll_wait + recv + send per request),
and kernel bypass (DPDK, XDP) takes the NIC away from the kernel's TCP
stack altogether.

What changed from the source, and why (the source has no code for C10M)
* one listener per worker, not one shared: no herd, no accept lock;
* each worker's loop is the selectors module (epoll on Linux, kqueue on
  macOS and the BSDs), not select.epoll: it runs on every POSIX system;
* the parent prints the one startup line with the real port, forwards
  Ctrl+C (and kill's SIGTERM, a closed terminal's SIGHUP: it then dies of
  that signal, as http.server does), and reaps every worker: no orphan
  keeps the port.

Try it (Linux; macOS accepts SO_REUSEPORT but does not spread connections)
------
    python3 lessons/15_static_reuseport.py --workers 2   # http://127.0.0.1:7890/
    ps -o pid,psr,cmd --ppid $(pgrep -of 15_static_reuseport)   # the workers
    ss -ltnp 'sport = :7890'           # one listening socket per worker
    python3 -m bench.loadgen http://127.0.0.1:7890/ --connections 1000
    python3 lessons/15_static_reuseport.py --workers 2 --cpu-pin
    strace -c -f -e trace=accept4,epoll_wait python3 lessons/15_static_reuseport.py \
        --workers 2 --shared    # load it, Ctrl+C: accept4 errors (EAGAIN) = the herd

Exercise
--------
nginx's master process replaces a worker that dies.  Make the parent do it:
when a worker ends while the server is still running (killed, crashed),
start a new worker with the same index on a listener of the same port, so
that the server keeps N workers sharing the load.  Ctrl+C still stops
everything, and is never answered by a new worker.  Grade it with
``python3 -m pytest tests/exercises --submission my_answers -k 15``.

The lesson's page: http://127.0.0.1:7890/lessons/15_static_reuseport.html
"""

import argparse
import collections
import email.utils
import errno
import functools
import heapq
import html
import itertools
import mimetypes
import os
import re
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from http import HTTPStatus

SERVER_NAME = "CourseServer/15-reuseport"
DEFAULT_TIMEOUT = 15.0  # seconds a connection may stay idle, and a request may take to arrive
ACCEPT_BACKOFF = 0.1  # seconds without accept() after running out of descriptors
# Ctrl+C, kill (SIGTERM) and a closed terminal (SIGHUP): each stops the workers too.
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)}


def serve_forever(listener, site):
    """The parent: a listener per worker, a process per worker, then wait for them.

    main() (the shared block) has opened the first listener and printed its
    port; with port 0 the others are bound to that real port.
    """
    options = site.options
    port = listener.getsockname()[1]
    if options.shared:
        listeners = [listener] * options.workers  # one socket, inherited by all
    else:
        listeners = [listener] + [open_listener(options.bind, port, reuse_port=True)
                                  for _ in range(options.workers - 1)]
    workers = {}  # pid -> index
    for number in STOP_SIGNALS - {signal.SIGINT}:  # SIGINT is KeyboardInterrupt already
        signal.signal(number, stop_signal_received)
    try:
        for index in range(options.workers):
            start_worker(index, listeners, site, workers)
        # The workers hold their listeners now.  If the parent kept its
        # copies, a dead worker's listener would stay in the group and keep
        # receiving its share of new connections, with nobody to accept them.
        for sock in set(listeners):
            sock.close()
        while workers:
            pid, status = os.wait()
            index = workers.pop(pid)
            if ended_by_ctrl_c(status):
                raise KeyboardInterrupt  # it reached the worker first (strace delays ours)
            log(("-",), "- (worker %d, pid %d, ended: status %d)" % (index, pid, status),
                None, 0)
        sys.exit("Every worker has ended; stopping.")
    except StopSignal as stop:
        stop_workers(workers)
        # Then die of the signal, as http.server and the other lessons do: whoever
        # sent it sees so in our exit status (143 for SIGTERM in a shell).
        signal.signal(stop.args[0], signal.SIG_DFL)
        os.kill(os.getpid(), stop.args[0])
    finally:
        stop_workers(workers)  # Ctrl+C, or `kill -INT` sent to the parent only


class StopSignal(Exception):
    """SIGTERM or SIGHUP reached the parent; args[0] is its number."""


def stop_signal_received(number, frame):
    raise StopSignal(number)


def start_worker(index, listeners, site, workers):
    """Fork one worker, and record it in workers (pid -> index)."""
    # The stop signals are held until the new worker is recorded, so that a
    # Ctrl+C cannot leave one unknown to stop_workers(); the child meets
    # them only once it has set its own handling (see run_worker).
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:
            run_worker(index, listeners, site)  # never returns
        workers[pid] = index
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def run_worker(index, listeners, site):
    """A worker's whole life: one event loop on its own listener, then os._exit."""
    try:
        # Ctrl+C (or SIGTERM, SIGHUP) ends a worker at once, silently; the
        # parent says the one line.
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        mine = listeners[index]
        for sock in set(listeners) - {mine}:
            sock.close()  # the others' listeners: not ours to accept on
        if site.options.cpu_pin:
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cpus[index % len(cpus)]})
        WorkerLoop(mine, site).serve_forever()
    except Exception:
        traceback.print_exc()
    finally:
        os._exit(1)  # never return into the parent's code (lesson 08)


def ended_by_ctrl_c(status):
    """True for a worker killed by SIGINT: Ctrl+C, which stops the parent too."""
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT


def stop_workers(workers):
    """Forward Ctrl+C to every worker still running, and reap them all."""
    for number in STOP_SIGNALS:  # our own Ctrl+C may still be on its way, or a second kill
        signal.signal(number, signal.SIG_IGN)
    for pid in workers:
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    for pid in list(workers):
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    workers.clear()


class WorkerLoop:
    """Lesson 13's loop on the selectors module: woken only by what is ready."""

    def __init__(self, listener, site):
        self.listener = listener
        self.site = site
        self.selector = selectors.DefaultSelector()  # epoll, kqueue, or poll
        self.connections = {}  # fd -> Connection
        self.timers = []  # (deadline, tie-breaker, Connection): lesson 13's heap
        self.tie_breaker = itertools.count()
        self.accept_resumes_at = None  # set while out of descriptors

    def serve_forever(self):
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)
        while True:
            listener_ready = False
            for key, mask in self.selector.select(self.seconds_to_next_timer()):
                if key.fileobj is self.listener:
                    listener_ready = True
                elif key.fd in self.connections:
                    self.on_event(key.data, mask)
            if listener_ready:  # after the others: a closed fd may be reused (lesson 13)
                self.accept_clients()
            self.run_due_timers()

    def seconds_to_next_timer(self):
        wakeups = [self.timers[0][0]] if self.timers else []
        if self.accept_resumes_at is not None:
            wakeups.append(self.accept_resumes_at)
        return max(min(wakeups) - time.monotonic(), 0) if wakeups else None

    def accept_clients(self):
        while True:
            try:
                conn = accept_connection(self.listener, self.site.timeout)
            except OSError as error:
                if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                log(("-",), "- (accept: %s; pausing)" % error.strerror, None, 0)
                self.selector.unregister(self.listener)
                self.accept_resumes_at = time.monotonic() + ACCEPT_BACKOFF
                return
            if conn is None:
                return  # the queue is empty; with --shared, another worker may have won
            self.connections[conn.fd] = conn
            self.watch(conn)
            heapq.heappush(self.timers, (conn.deadline, next(self.tie_breaker), conn))

    def on_event(self, conn, mask):
        try:
            if mask & selectors.EVENT_READ and conn.wants_input():
                self.receive(conn)
            if mask & selectors.EVENT_WRITE and conn.outgoing:
                keep_going(conn, self.site)
            finish_sending(conn)
        except OSError as error:  # reset, broken pipe, a file that changed
            log(conn.address, "- (%s)" % error.__class__.__name__, None, 0)
            if not conn.closed:
                conn.close()
        self.settle(conn)

    def receive(self, conn):
        """One recv() per event: the selector is level-triggered, it reports leftovers again."""
        try:
            chunk = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        if not chunk:
            conn.peer_closed = True
        elif not conn.lingering:  # after our FIN we only wait for theirs
            conn.received += chunk
            keep_going(conn, self.site)

    def watch(self, conn):
        """Ask the selector for what this connection waits for now (EVENT_WRITE only while output waits)."""
        events = selectors.EVENT_READ if conn.wants_input() else 0
        if conn.outgoing:
            events |= selectors.EVENT_WRITE
        if events == conn.events:
            return
        # Registered by descriptor number, not by socket: once the shared
        # code has closed a socket, its number still unregisters it.
        if not conn.events:
            self.selector.register(conn.fd, events, conn)
        elif not events:
            self.selector.unregister(conn.fd)
        else:
            self.selector.modify(conn.fd, events, conn)
        conn.events = events

    def settle(self, conn):
        if not conn.closed:
            self.watch(conn)
            return
        self.connections.pop(conn.fd, None)
        if conn.events:
            self.selector.unregister(conn.fd)  # closed: the kernel has forgotten it already
        if len(self.timers) > 2 * len(self.connections) + 64:  # drop dead entries (lesson 13)
            self.timers = [(live.deadline, next(self.tie_breaker), live)
                           for live in self.connections.values()]
            heapq.heapify(self.timers)

    def run_due_timers(self):
        now = time.monotonic()
        if self.accept_resumes_at is not None and self.accept_resumes_at <= now:
            self.accept_resumes_at = None
            self.selector.register(self.listener, selectors.EVENT_READ)
        while self.timers and self.timers[0][0] <= now:
            _, _, conn = heapq.heappop(self.timers)
            if conn.closed:
                continue
            if conn.deadline <= now:
                try:
                    time_out(conn, self.site.timeout)
                    if not conn.closed:  # a 408 to send
                        send_pending(conn, self.site.timeout)
                        finish_sending(conn)
                except OSError as error:
                    log(conn.address, "- (%s)" % error.__class__.__name__, None, 0)
                    conn.close()
                self.settle(conn)
            if not conn.closed:
                heapq.heappush(self.timers, (conn.deadline, next(self.tie_breaker), conn))


def add_arguments(parser):
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="worker processes, each with its own event loop "
                             "(default: one per CPU, %(default)s here)")
    parser.add_argument("--shared", action="store_true",
                        help="one listener shared by every worker (the thundering herd) "
                             "instead of one SO_REUSEPORT listener each")
    parser.add_argument("--cpu-pin", action="store_true",
                        help="pin worker i to the i-th CPU (Linux: os.sched_setaffinity)")


def prepare(args):
    if not hasattr(os, "fork") or not (args.shared or hasattr(socket, "SO_REUSEPORT")):
        sys.exit("Lesson 15 needs os.fork and SO_REUSEPORT, which this platform lacks: "
                 "run lesson 14 (14_static_asyncio.py) or 13 (13_static_epoll.py) instead.")
    if args.workers < 1:
        sys.exit("--workers must be at least 1, not %d" % args.workers)
    if args.cpu_pin and not hasattr(os, "sched_setaffinity"):
        sys.exit("--cpu-pin needs os.sched_setaffinity (Linux); run without it.")
    # main() (shared block) opens the first listener: with SO_REUSEPORT set, so
    # that the other workers' listeners can join its port.
    args.reuse_port = not args.shared


# ==== shared block "http" ======================================================================
# Identical in lessons 06-15; explained on lesson 06's page.  Edit it in lessons/06 only, then
# run `python3 -m tools.sync_shared` to copy it into every lesson and solution.

DEFAULT_PORT = 7890
DEFAULT_DOCROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "html")

# Limits, with the answer a client gets when it breaks them.  The numbers
# follow CPython's http.server (64 KiB lines, 100 headers); nginx allows
# 8 KiB per header line, node.js 16 KiB for the whole head.
MAX_REQUEST_LINE = 64 * 1024  # longer -> 414 URI Too Long
MAX_HEADER_LINE = 64 * 1024  # longer -> 431 Request Header Fields Too Large
MAX_HEADERS = 100  # more -> 431
MAX_DISCARDED_BODY = 1024 * 1024  # a static server reads bodies only to skip them; more -> 413
SMALL_FILE = 64 * 1024  # up to this size a file is read, cached and sent with its head at once
RECV_SIZE = 64 * 1024
MAX_QUEUED_OUTPUT = 256 * 1024  # answers queued for one client; beyond, its pipelined requests wait
CACHE_ENTRIES = 256  # small files kept in memory: at most 16 MiB
MAX_REMEMBERED_HEAD = 2048  # longer request heads are parsed every time

KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
ALLOWED_METHODS = "GET, HEAD"
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2
HTTP_VERSION = re.compile(rb"HTTP/(\d)\.(\d)")
HEAD_END = re.compile(rb"\r?\n\r?\n")

# The built-in table, not the system's /etc/mime.types, so that every
# machine answers the same types.
CONTENT_TYPES = mimetypes.MimeTypes()
CONTENT_TYPES.add_type("text/javascript", ".js")  # RFC 9239
CONTENT_TYPES.add_type("text/markdown", ".md")
TEXT_TYPES_WITHOUT_TEXT_PREFIX = {"application/json", "application/xml", "image/svg+xml"}

# Set by Site.apply() in the process that serves (a spawned child starts
# from these defaults): --no-cache and --quiet.
CACHING = True
QUIET = False


class HTTPError(Exception):
    """A request we answer with an error status instead of a file."""

    def __init__(self, status, explanation, headers=()):
        super().__init__(explanation)
        self.status = HTTPStatus(status)
        self.explanation = explanation
        self.headers = list(headers)


class Request:
    """A parsed request head: method, target, version and headers."""

    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version  # (1, 0) or (1, 1)
        self.headers = headers  # lower-case name -> value

    @property
    def request_line(self):
        return "%s %s HTTP/%d.%d" % (self.method, self.target, *self.version)


# Bytes in, request or error out: no sockets here, so it can be tested alone.

def check_head_limits(buffer):
    """Raise HTTPError if the head received so far already breaks a limit.

    Called on every partial read, so a client cannot make us buffer more
    than the limits allow while we wait for the blank line.
    """
    end = HEAD_END.search(buffer)
    head = buffer[:end.start()] if end else buffer
    request_line, *header_lines = head.split(b"\n")
    header_lines = [line for line in header_lines if line not in (b"", b"\r")]
    if len(request_line) > MAX_REQUEST_LINE:
        raise HTTPError(HTTPStatus.REQUEST_URI_TOO_LONG,
                        "The request line is longer than %d bytes." % MAX_REQUEST_LINE)
    if len(header_lines) > MAX_HEADERS:
        raise HTTPError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                        "More than %d header lines." % MAX_HEADERS)
    if any(len(line) > MAX_HEADER_LINE for line in header_lines):
        raise HTTPError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                        "A header line is longer than %d bytes." % MAX_HEADER_LINE)


def parse_request_head(head):
    """Parse the bytes before the blank line into a Request, or raise HTTPError."""
    lines = [line.rstrip(b"\r") for line in head.split(b"\n")]
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise HTTPError(HTTPStatus.BAD_REQUEST,
                        "The request line must be 'METHOD /path HTTP/1.1'.")
    method, target, version = parts
    if not TOKEN.fullmatch(method):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "The method is not a valid token.")
    version_match = HTTP_VERSION.fullmatch(version)
    if not version_match:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "The protocol must look like HTTP/1.1.")
    version = (int(version_match[1]), int(version_match[2]))
    if version[0] != 1:
        raise HTTPError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                        "This server speaks HTTP/1.0 and HTTP/1.1 only.")
    # A request target is printable ASCII; anything else must be %-encoded.
    if not target or any(byte <= 0x20 or byte >= 0x7F for byte in target):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "The request target has invalid characters.")

    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name):
            # Also catches "Name : value" and obsolete folded lines, which
            # RFC 9112 §5 says a server must reject.
            raise HTTPError(HTTPStatus.BAD_REQUEST, "Malformed header line.")
        name = name.decode("ascii").lower()
        value = value.strip(b" \t").decode("latin-1")
        if name in headers:
            if name in ("content-length", "host"):
                raise HTTPError(HTTPStatus.BAD_REQUEST, "Repeated %s header." % name)
            value = headers[name] + ", " + value
        headers[name] = value
    if version == (1, 1) and "host" not in headers:
        raise HTTPError(HTTPStatus.BAD_REQUEST,
                        "HTTP/1.1 requests must carry a Host header (RFC 9112 §3.2).")
    return Request(method.decode("ascii"), target.decode("ascii"), version, headers)


def body_length(request):
    """How many body bytes follow the head; refuse what we cannot skip safely."""
    if "transfer-encoding" in request.headers:
        raise HTTPError(HTTPStatus.NOT_IMPLEMENTED,
                        "Request bodies with Transfer-Encoding are not supported here.")
    length = request.headers.get("content-length", "0")
    if not length.isdigit():
        raise HTTPError(HTTPStatus.BAD_REQUEST, "Content-Length must be a number.")
    if int(length) > MAX_DISCARDED_BODY:
        raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        "A request body may have at most %d bytes here." % MAX_DISCARDED_BODY)
    return int(length)


def wants_keep_alive(request):
    """HTTP/1.1 keeps the connection by default, HTTP/1.0 only when asked (RFC 9112 §9.3)."""
    options = {option.strip().lower()
               for option in request.headers.get("connection", "").split(",")}
    if request.version >= (1, 1):
        return "close" not in options
    return "keep-alive" in options


def understand_head(head):
    """Bytes in; the request, its body's length and whether to keep the connection out."""
    check_head_limits(head)
    request = parse_request_head(head)
    return request, body_length(request), wants_keep_alive(request)


# The parsed-head cache.  Understanding a head is a pure function of its
# bytes, so its result can be remembered: a client on a kept connection
# sends the same head, byte for byte, each time it asks for the same file
# (a benchmark does nothing else).  A head that fails raises HTTPError,
# which is not remembered; long heads are not kept, so the cache stays small.
understand_known_head = functools.lru_cache(maxsize=256)(understand_head)


def parse_head(head):
    if CACHING and len(head) <= MAX_REMEMBERED_HEAD:
        return understand_known_head(head)
    return understand_head(head)


def check_method(request):
    if request.method not in ("GET", "HEAD"):
        if request.method in KNOWN_METHODS:
            raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED,
                            "This server only reads files: use GET or HEAD.",
                            [("Allow", ALLOWED_METHODS)])
        raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, "Unknown method.")


def translate_path(target, docroot):
    """Map a request target to a file inside docroot, or raise HTTPError.

    docroot must already be a realpath.  Returns the file's real path.
    """
    path = urllib.parse.urlsplit(target).path  # drops ?query and #fragment
    if not path.startswith("/"):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "The path must start with '/'.")
    try:
        decoded = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "The path is not valid UTF-8.") from None
    if "\0" in decoded:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "The path contains a NUL byte.")

    segments = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            # Like a browser: ".." climbs one folder, but never above the root.
            if segments:
                segments.pop()
            continue
        if "\\" in segment or os.sep in segment or (os.altsep and os.altsep in segment) \
                or os.path.splitdrive(segment)[0]:
            raise HTTPError(HTTPStatus.NOT_FOUND, "No such file.")
        segments.append(segment)

    # Dot segments are gone, but a symlink inside the docroot may still
    # point outside it.  realpath follows links; the result must stay inside.
    real = os.path.realpath(os.path.join(docroot, *segments))
    if os.path.commonpath([real, docroot]) != docroot:
        raise HTTPError(HTTPStatus.FORBIDDEN, "That path leads outside the served folder.")
    if os.path.isdir(real):
        if not path.endswith("/"):
            # Relative links inside /dir/index.html only work from /dir/.
            query = urllib.parse.urlsplit(target).query
            location = path + "/" + ("?" + query if query else "")
            raise HTTPError(HTTPStatus.MOVED_PERMANENTLY, "This is a folder.",
                            [("Location", location)])
        index = os.path.join(real, "index.html")
        if not os.path.isfile(index):
            raise HTTPError(HTTPStatus.FORBIDDEN, "This folder has no index.html.")
        real = index
    if not os.path.exists(real):
        raise HTTPError(HTTPStatus.NOT_FOUND, "No such file.")
    if not os.path.isfile(real):  # opening a FIFO or a device could block forever
        raise HTTPError(HTTPStatus.FORBIDDEN, "Not a regular file.")
    return real


def content_type(path):
    kind, _ = CONTENT_TYPES.guess_type(path)
    kind = kind or "application/octet-stream"
    if kind.startswith("text/") or kind in TEXT_TYPES_WITHOUT_TEXT_PREFIX:
        kind += "; charset=utf-8"  # the course's files are UTF-8
    return kind


def open_file(path):
    """open(), with a refusal turned into an answer instead of a lost connection."""
    try:
        return open(path, "rb")
    except OSError as error:
        if error.errno in (errno.EMFILE, errno.ENFILE):
            raise HTTPError(HTTPStatus.SERVICE_UNAVAILABLE,
                            "The server has run out of file descriptors; try again.",
                            [("Retry-After", "1")]) from None
        raise HTTPError(HTTPStatus.FORBIDDEN, "The file cannot be read.") from None


def http_date(cached=[None, ""]):
    """Now, as a Date header.  The Date cache: formatted once a second, as nginx does."""
    second = int(time.time())
    if not CACHING:
        return email.utils.formatdate(second, usegmt=True)
    if cached[0] != second:
        cached[:] = [second, email.utils.formatdate(second, usegmt=True)]
    return cached[1]


def response_head(status, headers):
    lines = ["HTTP/1.1 %d %s" % (status, status.phrase),
             "Date: " + http_date(),
             "Server: " + SERVER_NAME]
    lines += ["%s: %s" % header for header in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def file_head(path, size, mtime, keep_alive):
    return response_head(HTTPStatus.OK, [
        ("Content-Type", content_type(path)),
        ("Content-Length", size),
        ("Last-Modified", email.utils.formatdate(mtime, usegmt=True)),
        ("Connection", "keep-alive" if keep_alive else "close")])


ERROR_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/style.css"></head>
<body><main class="wrap error-page"><h1>{title}</h1>
<p>{explanation}</p>
<p><a href="/">Course home</a></p></main></body></html>
"""


def error_answer(error, method="GET", keep_alive=False):
    """The Answer for an HTTPError: a small HTML page that explains it."""
    title = "%d %s" % (error.status, error.status.phrase)
    body = ERROR_PAGE.format(title=title, explanation=html.escape(error.explanation))
    body = body.encode("utf-8")
    head = response_head(error.status, error.headers + [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", len(body)),
        ("Connection", "keep-alive" if keep_alive else "close")])
    if method == "HEAD":
        return Answer(head, error.status, 0)
    return Answer(head + body, error.status, len(body))


class Answer:
    """What to send for one request: bytes, then maybe a large file to stream."""

    def __init__(self, data, status, body_size, file=None):
        self.data = data  # the head, and the whole body unless a file follows
        self.status = status
        self.body_size = body_size  # for the log: body bytes, streamed ones included
        self.file = file  # an open large file, to send after data; the sender closes it


# Paths a lesson answers with its own code instead of a file, each with its
# function(request, keep_alive, site) -> Answer: lesson 10 adds /work, 11 /visits.
ROUTES = {}


def answer(request, keep_alive, site):
    """The Answer to a well-framed request: a route's, the file, or an error page.

    A request that was framed correctly (its head parsed, its body length
    known) leaves the connection usable after an error answer, as nginx
    keeps it after a 404: only the request's own Connection header decides.
    """
    try:
        check_method(request)
        route = ROUTES.get(request.target.partition("?")[0]) if ROUTES else None
        if route is not None:
            return route(request, keep_alive, site)
        cached = site.files.lookup(request.target, site.docroot) if site.files else None
        if cached is not None:
            body_size = len(cached.body) if request.method == "GET" else 0
            return Answer(cached.response(request, keep_alive), HTTPStatus.OK, body_size)
        path = translate_path(request.target, site.docroot)
        file = open_file(path)
        info = os.fstat(file.fileno())
        head = file_head(path, info.st_size, info.st_mtime, keep_alive)
        if request.method == "GET" and info.st_size > SMALL_FILE:
            return Answer(head, HTTPStatus.OK, info.st_size, file)
        with file:
            body = file.read(info.st_size) if request.method == "GET" else b""
        if request.method == "GET" and len(body) != info.st_size:
            raise HTTPError(HTTPStatus.SERVICE_UNAVAILABLE, "The file changed; try again.",
                            [("Retry-After", "1")])
        return Answer(head + body, HTTPStatus.OK, len(body))
    except HTTPError as error:
        return error_answer(error, request.method, keep_alive)


def text_answer(request, keep_alive, text, headers=()):
    """200 OK with a short text/plain body (a route's answer)."""
    body = text.encode("utf-8")
    head = response_head(HTTPStatus.OK, [*headers,
        ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", len(body)),
        ("Connection", "keep-alive" if keep_alive else "close")])
    sent = body if request.method == "GET" else b""
    return Answer(head + sent, HTTPStatus.OK, len(sent))


class CachedFile:
    """A small file's body and the heads built for it in the current second."""

    def __init__(self, path, identity, body):
        self.path = path
        self.identity = identity  # (mtime, size, inode): what tells us the file changed
        self.body = body
        self.second = None  # the clock second the heads below were built in
        self.heads = {}  # keep_alive -> response head, Date included

    def response(self, request, keep_alive):
        head = self.heads.get(keep_alive)
        if head is None:
            head = self.heads[keep_alive] = file_head(self.path, len(self.body),
                                                      self.identity[0] / 1e9, keep_alive)
        return head if request.method == "HEAD" else head + self.body


class FileCache:
    """The file cache: small files' answers, reused (nginx's ``open_file_cache``, simplified).

    Answering from scratch maps the path (realpath stats every folder on the
    way), opens, reads and closes the file and formats the head: most of
    what a request costs.  An entry is trusted for the rest of the clock
    second it was checked in.  The first request in a new second maps the
    path again and compares the file's mtime, size and inode; only a changed
    file is read again, so an edited file is served stale for at most a
    second (nginx: ``open_file_cache_valid``).  Bounded: CACHE_ENTRIES files
    of at most SMALL_FILE bytes, the oldest dropped first.  No lock: two
    threads that race here both store a correct entry, and dict operations
    are atomic.
    """

    def __init__(self):
        self.entries = {}  # request target -> CachedFile

    def lookup(self, target, docroot):
        """The CachedFile for target, or None for a file too large to keep.

        Raises HTTPError as translate_path() and open_file() do.
        """
        second = int(time.time())
        entry = self.entries.get(target)
        if entry is not None and entry.second == second:
            return entry
        path = translate_path(target, docroot)
        with open_file(path) as file:
            info = os.fstat(file.fileno())
            if info.st_size > SMALL_FILE:
                self.entries.pop(target, None)
                return None
            identity = (info.st_mtime_ns, info.st_size, info.st_ino)
            if entry is None or entry.path != path or entry.identity != identity:
                entry = CachedFile(path, identity, file.read(info.st_size))
                self.entries.pop(target, None)
                if len(self.entries) >= CACHE_ENTRIES:
                    self.entries.pop(next(iter(self.entries), None), None)  # the oldest
                self.entries[target] = entry
        entry.second = second
        entry.heads = {}
        return entry


class FileBody:
    """A large file still to be sent after its head, a piece at a time."""

    __slots__ = ("file", "offset", "remaining")

    def __init__(self, file, size):
        self.file = file
        self.offset = 0
        self.remaining = size


class Connection:
    """What a server remembers about one client: bytes in, answers out, and what is next.

    The protocol's state, with no I/O in it: the blocking lessons fill
    `received` from a recv() that waits, the event loops (12, 13) from one
    that does not, and both send what answer_requests() queued.
    """

    # No per-instance __dict__: at 10,000 connections every byte counts ten thousand times.
    __slots__ = ("sock", "fd", "address", "received", "outgoing", "body_to_skip", "keep_alive",
                 "close_when_sent", "peer_closed", "lingering", "deadline", "events", "closed")

    def __init__(self, sock, address, deadline):
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.received = bytearray()  # arrived, not yet parsed: part of a request, or several
        self.outgoing = collections.deque()  # bytearrays and FileBody objects, in response order
        self.body_to_skip = 0  # bytes of a request body still to drop
        self.keep_alive = True  # False: every answer says "Connection: close" (lesson 06)
        self.close_when_sent = False  # a queued response said "Connection: close"
        self.peer_closed = False  # recv() returned b"": the client sent its FIN
        self.lingering = False  # we sent our FIN and wait for the client's
        self.deadline = deadline
        self.events = 0  # what epoll is asked to watch for on this socket (lesson 13)
        self.closed = False

    def queue(self, data):
        if self.outgoing and isinstance(self.outgoing[-1], bytearray):
            self.outgoing[-1] += data  # pipelined responses leave in one send
        else:
            self.outgoing.append(bytearray(data))

    def output_is_full(self):
        """True when this client must read what we queued before we answer more.

        A client may pipeline requests and never read the responses; without
        this limit it could make us queue responses until memory runs out.
        """
        if not self.outgoing:
            return False
        if any(isinstance(piece, FileBody) for piece in self.outgoing):
            return True
        return sum(map(len, self.outgoing)) >= MAX_QUEUED_OUTPUT

    def wants_input(self):
        # After the client's FIN every recv() returns b"" at once: stop asking.
        return not self.peer_closed and not self.output_is_full()

    def close(self):
        for piece in self.outgoing:
            if isinstance(piece, FileBody):
                piece.file.close()
        self.outgoing.clear()
        self.sock.close()
        self.closed = True


def answer_requests(conn, site):
    """Queue an answer for every complete request in conn.received, in order.

    Returns True if it stopped because conn.output_is_full(): requests may
    be waiting in conn.received for the client to read what is queued.
    """
    while conn.received and not conn.close_when_sent:  # nothing after "Connection: close"
        if conn.body_to_skip:
            skipped = min(conn.body_to_skip, len(conn.received))
            del conn.received[:skipped]
            conn.body_to_skip -= skipped
            continue
        if conn.output_is_full():
            return True
        request = None
        try:
            end = HEAD_END.search(conn.received)
            if not end:
                check_head_limits(conn.received)  # caps what an unfinished head makes us buffer
                return False  # the rest of the head has not arrived yet
            head = bytes(conn.received[:end.start()])
            del conn.received[:end.end()]
            request, conn.body_to_skip, keep_alive = parse_head(head)
        except HTTPError as error:
            # A broken head: we cannot know where the next request starts.
            reply = error_answer(error, request.method if request else "GET")
            keep_alive = False
        else:
            keep_alive = keep_alive and conn.keep_alive
            reply = answer(request, keep_alive, site)
        conn.queue(reply.data)
        if reply.file is not None:
            conn.outgoing.append(FileBody(reply.file, reply.body_size))  # streamed as it drains
        conn.close_when_sent = not keep_alive
        log_answer(conn.address, request, reply)
    return False


def queue_request_timeout(conn):
    """Queue a 408 if a request began and stalled; False if none had begun.

    Sent as the last answer: after it the connection closes.
    """
    if not conn.received or conn.outgoing or conn.close_when_sent:
        return False
    reply = error_answer(HTTPError(HTTPStatus.REQUEST_TIMEOUT,
                                   "The request took too long to arrive."))
    conn.queue(reply.data)
    conn.close_when_sent = True
    log_answer(conn.address, None, reply)
    return True


class Site:
    """What every connection needs: the folder, the timeout, and the switches."""

    def __init__(self, args):
        self.docroot = os.path.realpath(args.directory)
        self.timeout = args.timeout
        self.caching = not args.no_cache
        self.quiet = args.quiet
        self.files = FileCache() if self.caching else None
        self.options = args  # the lesson's own options too

    def apply(self):
        global CACHING, QUIET
        CACHING, QUIET = self.caching, self.quiet


LOG_LOCK = threading.Lock()  # held at exit, so that no thread is stopped inside a write


def log(address, request_line, status, size):
    """One line per request on stderr, in the spirit of http.server.

    One write() per line: processes that share stderr (07-09) must not
    interleave halves of their lines.
    """
    when = time.strftime("%d/%b/%Y %H:%M:%S")
    line = '%s - - [%s] "%s" %s %d\n' % (address[0], when, request_line,
                                         int(status) if status else "-", size)
    with LOG_LOCK:
        sys.stderr.write(line)


def log_answer(address, request, reply):
    if not QUIET or reply.status >= 400:
        log(address, request.request_line if request else "-", reply.status, reply.body_size)


def open_listener(bind, port, reuse_port=False):
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    # Without SO_REUSEADDR a restarted server cannot bind while old
    # connections sit in TIME_WAIT (about a minute on Linux).
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        # Lesson 15: other listeners may bind the same port, each of them
        # setting it before bind(); the kernel spreads connections among them.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((bind, port))
    listener.listen(128)  # connections the kernel queues while we are busy
    return listener


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", nargs="?", type=int, default=DEFAULT_PORT,
                        help="port to listen on (default %(default)s; 0 lets the OS pick)")
    parser.add_argument("-b", "--bind", default="127.0.0.1", metavar="ADDR",
                        help="address to bind (default %(default)s)")
    parser.add_argument("-d", "--directory", default=DEFAULT_DOCROOT, metavar="DIR",
                        help="folder to serve (default: the course's html/)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="how long a connection may stay idle (default %(default)s)")
    parser.add_argument("--quiet", action="store_true",
                        help="log errors only, no line per answered request (nginx: access_log off)")
    parser.add_argument("--no-cache", action="store_true",
                        help="no file, Date or parsed-head cache: every request does all the work")
    add_arguments(parser)
    return parser.parse_args(argv)


def raise_descriptor_limit():
    """Raise our soft RLIMIT_NOFILE (`ulimit -n`) to the hard limit; say what we got.

    Every connection costs a descriptor, and many systems start programs with
    a soft limit of 1024: a server that means to hold thousands of clients
    asks for its whole allowance itself.  POSIX only (Windows has no rlimits).
    """
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # macOS: an "unlimited" hard limit cannot be had
            pass
    got = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    shown = lambda limit: "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
    if got == soft:
        return "Descriptors: up to %s open at once (hard limit %s)" % (shown(got), shown(hard))
    return "Descriptors: up to %s open at once (raised from %s)" % (shown(got), shown(soft))


def main(argv=None):
    args = parse_args(argv)
    if not 0 <= args.port <= 65535:
        sys.exit("Port must be between 0 and 65535, not %d" % args.port)
    if not args.timeout > 0:  # "0" would not mean "no timeout" (and "nan" is no number)
        sys.exit("--timeout must be a number of seconds above 0")
    if not os.path.isdir(args.directory):
        sys.exit("No such folder to serve: %s (choose one with --directory)" % args.directory)
    prepare(args)
    descriptors = raise_descriptor_limit()
    site = Site(args)
    site.apply()
    try:
        # A lesson's prepare() may ask for SO_REUSEPORT (lesson 15).
        listener = open_listener(args.bind, args.port, getattr(args, "reuse_port", False))
    except OSError as error:
        sys.exit("Cannot listen on %s port %d: %s" % (args.bind, args.port, error.strerror))
    with listener:
        host, port = listener.getsockname()[:2]
        url_host = "[%s]" % host if ":" in host else host
        try:  # from the moment the line below is out, Ctrl+C may come
            print("Serving HTTP on %s port %d (http://%s:%d/) ..." % (host, port, url_host, port),
                  flush=True)
            if descriptors:  # on stderr, after the startup line: that line stays first
                print(descriptors, file=sys.stderr, flush=True)
            serve_forever(listener, site)
        except KeyboardInterrupt:
            LOG_LOCK.acquire(timeout=1)  # a daemon thread stopped inside a write would abort the exit
            print("\nKeyboard interrupt received, exiting.", flush=True)
    return 0


# ==== end of shared block "http" ===============================================================


# ==== shared block "non-blocking connection" ===================================================
# Identical in lessons 12, 13 and 15; explained on lesson 12's page.  Edit it in lessons/12 only, then
# run `python3 -m tools.sync_shared` to copy it into every lesson and solution.

def send_file_piece(sock, body):
    """Hand the socket as much of a FileBody as it takes; return that count.

    os.sendfile() copies from the page cache straight into the socket,
    never through Python; on a non-blocking socket it stops when the send
    buffer is full.  (Flagged shortcut, where it is missing: read() blocks,
    which a file in the page cache does for microseconds.)
    """
    if hasattr(os, "sendfile"):
        sent = os.sendfile(sock.fileno(), body.file.fileno(), body.offset, body.remaining)
    else:
        body.file.seek(body.offset)
        sent = sock.send(body.file.read(min(RECV_SIZE, body.remaining)))
    if sent == 0:
        # The file shrank while we sent it.  Only closing tells the client
        # that the bytes Content-Length promised will not come.
        raise ConnectionAbortedError("%s changed while it was being sent" % body.file.name)
    body.offset += sent
    body.remaining -= sent
    if not body.remaining:
        body.file.close()
    return sent


def accept_connection(listener, timeout):
    """The next client in the listen queue as a Connection; None when the queue is empty.

    Raises OSError when the system is out of descriptors (EMFILE) or memory.
    """
    while True:
        try:
            sock, address = listener.accept()
        except BlockingIOError:
            return None
        except (ConnectionAbortedError, InterruptedError):
            continue  # the client left before we accepted it
        sock.setblocking(False)
        # Nagle's algorithm would hold a pipelined response back until the
        # previous one is acknowledged (up to 40 ms with delayed ACKs).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Connection(sock, address, time.monotonic() + timeout)


def send_pending(conn, timeout):
    """Send what the socket takes now, in order; return the number of bytes sent.

    The source ignored send()'s return value.  On a non-blocking socket send()
    takes what fits in the kernel's buffer and returns that count (or raises
    BlockingIOError when nothing fits); the rest waits here for a later turn.
    It stops only at BlockingIOError or when all is sent: an edge-triggered
    epoll (lesson 13) announces free space once, so we must have filled it.
    """
    sent_total = 0
    while conn.outgoing:
        piece = conn.outgoing[0]
        try:
            if isinstance(piece, FileBody):
                sent_total += send_file_piece(conn.sock, piece)
                finished = not piece.remaining
            else:
                sent = conn.sock.send(piece)
                sent_total += sent
                finished = sent == len(piece)
                if not finished:
                    del piece[:sent]  # the rest goes at the next chance
        except BlockingIOError:
            break  # the kernel's send buffer is full: the client reads slowly
        if finished:
            conn.outgoing.popleft()
    if sent_total:
        # Progress: a client that reads, however slowly, is not idle.  Once
        # the output is empty this starts the wait for its next request.
        conn.deadline = time.monotonic() + timeout
    return sent_total


def keep_going(conn, site):
    """Answer what has arrived and send what the socket takes; return the bytes sent."""
    sent = 0
    while True:
        paused = answer_requests(conn, site)
        sent += send_pending(conn, site.timeout)
        if not paused or conn.outgoing:
            return sent  # else the client took all we queued: answer its next requests


def finish_sending(conn):
    """Once everything is sent, end the connection if its conversation is over."""
    if conn.outgoing:
        return
    if conn.peer_closed:
        conn.close()  # the client said goodbye and has all its answers
    elif conn.close_when_sent and not conn.lingering:
        # A lingering close, without waiting: send our FIN now and keep
        # reading (and dropping) until the client's FIN arrives.  Closing at
        # once while the client still sends would turn our FIN into a RST,
        # and a RST can destroy the response before the client has read it.
        conn.sock.shutdown(socket.SHUT_WR)
        conn.lingering = True


def time_out(conn, timeout):
    """The deadline passed: nothing was sent for --timeout seconds."""
    if queue_request_timeout(conn):
        conn.deadline = time.monotonic() + timeout  # for the 408 to leave
    else:
        conn.close()  # idle, or gone quiet after our FIN


# ==== end of shared block "non-blocking connection" ============================================


if __name__ == "__main__":
    sys.exit(main())
