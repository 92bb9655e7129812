#!/usr/bin/env python3
"""Lesson 11 · A static web server with a coroutine per client (11. Web静态服务器-多协程(gevent + monkey))

Lesson 10 with greenlets instead of threads.  A greenlet is a coroutine (协程):
a function that can be paused and resumed, with its own small stack, inside
one thread.  gevent pauses a greenlet whenever it would wait for the network
and switches to one that can run, so the code still reads as blocking code
-- one connection, one function, top to bottom -- while a single thread
serves every connection.  serve_connection() is lesson 10's, with three
changes that make it fast ("Why it is fast", below).

Coroutines (section 2.4)
------------------------
The source leaves section 2.4 empty.  What belongs there:

* Threads are switched by the operating system, between any two
  instructions.  Greenlets switch only where they would wait (recv, send,
  accept, sleep): between two such calls a greenlet runs alone, so
  ``count += 1`` needs no lock here.
* A greenlet costs a few KiB and no OS thread.  Measured on this machine
  (200 clients connected at once, each asking for index.html, all held open
  until the last answer): 0.06 s -- 1.1 s in the rounds where one SYN was
  dropped by the full listen queue and sent again a second later -- and
  24 MiB in all (PSS): 21 MiB of it Python and gevent at rest, +12 KiB per
  connection, against +39 KiB per thread in lesson 10 and +2.2 MiB per
  forked child in lesson 08.  The greenlets drain the listen queue fastest.
* Underneath, gevent's hub is an event loop (libev or libuv: epoll on
  Linux) that resumes each greenlet when its socket is ready.  Lessons 12
  and 13 build that loop by hand.
* The catch: everything runs in one thread, on one core (with wrk pinned
  to the other, about 65,000 requests/s for a small file here), and a
  greenlet that computes for long, or calls something that blocks without
  gevent knowing, stops every connection at once.

monkey.patch_all() and the order of imports
-------------------------------------------
gevent's sockets cooperate; the standard library's block.  patch_all()
replaces the blocking parts of the standard library (socket, select,
time.sleep, threading, ssl, ...) with gevent's, in place, so unchanged code
cooperates.  It must run before anything else is imported: a module
imported earlier may hold on to an original -- after ``from socket import
socket`` that name still means the blocking class -- and a call to it
blocks the whole process, every greenlet at once.  The source imports
``socket`` (and ``re``, and gevent) first, and gets away with it only
because it always writes ``socket.socket(...)``, looking the name up when
called, after patching.

A Pool, and StreamServer
------------------------
By default, as in the source, every connection gets a greenlet:
``gevent.spawn(serve_client, client, ...)``, without a limit.
``--max-connections N`` serves at most N at once: the accept loop waits for
a free slot in a ``gevent.pool.Pool(N)`` before it accepts, so the clients
beyond N wait in the kernel's listen queue, costing us nothing.  gevent's
own server class is that loop, written once:

    from gevent.server import StreamServer
    handler = lambda client, address: serve_client(client, address, docroot, timeout)
    StreamServer((bind, port), handler, spawn=gevent.pool.Pool(N)).serve_forever()

Persistent connections and streamed files (the same in lessons 07-11)
----------------------------------------------------------------------
Once a slow client no longer holds up the others, the server can afford
what lesson 06 declined:

* Persistent connections (长连接).  After a response an HTTP/1.1 connection
  stays open unless the request said ``Connection: close``; an HTTP/1.0 one
  closes unless it said ``Connection: keep-alive``.  serve_connection() loops
  receive_head -> parse -> respond on one connection.  Bytes that arrive
  after a request stay in the buffer as the start of the next one, so
  requests a client sends without waiting for answers (pipelining) are all
  answered, in order.  An error answer still closes the connection: after a
  bad request we cannot know where the next one starts.
* An idle timeout.  A kept connection that sends nothing for ``--timeout``
  seconds (15 by default) is closed, and each request head must arrive
  within that time too.
* Streamed files.  Lesson 06 read each file whole; 200 clients fetching a
  20 MiB file would have cost 4 GB.  A file over 64 KiB now goes out with
  ``socket.sendfile``: the kernel copies it from the page cache into the
  socket (``os.sendfile``; where that is missing, a read/send loop), and the
  server never holds more than a buffer of it.
* Nagle's algorithm.  A response written in two pieces -- head, then body --
  on a kept connection meets Nagle's algorithm (a small segment waits until
  the previous one is acknowledged) and the client's delayed ACK (it waits
  up to 40 ms for data to piggyback on): every request after the first
  waits ~40 ms.  Measured here (lesson 10, wrk, 10 connections, style.css):
  head and body in two writes, 224 requests/s at a median 44 ms; the same
  with ``TCP_NODELAY``, 4,457 at 2.0 ms; in one write, 5,073 at 1.2 ms.
  (gevent's own pywsgi server writes head and body apart: 227 requests/s.)
  So a small file leaves with its head in one call, and ``TCP_NODELAY``
  turns Nagle off for the large ones, sent in two steps.
* A client that leaves or resets at any moment raises OSError in the code
  serving it, and costs nothing but its own connection.

Why it is fast, and what that costs
-----------------------------------
Lesson 10's loop, run as greenlets, served 8,700 requests/s (wrk, 100
connections, a 2 KB file, the server on one core and wrk on the other),
where a bare gevent loop that answers every request with the same bytes
serves about 88,000 on the same machine.  Changed one at a time and
measured, three things made the difference (figures with ``--quiet``):

* Finding, opening and reading the file and formatting its head cost about
  35 µs a request, more than everything else together.  ``FileCache`` keeps
  small files' responses in memory and checks them again once a second
  (nginx: ``open_file_cache``), so an edited file is served stale for up to
  a second; the Date header is formatted once a second; a request head
  seen before is not parsed again.  9,000 -> 37,000 requests/s.
* gevent's ``sendall()`` asks the kernel for the socket's buffer size
  (``getsockopt``) on every call before it sends.  ``send_all()`` tries
  one ``send()`` first, which nearly always takes a small answer whole.
  -> 52,000.
* A socket timeout (``settimeout``) makes gevent build a ``Timeout`` -- a
  timer and two exception objects -- each time the socket has to wait,
  which on a kept connection is once a request.  Instead a connection
  keeps one libev timer and pushes it back when a request begins and when
  its answer begins (``ConnectionTimer``: libev's ``ev_timer_again``, its
  own recipe for idle timeouts).  -> 65,000.  A ``gevent.Timeout``
  cancelled and started again keeps its first deadline, so it cannot be
  reused this way: the idle-timeout tests caught that.  Large files, which
  may rightly take longer than the timeout to reach a slow client, keep
  the socket's timeout, which bounds each wait instead.

The access log adds about a quarter to a cached request (52,000 with
it); ``--quiet`` turns it off, as nginx's ``access_log off`` does in the
benchmark.  ``python -m bench.run`` measures this lesson against nginx and
the others on one machine; the last full run is in bench/RESULTS.md.

What changed from the source's code, and why
--------------------------------------------
* Everything lesson 06 fixed: whole requests read with limits, ``sendall``,
  safe paths, real headers, clear error answers.
* patch_all() runs before every other import, for the reason above.
* ``--max-connections`` bounds the greenlets with a Pool, for when every
  client that connects must not get a greenlet and its buffers at once.
* Ctrl+C.  gevent runs a signal handler in whichever greenlet happens to
  be running, and reports a KeyboardInterrupt raised in a worker as a
  crash, with a traceback.  main() has gevent throw it into the main
  greenlet instead, which says one line and exits.
* gevent's ``socket.sendfile`` is a read-and-send loop in Python, not
  ``os.sendfile``: still streamed, but the bytes pass through the process.
* Persistent connections, the idle timeout and ``TCP_NODELAY``: see above.
* Small files answered from memory, one timer per connection, ``--quiet``:
  see "Why it is fast".

Try it
------
    python lessons/11_static_gevent.py --max-connections 2
    nc 127.0.0.1 7890 &  nc 127.0.0.1 7890 &   # two idle clients fill the pool
    curl -m 3 http://127.0.0.1:7890/          # waits: accepted only when one leaves
    ps -o nlwp -p $(pgrep -of 11_static)      # one thread, however many clients
    python -m bench.run --quick --lessons 10_static_threading 11_static_gevent
Then move ``monkey.patch_all()`` below ``import socket`` and add ``from
socket import socket as Socket``: which name is patched?

Exercise
--------
gzip: a response whose type is text (``text/*``, JavaScript, JSON, SVG) is
gzip-compressed when the request's ``Accept-Encoding`` allows gzip (q > 0),
with ``Content-Encoding: gzip`` and the compressed ``Content-Length``; every
response for those types carries ``Vary: Accept-Encoding``; binary types,
and clients that do not accept gzip, get the identity body.  Small files'
answers come from ``FileCache``: a gzipped body and its heads belong
there too, or a cached identity answer reaches a gzip client.  Grade it
with ``python -m pytest tests/exercises -k 11``.
"""

# First, before any other import: patch_all() replaces the blocking parts of
# the standard library (socket, time.sleep, select, threading, ssl...) with
# versions that switch to another greenlet instead of blocking.  A module
# imported earlier may have kept a reference to an original -- after
# ``from socket import socket`` the name still means the blocking class --
# and that code would then block the whole process.
try:
    from gevent import monkey
except ImportError:
    raise SystemExit("Lesson 11 needs gevent: pip install gevent "
                     "(lesson 10 is the same server with threads).") from None

monkey.patch_all()

import argparse
import email.utils
import errno
import functools
import html
import mimetypes
import os
import re
import signal
import socket
import sys
import time
import urllib.parse
from http import HTTPStatus

import gevent
import gevent.pool

DEFAULT_PORT = 7890
DEFAULT_DOCROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "html")
SERVER_NAME = "CourseServer/11-gevent"

# Limits, with the answer a client gets when it breaks them.  The numbers
# follow CPython's http.server (64 KiB lines, 100 headers); nginx allows
# 8 KiB per header line, node.js 16 KiB for the whole head.
MAX_REQUEST_LINE = 64 * 1024  # longer -> 414 URI Too Long
MAX_HEADER_LINE = 64 * 1024  # longer -> 431 Request Header Fields Too Large
MAX_HEADERS = 100  # more -> 431
MAX_DISCARDED_BODY = 1024 * 1024  # a static server reads bodies only to skip them; more -> 413
DEFAULT_TIMEOUT = 15.0  # seconds a connection may stay idle, and a request may take to arrive
SMALL_FILE = 64 * 1024  # up to this size a file's response is kept in memory (FileCache)
CACHE_ENTRIES = 256  # so the cache holds at most 16 MiB
MAX_REMEMBERED_HEAD = 2048  # longer request heads are parsed every time
QUIET = False  # --quiet: log errors only

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


# ---------------------------------------------------------------------------
# Bytes in, request or error out: no sockets here, so it can be tested alone.
# ---------------------------------------------------------------------------

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


def http_date(cached=[None, ""]):
    """Now, as a Date header: formatted once per second, not per response (so does nginx)."""
    second = int(time.time())
    if cached[0] != second:
        cached[:] = [second, email.utils.formatdate(second, usegmt=True)]
    return cached[1]


def response_head(status, headers):
    lines = ["HTTP/1.1 %d %s" % (status, status.phrase),
             "Date: " + http_date(),
             "Server: " + SERVER_NAME]
    lines += ["%s: %s" % header for header in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def error_response(error, method="GET"):
    """The bytes of a small HTML page that explains an HTTPError."""
    title = "%d %s" % (error.status, error.status.phrase)
    body = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n"
            "<body><h1>%s</h1>\n<p>%s</p>\n<p><a href=\"/\">Course home</a></p></body></html>\n"
            % (title, title, html.escape(error.explanation))).encode("utf-8")
    head = response_head(error.status, error.headers + [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", len(body)),
        ("Connection", "close")])
    return head if method == "HEAD" else head + body


def understand_head(head):
    """Bytes in; the request and whether to keep the connection after it out."""
    check_head_limits(head)
    request = parse_request_head(head)
    return request, wants_keep_alive(request)


# Understanding a head is a pure function of its bytes (lesson 06 made the
# parser one), so its result can be remembered.  A client on a keep-alive
# connection sends the same head, byte for byte, each time it asks for the
# same file again (a benchmark does nothing else): such a head is parsed
# once.  A head that fails raises HTTPError, which is not remembered; long
# heads are not kept, so the cache stays small.
understand_known_head = functools.lru_cache(maxsize=256)(understand_head)


def parse_head(head):
    if len(head) > MAX_REMEMBERED_HEAD:
        return understand_head(head)
    return understand_known_head(head)


def wants_keep_alive(request):
    """HTTP/1.1 keeps the connection by default, HTTP/1.0 only when asked (RFC 9112 §9.3)."""
    options = {option.strip().lower()
               for option in request.headers.get("connection", "").split(",")}
    if request.version >= (1, 1):
        return "close" not in options
    return "keep-alive" in options


# ---------------------------------------------------------------------------
# Small files' responses, kept in memory.
# ---------------------------------------------------------------------------

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
            modified = self.identity[0] / 1e9
            head = self.heads[keep_alive] = response_head(HTTPStatus.OK, [
                ("Content-Type", content_type(self.path)),
                ("Content-Length", len(self.body)),
                ("Last-Modified", email.utils.formatdate(modified, usegmt=True)),
                ("Connection", "keep-alive" if keep_alive else "close")])
        return head if request.method == "HEAD" else head + self.body


class FileCache:
    """Responses of small files, reused: nginx's ``open_file_cache``, simplified.

    Answering from scratch maps the path (realpath stats every folder on the
    way), opens, reads and closes the file and formats the head: most of
    what a request costs.  An entry is trusted for the rest of the clock
    second it was checked in -- the Date header changes each second anyway.
    The first request in a new second maps the path again and compares the
    file's mtime, size and inode; only a changed file is read again.  So a
    file edited on disk is served stale for at most a second (nginx:
    ``open_file_cache_valid``).  Bounded: CACHE_ENTRIES files of at most
    SMALL_FILE bytes, the oldest entry dropped first.  Every greenlet shares
    it without a lock: none of this code waits, so no other greenlet can
    run in the middle of it.
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
                entry = CachedFile(path, identity, file.read())
                self.entries.pop(target, None)
                if len(self.entries) >= CACHE_ENTRIES:
                    del self.entries[next(iter(self.entries))]  # dicts keep insertion order
                self.entries[target] = entry
        entry.second = second
        entry.heads = {}
        return entry


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


# ---------------------------------------------------------------------------
# The socket side: serve one connection, request after request.
# ---------------------------------------------------------------------------

class ClientGaveUp(Exception):
    """The client closed or went quiet before finishing its request."""


class TimedOut(Exception):
    """The connection's timer expired while it waited for the client."""


class ConnectionTimer:
    """A connection's timeout: one libev timer, pushed back for each request.

    When it expires, it throws TimedOut into the greenlet that made it, in
    whichever call that greenlet waits.  Pushing the timer back (libev's
    ev_timer_again) costs a few steps on a heap; "Why it is fast" says why
    this, and not the socket's timeout or a gevent.Timeout.
    """

    def __init__(self, seconds):
        self.greenlet = gevent.getcurrent()
        self.timer = gevent.get_hub().loop.timer(seconds, seconds)

    def restart(self):
        """Expire `seconds` from now, not from when the timer last started."""
        self.timer.again(self.greenlet.throw, TimedOut, update=True)

    def stop(self):
        self.timer.stop()

    def close(self):
        self.timer.close()


def receive_head(client, buffer):
    """Read from client into buffer until a whole head has arrived.

    Returns the head (without the blank line) and leaves whatever follows it
    in buffer.  TCP delivers a stream of bytes, so one recv() may hold half a
    request, or a request and a half.  If the connection's timer expires,
    TimedOut arrives in the recv() that waits.
    """
    while True:
        end = HEAD_END.search(buffer)
        if end:
            head = bytes(buffer[:end.start()])
            del buffer[:end.end()]
            return head
        check_head_limits(buffer)  # caps what an unfinished head makes us buffer
        try:
            chunk = client.recv(65536)
        except TimedOut:
            raise ClientGaveUp("timed out" if buffer else "idle") from None
        if not chunk:
            raise ClientGaveUp("closed")
        buffer += chunk


def discard_body(client, buffer, length):
    """Read and drop a request body we do not use.

    If we closed with unread bytes in the receive queue, the kernel would
    answer with a RST, and the client could lose our response.
    """
    skipped = min(length, len(buffer))
    del buffer[:skipped]
    length -= skipped
    while length > 0:
        chunk = client.recv(min(length, 65536))
        if not chunk:
            raise ClientGaveUp("closed")
        length -= len(chunk)


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


def send_all(client, data):
    """client.sendall(data), for less: one send() nearly always takes it all.

    gevent's sendall() first asks the kernel for the socket's buffer size (a
    getsockopt() call) and slices the data to it, on every call.
    """
    sent = client.send(data)
    if sent < len(data):
        client.sendall(memoryview(data)[sent:])


def send_file(client, file, head, size, method):
    """Send the head, then size bytes of a large file; return how many body bytes went.

    The file is never read into memory: socket.sendfile() streams it (see
    "What changed from the source": in gevent, a read-and-send loop).
    """
    client.sendall(head)
    if method == "HEAD":
        return 0
    sent = client.sendfile(file, 0, size)
    if sent != size:
        # The file shrank while we sent it.  The client waits for the bytes
        # Content-Length promised; only closing tells it they will not come.
        raise OSError("%s changed while it was being sent" % file.name)
    return sent


def respond(client, request, keep_alive, docroot, cache, timer, timeout):
    """Send the file a GET or HEAD asks for; return how many body bytes went."""
    cached = cache.lookup(request.target, docroot)
    if cached is not None:
        send_all(client, cached.response(request, keep_alive))  # head and body leave together
        return len(cached.body) if request.method == "GET" else 0
    # A large file: mapped, opened and streamed each time.  Streaming it to a
    # slow client may rightly take longer than the timeout, so the timer
    # stops, and the socket's timeout bounds each wait for the client instead.
    timer.stop()
    path = translate_path(request.target, docroot)
    with open_file(path) as file:
        info = os.fstat(file.fileno())
        head = response_head(HTTPStatus.OK, [
            ("Content-Type", content_type(path)),
            ("Content-Length", info.st_size),
            ("Last-Modified", email.utils.formatdate(info.st_mtime, usegmt=True)),
            ("Connection", "keep-alive" if keep_alive else "close")])
        client.settimeout(timeout)
        try:
            return send_file(client, file, head, info.st_size, request.method)
        finally:
            client.settimeout(None)


def serve_connection(client, address, docroot, timeout, cache):
    """Serve requests on this connection until the client or an error ends it."""
    # Nagle's algorithm holds a small segment back until the previous one is
    # acknowledged, and the client delays its ACK by up to 40 ms hoping to
    # piggyback it: a response sent in two writes would wait that long.
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()  # bytes after the current request: pipelined requests
    keep_alive = True
    # One timer for the connection, started again for each request and for
    # its answer ("Why it is fast" says why not the socket's own timeout).
    timer = ConnectionTimer(timeout)
    try:
        while keep_alive:
            timer.restart()  # the idle limit, then the limit for the head
            request = None
            try:
                head = receive_head(client, buffer)
                request, keep_alive = parse_head(head)
                discard_body(client, buffer, body_length(request))
                if request.method not in ("GET", "HEAD"):
                    if request.method in KNOWN_METHODS:
                        raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED,
                                        "This server only reads files: use GET or HEAD.",
                                        [("Allow", ALLOWED_METHODS)])
                    raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, "Unknown method.")
                timer.restart()  # the answer gets a whole timeout to leave
                sent = respond(client, request, keep_alive, docroot, cache, timer, timeout)
                if not QUIET:
                    log(address, request.request_line, HTTPStatus.OK, sent)
            except HTTPError as error:
                timer.restart()
                method = request.method if request else "GET"
                send_all(client, error_response(error, method))
                log(address, request.request_line if request else "-", error.status, 0)
                break  # after an error we cannot trust where the next request starts
            except ClientGaveUp as reason:
                if str(reason) == "timed out":  # it sent part of a request, then stalled
                    timer.restart()
                    send_all(client, error_response(HTTPError(
                        HTTPStatus.REQUEST_TIMEOUT, "The request took too long to arrive.")))
                log(address, "- (client %s)" % reason, None, 0)
                return
    except TimedOut:
        # A body that stopped coming, or an answer the client stopped reading.
        log(address, "- (timed out)", None, 0)
        return
    finally:
        timer.close()
    close_gracefully(client)


def log(address, request_line, status, size):
    """One line per request on stderr, in the spirit of http.server."""
    when = time.strftime("%d/%b/%Y %H:%M:%S")
    print('%s - - [%s] "%s" %s %d' % (address[0], when, request_line, int(status or 0), size),
          file=sys.stderr)


def serve_client(client, address, docroot, timeout, cache):
    """Serve one connection, then close it: the body of each greenlet."""
    with client:
        try:
            serve_connection(client, address, docroot, timeout, cache)
        except OSError as error:  # reset, broken pipe, send timeout
            log(address, "- (%s)" % error.__class__.__name__, None, 0)


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


def serve_forever(listener, docroot, timeout, max_connections):
    # Without a limit, this is the source's loop: gevent.spawn(handler,
    # client) for each connection.  With one, a Pool's spawn is the same
    # call, but at most max_connections greenlets run at once.
    pool = gevent.pool.Pool(max_connections) if max_connections else None
    cache = FileCache()  # shared by every greenlet
    spawn = gevent.spawn if pool is None else pool.spawn  # (an empty Pool is falsy)
    while True:
        if pool is not None:
            # Wait for a free slot *before* accepting: the connections beyond
            # the limit then wait in the kernel's listen queue, not accepted
            # and ignored in our memory.
            pool.wait_available()
        accepted = accept(listener)
        if accepted is None:
            continue
        client, address = accepted
        spawn(serve_client, client, address, docroot, timeout, cache)


def open_listener(bind, port):
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    # Without SO_REUSEADDR a restarted server cannot bind while old
    # connections sit in TIME_WAIT (about a minute on Linux).
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
    parser.add_argument("--max-connections", type=int, metavar="N",
                        help="serve at most N connections at once; the others wait to be "
                             "accepted (default: no limit, as in the source)")
    parser.add_argument("--quiet", action="store_true",
                        help="log errors only (the access log line per request is"
                             " off); a line costs about a third of a cached request")
    return parser.parse_args(argv)


def main(argv=None):
    global QUIET
    args = parse_args(argv)
    QUIET = args.quiet
    if args.max_connections is not None and args.max_connections < 1:
        sys.exit("--max-connections must be at least 1")
    if not args.timeout > 0:  # "0" would not mean "no timeout" (and "nan" is no number)
        sys.exit("--timeout must be a number of seconds above 0")
    docroot = os.path.realpath(args.directory)
    if not os.path.isdir(docroot):
        sys.exit("No such folder to serve: %s (choose one with --directory)" % args.directory)
    try:
        listener = open_listener(args.bind, args.port)
    except OSError as error:
        sys.exit("Cannot listen on %s port %d: %s" % (args.bind, args.port, error.strerror))
    with listener:
        host, port = listener.getsockname()[:2]
        url_host = "[%s]" % host if ":" in host else host
        # gevent runs a signal handler in whichever greenlet happens to be
        # running, and reports a KeyboardInterrupt raised in a worker as a
        # crash, with a traceback.  So Ctrl+C is thrown into this, the main
        # greenlet, wherever it arrives.
        gevent.signal_handler(signal.SIGINT, gevent.getcurrent().throw, KeyboardInterrupt)
        try:  # from the moment the line below is out, Ctrl+C may come
            print("Serving HTTP on %s port %d (http://%s:%d/) ..." % (host, port, url_host, port),
                  flush=True)
            serve_forever(listener, docroot, args.timeout, args.max_connections)
        except KeyboardInterrupt:
            print("\nKeyboard interrupt received, exiting.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
