#!/usr/bin/env python3
"""Lesson 07 · A static web server with a process per client (7. Web静态服务器-多进程(multiprocessing))

Lesson 06 served one client at a time.  Here the parent process only
accepts connections and hands each one to a new child process, made with
``multiprocessing.Process``: while one child waits for a slow client, the
other children -- and the parent -- carry on.  Parsing, limits, path safety
and error answers are lesson 06's code, unchanged.

A process per client (section 2.2)
----------------------------------
The source's four steps: 1. create a socket, bind, listen; 2. accept a
client; 3. start a child to serve it, while the parent goes back to accept;
4. when the client leaves, its child ends.  Step 4 hides two chores:

* Reaping.  A child that has ended stays in the process table as a zombie
  (僵尸进程) until its parent collects its exit status.  multiprocessing
  collects finished children in ``active_children()``, so the accept loop
  calls it before every accept -- and accept() gives up once a second
  (REAP_INTERVAL) so that it is called while nobody connects, too.
* Stopping.  The children ignore Ctrl+C; the parent ends them.  Started
  with ``daemon=True``, they are terminated (SIGTERM) by multiprocessing's
  exit handler when the parent exits.

Start methods.  ``fork`` (Linux's default up to Python 3.13) makes the child
a copy of the parent.  ``spawn`` (the default on macOS and Windows) starts a
fresh interpreter, which imports this file again -- as ``__mp_main__``, so
the ``if __name__ == "__main__":`` guard at the bottom keeps it from starting
a server of its own -- and receives the target and its arguments pickled,
the socket included.  ``--start-method`` chooses (``forkserver`` works too).

What it costs, measured on this machine (2 cores; 200 clients connected at
once, each asking for index.html, all held open until the last answer):

    start method   200 answered in   memory of the whole group (PSS)
    fork           1.4 s             584 MiB: +2.9 MiB per child
    spawn          16-24 s           2.1 GiB: +10.8 MiB per child

A forked child shares its parent's memory until one of them writes to it,
and CPython writes to every object it touches, if only to count references:
each child soon owns megabytes of copies.  A spawned child pays for a whole
interpreter start.  Of fork's 1.4 s, about 1 s is one client whose SYN was
dropped when 200 connects overflowed the 128-place listen queue, and sent
again after the kernel's initial 1 s timeout.

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
  So a small file leaves with its head in one ``sendall``, and
  ``TCP_NODELAY`` turns Nagle off for the large ones, sent in two steps.
* A client that leaves or resets at any moment raises OSError in the code
  serving it, and costs nothing but its own connection.

What changed from the source's code, and why
--------------------------------------------
* Everything lesson 06 fixed: whole requests read with limits, ``sendall``,
  safe paths, real headers, clear error answers.
* The parent closes its copy of the client socket, as the source does; the
  comment in serve_forever() says why it must.  The child has its own copy
  (fork copies every descriptor; spawn sends this one along), and the kernel
  ends a connection only when every copy is closed.
* The source never collects a finished child until the next client comes
  (``Process.start()`` tidies up on the way); with nobody connecting, the
  last children stay zombies.  We reap before each accept, and each second.
* On Ctrl+C the source prints a traceback, then one more from every child
  in the middle of a request.  Our children ignore SIGINT from the moment
  they exist (see start_with_ctrl_c_ignored) and the parent ends them.
* The source's ``WSGIServer`` has nothing to do with WSGI (PEP 3333, the
  interface between a server and a Python web application).  Like lesson
  06, this server is a handful of functions.
* Persistent connections, the idle timeout, streamed files and
  ``TCP_NODELAY``: see above.

Try it
------
    python lessons/07_static_multiprocessing.py
    nc 127.0.0.1 7890                # in a 2nd terminal: holds one child...
    curl -v http://127.0.0.1:7890/ http://127.0.0.1:7890/style.css
                                     # ...while curl is served, on one connection
    ps -o pid,ppid,stat,rss,args --ppid $(pgrep -of 07_static)   # the children
    python lessons/07_static_multiprocessing.py --start-method spawn
                                     # as on macOS and Windows: slower to serve
Then delete ``client.close()`` in serve_forever(): ``nc`` no longer sees the
connection end after ``GET / HTTP/1.0``, and ``ls /proc/PID/fd | wc -l``
counts one more descriptor in the parent per connection.

Exercise
--------
Prefork: ``--workers N`` starts N worker processes at start-up, each of
which accepts connections itself on the shared listening socket (instead of
a process per connection).  Every response carries ``X-Worker-PID: <pid>``,
the pid of the worker that served it, so that a test can count distinct
workers; Ctrl+C stops all of them.  Grade it with
``python -m pytest tests/exercises -k 07``.
"""

import argparse
import email.utils
import errno
import html
import mimetypes
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import socket
import sys
import time
import urllib.parse
from http import HTTPStatus

DEFAULT_PORT = 7890
DEFAULT_DOCROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "html")
SERVER_NAME = "CourseServer/07-multiprocessing"

# Limits, with the answer a client gets when it breaks them.  The numbers
# follow CPython's http.server (64 KiB lines, 100 headers); nginx allows
# 8 KiB per header line, node.js 16 KiB for the whole head.
MAX_REQUEST_LINE = 64 * 1024  # longer -> 414 URI Too Long
MAX_HEADER_LINE = 64 * 1024  # longer -> 431 Request Header Fields Too Large
MAX_HEADERS = 100  # more -> 431
MAX_DISCARDED_BODY = 1024 * 1024  # a static server reads bodies only to skip them; more -> 413
DEFAULT_TIMEOUT = 15.0  # seconds a connection may stay idle, and a request may take to arrive
SMALL_FILE = 64 * 1024  # up to this size a file is read and sent with its head in one call
REAP_INTERVAL = 1.0  # seconds between looks for finished children while nobody connects

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


def response_head(status, headers):
    lines = ["HTTP/1.1 %d %s" % (status, status.phrase),
             "Date: " + email.utils.formatdate(usegmt=True),
             "Server: " + SERVER_NAME,
             "X-Worker-PID: %d" % os.getpid()]  # which process answered
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


# ---------------------------------------------------------------------------
# The socket side: serve one connection, request after request.
# ---------------------------------------------------------------------------

class ClientGaveUp(Exception):
    """The client closed or went quiet before finishing its request."""


def receive_head(client, buffer, deadline):
    """Read from client into buffer until a whole head has arrived.

    Returns the head (without the blank line) and leaves whatever follows it
    in buffer.  TCP delivers a stream of bytes, so one recv() may hold half a
    request, or a request and a half.
    """
    while True:
        end = HEAD_END.search(buffer)
        check_head_limits(buffer)
        if end:
            head = bytes(buffer[:end.start()])
            del buffer[:end.end()]
            return head
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ClientGaveUp("timed out" if buffer else "idle")
        client.settimeout(remaining)
        try:
            chunk = client.recv(65536)
        except socket.timeout:
            raise ClientGaveUp("timed out" if buffer else "idle") from None
        if not chunk:
            raise ClientGaveUp("closed")
        buffer += chunk


def discard_body(client, buffer, length, deadline):
    """Read and drop a request body we do not use.

    If we closed with unread bytes in the receive queue, the kernel would
    answer with a RST, and the client could lose our response.
    """
    skipped = min(length, len(buffer))
    del buffer[:skipped]
    length -= skipped
    while length > 0:
        client.settimeout(max(deadline - time.monotonic(), 0.001))
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


def wants_keep_alive(request):
    """HTTP/1.1 keeps the connection by default, HTTP/1.0 only when asked (RFC 9112 §9.3)."""
    options = {option.strip().lower()
               for option in request.headers.get("connection", "").split(",")}
    if request.version >= (1, 1):
        return "close" not in options
    return "keep-alive" in options


def send_file(client, file, head, size, method):
    """Send the head, then size bytes of the file; return how many body bytes went.

    A small file is read and leaves in one sendall with its head.  A large
    one is never read into memory: socket.sendfile asks the kernel to copy
    it from the page cache straight into the socket.
    """
    if method == "HEAD":
        client.sendall(head)
        return 0
    if size <= SMALL_FILE:
        body = file.read(size)
        client.sendall(head + body)
        sent = len(body)
    else:
        client.sendall(head)
        sent = client.sendfile(file, 0, size)
    if sent != size:
        # The file shrank while we sent it.  The client waits for the bytes
        # Content-Length promised; only closing tells it they will not come.
        raise OSError("%s changed while it was being sent" % file.name)
    return sent


def serve_connection(client, address, docroot, timeout):
    """Serve requests on this connection until the client or an error ends it."""
    # Nagle's algorithm holds a small segment back until the previous one is
    # acknowledged, and the client delays its ACK by up to 40 ms hoping to
    # piggyback it: a response sent in two writes would wait that long.
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()  # bytes after the current request: pipelined requests
    keep_alive = True
    while keep_alive:
        deadline = time.monotonic() + timeout  # idle limit, then the limit for the head
        request = None
        try:
            head = receive_head(client, buffer, deadline)
            request = parse_request_head(head)
            discard_body(client, buffer, body_length(request), deadline)
            if request.method not in ("GET", "HEAD"):
                if request.method in KNOWN_METHODS:
                    raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED,
                                    "This server only reads files: use GET or HEAD.",
                                    [("Allow", ALLOWED_METHODS)])
                raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, "Unknown method.")
            path = translate_path(request.target, docroot)
            keep_alive = wants_keep_alive(request)
            with open(path, "rb") as file:
                info = os.fstat(file.fileno())
                head = response_head(HTTPStatus.OK, [
                    ("Content-Type", content_type(path)),
                    ("Content-Length", info.st_size),
                    ("Last-Modified", email.utils.formatdate(info.st_mtime, usegmt=True)),
                    ("Connection", "keep-alive" if keep_alive else "close")])
                client.settimeout(timeout)
                sent = send_file(client, file, head, info.st_size, request.method)
            log(address, request.request_line, HTTPStatus.OK, sent)
        except HTTPError as error:
            client.settimeout(timeout)
            method = request.method if request else "GET"
            client.sendall(error_response(error, method))
            log(address, request.request_line if request else "-", error.status, 0)
            break  # after an error we cannot trust where the next request starts
        except ClientGaveUp as reason:
            if str(reason) == "timed out":  # it sent part of a request, then stalled
                client.sendall(error_response(HTTPError(HTTPStatus.REQUEST_TIMEOUT,
                                                        "The request took too long to arrive.")))
            log(address, "- (client %s)" % reason, None, 0)
            return
    close_gracefully(client)


def log(address, request_line, status, size):
    """One line per request on stderr, in the spirit of http.server."""
    when = time.strftime("%d/%b/%Y %H:%M:%S")
    print('%s - - [%s] "%s" %s %d' % (address[0], when, request_line, int(status or 0), size),
          file=sys.stderr)


def serve_client(client, address, docroot, timeout):
    """Serve one connection, then close it."""
    with client:
        try:
            serve_connection(client, address, docroot, timeout)
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


def start_with_ctrl_c_ignored(target, *args):
    """Start a child process that runs target(*args) and never sees Ctrl+C (SIGINT).

    A child interrupted while it is still starting would print a traceback
    from multiprocessing's start-up code, and one interrupted while serving
    would stop in the middle of a response.  So SIGINT is blocked around
    start(): the child inherits the mask (through fork, and through exec
    under spawn), and its first step, ignore_ctrl_c_then(), ignores SIGINT
    before it unblocks it.  A Ctrl+C for the parent meanwhile waits, pending,
    and strikes when the parent unblocks it.  (Ignoring SIGINT in the parent
    around start() instead would discard a Ctrl+C pending at that moment:
    rarely, the server would then not stop.)  daemon=True: when the parent
    exits, multiprocessing terminates (SIGTERM) and collects its daemonic
    children; it would wait for the others, which may be serving a
    keep-alive client.
    """
    child = multiprocessing.Process(target=ignore_ctrl_c_then, args=(target, *args),
                                    daemon=True)
    block = hasattr(signal, "pthread_sigmask")  # POSIX; Windows has no signal masks
    if block:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        child.start()
    finally:
        if block:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    return child


def ignore_ctrl_c_then(target, *args):
    """A child's first step: ignore SIGINT (dropping one pending), let it through, run target."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    target(*args)


def serve_forever(listener, docroot, timeout):
    # accept() gives up every REAP_INTERVAL seconds, so that finished
    # children are reaped even while nobody connects.
    listener.settimeout(REAP_INTERVAL)
    while True:
        # A child that has ended stays a zombie (僵尸进程) until its parent
        # collects its exit status; active_children() joins those that have.
        multiprocessing.active_children()
        try:
            accepted = accept(listener)
        except socket.timeout:
            continue
        if accepted is None:
            continue
        client, address = accepted
        try:
            start_with_ctrl_c_ignored(serve_client, client, address, docroot, timeout)
        except OSError as error:  # EAGAIN, ENOMEM: no process for this client
            log(address, "- (no child process: %s)" % error.strerror, None, 0)
        # The child has its own copy of the client's descriptor now (fork
        # copies them all; spawn sends this one along).  A connection ends
        # only when every copy is closed: if the parent kept its copy, a
        # client reading until the end (HTTP/1.0, nc) would wait forever,
        # and the parent would leak a descriptor per connection until
        # accept() fails with "Too many open files".
        client.close()


def work(listener, docroot, timeout):
    """A prefork worker: accept on the shared listening socket, serve, repeat.

    All workers wait in accept() on the same socket; the kernel hands each
    new connection to one of them.  No process is made per connection.
    """
    listener.settimeout(None)
    while True:
        accepted = accept(listener)
        if accepted is not None:
            serve_client(*accepted, docroot, timeout)


def serve_prefork(listener, docroot, timeout, workers):
    """Start the workers once; then only replace any that dies."""
    def start_worker():
        # Daemonic: when the parent exits after Ctrl+C, multiprocessing
        # terminates (SIGTERM) and collects every worker, busy or not.
        return start_with_ctrl_c_ignored(work, listener, docroot, timeout)

    pool = [start_worker() for _ in range(workers)]
    while True:
        # Sleeps until a worker ends (its sentinel becomes ready): no polling.
        multiprocessing.connection.wait([worker.sentinel for worker in pool])
        for index, worker in enumerate(pool):
            if not worker.is_alive():
                worker.join()  # collect it: no zombie
                log(("-",), "- (worker %d ended with %s; starting another)"
                    % (worker.pid, worker.exitcode), None, 0)
                pool[index] = start_worker()


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
    parser.add_argument("--start-method", choices=multiprocessing.get_all_start_methods(),
                        help="how children are made: fork copies this process, spawn starts "
                             "a fresh interpreter (default: the platform's)")
    parser.add_argument("--workers", type=positive, metavar="N",
                        help="prefork: N worker processes started at once, each accepting "
                             "(default: a process per connection)")
    return parser.parse_args(argv)


def positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1")
    return int(text)


def main(argv=None):
    args = parse_args(argv)
    if args.start_method:
        multiprocessing.set_start_method(args.start_method)
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
        try:  # from the moment the line below is out, Ctrl+C may come
            print("Serving HTTP on %s port %d (http://%s:%d/) ..." % (host, port, url_host, port),
                  flush=True)
            if args.workers:
                serve_prefork(listener, docroot, args.timeout, args.workers)
            else:
                serve_forever(listener, docroot, args.timeout)
        except KeyboardInterrupt:
            print("\nKeyboard interrupt received, exiting.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
