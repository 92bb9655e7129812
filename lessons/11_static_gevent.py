#!/usr/bin/env python3
"""Lesson 11 · A static web server with a coroutine per client (11. Web静态服务器-多协程(gevent + monkey))

The idea: lesson 10 with greenlets instead of threads.  A greenlet is a
coroutine (协程): a function that can be paused and resumed, with its own
small stack, inside one thread.  gevent pauses a greenlet wherever it would
wait for the network and switches to one that can run, so the code still
reads as blocking code -- the very same "blocking connection" block as
lessons 07-10 -- while one thread serves every connection.  Underneath,
gevent's hub is an event loop (libev: epoll on Linux) that resumes each
greenlet when its socket is ready; lessons 12 and 13 build that loop by hand.

Greenlets switch only where they would wait, so between two waits a
greenlet runs alone: lesson 10's lock is not needed.  The catch: one thread
on one core, and one greenlet that computes, or blocks in a call gevent did
not patch, stalls every connection.  GET /visits has such a call.

The model's own part is small: monkey.patch_all() before every import;
gevent.spawn (or a Pool's spawn, bounded) per connection, the loop that
gevent's own ``StreamServer(listener, handler, spawn=Pool(n))`` runs; and
one libev timer per connection (ConnectionTimer) instead of a socket
timeout on every call: gevent builds a Timeout and two exception objects
for every wait with a timeout, a timer pushed back costs a few heap steps.

What changed from the source's code, and why (details on the lesson's page)
* the source's patch_all() came after ``import socket`` -- harmless there,
  but ``from socket import socket`` before it keeps the blocking class;
* it spawned without bound -> ``--max-connections N``, a gevent Pool that
  stops accepting while N greenlets run;
* Ctrl+C in a greenlet is reported as a crash -> thrown into the main one.

Try it
------
    python3 lessons/11_static_gevent.py --max-connections 2
    nc 127.0.0.1 7890 & nc 127.0.0.1 7890 &   # two idle clients fill the pool
    curl -m 3 http://127.0.0.1:7890/      # waits: accepted only when one leaves
    ls /proc/$(pgrep -of 11_static)/task | wc -l   # one thread, however many clients
    python3 -m bench.run --quick --lessons 10_static_threading 11_static_gevent
Then, with the server started again without --max-connections, count
visits, let another program hold the database's lock for 4 s, and ask again:
    curl http://127.0.0.1:7890/visits     # 1, 2, 3...: visits counted in SQLite
    python3 -c "import sqlite3, time; db = sqlite3.connect(
    '/tmp/course-visits.db'); db.execute('BEGIN EXCLUSIVE'); time.sleep(4)" &
    curl http://127.0.0.1:7890/visits & curl -m 2 http://127.0.0.1:7890/

Exercise
--------
Find and fix a blocking call.  While another program writes to the
database (the last two lines above), a client of /visits waits for it, up
to BUSY_TIMEOUT -- and every other client waits too: even / is not
answered.  See where the server stands still with
``GEVENT_MONITOR_THREAD_ENABLE=1 python3 lessons/11_static_gevent.py``:
gevent's monitor thread prints "appears to be blocked" and a "Blocked
Stack".  Fix it so that only the clients of /visits wait (and still get
their count when the database is free).  Grade it with
``python3 -m pytest tests/exercises --submission my_answers -k 11``.

The lesson's page: http://127.0.0.1:7890/lessons/11_static_gevent.html
"""

# First, before any other import: patch_all() replaces the blocking parts of
# the standard library (socket, time.sleep, select, threading, ssl...) with
# versions that switch to another greenlet instead of blocking.  A module
# imported earlier may have kept a reference to an original, and that code
# would then block the whole process.
try:
    from gevent import monkey
except ImportError:
    raise SystemExit("Lesson 11 needs gevent: pip install gevent "
                     "(lesson 10 is the same server with threads).") from None

monkey.patch_all()

import argparse
import collections
import email.utils
import errno
import functools
import html
import mimetypes
import os
import re
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.parse
from http import HTTPStatus

import gevent
import gevent.pool

SERVER_NAME = "CourseServer/11-gevent"
DEFAULT_TIMEOUT = 15.0  # seconds a connection may stay idle, and a request may take to arrive


def serve_forever(listener, site):
    # Without a limit, this is the source's loop: gevent.spawn(handler,
    # client) for each connection.  With one, a Pool's spawn is the same
    # call, but at most max_connections greenlets run at once.
    limit = site.options.max_connections
    pool = gevent.pool.Pool(limit) if limit else None
    spawn = gevent.spawn if pool is None else pool.spawn
    while True:
        if pool is not None:
            # Wait for a free slot *before* accepting: the connections beyond
            # the limit then wait in the kernel's listen queue.
            pool.wait_available()
        accepted = accept(listener)
        if accepted is None:
            continue
        client, address = accepted
        spawn(serve_client, client, address, site, timer_class=ConnectionTimer)


class ConnectionTimer:
    """A connection's timeout: one libev timer, pushed back for each request.

    When it expires, it throws TimedOut into the greenlet that made it, in
    whichever call that greenlet waits.  (A gevent.Timeout cancelled and
    started again would keep its *first* deadline; ev_timer_again does not.)
    """

    def __init__(self, client, seconds):
        self.client = client
        self.seconds = seconds
        self.greenlet = gevent.getcurrent()
        self.timer = gevent.get_hub().loop.timer(seconds, seconds)

    def restart(self):
        """Expire `seconds` from now, not from when the timer last started."""
        self.timer.again(self.greenlet.throw, TimedOut, update=True)
        self.client.settimeout(None)  # the timer alone bounds the waits again

    def before_receive(self):
        pass  # the timer interrupts whatever call waits

    def before_stream(self):
        # Streaming a large file to a slow client may rightly take longer than
        # the timeout: the socket's timeout bounds each wait instead.
        self.timer.stop()
        self.client.settimeout(self.seconds)

    def close(self):
        self.timer.close()


BUSY_TIMEOUT = 10.0  # seconds /visits waits while another program writes the database


def answer_visits(request, keep_alive, site):
    """GET /visits: one more visit, counted in an SQLite database; the count."""
    try:
        count = count_visit(site.options.database)
    except sqlite3.OperationalError as error:  # "database is locked", after BUSY_TIMEOUT
        raise HTTPError(HTTPStatus.SERVICE_UNAVAILABLE, "The database: %s." % error,
                        [("Retry-After", "1")])
    return text_answer(request, keep_alive, "%d\n" % count)


def count_visit(path):
    """Add a visit to the database at path; the number of visits so far."""
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT)  # how long to wait for another writer
    try:
        with db:  # one transaction: committed, or rolled back on an error
            db.execute("CREATE TABLE IF NOT EXISTS visits (at TEXT)")
            db.execute("INSERT INTO visits VALUES (datetime('now'))")
            return db.execute("SELECT count(*) FROM visits").fetchone()[0]
    finally:
        db.close()


def add_arguments(parser):
    parser.add_argument("--max-connections", type=int, metavar="N",
                        help="serve at most N connections at once; the others wait to be "
                             "accepted (default: no limit, as in the source)")
    parser.add_argument("--database", metavar="FILE", help="the SQLite file of /visits",
                        default=os.path.join(tempfile.gettempdir(), "course-visits.db"))


def prepare(args):
    if args.max_connections is not None and args.max_connections < 1:
        sys.exit("--max-connections must be at least 1")
    # gevent runs a signal handler in whichever greenlet happens to be
    # running, and reports a KeyboardInterrupt raised in a worker as a crash,
    # with a traceback.  So Ctrl+C is thrown into this, the main greenlet.
    gevent.signal_handler(signal.SIGINT, gevent.getcurrent().throw, KeyboardInterrupt)
    ROUTES["/visits"] = answer_visits  # the shared answer() looks here before it looks for a file


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


# ==== shared block "blocking connection" ======================================================
# Identical in lessons 06-11; explained on lesson 07's page.  Edit it in lessons/07 only, then
# run `python3 -m tools.sync_shared` to copy it into every lesson and solution.

class TimedOut(Exception):
    """The connection's time ran out while we waited for the client."""


class Deadline:
    """A connection's timeout, as the socket's own timeout on each call that waits.

    restart() gives the client `seconds` from now; each receive then waits at
    most what is left.  Lesson 11 replaces this with one timer per connection.
    """

    def __init__(self, client, seconds):
        self.client = client
        self.seconds = seconds
        self.expires = time.monotonic() + seconds

    def restart(self):
        self.expires = time.monotonic() + self.seconds
        self.client.settimeout(self.seconds)  # sendall: the whole answer, within the time

    def before_receive(self):
        remaining = self.expires - time.monotonic()
        if remaining <= 0:
            raise TimedOut()
        self.client.settimeout(remaining)

    def before_stream(self):
        """A large file may rightly take longer: bound each wait instead (until restart)."""
        self.client.settimeout(self.seconds)

    def close(self):
        pass


def serve_connection(client, address, site, keep_alive, timer):
    """Serve requests on this connection; True if we end it (the client did not).

    One function per connection, which waits: for bytes, then for its answers
    to leave.  What it received and what it owes stay in a Connection.
    """
    # Nagle's algorithm would hold the second of two small writes back until
    # the first is acknowledged, and the client delays its ACK up to 40 ms.
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(client, address, None)
    conn.keep_alive = keep_alive
    while True:
        timer.restart()  # the idle limit, then the limit for the head (and body)
        try:
            # Pipelined requests may wait in conn.received already: answer
            # those before waiting for more.
            while not answer_requests(conn, site) and not conn.outgoing:
                timer.before_receive()
                chunk = client.recv(RECV_SIZE)
                if not chunk:
                    return False  # the client closed, all its answers sent
                conn.received += chunk
        except (TimedOut, socket.timeout):
            if not queue_request_timeout(conn):
                return False  # idle for --timeout: nothing to say
        timer.restart()  # the answers get a whole timeout to leave
        send_queued(client, conn, timer)
        if conn.close_when_sent:
            return True


def send_queued(client, conn, timer):
    """Send every queued answer: its bytes in one call, then a large file, if any.

    A small file left with its head (two writes would meet Nagle's algorithm
    and the client's delayed ACK: 40 ms each).  A large one is never read into
    memory: socket.sendfile() has the kernel copy it from the page cache.
    """
    while conn.outgoing:
        piece = conn.outgoing.popleft()
        if not isinstance(piece, FileBody):
            send_all(client, piece)
            continue
        with piece.file:
            timer.before_stream()
            sent = client.sendfile(piece.file, piece.offset, piece.remaining)
        if sent != piece.remaining:
            # The file shrank while we sent it.  The client waits for the bytes
            # Content-Length promised; only closing tells it they will not come.
            raise ConnectionAbortedError("%s changed while it was being sent" % piece.file.name)


def send_all(client, data):
    """client.sendall(data), for less: one send() nearly always takes it all.

    (gevent's sendall() asks the kernel for the buffer size on every call.)
    """
    sent = client.send(data)
    if sent < len(data):
        client.sendall(memoryview(data)[sent:])


LINGER_SECONDS = 2.0  # how long we wait for the client to close after we did


def close_gracefully(client):
    """Send FIN, then let the client finish before we close (a "lingering close").

    Closing while the client still sends would turn our FIN into a RST, and
    a RST can destroy the response before the client has read it.  Bounded,
    so a client that never stops sending cannot keep us here.
    """
    deadline = time.monotonic() + LINGER_SECONDS
    try:
        client.shutdown(socket.SHUT_WR)
        while time.monotonic() < deadline:
            client.settimeout(max(deadline - time.monotonic(), 0.001))
            if not client.recv(65536):
                break
    except OSError:
        pass


def serve_client(client, address, site, keep_alive=True, timer_class=Deadline):
    """Serve one connection, then close it."""
    site.apply()
    with client:
        timer = timer_class(client, site.timeout)
        we_end_it = False
        try:
            we_end_it = serve_connection(client, address, site, keep_alive, timer)
        except (TimedOut, socket.timeout):
            log(address, "- (timed out)", None, 0)  # a reader, or an answer, that stalled
        except OSError as error:  # reset, broken pipe
            log(address, "- (%s)" % error.__class__.__name__, None, 0)
        finally:
            timer.close()
        if we_end_it:
            close_gracefully(client)


def accept(listener):
    """The next connection, or None if it could not be taken just now."""
    try:
        return listener.accept()
    except (ConnectionAbortedError, InterruptedError):
        return None  # the client left before we accepted it
    except OSError as error:
        if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            raise
        # Out of descriptors or memory: the connection stays queued in the
        # kernel, and the next accept would fail at once.  Pause, don't spin.
        log(("-",), "- (accept: %s)" % error.strerror, None, 0)
        time.sleep(0.1)
        return None


# ==== end of shared block "blocking connection" ================================================


if __name__ == "__main__":
    sys.exit(main())
