#!/usr/bin/env python3
"""Lesson 09 · A static web server built on socketserver (9. Web静态服务器-多进程(集成模块 socketserver))

Lessons 07 and 08 wrote the accept loop, the fork and the reaping by hand.
The standard library's socketserver module has them already: a server
class owns the listening socket and the loop, a request-handler class
serves one connection, and a mixin decides where that happens -- in a
forked child (ForkingMixIn, as in the source) or in a thread
(ThreadingMixIn, with ``--threads``).  The two variants differ in one base
class; see ForkingStaticServer and ThreadingStaticServer below.

The classes (section 2.5)
-------------------------
    serve                  combine                               or use
    TCP, a process each    ForkingMixIn + TCPServer              ForkingTCPServer
    UDP, a process each    ForkingMixIn + UDPServer              ForkingUDPServer
    TCP, a thread each     ThreadingMixIn + TCPServer            ThreadingTCPServer
    UDP, a thread each     ThreadingMixIn + UDPServer            ThreadingUDPServer

with a StreamRequestHandler for TCP (a connection: ``self.rfile`` and
``self.wfile`` wrap the socket) or a DatagramRequestHandler for UDP (one
datagram in ``self.rfile``, the reply written to ``self.wfile``).  The
mixin comes before the server class among the bases, so that its
process_request() is the one that runs.  (ForkingMixIn exists only where
os.fork does.)

Where the mixin plugs in:

    serve_forever()                 loop: wait for the listening socket
      _handle_request_noblock()       get_request(): accept()
        process_request()             <- the mixin: ForkingMixIn forks and the
                                         child runs the rest, then os._exit;
                                         ThreadingMixIn starts a thread for it;
                                         TCPServer alone runs it right here,
                                         one client at a time, like lesson 06
          finish_request()
            StaticRequestHandler(...)  setup(), handle(), finish()
          shutdown_request()          shutdown and close the connection
      service_actions()               ForkingMixIn: reap ended children
                                      (waitpid WNOHANG) every 0.5 s

Unlike lesson 08's, ForkingMixIn's child keeps its copy of the listening
socket; it never accepts on it, and it leaves with os._exit() all the same.

Defaults a web server must change (measured on this machine, 200 clients
connecting at once and asking for index.html):

* ``request_queue_size`` (the listen() backlog) is 5.  When it is full,
  Linux drops the handshake's last packet and the request that follows, and
  the client sends them again later and later.  With 5: 91 clients answered,
  the last after 33 s; the other 109 saw the connection close unanswered,
  their request lost in the overflow until after our idle timeout.  With
  128 (our value, and lesson 06's): all answered in 1.4 s -- one client's
  SYN, dropped, was sent again after the kernel's 1 s timeout.
* ``max_children`` is 40: with 40 children alive, ForkingMixIn's parent
  waits in waitpid() for one to end, accepting nobody.  A keep-alive child
  ends only when its client leaves or times out, so the 41st client waits
  up to ``--timeout``: with max_children 40 (and --timeout 3), 160 answered
  in 12 s, 40 closed unanswered.  We allow 1000.
* ``daemon_threads`` is False: Ctrl+C would wait for every thread, and so
  for every idle keep-alive client.  We set it.

What it costs (same 200 clients): forking, 1.4 s and 450 MiB for the group
(PSS, +2.2 MiB per child); ``--threads``, 1.1 s and 21 MiB (+50 KiB per
thread).  About 1 s of each is one SYN dropped by the full listen queue.

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
* The source's handle() is a ``while True`` loop that never checks for the
  empty read by which recv() says the client has closed.  The next line,
  ``request_header_lines[0]``, then raises IndexError on the empty list, so
  every connection ends in a traceback from socketserver's handle_error()
  (guard that line, and the loop spins on ``b""`` at 100% CPU instead).
  Here serve_connection() returns when the client closes, handle() returns,
  and socketserver closes the connection and ends the child.
* The source sends ``Content-Length`` -- the first in the chapter, which is
  what lets it keep connections open -- but ``Content-Type`` only with its
  404, and every response in two sends.  Here: see above.
* The settings above; and ``allow_reuse_address`` (SO_REUSEADDR) for a quick
  restart, which lesson 06 sets by hand.
* Lesson 08's two precautions, through socketserver's own hooks:
  process_request() holds Ctrl+C back while the mixin forks and records
  the child, and server_close() ends any child still running before
  ForkingMixIn waits for them all.  Without them, a Ctrl+C that came just
  as a client connected left that client's child running, unknown.
* handle_error() says one line for an OSError (a fork refused: EAGAIN,
  ENOMEM) instead of socketserver's traceback.
* ``--threads`` shows the other mixin: no new code, a different base class.

Try it
------
    python lessons/09_static_socketserver.py              # ForkingMixIn
    python lessons/09_static_socketserver.py --threads    # ThreadingMixIn
    for i in $(seq 50); do nc 127.0.0.1 7890 & done       # 50 idle clients, then:
    curl http://127.0.0.1:7890/                           # still answered
Then delete ``self.max_children = MAX_CHILDREN`` and try again: curl waits
until one of the idle clients times out, 15 s later.

Exercise
--------
Range requests: ``Range: bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` are
answered ``206 Partial Content`` with ``Content-Range: bytes a-b/size`` and
exactly those bytes; 200 responses carry ``Accept-Ranges: bytes``; an
unsatisfiable range is answered ``416`` with ``Content-Range: bytes */size``;
a malformed or multi-range header may be ignored (a full 200).  Grade it
with ``python -m pytest tests/exercises -k 09``.
"""

import argparse
import email.utils
import html
import mimetypes
import os
import re
import signal
import socket
import socketserver
import sys
import time
import urllib.parse
from http import HTTPStatus

DEFAULT_PORT = 7890
DEFAULT_DOCROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "html")
SERVER_NAME = "CourseServer/09-socketserver"

# Limits, with the answer a client gets when it breaks them.  The numbers
# follow CPython's http.server (64 KiB lines, 100 headers); nginx allows
# 8 KiB per header line, node.js 16 KiB for the whole head.
MAX_REQUEST_LINE = 64 * 1024  # longer -> 414 URI Too Long
MAX_HEADER_LINE = 64 * 1024  # longer -> 431 Request Header Fields Too Large
MAX_HEADERS = 100  # more -> 431
MAX_DISCARDED_BODY = 1024 * 1024  # a static server reads bodies only to skip them; more -> 413
DEFAULT_TIMEOUT = 15.0  # seconds a connection may stay idle, and a request may take to arrive
SMALL_FILE = 64 * 1024  # up to this size a file is read and sent with its head in one call
MAX_CHILDREN = 1000  # ForkingMixIn's limit on children alive at once (its default: 40)

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
    """Serve one connection, then close it: called by StaticRequestHandler.handle."""
    with client:
        try:
            serve_connection(client, address, docroot, timeout)
        except OSError as error:  # reset, broken pipe, send timeout
            log(address, "- (%s)" % error.__class__.__name__, None, 0)


def hold_ctrl_c():
    """Block SIGINT in this thread: a Ctrl+C now waits, pending, instead of striking."""
    if hasattr(signal, "pthread_sigmask"):  # POSIX; Windows has no signal masks
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def allow_ctrl_c():
    """Unblock SIGINT: a Ctrl+C held back meanwhile is delivered now."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class StaticRequestHandler(socketserver.StreamRequestHandler):
    """socketserver makes one per connection and calls handle(), in a child or a thread."""

    def handle(self):
        allow_ctrl_c()  # a forked child inherits process_request's hold
        # self.request is the accepted socket.  StreamRequestHandler also
        # wraps it in self.rfile and self.wfile; we keep to the socket, for
        # our limits on reading and for sendfile.  When handle() returns,
        # socketserver closes the connection (and a forked child exits).
        serve_client(self.request, self.client_address, self.server.docroot,
                     self.server.idle_timeout)


class StaticServer:
    """What a web server changes in socketserver's classes: the first base class."""

    allow_reuse_address = True  # SO_REUSEADDR, as lesson 06 sets by hand
    # The listen() backlog.  TCPServer's default is 5: when 5 connections
    # wait to be accepted, Linux drops the next SYNs, and those clients try
    # again after 1 s, 3 s, 7 s...
    request_queue_size = 128
    # ForkingMixIn: with max_children alive (default 40) the parent *blocks*
    # in waitpid() until one ends, and accepts nobody meanwhile.
    max_children = MAX_CHILDREN
    # ThreadingMixIn: daemon threads, so that Ctrl+C does not wait for idle
    # keep-alive connections to time out.
    daemon_threads = True

    def __init__(self, address, docroot, timeout):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.docroot = docroot
        self.idle_timeout = timeout
        super().__init__(address, StaticRequestHandler)

    def process_request(self, request, client_address):
        # Lesson 08's precaution: a Ctrl+C that struck between ForkingMixIn's
        # fork() and its recording of the child's pid would leave a child
        # that nobody knows of -- and that, born just after the Ctrl+C, never
        # got it.  Held back, it strikes once the mixin is done.
        hold_ctrl_c()
        try:
            super().process_request(request, client_address)
        finally:
            allow_ctrl_c()

    def server_close(self):
        # Lesson 08's other precaution: end any child still running (one
        # born just after Ctrl+C, or any child when the parent alone was
        # interrupted) before ForkingMixIn waits for them all.
        for pid in getattr(self, "active_children", None) or ():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass  # it had already ended
        super().server_close()

    def handle_error(self, request, client_address):
        # socketserver calls this for an exception while it processes a
        # connection, and prints a traceback.  An OSError here is the system
        # refusing a fork (EAGAIN: too many processes; ENOMEM): one line.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log(client_address, "- (%s)" % error, None, 0)
        else:
            super().handle_error(request, client_address)


# The two servers differ in one base class: the mixin, which overrides
# process_request(), the step of serve_forever() -> _handle_request_noblock()
# -> process_request() -> finish_request() -> StaticRequestHandler(...).handle()
# that decides where a connection is served.  The source wrote
# ``class WSGIServer(ForkingMixIn, TCPServer)``; StaticServer comes first, so
# that its settings and hooks take precedence over the mixin's.
if hasattr(socketserver, "ForkingMixIn"):  # POSIX only: Windows has no fork
    class ForkingStaticServer(StaticServer, socketserver.ForkingMixIn, socketserver.TCPServer):
        pass


class ThreadingStaticServer(StaticServer, socketserver.ThreadingMixIn, socketserver.TCPServer):
    pass


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
    parser.add_argument("--threads", action="store_true",
                        help="a thread per connection (ThreadingMixIn) instead of a process "
                             "(ForkingMixIn)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not args.timeout > 0:  # "0" would not mean "no timeout" (and "nan" is no number)
        sys.exit("--timeout must be a number of seconds above 0")
    docroot = os.path.realpath(args.directory)
    if not os.path.isdir(docroot):
        sys.exit("No such folder to serve: %s (choose one with --directory)" % args.directory)
    if not args.threads and not hasattr(socketserver, "ForkingMixIn"):
        sys.exit("Forking needs os.fork, which this platform lacks: "
                 "add --threads, or run lesson 07 (07_static_multiprocessing.py).")
    server_class = ThreadingStaticServer if args.threads else ForkingStaticServer
    try:
        server = server_class((args.bind, args.port), docroot, args.timeout)
    except OSError as error:
        sys.exit("Cannot listen on %s port %d: %s" % (args.bind, args.port, error.strerror))
    with server:  # on the way out, server_close() also collects the children
        host, port = server.server_address[:2]
        url_host = "[%s]" % host if ":" in host else host
        try:  # from the moment the line below is out, Ctrl+C may come
            print("Serving HTTP on %s port %d (http://%s:%d/) ..." % (host, port, url_host, port),
                  flush=True)
            server.serve_forever()
        except KeyboardInterrupt:
            print("\nKeyboard interrupt received, exiting.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
