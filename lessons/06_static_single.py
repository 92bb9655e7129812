#!/usr/bin/env python3
"""Lesson 06 · A single-task static web server (6. Web静态服务器-单任务)

The source's section 6 builds the smallest useful web server: accept a
connection, read the request, find the file, send it back, close, repeat.
This lesson keeps that shape -- one client at a time, one response per
connection -- and makes every step correct.

What changed from the source's code, and why
--------------------------------------------
* The source reads a request with one ``recv(1024)``.  TCP is a byte stream,
  not a message queue: a request may arrive in pieces, or be longer than
  1024 bytes (browsers send 400-1000 bytes of headers, cookies push it past
  4 KiB).  We read until the blank line that ends the head, and cap how much
  we are willing to read (414 for a long request line, 431 for long or many
  header lines), because a server that buffers without limit can be made to
  eat all its memory by one client.
* The source calls ``send``, which may send only part of the buffer.
  ``sendall`` loops until everything has gone.  We also send the head and the
  body in one call so they can leave in one TCP segment.
* The source maps the URL by string concatenation: ``"./html" + path``.
  ``GET /../../etc/passwd`` then reads any file the server can read.  We
  percent-decode, drop dot segments, refuse separators inside a segment, and
  finally check with ``realpath`` that the file really lies inside the
  docroot (a symlink can point anywhere).
* The source answers everything with 200 or 404 and no headers.  Browsers
  then guess the type and wait for the close to know the body has ended.  We
  send ``Content-Type``, ``Content-Length``, ``Date``, ``Server`` and
  ``Connection: close``, and we answer bad requests with a clear 4xx/5xx.
* The source's ``"\\r\\n"`` literals were mangled into real line breaks; HTTP
  lines end in CRLF.  (We also accept a bare LF, so that ``nc`` works.)
* A client that connects and says nothing would block the source forever.
  We give each client ``--timeout`` seconds (5 by default) to send its request.

Why one response per connection?
--------------------------------
HTTP/1.1 keeps connections open by default (长连接).  A single-task server
that honoured that would serve one browser's connection until the browser
chose to close it -- browsers keep idle connections for minutes -- and every
other client would wait in the listen queue.  So this server answers with
``Connection: close`` and moves on.  Even so, one slow client delays all the
others: try it below.  Lessons 07-13 remove that limit, each in its own way.
This lesson reads each file whole into memory; from lesson 07 on, files are
streamed.

Try it
------
    python lessons/06_static_single.py            # then open http://127.0.0.1:7890/
    curl -v http://127.0.0.1:7890/
    curl -v --path-as-is http://127.0.0.1:7890/../README.md     # 404, not the file
    curl -I http://127.0.0.1:7890/style.css                     # HEAD: head only
    nc 127.0.0.1 7890        # connect and type nothing: every other client waits
                             # until the timeout drops you (curl in a 2nd terminal)

Exercise
--------
Directory listing: when a requested folder has no ``index.html``, answer
``200`` with an HTML page (``Content-Type: text/html; charset=utf-8``) that
links every entry of the folder (``<a href="NAME">NAME</a>``, sub-folders
with a trailing ``/``), names sorted, each name HTML-escaped in the text and
percent-encoded in the ``href``.  A folder that has an ``index.html`` still
serves it.  Grade it with ``python -m pytest tests/exercises -k 06``.
"""

import argparse
import email.utils
import html
import mimetypes
import os
import re
import socket
import sys
import time
import urllib.parse
from http import HTTPStatus

DEFAULT_PORT = 7890
DEFAULT_DOCROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "html")
SERVER_NAME = "CourseServer/06-single"

# Limits, with the answer a client gets when it breaks them.  The numbers
# follow CPython's http.server (64 KiB lines, 100 headers); nginx allows
# 8 KiB per header line, node.js 16 KiB for the whole head.
MAX_REQUEST_LINE = 64 * 1024  # longer -> 414 URI Too Long
MAX_HEADER_LINE = 64 * 1024  # longer -> 431 Request Header Fields Too Large
MAX_HEADERS = 100  # more -> 431
MAX_DISCARDED_BODY = 1024 * 1024  # a static server reads bodies only to skip them; more -> 413
DEFAULT_TIMEOUT = 5.0  # seconds a client may take to send its request

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
# The socket side: read one request, answer it, close.
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


def handle_connection(client, address, docroot, timeout):
    """Serve exactly one request on this connection."""
    deadline = time.monotonic() + timeout
    buffer = bytearray()
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
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            body = file.read() if request.method == "GET" else b""
        head = response_head(HTTPStatus.OK, [
            ("Content-Type", content_type(path)),
            ("Content-Length", info.st_size),
            ("Last-Modified", email.utils.formatdate(info.st_mtime, usegmt=True)),
            ("Connection", "close")])
        client.settimeout(timeout)
        client.sendall(head + body)  # one call: head and body leave together
        log(address, request.request_line, HTTPStatus.OK, len(body))
    except HTTPError as error:
        client.settimeout(timeout)
        method = request.method if request else "GET"
        client.sendall(error_response(error, method))
        log(address, request.request_line if request else "-", error.status, 0)
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


def serve_forever(listener, docroot, timeout):
    while True:
        try:
            client, address = listener.accept()
        except (ConnectionAbortedError, InterruptedError):
            continue  # the client left before we accepted it
        with client:
            try:
                handle_connection(client, address, docroot, timeout)
            except OSError as error:  # reset, broken pipe, send timeout
                log(address, "- (%s)" % error.__class__.__name__, None, 0)


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
                        help="how long a client may take to send its request (default %(default)s)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
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
            serve_forever(listener, docroot, args.timeout)
        except KeyboardInterrupt:
            print("\nKeyboard interrupt received, exiting.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
