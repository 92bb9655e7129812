#!/usr/bin/env python3
"""Lesson 05 · Real headers, reproduced (5. 访问百度请求信息和应答信息)

Section 5 of the source is a capture from the browser's DevTools: the
headers of a visit to www.baidu.com, "view source" and "view parsed".  This
lesson is a server whose every answer carries the same kinds of headers --
gzip, chunked transfer, cookies, caching, HSTS, a trace id -- and a client
that shows each response twice, as DevTools do: "view source", the bytes as
they arrived, and "view parsed", de-chunked, gunzipped and explained.

    python3 lessons/05_real_headers.py               # a server on port 7890
    python3 lessons/05_real_headers.py client http://127.0.0.1:7890/headers

The response headers of the capture, one by one
-----------------------------------------------
Content-Encoding: gzip
    The body is compressed; the browser unzips it.  Sent only when the
    request's ``Accept-Encoding`` allows gzip (the capture's browser sent
    ``gzip, deflate, br``), and only for text, which compresses well.
Transfer-Encoding: chunked
    The body comes in chunks, each preceded by its size in hex, ending with a
    zero-size chunk.  The server can start sending before it knows the total
    size -- which it cannot know when it compresses (or generates) as it
    goes.  So there is no Content-Length.  HTTP/1.0 has no chunks: an
    HTTP/1.0 client gets the body delimited by the server closing instead.
Vary: Accept-Encoding
    The answer depends on that request header: a cache must keep the gzip
    and the plain version apart.
Set-Cookie
    ``Set-Cookie: session=...; Path=/; Domain=127.0.0.1; HttpOnly`` asks the
    browser to send ``Cookie: session=...`` back with every request whose host
    matches Domain and whose path starts with Path.  Baidu's
    ``domain=.baidu.com`` covers every *.baidu.com site; an IP address has no
    sub-domains, so here Domain is the host itself (and is left out for a
    name without a dot, such as localhost, which browsers refuse as a
    Domain).  A second cookie, ``visits=N``, is read back on the next request
    and counted up: HTTP is stateless, so the state travels in the cookie.
    (A real site signs such values; anyone can edit their cookies.)
Cache-Control: private
    Only the browser may cache this answer, not a shared proxy: it is
    personal (it sets cookies).
Expires
    A date after which a cached copy is stale.  Baidu's is a few seconds
    *before* Date: stale at once, so the browser must ask again.  We copy
    that.  (With ``Cache-Control: max-age`` present, Expires is ignored.)
Date
    When the response was generated, always in GMT (RFC 9110 §5.6.7).
Strict-Transport-Security: max-age=172800
    "For the next 2 days, reach this site only over https."  Browsers obey it
    only when it arrives over https (RFC 6797 §8.1); over plain http, as here,
    they ignore it -- otherwise anyone on the network could inject it.
Server
    The server's name and version (Baidu's: BWS/1.1, Baidu Web Server).
Traceid
    A unique number per response, which Baidu's servers pass along to the
    services behind them, to find one request in all their logs.  Our
    server's log line for each answer ends with the same ``Traceid: N``:
    compare the header ``curl -v`` shows with the server's terminal.
Connection: keep-alive
    The TCP connection stays open for the next request.

Bdpagetype, Bdqid and Cxy_all are Baidu's private headers (page type,
query id, ...) and are not reproduced; X-Ua-Compatible told Internet
Explorer which engine to use and is obsolete.

What changed from the source, and why
-------------------------------------
* The source's notes say Connection is "the TCP socket's reliable connection";
  it only says whether *this* connection stays open after the response.
* "Vary: 告诉代理服务器缓存两种版本的资源": right, and it applies to browser
  caches too, not only proxies.
* The source swaps DevTools' two labels: the lists it marks "view source"
  are the parsed views, and the ones it marks "view parsed" (starting with
  ``HTTP/1.1 200 OK`` and ``GET / HTTP/1.1``) are the raw heads, as sent.
  The two orders differ: the wire order is the sender's, and DevTools'
  parsed view sorts the names.  The client below prints the wire order.
* "br" (brotli) in the capture's Accept-Encoding needs a library outside
  Python's standard one, so our client asks only for ``gzip, deflate``.
* The request head is read and parsed by lesson 06's code, files are found
  by lesson 06's safe path mapping, and bodies are read by lesson 04's code:
  same limits, same error answers.  Like 04, a thread per connection, so
  keep-alive connections do not block each other.

What it serves
--------------
``/headers`` is a page generated on the fly, in several chunks: your
request's headers and this response's headers, explained, and your cookies.
Every other path is a file from ``--directory`` (the course's html/ by
default), sent the same way: chunked, gzip-compressed if it is text and
your client accepts gzip.  Other methods than GET and HEAD get 405.

Try it
------
    python3 lessons/05_real_headers.py           # then open http://127.0.0.1:7890/headers
                                                 # and look at DevTools > Network > headers
    python3 lessons/05_real_headers.py client http://127.0.0.1:7890/headers
    python3 lessons/05_real_headers.py client http://127.0.0.1:7890/style.css --requests 3
    curl -v --compressed http://127.0.0.1:7890/headers -o /dev/null
    curl -v --raw -H 'Accept-Encoding: gzip' http://127.0.0.1:7890/ -o raw.bin   # as sent

Exercise
--------
Conditional requests: every ``200`` response to a GET of a file carries an
``ETag`` (a quoted string that changes when the file changes) and a
``Last-Modified`` date (the file's modification time, in GMT).  A request
with ``If-None-Match`` naming the current ETag (or ``*``), or -- when it has
no If-None-Match -- with ``If-Modified-Since`` not older than Last-Modified,
gets ``304 Not Modified`` with the same ETag and no body.  Solve it in a
copy (``mkdir -p my_answers && cp lessons/05_real_headers.py my_answers/``)
and grade it with
``python3 -m pytest tests/exercises --submission my_answers -k 05``.
"""

import argparse
import codecs
import datetime
import email.utils
import html
import http.cookies
import ipaddress
import itertools
import mimetypes
import os
import re
import secrets
import socket
import sys
import threading
import time
import urllib.parse
import zlib
from http import HTTPStatus

DEFAULT_PORT = 7890
DEFAULT_DOCROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "html")
SERVER_NAME = "CourseServer/05-headers"

# Limits, with the answer a client gets when it breaks them.  The numbers
# follow CPython's http.server (64 KiB lines, 100 headers); nginx allows
# 8 KiB per header line, node.js 16 KiB for the whole head.
MAX_REQUEST_LINE = 64 * 1024  # longer -> 414 URI Too Long
MAX_HEADER_LINE = 64 * 1024  # longer -> 431 Request Header Fields Too Large
MAX_HEADERS = 100  # more -> 431
MAX_BODY = 1024 * 1024  # the most body we read and show; more -> 413 (nginx's default is 1 MiB too)
MAX_CHUNK_LINE = 1024  # a chunk-size line (hex size and extensions); longer -> 400
DEFAULT_TIMEOUT = 5.0  # seconds a client may take to send its request
MAX_CONNECTIONS = 64  # connections served at once, a thread each; more -> 503

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

HEADERS_PAGE = "/headers"
FILE_PIECE = 64 * 1024  # files are read, compressed and sent this much at a time
EXPIRES_BEFORE_DATE = 12  # seconds, as in the source's capture (02:47:31 vs 02:47:43)
HSTS = "max-age=172800"  # two days, as in the capture
COOKIE_MAX_AGE = 7 * 24 * 3600

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


# ---------------------------------------------------------------------------
# The body: announced by Content-Length, or sent in chunks.
# ---------------------------------------------------------------------------

def body_framing(request):
    """("length", n), ("chunked", None) or ("none", 0): how the body is delimited."""
    coding = request.headers.get("transfer-encoding")
    length = request.headers.get("content-length")
    if coding is not None:
        if length is not None:
            # Two framings at once is how request smuggling works: refuse it.
            raise HTTPError(HTTPStatus.BAD_REQUEST,
                            "Both Transfer-Encoding and Content-Length: which one ends the body?")
        if request.version < (1, 1):
            raise HTTPError(HTTPStatus.BAD_REQUEST, "HTTP/1.0 has no Transfer-Encoding.")
        if coding.strip().lower() != "chunked":
            raise HTTPError(HTTPStatus.NOT_IMPLEMENTED,
                            "The only transfer coding understood here is chunked.")
        return "chunked", None
    if length is None:
        return "none", 0
    if not length.isdigit():
        raise HTTPError(HTTPStatus.BAD_REQUEST, "Content-Length must be a number.")
    if int(length) > MAX_BODY:
        raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        "A request body may have at most %d bytes here." % MAX_BODY)
    return "length", int(length)


def receive_more(client, buffer, deadline, what):
    """One recv() into buffer.  The client may have stopped sending (half-close)
    and still wait for our answer, so an early end gets a 400, not silence."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ClientGaveUp("timed out")
    client.settimeout(remaining)
    try:
        chunk = client.recv(65536)
    except socket.timeout:
        raise ClientGaveUp("timed out") from None
    if not chunk:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "The body ended early, %s." % what)
    buffer += chunk


def receive_exactly(client, buffer, size, deadline, what):
    while len(buffer) < size:
        receive_more(client, buffer, deadline, what)
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


def receive_line(client, buffer, deadline, what):
    while b"\n" not in buffer:
        if len(buffer) > MAX_CHUNK_LINE:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "A %s line is too long." % what)
        receive_more(client, buffer, deadline, "inside a " + what)
    end = buffer.index(b"\n") + 1
    if end > MAX_CHUNK_LINE:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "A %s line is too long." % what)
    line = bytes(buffer[:end]).rstrip(b"\r\n")
    del buffer[:end]
    return line


CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})[ \t]*(;.*)?")


def read_body(client, buffer, request, deadline):
    """The request body and a description of its framing; HTTPError if it is bad."""
    framing, length = body_framing(request)
    if framing == "none":
        return b"", "none (no Content-Length, not chunked)"
    if framing == "length":
        body = receive_exactly(client, buffer, length, deadline,
                               "before the %d bytes Content-Length announced" % length)
        return body, "Content-Length: %d" % length
    # Chunked: a hex size line, that many bytes, CRLF; size 0 ends the body.
    body = bytearray()
    chunks = 0
    while True:
        line = receive_line(client, buffer, deadline, "chunk-size")
        match = CHUNK_SIZE.fullmatch(line)
        if not match:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "Bad chunk-size line: %r." % line[:40])
        size = int(match[1], 16)
        if size == 0:
            break
        if len(body) + size > MAX_BODY:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            "A request body may have at most %d bytes here." % MAX_BODY)
        body += receive_exactly(client, buffer, size, deadline, "inside a chunk")
        if receive_line(client, buffer, deadline, "chunk end") != b"":
            raise HTTPError(HTTPStatus.BAD_REQUEST, "A chunk must end with CRLF.")
        chunks += 1
    for _ in range(MAX_HEADERS + 1):  # trailer fields, up to the blank line
        if receive_line(client, buffer, deadline, "trailer") == b"":
            return bytes(body), "Transfer-Encoding: chunked (%d chunk%s)" % (
                chunks, "" if chunks == 1 else "s")
    raise HTTPError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "More than %d trailer lines." % MAX_HEADERS)


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


# Error pages look like the course site and lead back to the course's home page.  The style is
# inline: the page must look right whatever --directory serves.
ERROR_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{margin:0;background:#f5f7fa;color:#222831;font:1.0625rem/1.6 system-ui,sans-serif}}
header{{background:#1f4e79;padding:.9rem 1.25rem}}header a{{color:#fff;font-weight:700}}
main{{max-width:60rem;margin:0 auto;padding:1.5rem 1.25rem 2.5rem;background:#fff}}
a{{color:#2e6db4}}</style></head>
<body><header><a href="/">Web servers &amp; concurrency in Python</a></header>
<main><h1>{title}</h1>
<p>{explanation}</p>
<p><a href="/">Course home</a></p></main></body></html>
"""


def error_response(error, method="GET"):
    """The bytes of a small HTML page that explains an HTTPError."""
    title = "%d %s" % (error.status, error.status.phrase)
    body = ERROR_PAGE.format(title=title, explanation=html.escape(error.explanation))
    body = body.encode("utf-8")
    head = response_head(error.status, error.headers + [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", len(body)),
        ("Connection", "close")])
    return head if method == "HEAD" else head + body


# ---------------------------------------------------------------------------
# The socket side: read requests, answer them, close when done.
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


def keep_alive(request):
    tokens = {token.strip().lower() for token in request.headers.get("connection", "").split(",")}
    if "close" in tokens:
        return False
    return request.version >= (1, 1) or "keep-alive" in tokens  # HTTP/1.0 must ask for it


# ---------------------------------------------------------------------------
# The headers of the capture, made here
# ---------------------------------------------------------------------------

RESPONSE_HEADER_NOTES = {
    "cache-control": "who may cache the answer, and how long; private: only the browser",
    "connection": "keep-alive: this TCP connection stays open for the next request; "
                  "close: it ends after this response",
    "content-encoding": "how the body is compressed; the browser undoes it (gzip here)",
    "content-length": "how many body bytes follow the head",
    "content-type": "what the body is, and its character set",
    "date": "when this response was made, always in GMT",
    "etag": "a version tag of the content, for conditional requests",
    "expires": "when a cached copy goes stale; before Date means: stale at once, ask again",
    "keep-alive": "how long the server keeps an idle connection open",
    "last-modified": "when the content last changed",
    "server": "the server software and version (Baidu's: BWS/1.1)",
    "set-cookie": "store this name=value and send it back as Cookie to matching "
                  "Domain and Path",
    "strict-transport-security": "use only https for this site for max-age seconds "
                                 "(browsers ignore it over plain http)",
    "traceid": "a unique id for this one response, to find it in the server's logs",
    "transfer-encoding": "chunked: the body comes in pieces, each with its size in hex; "
                         "a 0-size chunk ends it",
    "vary": "the answer depends on these request headers: caches keep the versions apart",
    "x-ua-compatible": "told Internet Explorer which engine to use (obsolete)",
}

REQUEST_HEADER_NOTES = {
    "accept": "media types the browser takes, with weights q (0-1)",
    "accept-encoding": "compressions the browser can undo",
    "accept-language": "languages the reader prefers",
    "cache-control": "max-age=0: do not answer from a cache without asking the server",
    "connection": "keep-alive: keep this connection open afterwards",
    "cookie": "the cookies this site set earlier, sent back",
    "host": "which site (one IP address can serve many)",
    "upgrade-insecure-requests": "the browser would rather have https",
    "user-agent": "the browser and its version",
}


def accepts_gzip(request):
    """Whether Accept-Encoding allows gzip (a q of 0 refuses it; RFC 9110 §12.5.3)."""
    weights = {}
    for item in request.headers.get("accept-encoding", "").split(","):
        coding, *params = [part.strip() for part in item.split(";")]
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding:
            weights[coding.lower()] = q
    gzip_weight = weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0)))
    return gzip_weight > 0


def is_text(kind):
    base = kind.split(";")[0]
    return base.startswith("text/") or base in TEXT_TYPES_WITHOUT_TEXT_PREFIX


def read_cookies(request):
    """The Cookie header as {name: value}; a malformed one counts as none."""
    jar = http.cookies.SimpleCookie()
    try:
        jar.load(request.headers.get("cookie", ""))
    except http.cookies.CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def cookie_domain(request):
    """The Domain for our cookie: the request's host, if a browser would accept it."""
    try:
        host = urllib.parse.urlsplit("//" + request.headers.get("host", "")).hostname or ""
    except ValueError:
        return None
    try:
        ipaddress.IPv4Address(host)
        return host  # an IP address: the cookie goes to exactly that host
    except ValueError:
        pass
    if "." in host and re.fullmatch(r"[a-z0-9.-]+", host):
        return host
    return None  # localhost, an IPv6 literal or junk: no Domain, a host-only cookie


def capture_headers(request, cookies, gzip, chunked, alive, timeout):
    """The capture's response headers, for this request; and the trace id."""
    now = time.time()
    trace_id = "%d%019d" % (int(now * 1000), secrets.randbelow(10 ** 19))
    visits = int(cookies["visits"]) + 1 if cookies.get("visits", "").isdigit() else 1
    headers = [("Cache-Control", "private"),
               ("Expires", email.utils.formatdate(now - EXPIRES_BEFORE_DATE, usegmt=True)),
               ("Strict-Transport-Security", HSTS),
               ("Traceid", trace_id),
               ("Set-Cookie", "visits=%d; Path=/; Max-Age=%d" % (visits, COOKIE_MAX_AGE))]
    if "session" not in cookies:  # read back: a known session is not set again
        domain = cookie_domain(request)
        headers.append(("Set-Cookie", "session=%s; Path=/%s; HttpOnly; SameSite=Lax"
                        % (secrets.token_hex(8), "; Domain=" + domain if domain else "")))
    if gzip is not None:  # a text type: the body depends on Accept-Encoding
        headers.append(("Vary", "Accept-Encoding"))
    if gzip:
        headers.append(("Content-Encoding", "gzip"))
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    if alive:
        headers += [("Connection", "keep-alive"), ("Keep-Alive", "timeout=%g" % timeout)]
    else:
        headers.append(("Connection", "close"))
    return headers, trace_id, visits


# ---------------------------------------------------------------------------
# Bodies as a stream of pieces: compressed as they go, sent in chunks
# ---------------------------------------------------------------------------

class FilePieces:
    """A file as (bytes, flush) pieces.  Opened before the head is sent, so a
    file we cannot open still gets a clean error answer; closed when done."""

    def __init__(self, path):
        self.file = open(path, "rb")

    def __iter__(self):
        while piece := self.file.read(FILE_PIECE):
            yield piece, False

    def close(self):
        self.file.close()


def headers_page(head, response_headers, cookies, visits):
    """(bytes, flush) pieces of the /headers page, as if generated slowly:
    each piece is flushed, so it leaves in its own chunk."""
    yield (("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Headers, explained"
            "</title><style>body{font-family:sans-serif;max-width:64em;margin:1em auto;"
            "padding:0 1em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;"
            "vertical-align:top}table{border-collapse:collapse}</style></head><body>\n"
            "<h1>The headers of this visit, explained</h1>\n"
            "<p>The source's section 5 shows a visit to Baidu in DevTools.  Open DevTools "
            "(F12) &gt; Network, reload, and click this page: the same headers are here.  "
            "This page came in several chunks (Transfer-Encoding: chunked).</p>\n"
            "<h2>Your request, in the order it arrived</h2>\n"
            + header_table(raw_header_pairs(head), REQUEST_HEADER_NOTES)).encode("utf-8"), True)
    yield (("<h2>This response</h2>\n<p>HTTP/1.1 200 OK</p>\n"
            + header_table([("Date", "(set as the head is sent)"),
                            ("Server", SERVER_NAME)] + response_headers,
                           RESPONSE_HEADER_NOTES)).encode("utf-8"), True)
    sent = ", ".join("%s=%s" % item for item in cookies.items()) or "none"
    yield (("<h2>Cookies</h2>\n<p>You sent: <code>%s</code>.  This is visit %d%s.</p>\n"
            "<p>HTTP is stateless: the server remembers nothing between requests.  The "
            "<code>visits</code> count lives in your cookie, which your browser sends back "
            "and the server counts up.</p>\n"
            "<p><a href=\"%s\">Reload</a> &middot; <a href=\"/\">Course home</a></p>\n"
            "</body></html>\n" % (html.escape(sent), visits,
                                  "" if visits > 1 else " (no cookie yet: welcome)",
                                  HEADERS_PAGE)).encode("utf-8"), True)


def raw_header_pairs(head):
    pairs = []
    for line in head.split(b"\n")[1:]:
        name, _, value = line.rstrip(b"\r").partition(b":")
        pairs.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return pairs


def header_table(pairs, notes):
    rows = "".join("<tr><td>%s</td><td>%s</td><td>%s</td></tr>\n" % (
        html.escape(name), html.escape(str(value)), html.escape(notes.get(name.lower(), "")))
        for name, value in pairs)
    return "<table><tr><th>header</th><th>value</th><th>what it says</th></tr>\n%s</table>\n" % rows


def send_body(client, pieces, gzip, chunked):
    """Compress (maybe) and frame (maybe) each piece; return the bytes put on the wire."""
    # wbits=31: the gzip container (header, deflate data, CRC and length trailer).
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
    sent = 0
    for piece, flush in itertools.chain(pieces, [(b"", None)]):
        if compressor:
            if flush is None:
                data = compressor.flush()  # the end: the rest and the gzip trailer
            else:
                data = compressor.compress(piece)
                if flush:  # push out what we have, so that this piece leaves now
                    data += compressor.flush(zlib.Z_SYNC_FLUSH)
        else:
            data = piece
        if data:
            frame = (b"%x\r\n" % len(data) + data + b"\r\n") if chunked else data
            client.sendall(frame)
            sent += len(frame)
    if chunked:
        client.sendall(b"0\r\n\r\n")  # the last chunk: size 0, no trailers
        sent += 5
    return sent


ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')


def not_modified(request, etag, modified):
    """Whether the client's cached copy is current (RFC 9110 §13.1.2, §13.1.3)."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:  # it wins over If-Modified-Since: an ETag is exact
        if if_none_match.strip() == "*":
            return True
        # Weak comparison, as the RFC asks for If-None-Match: W/"x" matches "x".
        tags = {tag.removeprefix("W/") for tag in ENTITY_TAG.findall(if_none_match)}
        return etag.removeprefix("W/") in tags
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        date = email.utils.parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False  # an unreadable date is ignored, as the RFC says
    if date.tzinfo is None:
        date = date.replace(tzinfo=datetime.timezone.utc)
    return int(modified) <= date.timestamp()  # HTTP dates have whole seconds


def answer(client, request, head, docroot, timeout):
    """Send the whole response to a GET or HEAD; return (bytes sent, trace id, keep alive,
    status)."""
    path = urllib.parse.urlsplit(request.target).path
    if path == HEADERS_PAGE:
        kind, pieces = "text/html; charset=utf-8", None
    else:
        file_path = translate_path(request.target, docroot)
        kind, pieces = content_type(file_path), FilePieces(file_path)
    # HTTP/1.0 knows no chunks: there the body ends when we close.
    chunked = request.version >= (1, 1)
    alive = keep_alive(request) and chunked
    gzip = accepts_gzip(request) if is_text(kind) else None
    cookies = read_cookies(request)
    headers, trace_id, visits = capture_headers(request, cookies, gzip, chunked, alive, timeout)
    headers.insert(0, ("Content-Type", kind))
    status = HTTPStatus.OK
    if pieces is None:
        pieces = headers_page(head, headers, cookies, visits)
    else:
        info = os.fstat(pieces.file.fileno())
        # Changes when the file does (its modification time or size), and the
        # gzip bytes are another representation, so they get their own tag.
        etag = '"%x-%x%s"' % (info.st_mtime_ns, info.st_size, "-gzip" if gzip else "")
        headers[1:1] = [("ETag", etag),
                        ("Last-Modified", email.utils.formatdate(info.st_mtime, usegmt=True))]
        if not_modified(request, etag, info.st_mtime):
            status = HTTPStatus.NOT_MODIFIED  # the same head, and no body at all
    try:
        client.settimeout(timeout)
        client.sendall(response_head(status, headers))
        if request.method != "HEAD" and status == HTTPStatus.OK:
            sent = send_body(client, pieces, gzip, chunked)
        else:
            sent = 0
    finally:
        pieces.close()  # the file, or the page's generator
    return sent, trace_id, alive, status


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
    """Serve requests on this connection until one side wants it closed."""
    buffer = bytearray()
    for request_number in itertools.count(1):
        deadline = time.monotonic() + timeout  # for the next request, idle time included
        request = None
        try:
            head = receive_head(client, buffer, deadline)
            request = parse_request_head(head)
            read_body(client, buffer, request, deadline)  # unused, but read: the next
            if request.method not in ("GET", "HEAD"):     # request starts after it
                if request.method in KNOWN_METHODS:
                    raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED,
                                    "This server only reads files: use GET or HEAD.",
                                    [("Allow", ALLOWED_METHODS)])
                raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, "Unknown method.")
            sent, trace_id, alive, status = answer(client, request, head, docroot, timeout)
            log(address, request.request_line, status, sent, "Traceid: " + trace_id)
            if not alive:
                break
        except HTTPError as error:
            client.settimeout(timeout)
            method = request.method if request else "GET"
            client.sendall(error_response(error, method))
            log(address, request.request_line if request else "-", error.status, 0)
            break
        except ClientGaveUp as reason:
            if str(reason) == "timed out":  # it sent part of a request, then stalled
                client.sendall(error_response(HTTPError(HTTPStatus.REQUEST_TIMEOUT,
                                                        "The request took too long to arrive.")))
            if request_number == 1 or str(reason) == "timed out":  # else: a normal end
                log(address, "- (client %s)" % reason, None, 0)
            return
    close_gracefully(client)


def log(address, request_line, status, size, note=""):
    """One line per request on stderr, in the spirit of http.server."""
    when = time.strftime("%d/%b/%Y %H:%M:%S")
    print('%s - - [%s] "%s" %s %d%s' % (address[0], when, request_line, int(status or 0), size,
                                        " " + note if note else ""),
          file=sys.stderr)


def serve_client(client, address, docroot, timeout, slots):
    """A connection's thread: serve it, close it, free its slot."""
    try:
        with client:
            try:
                handle_connection(client, address, docroot, timeout)
            except OSError as error:  # reset, broken pipe, send timeout
                log(address, "- (%s)" % error.__class__.__name__, None, 0)
    finally:
        slots.release()


def refuse_busy(client, address):
    """Every slot is taken: say so at once rather than keep the client waiting."""
    with client:
        try:
            client.settimeout(1.0)  # the accepting thread must not block on one client
            client.sendall(error_response(HTTPError(
                HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections; try again in a second.",
                [("Retry-After", "1")])))
            # Read what the client has sent so far (it sends its request as soon as it
            # is connected): closing with unread bytes would send a RST, which can
            # destroy the 503 before the client reads it.  No lingering: it would hold
            # up the accepting thread.
            client.setblocking(False)
            client.recv(65536)
            client.shutdown(socket.SHUT_WR)
        except OSError:  # BlockingIOError too: nothing has arrived yet
            pass
    log(address, "- (refused: %d connections open)" % MAX_CONNECTIONS,
        HTTPStatus.SERVICE_UNAVAILABLE, 0)


def serve_forever(listener, docroot, timeout):
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    while True:
        try:
            client, address = listener.accept()
        except (ConnectionAbortedError, InterruptedError):
            continue  # the client left before we accepted it
        if not slots.acquire(blocking=False):
            refuse_busy(client, address)
            continue
        # daemon: Ctrl+C ends the server without waiting for idle keep-alive clients.
        threading.Thread(target=serve_client, args=(client, address, docroot, timeout, slots),
                         daemon=True).start()


def open_listener(bind, port):
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    # Without SO_REUSEADDR a restarted server cannot bind while old
    # connections sit in TIME_WAIT (about a minute on Linux).
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((bind, port))
    listener.listen(128)  # connections the kernel queues while we are busy
    return listener


# ---------------------------------------------------------------------------
# The client: each response twice, "view source" and "view parsed"
# ---------------------------------------------------------------------------

# The source's capture, section 5, "Request Headers": Chrome 73 asking for
# www.baidu.com.  Host comes first, as Chrome sends it; no "br", which needs
# a library outside the standard one.
BROWSER_HEADERS = [
    ("Connection", "keep-alive"),
    ("Cache-Control", "max-age=0"),
    ("Upgrade-Insecure-Requests", "1"),
    ("User-Agent", "Mozilla/5.0 (lesson 05; the source's capture was Chrome/73.0.3683.86)"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,image/apng,"
               "*/*;q=0.8"),
    ("Accept-Encoding", "gzip, deflate"),
    ("Accept-Language", "zh-CN,zh;q=0.9"),
]
MAX_RESPONSE_HEAD = 64 * 1024
MAX_WIRE_BODY = 16 * 1024 * 1024  # the client keeps the body to show it: cap it
MAX_DECODED = 16 * 1024 * 1024  # and cap what gunzip may turn it into (a "zip bomb")
SHOWN_RAW = 240  # body bytes shown in "view source"
STATUS_LINE = re.compile(r"HTTP/(\d)\.(\d) (\d{3})(?: (.*))?")


class ClientError(Exception):
    """One line for the user, exit status 1."""


class Wire:
    """One TCP connection, and every byte read from it for the current response."""

    def __init__(self, host, port, timeout):
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except ConnectionRefusedError:
            raise ClientError("connection refused by %s port %d: is the server running?"
                              % (host, port)) from None
        except socket.timeout:
            raise ClientError("no connection to %s port %d within %g s"
                              % (host, port, timeout)) from None
        except OSError as error:
            raise ClientError("cannot connect to %s port %d: %s"
                              % (host, port, error.strerror or error)) from None
        self.local_port = self.sock.getsockname()[1]
        self.timeout = timeout
        self.buffer = bytearray()
        self.raw = bytearray()  # the current response as it arrived
        self.closed = False

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise ClientError("no answer within %g s" % self.timeout) from None
        except ConnectionResetError:
            raise ClientError("the server reset the connection") from None
        self.closed = not chunk
        self.buffer += chunk
        return bool(chunk)

    def _take(self, size):
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        self.raw += data
        return data

    def head(self):
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > MAX_RESPONSE_HEAD:
                raise ClientError("the response head is longer than %d bytes" % MAX_RESPONSE_HEAD)
            if not self._fill():
                raise ClientError("the connection closed before a whole response head came")
        return self._take(self.buffer.index(b"\r\n\r\n") + 4)

    def line(self):
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > 1024 or not self._fill():
                raise ClientError("a broken chunk-size line in the response")
        return self._take(self.buffer.index(b"\r\n") + 2)[:-2]

    def exactly(self, size):
        while len(self.buffer) < size:
            if not self._fill():
                raise ClientError("the connection closed in the middle of the body")
        return self._take(size)

    def until_close(self):
        while self._fill():
            if len(self.buffer) > MAX_WIRE_BODY:
                raise ClientError("the body is larger than %d bytes" % MAX_WIRE_BODY)
        return self._take(len(self.buffer))


def receive(wire, method):
    """Read one response: (status, reason, version, headers, body, chunk sizes)."""
    wire.raw.clear()
    head = wire.head().decode("latin-1")
    lines = head[:-4].split("\r\n")
    match = STATUS_LINE.fullmatch(lines[0])
    if not match:
        raise ClientError("the reply is not HTTP: %r" % lines[0][:80])
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]
    if any(len(header) != 2 for header in headers):
        raise ClientError("a malformed header line in the response")
    status, version = int(match[3]), (int(match[1]), int(match[2]))
    names = {name.lower(): value for name, value in headers}
    chunk_sizes = None
    if method == "HEAD" or status in (204, 304) or status < 200:
        body = b""
    elif "chunked" in names.get("transfer-encoding", "").lower():
        body, chunk_sizes = bytearray(), []
        while True:
            size_line = wire.line()
            try:
                size = int(size_line.split(b";")[0], 16)
            except ValueError:
                raise ClientError("a bad chunk size: %r" % size_line[:40]) from None
            if size == 0:
                while wire.line():  # trailers, up to the blank line
                    pass
                break
            if len(body) + size > MAX_WIRE_BODY:
                raise ClientError("the body is larger than %d bytes" % MAX_WIRE_BODY)
            body += wire.exactly(size)
            chunk_sizes.append(size)
            if wire.line() != b"":
                raise ClientError("a chunk not followed by CRLF")
        body = bytes(body)
    elif names.get("content-length", "").isdigit():
        if int(names["content-length"]) > MAX_WIRE_BODY:
            raise ClientError("the body is larger than %d bytes" % MAX_WIRE_BODY)
        body = wire.exactly(int(names["content-length"]))
    else:
        body = wire.until_close()
    return status, match[4] or "", version, headers, body, chunk_sizes


def decode_body(body, coding):
    """Undo Content-Encoding; returns (bytes, how)."""
    coding = (coding or "identity").strip().lower()
    if coding == "identity":
        return body, "not compressed"
    if coding in ("gzip", "x-gzip", "deflate"):
        # wbits 31: a gzip container; 15: a zlib one, which is what "deflate" means.
        inflater = zlib.decompressobj(31 if "gzip" in coding else 15)
        try:
            data = inflater.decompress(body, MAX_DECODED)
        except zlib.error as error:
            raise ClientError("the %s body does not decompress: %s" % (coding, error)) from None
        if inflater.unconsumed_tail:
            raise ClientError("the body decompresses to more than %d bytes" % MAX_DECODED)
        return data, "%s: %d compressed bytes -> %d bytes" % (coding, len(body), len(data))
    raise ClientError("unknown Content-Encoding %r" % coding)


def explain(name, value, headers):
    """What one response header says, with this response's particulars."""
    lower = name.lower()
    note = RESPONSE_HEADER_NOTES.get(lower, "")
    dates = {key.lower(): text for key, text in headers}
    if lower == "expires" and "date" in dates:
        try:
            gap = (email.utils.parsedate_to_datetime(value)
                   - email.utils.parsedate_to_datetime(dates["date"])).total_seconds()
            note += " (here %+d s from Date%s)" % (gap, ": already stale" if gap <= 0 else "")
        except (TypeError, ValueError):
            note += " (not a valid date)"
    elif lower == "set-cookie":
        cookie = http.cookies.SimpleCookie()
        try:
            cookie.load(value)
        except http.cookies.CookieError:
            return "a malformed cookie, ignored"
        for morsel in cookie.values():
            attributes = ", ".join("%s=%s" % (key, morsel[key]) if morsel[key] is not True
                                   else key for key in morsel if morsel[key])
            note = "cookie %s=%s (%s)" % (morsel.key, morsel.value, attributes or "no attributes")
    return note


class CookieJar:
    """What a browser keeps of Set-Cookie, reduced to Domain and Path matching."""

    def __init__(self, host):
        self.host = host.lower()
        self.cookies = {}  # name -> (value, path)

    def store(self, headers, request_path):
        notes = []
        for name, value in headers:
            if name.lower() != "set-cookie":
                continue
            cookie = http.cookies.SimpleCookie()
            try:
                cookie.load(value)
            except http.cookies.CookieError:
                continue
            for morsel in cookie.values():
                domain = morsel["domain"].lstrip(".").lower()
                if domain and self.host != domain and not self.host.endswith("." + domain):
                    notes.append("%s refused: Domain=%s does not match host %s"
                                 % (morsel.key, domain, self.host))
                    continue
                path = morsel["path"] or request_path.rsplit("/", 1)[0] or "/"
                if morsel["max-age"] and morsel["max-age"].lstrip("-").isdigit() \
                        and int(morsel["max-age"]) <= 0:
                    self.cookies.pop(morsel.key, None)
                    notes.append("%s deleted (Max-Age=%s)" % (morsel.key, morsel["max-age"]))
                    continue
                self.cookies[morsel.key] = (morsel.value, path)
                notes.append("%s=%s kept: sent back to %s on paths under %s"
                             % (morsel.key, morsel.value, domain or self.host + " only", path))
        return notes

    def header(self, path):
        pairs = ["%s=%s" % (name, value) for name, (value, cookie_path) in self.cookies.items()
                 if path == cookie_path or path.startswith(cookie_path.rstrip("/") + "/")]
        return "; ".join(pairs)


def show_source(raw, head_size, chunk_sizes):
    print("---- view source: the bytes as they arrived ----")
    print(raw[:head_size].decode("latin-1").rstrip("\r\n").replace("\r\n", "\n"))
    body = raw[head_size:]
    if body:
        print("\n(body: %d bytes on the wire%s; the first %d as Python shows them)"
              % (len(body), ", in %d chunks" % len(chunk_sizes) if chunk_sizes is not None
                 else "", min(SHOWN_RAW, len(body))))
        print(repr(body[:SHOWN_RAW]) + (" ..." if len(body) > SHOWN_RAW else ""))


def show_parsed(status, reason, version, headers, body, chunk_sizes, show):
    print("---- view parsed: de-chunked, decompressed, explained ----")
    print("HTTP/%d.%d %d %s" % (*version, status, reason))
    width = max((len(name) for name, _ in headers), default=0)
    for name, value in headers:
        note = explain(name, value, headers)
        print("%-*s  %s" % (width + 1, name + ":", value))
        if note:
            print("%-*s    <- %s" % (width + 1, "", note))
    if chunk_sizes is not None:
        print("\nChunks: %s bytes (sizes in decimal), then the 0-size chunk -> %d bytes de-chunked"
              % (" + ".join(map(str, chunk_sizes)) or "none", len(body)))
    coding = next((value for name, value in headers if name.lower() == "content-encoding"), None)
    decoded, how = decode_body(body, coding)
    print("Body: %s" % how)
    if decoded and show:
        kind = next((value for name, value in headers if name.lower() == "content-type"), "")
        if is_text(kind):
            text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(decoded[:show])
            print(text + ("\n... (%d more bytes)" % (len(decoded) - show)
                          if len(decoded) > show else ""))
        else:
            print("(%s, %d bytes, not shown)" % (kind or "no type", len(decoded)))


def run_client(args):
    parts = urllib.parse.urlsplit(args.url)
    if parts.scheme == "https":
        raise ClientError("this lesson speaks plain HTTP only; try an http:// URL")
    if parts.scheme != "http" or not parts.hostname:
        raise ClientError("not an http:// URL: %r (try http://127.0.0.1:7890/headers)" % args.url)
    try:
        port = parts.port or 80
    except ValueError:
        raise ClientError("bad port in %r" % args.url) from None
    host = parts.hostname
    path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
    target = path + ("?" + parts.query if parts.query else "")
    host_header = parts.netloc.rsplit("@", 1)[-1]
    jar = CookieJar(host)
    wire = None
    try:
        for number in range(1, args.requests + 1):
            if wire is None:
                wire = Wire(host, port, args.timeout)
                print("* connected from local port %d" % wire.local_port)
            else:
                print("* the same connection, from local port %d (keep-alive)" % wire.local_port)
            headers = [("Host", host_header)] + BROWSER_HEADERS
            cookie = jar.header(parts.path or "/")
            if cookie:
                headers.append(("Cookie", cookie))
            lines = ["%s %s HTTP/1.1" % (args.method, target)] + ["%s: %s" % h for h in headers]
            print("\n==== request %d ====" % number)
            for line in lines:
                print("> " + line)
            try:
                wire.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            except OSError as error:
                raise ClientError("cannot send: %s" % (error.strerror or error)) from None
            status, reason, version, response_headers, body, chunk_sizes = receive(wire,
                                                                                   args.method)
            head_size = bytes(wire.raw).index(b"\r\n\r\n") + 4
            print("\n==== response %d ====" % number)
            show_source(bytes(wire.raw), head_size, chunk_sizes)
            print()
            show_parsed(status, reason, version, response_headers, body, chunk_sizes, args.show)
            for note in jar.store(response_headers, parts.path or "/"):
                print("* cookie " + note)
            connection = " ".join(value.lower() for name, value in response_headers
                                  if name.lower() == "connection")
            if wire.closed or "close" in connection or version < (1, 1):
                print("* the server closes this connection; the next request opens a new one")
                wire.sock.close()
                wire = None
    finally:
        if wire is not None:
            wire.sock.close()
    if args.requests > 1:
        print("\n* Each request carried the cookies the previous responses set: that is how a "
              "stateless\n  protocol remembers you.")


def parse_client_args(argv):
    parser = argparse.ArgumentParser(
        prog=os.path.basename(sys.argv[0]) + " client",
        description="Fetch a URL as a browser would and show each response twice.")
    parser.add_argument("url", help="e.g. http://127.0.0.1:7890/headers")
    parser.add_argument("--requests", type=int, default=2, metavar="N",
                        help="how many requests, each sending the cookies received so far "
                             "(default %(default)s)")
    parser.add_argument("--method", default="GET", choices=["GET", "HEAD"])
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS")
    parser.add_argument("--show", type=int, default=600, metavar="BYTES",
                        help="how much of the decoded body to print (default %(default)s)")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    return args


PORTS = range(0, 65536)  # TCP port numbers; 0 asks the OS for any free one


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog="client mode: %(prog)s client URL (see --help there)")
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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        args = parse_client_args(argv[1:])
        try:
            run_client(args)
        except ClientError as error:
            print("error: %s" % error, file=sys.stderr, flush=True)
            return 1
        except KeyboardInterrupt:
            return 1
        return 0
    args = parse_args(argv)
    if args.port not in PORTS:
        sys.exit("Port must be between 0 and 65535, not %d" % args.port)
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
