#!/usr/bin/env python3
"""Lesson 04 · A request, taken apart (4. Web网站概述)

Section 4 of the source walks through a visit to a web site and lists the
parts of a request and of a response.  This lesson is a server that shows
you those parts for any request you send it: it answers every method of the
section with a page (HTML for a browser, JSON when ``Accept`` asks for it)
that lays out the request line, the headers, the query parameters and the
body it received -- and ``/status/NNN`` answers with any status you choose,
so you can watch each class of status in the browser's DevTools.

A visit to a web site, step by step (浏览器访问网站过程)
-------------------------------------------------------
1. DNS (域名解析): the browser turns the host name into an IP address
   (``socket.getaddrinfo("localhost", 7890)`` does the same in Python).
   No request has been sent yet.
2. The three-way handshake (三次握手): SYN, SYN-ACK, ACK.  The kernel does
   it: the client's ``connect()`` returns, the server's ``accept()`` hands
   over a new socket.  This happens once per connection, not per request.
3. The request (请求): request line, headers, a blank line, maybe a body,
   written into the connection.  Below TCP, IP and Ethernet wrap it in their
   own headers (层层打包) and the server's kernel unwraps it.
4. The server parses the request and decides the answer -- here it only
   describes what it received; a real site runs its application code.
5. The response (响应): status line, headers, a blank line, the body.
6. The four-way close (四次挥手; the source's step 7 writes "四次回送", a
   slip for 四次挥手): FIN, ACK, FIN, ACK -- each side closes its
   direction.  With keep-alive (HTTP/1.1's default) this happens only when
   the connection is done, after any number of requests; the page below
   numbers the requests on each connection so you can see it.

The request and the response, part by part: notebooks/01_http_structure.ipynb.

What changed from the source, and why
-------------------------------------
* The source's "response headers" example lists request headers (Accept,
  Cookie, Host, Referer, User-Agent are sent by the browser).  Real response
  headers -- Content-Type, Content-Length, Date, Server, Set-Cookie -- come
  in lesson 05; this server's own answers carry a few.
* The source's request-line example asks for ``/index.thml``: a typo for
  ``/index.html`` (a server would answer 404).
* "GET参数 &a=1&b=2" is not a body: GET parameters travel in the URL's query
  string (``/search?a=1&b=2``); POST (and PUT, PATCH) carry a body, whose
  length the client announces with ``Content-Length`` or sends in chunks
  (``Transfer-Encoding: chunked``).  This server reads both, up to a limit
  (413 beyond it), and says which framing it saw.
* The handshake and the close happen once per TCP connection, not per
  request: the source's steps 2 and 4 are one step.
* CONNECT is not merely "reserved": it asks a *proxy* to open a tunnel (how
  browsers reach https sites through a proxy).  An origin server such as this
  one answers 405.  TRACE echoes the request for debugging; because
  reflecting cookies let scripts steal them (cross-site tracing), this server
  blanks Cookie and Authorization in its echo, and most servers turn TRACE off.
* 401 means "not authenticated" (send credentials: the response carries
  ``WWW-Authenticate``); "no permission" is 403.  1xx responses are interim:
  they come before the final response to the same request.
* Referer ("防盗链") is set by the client, so a server may use it as a hint
  but cannot trust it to stop malicious requests.
* The request head is read and parsed by the same code as lesson 06's, with
  the same limits and answers (400, 414, 431, 505, 501).  Each connection
  gets its own thread (lesson 10 explains them), so that a browser's idle
  keep-alive connection does not block other clients; at most
  ``MAX_CONNECTIONS`` at once, beyond that 503.

What it answers
---------------
* GET, POST, PUT, DELETE, PATCH, any path: 200 and the anatomy of the request.
* HEAD: the same head as GET, no body.
* OPTIONS: the anatomy, with ``Allow`` listing the methods (also ``OPTIONS *``).
* TRACE: the request head as received (``Content-Type: message/http``).
* CONNECT: 405; an unknown method: 501.
* ``/status/NNN``: that status (any code Python's ``HTTPStatus`` knows), with
  the headers it needs (``Location`` for 3xx -- ``?location=/x`` picks it --,
  ``WWW-Authenticate`` for 401, ``Retry-After`` for 503...).  204, 205 and
  304 have no body.  100, 102 and 103 are sent as interim responses before
  a final 200; 101 needs a real protocol switch, so it gets 400.
* Bodies up to 1 MiB, framed by Content-Length or chunked; more gets 413.

Try it
------
    python3 lessons/04_request_response.py       # then open http://127.0.0.1:7890/?a=1&b=2
    curl -v 'http://127.0.0.1:7890/search?q=http&lang=zh'
    curl -v -H 'Accept: application/json' http://127.0.0.1:7890/
    curl -v -d 'name=Ada&lang=py' http://127.0.0.1:7890/form           # POST, Content-Length
    curl -v -T README.md -H 'Transfer-Encoding: chunked' http://127.0.0.1:7890/upload
    curl -v -X OPTIONS http://127.0.0.1:7890/
    curl -v -X TRACE -H 'Cookie: secret=1' http://127.0.0.1:7890/
    curl -v http://127.0.0.1:7890/status/404     # also 103, 204, 302, 401, 418, 503 ...
    python3 lessons/03_http_client.py http://127.0.0.1:7890/ --repeat 2    # keep-alive

Open DevTools (F12), Network tab, and visit /status/301, /status/404,
/status/500: the status, the headers and the timing of each request are there.
The browser also asks for /favicon.ico on its own; that request is taken
apart too (look for it in the server's log).

Exercise
--------
``Expect: 100-continue``: when a request carries it, the server answers
``HTTP/1.1 100 Continue`` (an interim response: status line and blank line)
before it reads the body, then reads the body and sends the final response
as usual.  If the announced body is too large (``Content-Length`` over the
limit), it answers ``413`` at once, without ``100 Continue``, and does not
wait for the body.  (curl sends ``Expect: 100-continue`` with large uploads
and waits a second for the 100 before sending anyway: with the exercise
solved, that second disappears.)  Solve it in a copy (``mkdir -p my_answers
&& cp lessons/04_request_response.py my_answers/``) and grade it with
``python3 -m pytest tests/exercises --submission my_answers -k 04``.
"""

import argparse
import base64
import email.utils
import html
import itertools
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
from http import HTTPStatus

DEFAULT_PORT = 7890
SERVER_NAME = "CourseServer/04-anatomy"

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
SHOWN_TEXT = 16 * 1024  # body characters shown on the HTML page

KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
ALLOWED_METHODS = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE"
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2
HTTP_VERSION = re.compile(rb"HTTP/(\d)\.(\d)")
HEAD_END = re.compile(rb"\r?\n\r?\n")
STATUS_PATH = re.compile(r"/status/(\d{3})")


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


def response_head(status, headers):
    lines = ["HTTP/1.1 %d %s" % (status, status.phrase),
             "Date: " + email.utils.formatdate(usegmt=True),
             "Server: " + SERVER_NAME]
    lines += ["%s: %s" % header for header in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# Error pages look like the course site and lead back to this server's start
# page.  The style is inline: this server answers every path, /style.css too,
# with the anatomy of the request.
ERROR_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{margin:0;background:#f5f7fa;color:#222831;font:1.0625rem/1.6 system-ui,sans-serif}}
header{{background:#1f4e79;padding:.9rem 1.25rem}}header a{{color:#fff;font-weight:700}}
main{{max-width:60rem;margin:0 auto;padding:1.5rem 1.25rem 2.5rem;background:#fff}}
a{{color:#2e6db4}}</style></head>
<body><header><a href="/">Lesson 04 &middot; A request, taken apart</a></header>
<main><h1>{title}</h1>
<p>{explanation}</p>
<p><a href="/">Back to the start page</a></p></main></body></html>
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


# ---------------------------------------------------------------------------
# The answer: a description of the request, as JSON or HTML.
# ---------------------------------------------------------------------------

HEADER_NOTES = {
    "accept": "media types the client can use, each with a weight q (0-1); this server "
              "answers JSON or HTML by it",
    "accept-encoding": "compressions the client can undo (gzip, deflate, br): lesson 05",
    "accept-language": "languages the reader prefers, weighted by q",
    "authorization": "credentials, after a 401 asked for them",
    "cache-control": "how caches may keep the answer; max-age=0: ask the server again",
    "connection": "keep-alive or close: should this TCP connection outlive the response?",
    "content-length": "how many body bytes follow the head",
    "content-type": "what the body is (a form, JSON, a file...)",
    "cookie": "name=value pairs a server set earlier with Set-Cookie (lesson 05)",
    "expect": "100-continue: 'say 100 before I send a big body' (this lesson's exercise)",
    "host": "which site: one IP address can serve many (required in HTTP/1.1)",
    "if-modified-since": "'only if it changed since this date' (lesson 05's exercise)",
    "if-none-match": "'only if its ETag is not one of these' (lesson 05's exercise)",
    "origin": "the site whose page sent this request (for CORS checks)",
    "referer": "the page that linked here, as the client chooses to tell (a hint, not proof)",
    "transfer-encoding": "chunked: the body comes in pieces, each with its size",
    "upgrade-insecure-requests": "the browser would rather have an https version",
    "user-agent": "the client program and its version",
}

STATUS_CLASSES = {
    1: "1xx informational: an interim answer; the final one follows (提示信息)",
    2: "2xx success: the request was received and done (请求响应成功)",
    3: "3xx redirection: look elsewhere, or use your cached copy (重定向)",
    4: "4xx client error: the request was wrong (客户端错误)",
    5: "5xx server error: the request may be fine; the server failed (服务端错误)",
}


def describe(request, head, body, framing, connection):
    """Everything the server saw, as plain data (it becomes JSON or HTML)."""
    parts = urllib.parse.urlsplit(request.target)
    raw_headers = []
    for line in head.split(b"\n")[1:]:
        name, _, value = line.rstrip(b"\r").partition(b":")
        raw_headers.append([name.decode("ascii"), value.strip(b" \t").decode("latin-1")])
    view = {
        "request_line": {"method": request.method, "target": request.target,
                         "version": "HTTP/%d.%d" % request.version},
        "path": urllib.parse.unquote(parts.path, errors="replace"),
        "query": urllib.parse.parse_qs(parts.query, keep_blank_values=True, errors="replace"),
        "headers": raw_headers,
        "header_notes": {name: HEADER_NOTES[name] for name in request.headers
                         if name in HEADER_NOTES},
        "body": describe_body(body, framing, request.headers.get("content-type", "")),
        "connection": connection,
    }
    return view


def describe_body(body, framing, kind):
    described = {"framing": framing, "length": len(body), "content_type": kind or None}
    try:
        described["text"] = body.decode("utf-8")
    except UnicodeDecodeError:
        described["base64"] = base64.b64encode(body).decode("ascii")
    media = kind.split(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded" and "text" in described:
        described["form"] = urllib.parse.parse_qs(described["text"], keep_blank_values=True)
    elif media == "application/json" and "text" in described:
        try:
            described["json"] = json.loads(described["text"])
        except ValueError as error:
            described["json_error"] = str(error)
    return described


def quality(accept, media):
    """The q-value Accept gives a media type (RFC 9110 §12.5.1), most specific match wins."""
    best = (-1, 0.0)  # (specificity, q)
    kind = media.split("/")[0] + "/*"
    for item in accept.split(","):
        name, *params = [part.strip() for part in item.split(";")]
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        specificity = {media: 2, kind: 1, "*/*": 0}.get(name.lower())
        if specificity is not None and specificity > best[0]:
            best = (specificity, q)
    return best[1]


def wants_json(request):
    accept = request.headers.get("accept")
    if not accept:
        return False
    return quality(accept, "application/json") > quality(accept, "text/html")


def render(view, as_json, status):
    """The view as (content type, bytes)."""
    if as_json:
        text = json.dumps(view, indent=2, ensure_ascii=False) + "\n"
        return "application/json", text.encode("utf-8")
    return "text/html; charset=utf-8", render_html(view, status).encode("utf-8")


def table(rows, header):
    cells = "".join("<tr>%s</tr>\n" % "".join("<td>%s</td>" % html.escape(str(cell))
                                            for cell in row) for row in rows)
    return "<table><tr>%s</tr>\n%s</table>\n" % (
        "".join("<th>%s</th>" % name for name in header), cells or "<tr><td>(none)</td></tr>")


def render_html(view, status):
    line = view["request_line"]
    body = view["body"]
    notes = view["header_notes"]
    parts = ["<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">",
             "<title>%d %s: %s %s</title>" % (status, status.phrase, html.escape(line["method"]),
                                              html.escape(line["target"])),
             "<style>body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}"
             "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}"
             "table{border-collapse:collapse}pre{background:#f4f4f4;padding:.5em;"
             "white-space:pre-wrap}</style></head><body>",
             "<h1>%d %s</h1>" % (status, status.phrase),
             "<p>%s</p>" % html.escape(STATUS_CLASSES[status // 100]),
             "<h2>Request line</h2>",
             table([[line["method"], line["target"], line["version"]]],
                   ["method", "target", "version"]),
             "<p>path <code>%s</code></p>" % html.escape(view["path"]),
             "<h2>Query parameters</h2>",
             table([[name, ", ".join(values)] for name, values in view["query"].items()],
                   ["name", "values"]),
             "<h2>Headers, in the order they came</h2>",
             table([[name, value, notes.get(name.lower(), "")] for name, value in view["headers"]],
                   ["name", "value", "what it says"]),
             "<h2>Body</h2>",
             "<p>%d bytes; framing: %s; type: %s</p>" % (
                 body["length"], html.escape(body["framing"]),
                 html.escape(body["content_type"] or "-"))]
    if "form" in body:
        parts.append(table([[name, ", ".join(values)] for name, values in body["form"].items()],
                           ["form field", "values"]))
    if body["length"]:
        if "text" in body:
            shown = body["text"][:SHOWN_TEXT]
            more = len(body["text"]) - len(shown)
            parts.append("<pre>%s</pre>" % html.escape(shown))
            if more:
                parts.append("<p>... %d more characters</p>" % more)
        else:
            parts.append("<p>binary; base64: <code>%s</code></p>"
                         % html.escape(body["base64"][:200]))
    connection = view["connection"]
    parts += ["<h2>Connection</h2>",
              "<p>Client %s, connection #%d, request #%d on it (%s).</p>" % (
                  html.escape(connection["client"]), connection["number"],
                  connection["request_number"],
                  "kept alive" if connection["keep_alive"] else "closed after this response"),
              "<h2>Try</h2><ul>",
              "<li><a href=\"/search?q=http&amp;lang=zh\">/search?q=http&amp;lang=zh</a></li>",
              "<li>statuses: %s</li>" % " ".join(
                  "<a href=\"/status/%d\">%d</a>" % (code, code)
                  for code in (103, 200, 204, 301, 302, 304, 401, 403, 404, 418, 500, 503)),
              "<li><form method=\"post\" action=\"/form\"><input name=\"name\" value=\"Ada\">"
              "<input name=\"lang\" value=\"py\"><button>POST this form</button></form></li>",
              "</ul></body></html>\n"]
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Choosing the answer
# ---------------------------------------------------------------------------

INTERIM_STATUSES = {HTTPStatus.CONTINUE, HTTPStatus.PROCESSING, HTTPStatus.EARLY_HINTS}
BODYLESS_STATUSES = {HTTPStatus.NO_CONTENT, HTTPStatus.RESET_CONTENT, HTTPStatus.NOT_MODIFIED}
HEADERS_A_STATUS_NEEDS = {
    HTTPStatus.UNAUTHORIZED: [("WWW-Authenticate", 'Basic realm="lesson 04"')],
    HTTPStatus.PROXY_AUTHENTICATION_REQUIRED: [("Proxy-Authenticate", 'Basic realm="lesson 04"')],
    HTTPStatus.METHOD_NOT_ALLOWED: [("Allow", ALLOWED_METHODS)],
    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE: [("Content-Range", "bytes */0")],
    HTTPStatus.UPGRADE_REQUIRED: [("Upgrade", "TLS/1.2, HTTP/1.1")],
    HTTPStatus.TOO_MANY_REQUESTS: [("Retry-After", "1")],
    HTTPStatus.SERVICE_UNAVAILABLE: [("Retry-After", "1")],
}


def chosen_status(request, query):
    """For /status/NNN: (status, extra headers, interim status or None)."""
    match = STATUS_PATH.fullmatch(urllib.parse.urlsplit(request.target).path)
    if not match:
        return HTTPStatus.OK, [], None
    try:
        status = HTTPStatus(int(match[1]))
    except ValueError:
        raise HTTPError(HTTPStatus.BAD_REQUEST,
                        "%s is not a status code Python's HTTPStatus knows." % match[1]) from None
    if status == HTTPStatus.SWITCHING_PROTOCOLS:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "101 switches the connection to another "
                        "protocol; it only answers an Upgrade request.")
    if status in INTERIM_STATUSES:
        return HTTPStatus.OK, [], status
    headers = list(HEADERS_A_STATUS_NEEDS.get(status, []))
    if 300 <= status < 400 and status != HTTPStatus.NOT_MODIFIED:
        location = query.get("location", ["/"])[-1]
        if not location or any(ord(char) < 0x20 or ord(char) >= 0x7F for char in location):
            # A CR or LF here would let the client write its own headers into our response.
            raise HTTPError(HTTPStatus.BAD_REQUEST, "The location must be printable ASCII.")
        headers.append(("Location", location))
    return status, headers, None


def interim_response(status):
    """A 1xx: a status line and headers, no body; the final response follows."""
    headers = "Link: </style.css>; rel=preload\r\n" if status == HTTPStatus.EARLY_HINTS else ""
    return ("HTTP/1.1 %d %s\r\n%s\r\n" % (status, status.phrase, headers)).encode("latin-1")


def traced(head):
    """TRACE's body: the request head as received, credentials blanked."""
    lines = []
    for line in head.split(b"\n"):
        name = line.split(b":", 1)[0].strip().lower()
        if name in (b"cookie", b"authorization", b"proxy-authorization"):
            line = line.split(b":", 1)[0] + b": (removed: TRACE must not echo credentials)"
        lines.append(line.rstrip(b"\r"))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def expects_continue(request):
    """Whether the client waits for "100 Continue" before it sends its body.

    A client about to upload a large body asks first, so that a server that
    would refuse it (too large, not allowed) can say so before the bytes
    travel.  HTTP/1.0 has no 1xx responses (RFC 9110 §10.1.1).
    """
    return (request.version >= (1, 1)
            and request.headers.get("expect", "").strip().lower() == "100-continue")


def keep_alive(request):
    tokens = {token.strip().lower() for token in request.headers.get("connection", "").split(",")}
    if "close" in tokens:
        return False
    return request.version >= (1, 1) or "keep-alive" in tokens  # HTTP/1.0 must ask for it


def answer(request, head, body, framing, connection):
    """(status, headers, body bytes, interim bytes) for a request that parsed and was read."""
    if request.method == "CONNECT":
        raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED,
                        "CONNECT asks a proxy for a tunnel; this is not a proxy.",
                        [("Allow", ALLOWED_METHODS)])
    if request.method not in KNOWN_METHODS:
        raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, "Unknown method.")
    target = request.target
    if not (target.startswith("/") or (request.method == "OPTIONS" and target == "*")
            or re.match(r"https?://", target)):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "The path must start with '/'.")
    if request.method == "TRACE":
        return HTTPStatus.OK, [("Content-Type", "message/http")], traced(head), b""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query, keep_blank_values=True,
                                  errors="replace")
    status, headers, interim = chosen_status(request, query)
    if request.method == "OPTIONS":
        headers.append(("Allow", ALLOWED_METHODS))
    early = b""
    if interim is not None:
        if request.version >= (1, 1):
            early = interim_response(interim)
        # else: no 1xx for an HTTP/1.0 client (RFC 9110 §15.2); just the final 200
    if status in BODYLESS_STATUSES:
        return status, headers, b"", early
    if request.method == "HEAD":
        # HEAD gets the head GET would get, Content-Length included: describe a GET.
        request = Request("GET", request.target, request.version, request.headers)
        head = b"GET" + head[len(b"HEAD"):]
    view = describe(request, head, body, framing, connection)
    if interim is not None:
        view["interim_response"] = "%d %s" % (interim, interim.phrase)
    kind, payload = render(view, wants_json(request), status)
    headers += [("Content-Type", kind), ("Vary", "Accept"), ("Cache-Control", "no-store")]
    return status, headers, payload, early


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


def handle_connection(client, address, timeout, number):
    """Serve requests on this connection until one side wants it closed."""
    buffer = bytearray()
    for request_number in itertools.count(1):
        deadline = time.monotonic() + timeout  # for the next request, idle time included
        request = None
        try:
            head = receive_head(client, buffer, deadline)
            request = parse_request_head(head)
            if expects_continue(request):
                body_framing(request)  # a body over the limit gets its 413 now, and no 100
                client.settimeout(timeout)
                client.sendall(interim_response(HTTPStatus.CONTINUE))
            body, framing = read_body(client, buffer, request, deadline)
            alive = keep_alive(request)
            connection = {"client": "%s:%d" % address[:2], "number": number,
                          "request_number": request_number, "keep_alive": alive}
            status, headers, payload, early = answer(request, head, body, framing, connection)
            if status not in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):
                headers.append(("Content-Length", len(payload)))
            if alive:
                headers += [("Connection", "keep-alive"), ("Keep-Alive", "timeout=%g" % timeout)]
            else:
                headers.append(("Connection", "close"))
            if request.method == "HEAD":
                payload = b""
            client.settimeout(timeout)
            client.sendall(early + response_head(status, headers) + payload)
            log(address, request.request_line, status, len(payload))
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


def log(address, request_line, status, size):
    """One line per request on stderr, in the spirit of http.server."""
    when = time.strftime("%d/%b/%Y %H:%M:%S")
    print('%s - - [%s] "%s" %s %d' % (address[0], when, request_line, int(status or 0), size),
          file=sys.stderr)


def serve_client(client, address, timeout, number, slots):
    """A connection's thread: serve it, close it, free its slot."""
    try:
        with client:
            try:
                handle_connection(client, address, timeout, number)
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


def serve_forever(listener, timeout):
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    numbers = itertools.count(1)
    while True:
        try:
            client, address = listener.accept()
        except (ConnectionAbortedError, InterruptedError):
            continue  # the client left before we accepted it
        if not slots.acquire(blocking=False):
            refuse_busy(client, address)
            continue
        # daemon: Ctrl+C ends the server without waiting for idle keep-alive clients.
        threading.Thread(target=serve_client, args=(client, address, timeout, next(numbers), slots),
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


PORTS = range(0, 65536)  # TCP port numbers; 0 asks the OS for any free one


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", nargs="?", type=int, default=DEFAULT_PORT,
                        help="port to listen on (default %(default)s; 0 lets the OS pick)")
    parser.add_argument("-b", "--bind", default="127.0.0.1", metavar="ADDR",
                        help="address to bind (default %(default)s)")
    parser.add_argument("-d", "--directory", metavar="DIR",
                        help="accepted like every lesson's; unused, this server serves no files")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="how long a client may take to send its request (default %(default)s)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.port not in PORTS:
        sys.exit("Port must be between 0 and 65535, not %d" % args.port)
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
            serve_forever(listener, args.timeout)
        except KeyboardInterrupt:
            print("\nKeyboard interrupt received, exiting.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
