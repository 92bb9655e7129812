#!/usr/bin/env python3
"""Lesson 12 · Non-blocking sockets, polled in a loop (12. Web静态服务器-非阻塞IO)

The source's section 12 serves many clients from one process and one thread:
every socket is switched to non-blocking mode, so ``accept`` and ``recv``
return at once -- with a client or bytes if there are some, with an
exception if not -- and one loop asks every socket in turn, over and over
(轮询, polling).  This lesson keeps that idea, makes it correct, and
measures what it costs.  Like lessons 07-11 it keeps connections alive
(长连接), answers pipelined requests in order and closes idle connections.

What changed from the source's code, and why
--------------------------------------------
* The source calls ``recv(1024)`` once and treats the bytes as one request.
  A request may arrive in pieces, or two may arrive together (pipelining).
  Each connection here has its own read buffer (``Connection.received``):
  bytes accumulate until a blank line ends a head, and every complete head
  in the buffer is answered, in order.
* The source calls ``send`` twice and ignores what it returns.  On a
  non-blocking socket ``send`` takes only what fits in the kernel's buffer
  (or raises ``BlockingIOError``); a 20 MiB file never fits.  Each
  connection has a write buffer (``Connection.outgoing``); every pass sends
  what the socket accepts and keeps the rest for later.  Large files are
  read a chunk at a time, as the client drains them, not into memory.
* The source removes a closed socket from ``client_socket_list`` while its
  ``for`` loop walks that very list.  The loop's index then points one past
  the removed item, so the client right after each closed one is skipped in
  that pass.  We build the list of survivors after the pass.
* The source treats every ``recv`` exception as "no request yet" and
  ``decode("utf-8", errors="ignore")`` silently mangles bytes.  We catch
  ``BlockingIOError`` only; a reset or broken pipe closes that one client.
* The source's ``time.sleep(1)`` "for test" hides the real cost of polling:
  with it, every request waits up to a second; without it, the loop spins.
  ``--poll-interval`` makes the trade-off visible (below).
* What lesson 06 fixed is kept: limits (414, 431), safe path mapping, clear
  error answers, ``Content-Type``.  As in lessons 07-11, a connection gets
  ``--timeout`` seconds (15 by default), from the last byte we sent it, to
  send its next request; then it is closed (a half-sent request gets 408).

The cost of polling
-------------------
Each pass makes one system call per client -- ``recv``, which almost
always answers "nothing yet" (``BlockingIOError``) -- so a pass costs time
in proportion to the number of connections, busy or not: about 3.5 us per
idle connection here, so 35 ms per pass over 10,000 of them (the bare
``recv`` is 1 us of it).  After a pass in which nothing happened the loop
sleeps ``--poll-interval`` seconds: CPU saved, latency added.  The share of
one core the server burns while nobody asks anything, read from /proc
over 3 s (a 2-core Xeon VM, Python 3.11)::

    --poll-interval   0 clients   50 clients   10,000 clients*   a request may wait
    0                 100 %       100 %        100 %             one pass
    0.001 (default)   2.7 %       14 %         97 %              + 1 ms
    0.01              0.3 %       2.0 %        78 %              + 10 ms
    1 (the source)    0 %         0 %          3.4 %             + 1 s

    * pass / (pass + sleep), with the measured 35 ms pass.  The machine was
      shared with other work, so a loop that never sleeps got 50-99 % of a
      core where it would take all of one; the 0 row says what it takes.

With a few clients a sleep hides the cost; with many, every pass is long
and the sleep no longer helps: the server spends its core asking sockets
that have nothing to say, and every answer waits for the pass to reach
its socket (14 ms median latency at 10,000 idle clients, against 0.5 ms at
50).  With the source's one second, a page with ten files takes seconds.
The cure is to ask the kernel which sockets are ready instead of asking
each socket: ``select`` (the exercise), then ``epoll`` (lesson 13).

Try it
------
    python lessons/12_static_nonblocking.py            # then open http://127.0.0.1:7890/
    top -p $(pgrep -f 12_static_nonblocking)           # CPU while nobody is connected
    python lessons/12_static_nonblocking.py --poll-interval 0      # spins: 100 % of a core
    python lessons/12_static_nonblocking.py --poll-interval 1      # the source's pace
    curl -v http://127.0.0.1:7890/ http://127.0.0.1:7890/style.css   # one connection, two answers
    nc 127.0.0.1 7890        # connect and type nothing: other clients are still served
    python -m bench.loadgen http://127.0.0.1:7890/ --connections 2000   # many at once

Exercise
--------
Replace busy polling with ``select.select``: wait until the kernel reports
a socket readable (or writable, while output is pending) instead of asking
every socket in turn, so the server burns near-zero CPU while idle --
measured: less than 5% of one core over 2 s with 50 idle connections open --
and still serves clients concurrently.  Grade it with
``python -m pytest tests/exercises -k 12``.
"""

import argparse
import collections
import email.utils
import errno
import html
import mimetypes
import os
import re
import select
import socket
import sys
import time
import urllib.parse
from http import HTTPStatus

DEFAULT_PORT = 7890
DEFAULT_DOCROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "html")
SERVER_NAME = "CourseServer/12-nonblocking"

# Limits, with the answer a client gets when it breaks them.  The numbers
# follow CPython's http.server (64 KiB lines, 100 headers); nginx allows
# 8 KiB per header line, node.js 16 KiB for the whole head.
MAX_REQUEST_LINE = 64 * 1024  # longer -> 414 URI Too Long
MAX_HEADER_LINE = 64 * 1024  # longer -> 431 Request Header Fields Too Large
MAX_HEADERS = 100  # more -> 431
MAX_DISCARDED_BODY = 1024 * 1024  # a static server reads bodies only to skip them; more -> 413
DEFAULT_TIMEOUT = 15.0  # seconds a connection may stay idle, and a request may take to arrive
SMALL_FILE = 64 * 1024  # up to this size a file is read and queued with its head
FILE_CHUNK = 64 * 1024  # a larger file is read this much at a time, as the client drains it
RECV_SIZE = 64 * 1024
MAX_QUEUED_OUTPUT = 256 * 1024  # per client; beyond it, its pipelined requests wait
DEFAULT_POLL_INTERVAL = 0.001  # seconds to sleep after a pass that found nothing to do
SELECT_LIMIT = 1024  # FD_SETSIZE: select() cannot watch a descriptor this high or higher
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
# The socket side: one loop, many clients, no call that waits.
# ---------------------------------------------------------------------------

class FileBody:
    """A file still to be sent: read a chunk at a time, so memory stays flat."""

    def __init__(self, file, size):
        self.file = file
        self.remaining = size


class Connection:
    """What the loop remembers about one client between passes.

    A blocking server keeps this state in local variables of a function that
    waits; a loop that must never wait keeps it here, per client.
    """

    def __init__(self, sock, address, deadline):
        self.sock = sock
        self.address = address
        self.received = bytearray()  # arrived, not yet parsed: part of a request, or several
        self.outgoing = collections.deque()  # bytearrays and FileBody objects, in response order
        self.body_to_skip = 0  # bytes of a request body still to drop
        self.close_when_sent = False  # a queued response said "Connection: close"
        self.peer_closed = False  # recv() returned b"": the client sent its FIN
        self.lingering = False  # we sent our FIN and wait for the client's
        self.deadline = deadline
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
        if any(isinstance(piece, FileBody) for piece in self.outgoing):
            return True
        return sum(map(len, self.outgoing)) >= MAX_QUEUED_OUTPUT

    def close(self):
        for piece in self.outgoing:
            if isinstance(piece, FileBody):
                piece.file.close()
        self.outgoing.clear()
        self.sock.close()
        self.closed = True


def wants_keep_alive(request):
    """HTTP/1.1 keeps the connection by default, HTTP/1.0 only when asked (RFC 9112 §9.3)."""
    options = {option.strip().lower() for option in request.headers.get("connection", "").split(",")}
    if request.version >= (1, 1):
        return "close" not in options
    return "keep-alive" in options


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


def respond(conn, request, docroot):
    """Queue the response to one request; raise HTTPError for an error answer."""
    if request.method not in ("GET", "HEAD"):
        if request.method in KNOWN_METHODS:
            raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED,
                            "This server only reads files: use GET or HEAD.",
                            [("Allow", ALLOWED_METHODS)])
        raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, "Unknown method.")
    path = translate_path(request.target, docroot)
    keep_alive = wants_keep_alive(request)
    file = open_file(path)
    info = os.fstat(file.fileno())
    head = response_head(HTTPStatus.OK, [
        ("Content-Type", content_type(path)),
        ("Content-Length", info.st_size),
        ("Last-Modified", email.utils.formatdate(info.st_mtime, usegmt=True)),
        ("Connection", "keep-alive" if keep_alive else "close")])
    if request.method == "HEAD" or info.st_size <= SMALL_FILE:
        with file:
            body = file.read(info.st_size) if request.method == "GET" else b""
        if request.method == "GET" and len(body) != info.st_size:
            raise ConnectionAbortedError("%s shrank while we read it" % path)
        conn.queue(head + body)  # head and body leave together
    else:
        conn.queue(head)
        conn.outgoing.append(FileBody(file, info.st_size))  # send_pending streams it
    conn.close_when_sent = not keep_alive
    if not QUIET:
        log(conn.address, request.request_line, HTTPStatus.OK,
            info.st_size if request.method == "GET" else 0)


def answer_requests(conn, docroot):
    """Queue a response for every complete request in conn.received, in order.

    Returns True if it stopped because conn.output_is_full(): requests may
    be waiting in conn.received for the client to read what is queued.
    """
    while not conn.close_when_sent:  # nothing after "Connection: close" is answered
        if conn.body_to_skip:
            skipped = min(conn.body_to_skip, len(conn.received))
            del conn.received[:skipped]
            conn.body_to_skip -= skipped
            if conn.body_to_skip:
                return False
        if conn.output_is_full():
            return True
        request = None
        try:
            end = HEAD_END.search(conn.received)
            check_head_limits(conn.received)
            if not end:
                return False  # the rest of the head has not arrived yet
            head = bytes(conn.received[:end.start()])
            del conn.received[:end.end()]
            request = parse_request_head(head)
            conn.body_to_skip = body_length(request)
            respond(conn, request, docroot)
        except HTTPError as error:
            method = request.method if request else "GET"
            conn.queue(error_response(error, method))
            conn.close_when_sent = True  # we can no longer trust where the next request starts
            log(conn.address, request.request_line if request else "-", error.status, 0)
    return False


def receive(conn):
    """One recv() that cannot wait; True if bytes or the client's FIN arrived."""
    try:
        chunk = conn.sock.recv(RECV_SIZE)
    except BlockingIOError:
        return False  # nothing yet: the question the polling loop asks over and over
    if not chunk:
        conn.peer_closed = True
    elif not conn.lingering:  # after our FIN we only wait for theirs
        conn.received += chunk
    return True


def send_pending(conn, timeout):
    """Send what the socket takes now, in order; return the number of bytes sent.

    The source ignored send()'s return value.  On a non-blocking socket
    send() takes what fits in the kernel's buffer and returns that count
    (or raises BlockingIOError when nothing fits); the rest waits here for a
    later pass.
    """
    sent_total = 0
    while conn.outgoing:
        piece = conn.outgoing[0]
        if isinstance(piece, FileBody):
            # Flagged shortcut: read() blocks.  A file in the page cache is
            # read in microseconds; a file on a cold, slow disk would stall
            # every client of this loop (nginx hands such reads to threads).
            chunk = piece.file.read(min(FILE_CHUNK, piece.remaining))
            if not chunk:
                # The file shrank while we sent it.  Only closing tells the
                # client that the bytes Content-Length promised will not come.
                raise ConnectionAbortedError("%s changed while it was being sent" % piece.file.name)
            piece.remaining -= len(chunk)
            if not piece.remaining:
                piece.file.close()
                conn.outgoing.popleft()
            conn.outgoing.appendleft(bytearray(chunk))
            continue
        try:
            sent = conn.sock.send(piece)
        except BlockingIOError:
            break  # the kernel's send buffer is full: the client is reading slowly
        sent_total += sent
        del piece[:sent]
        if piece:
            break
        conn.outgoing.popleft()
    if sent_total:
        # Progress: a client that reads, however slowly, is not idle.  Once
        # the output is empty this starts the wait for its next request.
        conn.deadline = time.monotonic() + timeout
    return sent_total


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
    if conn.received and not conn.outgoing and not conn.close_when_sent:
        # It sent part of a request, then stalled: say so, then close.
        conn.queue(error_response(HTTPError(HTTPStatus.REQUEST_TIMEOUT,
                                            "The request took too long to arrive.")))
        conn.close_when_sent = True
        conn.deadline = time.monotonic() + timeout
        log(conn.address, "- (client timed out)", HTTPStatus.REQUEST_TIMEOUT, 0)
    else:
        log(conn.address, "- (client %s)" % ("gone" if conn.lingering else "idle"), None, 0)
        conn.close()


def serve_a_little(conn, docroot, timeout):
    """Everything one client allows right now, without waiting; True if anything moved."""
    moved = False
    if not conn.output_is_full():  # otherwise TCP's flow control slows the client down
        moved = receive(conn)
    while True:
        paused = answer_requests(conn, docroot)
        moved |= send_pending(conn, timeout) > 0
        if not paused or conn.outgoing:
            break  # else the client took all we queued: answer its next requests
    finish_sending(conn)
    return moved


def accept_waiting_clients(listener, connections, timeout):
    """Accept every client in the listen queue; True if there was one."""
    accepted = False
    while True:
        try:
            sock, address = listener.accept()
        except BlockingIOError:
            return accepted  # the queue is empty
        except (ConnectionAbortedError, InterruptedError):
            continue  # the client left before we accepted it
        except OSError as error:
            if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                raise
            # Out of descriptors: the client stays queued in the kernel until
            # one of our connections closes.  The next pass tries again.
            return accepted
        sock.setblocking(False)
        if sock.fileno() >= SELECT_LIMIT:
            # select() cannot watch this descriptor.  Refuse the client
            # rather than crash the loop; lesson 13's epoll has no such limit.
            log(address, "- (refused: descriptor %d is beyond select())" % sock.fileno(),
                HTTPStatus.SERVICE_UNAVAILABLE, 0)
            try:
                sock.send(error_response(HTTPError(
                    HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections; try again.",
                    [("Retry-After", "1")])))
            except OSError:
                pass
            sock.close()
            continue
        # Nagle's algorithm would hold a pipelined response back until the
        # previous one is acknowledged (up to 40 ms with delayed ACKs).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connections.append(Connection(sock, address, time.monotonic() + timeout))
        accepted = True


def wants_to_read(conn):
    """Whether the loop should be told when this client sends.

    Not while its output is full (flow control: it must read first), and not
    after its FIN: a closed side stays "readable" forever, and select() would
    then return at once, every time -- busy polling again.
    """
    return not conn.peer_closed and not conn.output_is_full()


def serve_forever(listener, docroot, timeout, poll_interval):
    # select() sleeps in the kernel until a socket is ready: nothing to tune.
    del poll_interval
    listener.setblocking(False)  # accept() now raises BlockingIOError instead of waiting
    connections = []
    while True:
        # Ask the kernel which sockets are ready instead of asking every
        # socket: readable (bytes, a FIN, or a client to accept) for those we
        # want to hear from, writable for those with output waiting.
        readers = [listener] + [conn.sock for conn in connections if wants_to_read(conn)]
        writers = [conn.sock for conn in connections if conn.outgoing]
        # Wake up for the nearest deadline too, so idle clients still time out.
        nearest = min((conn.deadline for conn in connections), default=None)
        wait = None if nearest is None else max(nearest - time.monotonic(), 0)
        readable, writable, _ = select.select(readers, writers, [], wait)
        if listener in readable:
            accept_waiting_clients(listener, connections, timeout)
        ready = set(readable) | set(writable)
        for conn in connections:
            try:
                if conn.sock in ready:
                    serve_a_little(conn, docroot, timeout)
                if not conn.closed and time.monotonic() > conn.deadline:
                    time_out(conn, timeout)
            except OSError as error:  # reset, broken pipe, a file that changed
                log(conn.address, "- (%s)" % error.__class__.__name__, None, 0)
                conn.close()
        # The source removed a closed socket from the list its for loop was
        # walking, and the loop then skipped the client right after it.  We
        # build the list of survivors once the pass is over.
        connections = [conn for conn in connections if not conn.closed]


def log(address, request_line, status, size):
    """One line per request on stderr, in the spirit of http.server."""
    when = time.strftime("%d/%b/%Y %H:%M:%S")
    print('%s - - [%s] "%s" %s %d' % (address[0], when, request_line, int(status or 0), size),
          file=sys.stderr)


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
    parser.add_argument("--quiet", action="store_true",
                        help="no line per answered request, only errors (nginx: access_log off)")
    parser.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL,
                        metavar="SECONDS",
                        help="sleep after a pass that found nothing to do (default %(default)s;"
                             " 0 spins)")
    return parser.parse_args(argv)


def main(argv=None):
    global QUIET
    args = parse_args(argv)
    QUIET = args.quiet
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
        try:
            # Inside the try: Ctrl+C may come as soon as the line is out,
            # before print() has even returned.
            print("Serving HTTP on %s port %d (http://%s:%d/) ..." % (host, port, url_host, port),
                  flush=True)
            serve_forever(listener, docroot, args.timeout, args.poll_interval)
        except KeyboardInterrupt:
            print("\nKeyboard interrupt received, exiting.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
