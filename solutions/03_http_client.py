#!/usr/bin/env python3
"""Lesson 03 · An HTTP client over a raw TCP socket (3. HTTP超文本传输协议概述)

Section 3 of the source says what HTTP is: the protocol a browser and a
server use to move web pages; an application-layer protocol carried by TCP;
simple; able to carry any type of data; stateless; and, since HTTP/1.1,
using persistent connections (长连接).  This lesson checks each claim by
speaking HTTP by hand.  Like ``curl -v``, it prints every byte of the
request it sends and the response it receives, then says how it knew where
the body ended -- the one thing every HTTP client must get right.

    python3 lessons/03_http_client.py http://127.0.0.1:7890/

What the source says, checked
-----------------------------
* "Application layer, over TCP": the client below is ``socket`` +
  ``connect`` + ``sendall`` + ``recv`` -- HTTP is just text with rules,
  written into a TCP connection.
* "Simple and flexible": a request is a request line, header lines, a blank
  line, and maybe a body.  A response is a status line, header lines, a
  blank line and a body.  Lines end in CRLF (``\\r\\n``).
* "Almost any data type": the body is bytes; ``Content-Type`` says what they
  are (HTML, an image, JSON...).
* "Stateless" (无状态): every request carries all the server needs -- Host,
  what is accepted, cookies -- and the server keeps no memory of the previous
  request, not even on the same connection.  ``--repeat 2`` shows it: the
  second request repeats everything the first said.  Sites that remember
  you do it with cookies the client sends back (lesson 05).
* "Persistent connections (HTTP/1.1)": a connection stays open after a
  response unless one side says ``Connection: close``, so the next request
  skips the TCP handshake.  ``--repeat 2`` sends two requests on one
  connection when the server allows it, and says when it does not.

What changed from the source, and why
-------------------------------------
* The source has no client code; a browser hides the bytes.  This client
  shows them.
* Where a body ends is not obvious, and the source does not say.  A client
  must check, in this order: no body after a ``HEAD`` request or a ``1xx``,
  ``204`` or ``304`` status; ``Transfer-Encoding: chunked`` -- the body comes
  in chunks, each preceded by its size in hex, ending with a zero-size chunk;
  ``Content-Length: N`` -- exactly N bytes; otherwise the body ends when the
  server closes the connection (HTTP/1.0 style), which also means the
  connection cannot be reused.  (RFC 9112 §6.3.)
* The client never trusts the server: it caps the response head (64 KiB,
  100 headers), times out (``--timeout``), and turns a refused connection, a
  timeout, a reply that is not HTTP or a body cut short into one clear line
  and exit status 1 -- never a traceback.
* Shortcut, flagged: only plain ``http://``.  An ``https://`` URL needs TLS
  (the ``ssl`` module) around the same socket; this lesson says so and stops.

Try it
------
    python3 lessons/06_static_single.py &                    # any server will do
    python3 lessons/03_http_client.py http://127.0.0.1:7890/
    python3 lessons/03_http_client.py http://127.0.0.1:7890/ --repeat 2
          # lesson 06 closes after each response: watch the client reconnect
    python3 -m http.server --protocol HTTP/1.1 8000 &
    python3 lessons/03_http_client.py http://127.0.0.1:8000/ --repeat 2   # one connection
    python3 lessons/03_http_client.py http://127.0.0.1:7890/ -X POST -d 'a=1&b=2'
    python3 lessons/03_http_client.py http://127.0.0.1:1/    # nothing listens: exit status 1

Exercise
--------
Follow redirects: with ``--follow``, when a response has status 301, 302,
303, 307 or 308 and a ``Location`` header, the client requests that location
next (a relative one is resolved against the current URL) and prints each
hop (the full request and response, as for the first); the last response is
the one that counts.  At most 5 redirects are followed: a redirect loop or a
6th redirect is reported as an error (one line, no traceback) with exit
status 1.  Without ``--follow`` nothing changes.  Solve it in a copy
(``mkdir -p my_answers && cp lessons/03_http_client.py my_answers/``) and
grade it with ``python3 -m pytest tests/exercises --submission my_answers -k 03``.
"""

import argparse
import codecs
import re
import socket
import sys
import urllib.parse

DEFAULT_TIMEOUT = 5.0
USER_AGENT = "lesson03-client/1.0"

# A server we talk to may be broken or hostile: cap what we buffer.
MAX_HEAD = 64 * 1024  # bytes of status line + headers
MAX_HEADERS = 100
MAX_CHUNK_LINE = 4096
STATUS_LINE = re.compile(r"HTTP/(\d)\.(\d) (\d{3})(?: (.*))?")
NO_BODY_STATUSES = {204, 304}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 5  # as many as we follow; browsers allow about 20, curl -L 50


class ClientError(Exception):
    """Something the user should read as one line: exit status 1."""


def say(text=""):
    print(text, flush=True)


# ---------------------------------------------------------------------------
# The URL: what to connect to, and what to ask for
# ---------------------------------------------------------------------------

class Target:
    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "https":
            raise ClientError("this lesson speaks plain HTTP only; https:// needs TLS "
                              "(the ssl module) around the socket -- try an http:// URL")
        if parts.scheme != "http" or not parts.netloc:
            raise ClientError("not an http:// URL: %r (try http://127.0.0.1:7890/)" % url)
        try:
            self.port = parts.port or 80
        except ValueError:
            raise ClientError("bad port in %r" % url) from None
        if not parts.hostname:
            raise ClientError("no host in %r" % url)
        self.host = parts.hostname
        self.url = url
        # The Host header names the site: one IP address may serve many.
        host_text = "[%s]" % self.host if ":" in self.host else self.host
        self.host_header = host_text if parts.port in (None, 80) else "%s:%d" % (host_text,
                                                                                 self.port)
        # The request target is the path and query; the #fragment stays in the
        # client.  Characters a request line cannot carry are %-encoded.
        path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
        query = urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=~?")
        self.request_target = path + ("?" + query if query else "")


# ---------------------------------------------------------------------------
# The connection: bytes in and out, with limits and timeouts
# ---------------------------------------------------------------------------

class Connection:
    def __init__(self, target, timeout):
        self.target = target
        self.timeout = timeout
        say("* Connecting to %s port %d ..." % (target.host, target.port))
        try:
            self.sock = socket.create_connection((target.host, target.port), timeout=timeout)
        except socket.gaierror as error:
            raise ClientError("cannot resolve host %r: %s" % (target.host, error.strerror))
        except ConnectionRefusedError:
            raise ClientError("connection refused by %s port %d: is a server running there?"
                              % (target.host, target.port)) from None
        except socket.timeout:
            raise ClientError("no connection to %s port %d within %g s"
                              % (target.host, target.port, timeout)) from None
        except OSError as error:
            raise ClientError("cannot connect to %s port %d: %s"
                              % (target.host, target.port, error.strerror or error)) from None
        local = self.sock.getsockname()
        self.local_port = local[1]
        say("* Connected: three-way handshake done, from local port %d" % self.local_port)
        self.buffer = bytearray()
        self.closed_by_server = False

    def send(self, data):
        """sendall(); False if the server had already closed the connection."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed_by_server = True
            return False
        return True

    def _fill(self):
        """recv() once more into the buffer; False when the server has closed."""
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise ClientError("no answer from %s port %d within %g s"
                              % (self.target.host, self.target.port, self.timeout)) from None
        except ConnectionResetError:
            if self.buffer:
                raise ClientError("the server reset the connection mid-response") from None
            chunk = b""  # reset before any answer: as good as closed
        if not chunk:
            self.closed_by_server = True
        self.buffer += chunk
        return bool(chunk)

    def read_head(self):
        """Bytes up to the blank line that ends a response head (which is dropped)."""
        while True:
            match = re.search(rb"\r?\n\r?\n", self.buffer)
            if match:
                head = bytes(self.buffer[:match.start()])
                del self.buffer[:match.end()]
                return head
            first_line = self.buffer.split(b"\n", 1)[0] if b"\n" in self.buffer else None
            if first_line is not None and not STATUS_LINE.fullmatch(
                    first_line.rstrip(b"\r").decode("latin-1")):
                raise ClientError("the server's reply is not HTTP: %r" % bytes(self.buffer[:80]))
            if len(self.buffer) > MAX_HEAD:
                raise ClientError("the response head is longer than %d bytes" % MAX_HEAD)
            if not self._fill():
                if not self.buffer:
                    return None  # closed before answering at all
                raise ClientError("the connection closed in the middle of the response head "
                                  "(received %r)" % bytes(self.buffer[:200]))

    def read_line(self, what):
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_CHUNK_LINE:
                raise ClientError("a %s line is longer than %d bytes" % (what, MAX_CHUNK_LINE))
            if not self._fill():
                raise ClientError("the connection closed in the middle of the %s" % what)
        end = self.buffer.index(b"\n") + 1
        line = bytes(self.buffer[:end]).rstrip(b"\r\n")
        del self.buffer[:end]
        return line

    def read_exactly(self, size, body):
        """Move exactly size bytes into body, piece by piece."""
        while size:
            if not self.buffer and not self._fill():
                raise ClientError("the connection closed after %d body bytes; %d more were "
                                  "announced" % (body.size, size))
            piece = self.buffer[:size]
            body.add(piece)
            del self.buffer[:len(piece)]
            size -= len(piece)

    def read_until_close(self, body):
        while True:
            if self.buffer:
                body.add(self.buffer)
                self.buffer.clear()
            if not self._fill():
                return

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------------------
# A response: status line, headers, and a body framed one of three ways
# ---------------------------------------------------------------------------

class Body:
    """Counts every byte, keeps the first few for display."""

    def __init__(self, keep):
        self.size = 0
        self.keep = keep
        self.start = bytearray()

    def add(self, data):
        self.size += len(data)
        if len(self.start) < self.keep:
            self.start += data[:self.keep - len(self.start)]


class Response:
    def __init__(self, version, status, reason, headers):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] in arrival order

    def header(self, name):
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return ", ".join(values) if values else None

    def connection_tokens(self):
        return {token.strip().lower() for token in (self.header("Connection") or "").split(",")}


def read_response(conn, method, keep):
    """Read one final response (printing any 1xx before it); None if the server just closed."""
    while True:
        head = conn.read_head()
        if head is None:
            return None
        response = parse_head(head)
        if response.status >= 200 or response.status == 101:
            break
        say("* (an interim %d response: the final one follows)" % response.status)
    response.body = Body(keep)
    response.framing = read_body(conn, method, response)
    return response


def parse_head(head):
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    match = STATUS_LINE.fullmatch(lines[0])
    if not match:
        raise ClientError("the server's reply is not HTTP: %r" % head[:80])
    for line in lines:
        say("< " + line)
    say("<")
    if len(lines) - 1 > MAX_HEADERS:
        raise ClientError("the response has more than %d header lines" % MAX_HEADERS)
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ClientError("malformed header line in the response: %r" % line)
        headers.append((name, value.strip(" \t")))
    major, minor, status, reason = match.groups()
    return Response((int(major), int(minor)), int(status), reason or "", headers)


def read_body(conn, method, response):
    """Read the body into response.body; return how its end was found."""
    if method == "HEAD":
        return "none: a response to HEAD never has a body"
    if response.status in NO_BODY_STATUSES or response.status < 200:
        return "none: a %d response never has a body" % response.status
    coding = response.header("Transfer-Encoding")
    if coding:
        if coding.split(",")[-1].strip().lower() == "chunked":
            count = read_chunked(conn, response.body)
            return "Transfer-Encoding: chunked (%d chunk%s, then the zero-size chunk)" % (
                count, "" if count == 1 else "s")
        conn.read_until_close(response.body)
        return "the server closing the connection (Transfer-Encoding: %s)" % coding
    length = response.header("Content-Length")
    if length is not None:
        values = {value.strip() for value in length.split(",")}  # repeats must agree
        size = values.pop() if len(values) == 1 else ""
        if not size.isdigit():
            raise ClientError("invalid Content-Length in the response: %r" % length)
        conn.read_exactly(int(size), response.body)
        return "Content-Length: %d" % response.body.size
    conn.read_until_close(response.body)
    return "the server closing the connection (no Content-Length, not chunked)"


SHOWN_CHUNKS = 8


def read_chunked(conn, body):
    """Chunks: a size line in hex, that many bytes, CRLF; a zero size ends the body."""
    count = 0
    while True:
        line = conn.read_line("chunk size")
        size_text = line.split(b";")[0].strip()  # ";name=value" extensions are ignored
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_text):
            raise ClientError("bad chunk size line in the response: %r" % line[:80])
        size = int(size_text, 16)
        if size == 0:
            break
        count += 1
        if count <= SHOWN_CHUNKS:
            say("* chunk %d: size line %r = %d bytes" % (count, line.decode("latin-1"), size))
        elif count == SHOWN_CHUNKS + 1:
            say("* ... (more chunks)")
        conn.read_exactly(size, body)
        if conn.read_line("chunk") != b"":
            raise ClientError("a chunk is not followed by CRLF")
    say("* last chunk: size 0")
    trailers = 0
    while True:  # optional trailer fields, up to a blank line
        line = conn.read_line("trailer")
        if not line:
            return count
        trailers += 1
        if trailers > MAX_HEADERS:
            raise ClientError("more than %d trailer lines" % MAX_HEADERS)
        say("* trailer: %s" % line.decode("latin-1"))


# ---------------------------------------------------------------------------
# One exchange, and the command line
# ---------------------------------------------------------------------------

def build_request(target, method, extra_headers, data, close, version):
    headers = []
    for header in extra_headers:
        name, colon, value = header.partition(":")
        if not colon or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name.strip()) \
                or "\r" in header or "\n" in header:
            raise ClientError("a header must look like 'Name: value': %r" % header)
        headers.append((name.strip(), value.strip()))
    names = {name.lower() for name, _ in headers}
    defaults = [("Host", target.host_header), ("User-Agent", USER_AGENT), ("Accept", "*/*")]
    headers = [header for header in defaults if header[0].lower() not in names] + headers
    lines = ["%s %s %s" % (method, target.request_target, version)]
    lines += ["%s: %s" % header for header in headers]
    body = data.encode("utf-8") if data is not None else b""
    if data is not None:
        if "content-type" not in names:
            lines.append("Content-Type: application/x-www-form-urlencoded")
        lines.append("Content-Length: %d" % len(body))
    if close and "connection" not in names:
        lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
    for line in lines:
        say("> " + line)
    say(">")
    if body:
        say("> (body: %d bytes) %r" % (len(body), body[:200]))
    say("* Sending %d bytes; as Python shows them:" % len(request))
    say("*   %r" % (request if len(request) <= 300 else request[:300] + b"..."))
    return request


def show_body(response, keep):
    body = response.body
    say("* Body: %d bytes, its end found by %s" % (body.size, response.framing))
    if not body.size or not keep:
        return
    coding = response.header("Content-Encoding")
    if coding and coding.lower() != "identity":
        say("* (Content-Encoding: %s -- compressed bytes, not shown; lesson 05 decodes them)"
            % coding)
        return
    try:
        # Incremental: the kept bytes may end in the middle of a character.
        text = codecs.getincrementaldecoder("utf-8")().decode(bytes(body.start),
                                                              final=body.size == len(body.start))
    except UnicodeDecodeError:
        say("* (binary, first bytes: %r)" % bytes(body.start[:64]))
        return
    say(text.rstrip("\n"))
    if body.size > len(body.start):
        say("* ... %d more bytes not shown (--show sets how many are)"
            % (body.size - len(body.start)))


def exchange(conn, target, args, last):
    request = build_request(target, args.request, args.header, args.data, close=last,
                            version="HTTP/1.0" if args.http1_0 else "HTTP/1.1")
    if not conn.send(request):
        return None
    response = read_response(conn, args.request, args.show)
    if response is not None:
        show_body(response, args.show)
    return response


def will_close(response, conn):
    """Whether the server will close this connection after this response."""
    tokens = response.connection_tokens()
    if conn.closed_by_server or "close" in tokens:
        return True
    if response.version < (1, 1):
        return "keep-alive" not in tokens  # HTTP/1.0 closes unless it says otherwise
    return False


def run(args):
    target = Target(args.url)
    say("* URL %s -> host %s, port %d, request target %s"
        % (target.url, target.host, target.port, target.request_target))
    conn = None
    first_port = None
    try:
        for number in range(1, args.repeat + 1):
            last = number == args.repeat
            if args.repeat > 1:
                say("\n* ---- request %d of %d ----" % (number, args.repeat))
            if conn is None:
                conn = Connection(target, args.timeout)
                if first_port is not None:
                    say("* (a new connection: a new three-way handshake)")
                first_port = first_port or conn.local_port
            else:
                say("* Reusing the connection from local port %d: no new handshake"
                    % conn.local_port)
            response = exchange(conn, target, args, last)
            if response is None and number > 1:
                # The server may close an idle kept-alive connection just as we
                # reuse it.  Browsers then retry once, on a new connection.
                say("* The server had closed the kept-alive connection; retrying on a new one")
                conn.close()
                conn = Connection(target, args.timeout)
                response = exchange(conn, target, args, last)
            if response is None:
                raise ClientError("the server closed the connection without answering")
            if will_close(response, conn):
                say("* The server closes this connection (%s)" % (
                    "it said Connection: close" if "close" in response.connection_tokens()
                    else "HTTP/1.0 without keep-alive" if response.version < (1, 1)
                    else "it closed it"))
                conn.close()
                conn = None
            elif last:
                say("* Done; we asked for Connection: close, so the connection ends here")
            else:
                say("* The connection stays open (HTTP/1.1 keep-alive)")
    finally:
        if conn is not None:
            conn.close()
    if args.repeat > 1:
        say("\n* HTTP is stateless: request %d repeated everything request 1 said (Host, "
            "User-Agent, Accept...),\n*   because the server keeps no memory of earlier "
            "requests, even on one connection.\n*   Sites remember you through cookies "
            "the client sends back each time (lesson 05)." % args.repeat)
    else:
        say("* (Try --repeat 2: two requests, one connection if the server keeps it alive.)")
    return response


def run_following(args):
    """--follow: while the response is a redirect with a Location, request that next."""
    seen = [args.url]
    for redirects in range(MAX_REDIRECTS + 1):
        response = run(args)
        location = response.header("Location")
        if response.status not in REDIRECT_STATUSES or not location:
            return
        if redirects == MAX_REDIRECTS:
            raise ClientError("too many redirects: %d followed, and %s asks for one more (to %s)"
                              % (MAX_REDIRECTS, args.url, location))
        # A Location may be relative ("/b", "../c"): it is resolved like a link
        # on the page we asked for.
        next_url = urllib.parse.urljoin(args.url, location)
        if next_url in seen:
            raise ClientError("redirect loop: %s" % " -> ".join(seen + [next_url]))
        seen.append(next_url)
        if response.status == 303 or (response.status in (301, 302) and args.request == "POST"):
            # 303 means "now GET that".  After a POST, browsers treat 301 and
            # 302 the same way (RFC 9110 §15.4.2 allows it); 307 and 308
            # exist to keep the method and the body.
            args.request = "HEAD" if args.request == "HEAD" else "GET"
            args.data = None
        say("\n* ---- redirect %d: %d, following Location: %s ----"
            % (redirects + 1, response.status, next_url))
        args.url = next_url


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="an http:// URL, e.g. http://127.0.0.1:7890/")
    parser.add_argument("-X", "--request", default="GET", metavar="METHOD",
                        help="request method (default %(default)s)")
    parser.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="an extra request header (repeatable)")
    parser.add_argument("-d", "--data", metavar="TEXT", help="a request body to send")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="send N requests, on one connection if the server allows")
    parser.add_argument("--http1.0", dest="http1_0", action="store_true",
                        help="send HTTP/1.0 requests")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="give up on a silent server after this long (default %(default)s)")
    parser.add_argument("--show", type=int, default=2000, metavar="BYTES",
                        help="how many body bytes to print (default %(default)s)")
    parser.add_argument("--follow", action="store_true",
                        help="follow redirects (301, 302, 303, 307, 308), at most %d"
                             % MAX_REDIRECTS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", args.request):
        parser.error("the method must be a token such as GET or POST")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.follow:
            run_following(args)
        else:
            run(args)
    except ClientError as error:
        print("error: %s" % error, file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
