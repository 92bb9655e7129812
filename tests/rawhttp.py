"""Raw HTTP over sockets, for the tests: build requests byte by byte, parse responses.

Deliberately independent of the lessons (and of http.client), so that a bug
in a lesson's framing cannot hide behind the same bug here.  Every socket has
a timeout.
"""

import contextlib
import errno
import socket
import time

TIMEOUT = 5.0  # seconds any single socket operation may take in a test


class NoResponse(AssertionError):
    """The server closed or stayed silent where a response was expected."""


def connect(port, host="127.0.0.1", timeout=TIMEOUT, receive_buffer=None):
    """A connected socket.  A small receive_buffer makes a client that reads slowly, or
    not at all: it is set before the handshake, where the window is agreed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((host, port))
    return sock


def build_request(path="/", method="GET", headers=(), version="HTTP/1.1", body=b"",
                  host="127.0.0.1"):
    """Request bytes with a Host header (unless headers already name one)."""
    headers = list(headers)
    if version == "HTTP/1.1" and not any(name.lower() == "host" for name, _ in headers):
        headers.insert(0, ("Host", host))
    if body and not any(name.lower() == "content-length" for name, _ in headers):
        headers.append(("Content-Length", str(len(body))))
    lines = ["%s %s %s" % (method, path, version)] + ["%s: %s" % header for header in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def reset(sock):
    """Close with a RST instead of a FIN, as a crashing client would."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


class Response:
    def __init__(self, version, status, reason, headers, body, head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) in arrival order
        self.body = body
        self.head = head  # raw bytes of the status line and headers

    def header(self, name, default=None):
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return ", ".join(values) if values else default

    def __repr__(self):
        return "<Response %s %s, %d body bytes>" % (self.status, self.reason, len(self.body))


class ResponseReader:
    """Reads successive responses from one connection (keep-alive, pipelining)."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise NoResponse("no answer in %.1f s (received so far: %r)"
                             % (self.sock.gettimeout(), bytes(self.buffer[:200]))) from None
        self.buffer += chunk
        return bool(chunk)

    def read_head(self):
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise NoResponse("connection closed (received: %r)" % bytes(self.buffer[:200]))
        end = self.buffer.index(b"\r\n\r\n")
        head = bytes(self.buffer[:end])
        del self.buffer[:end + 4]
        return head

    def read_exactly(self, size):
        while len(self.buffer) < size:
            if not self._fill():
                raise NoResponse("connection closed after %d of %d body bytes"
                                 % (len(self.buffer), size))
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read_line(self):
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise NoResponse("connection closed inside a chunked body")
        end = self.buffer.index(b"\r\n")
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line

    def read_until_close(self):
        while self._fill():
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def read_chunked(self):
        body = bytearray()
        while True:
            size = int(self.read_line().split(b";")[0], 16)
            if size == 0:
                while self.read_line():  # trailers, up to the blank line
                    pass
                return bytes(body)
            body += self.read_exactly(size)
            if self.read_line() != b"":
                raise AssertionError("chunk not followed by CRLF")

    def read_response(self, method="GET"):
        head = self.read_head()
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            assert colon, "malformed response header line %r" % line
            headers.append((name, value.strip()))
        response = Response(version, int(status), reason, headers, b"", head)
        if method == "HEAD" or response.status in (204, 304) or response.status < 200:
            return response
        if (response.header("Transfer-Encoding") or "").lower() == "chunked":
            response.body = self.read_chunked()
        elif response.header("Content-Length") is not None:
            response.body = self.read_exactly(int(response.header("Content-Length")))
        else:
            response.body = self.read_until_close()
        return response


def exchange(port, data, host="127.0.0.1", timeout=TIMEOUT):
    """Send raw bytes, then read until the server closes; return what came back."""
    with connect(port, host, timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError as error:  # the server may answer and close before reading everything
            if error.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                raise
        received = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        return bytes(received)


def parse(raw, method="GET"):
    """Parse the first response in raw bytes."""
    reader = ResponseReader(None)
    reader.buffer += raw
    reader._fill = lambda: False
    return reader.read_response(method)


def request(port, path="/", method="GET", headers=(), version="HTTP/1.1", body=b"",
            host="127.0.0.1", timeout=TIMEOUT):
    """One request on a fresh connection that asks to be closed; the parsed response."""
    headers = list(headers)
    if not any(name.lower() == "connection" for name, _ in headers):
        headers.append(("Connection", "close"))
    with connect(port, host, timeout) as sock:
        sock.sendall(build_request(path, method, headers, version, body))
        return ResponseReader(sock).read_response(method)


# Malformed requests every HTTP server lesson must answer with a clear 4xx
# (and then keep serving): what a broken or hostile client sends.
MALFORMED_REQUESTS = [
    ("garbage bytes", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40))
     + b"\r\n\r\n", 400),
    ("truncated chunked body", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhel", 400),
    ("bad chunk size", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"zz\r\nhello\r\n0\r\n\r\n", 400),
    ("body shorter than its Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: 10\r\n\r\nabc", 400),
    ("both Content-Length and chunked", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("100 KB URL", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
]


def open_kept_connections(port, count, path="/notes.txt", host="127.0.0.1"):
    """count connections, each answered once and then kept open; the caller closes them."""
    connections = []
    try:
        for _ in range(count):
            sock = connect(port, host)
            connections.append(sock)
            sock.sendall(build_request(path))
            response = ResponseReader(sock).read_response()
            assert response.status == 200, response
    except BaseException:
        for sock in connections:
            sock.close()
        raise
    return connections


@contextlib.contextmanager
def many_connections(port, count, host="127.0.0.1", timeout=30.0):
    """count connections open at the same time, all closed when the block ends."""
    clients = []
    try:
        for _ in range(count):
            clients.append(connect(port, host, timeout))
        yield clients
    finally:
        for sock in clients:
            sock.close()


def ask_each(clients, path):
    """One GET on every connection before any answer is read: all in flight at once."""
    for sock in clients:
        sock.sendall(build_request(path))
    return [ResponseReader(sock).read_response() for sock in clients]
