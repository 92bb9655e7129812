#!/usr/bin/env python3
"""Lesson 01 · Client and server, made visible (1. 服务器概述)

Section 1 of the source is prose about what a server is.  This lesson turns
it into something you can watch: one script holds a tiny server and a tiny
client, and prints every socket call each side makes -- ``socket``, ``bind``,
``listen``, ``accept``, ``connect``, ``send``, ``recv``, ``close`` -- in the
order they happen.  The same server then answers a browser, because a
browser is just a client that speaks HTTP.

What the source says
--------------------
* Hardware servers (硬件服务器) are machines: IBM or HP hosts, clusters of
  them.  Software servers (软件服务器) are programs that wait for requests
  and answer them over the network.  This course is about the second kind;
  the first kind is where they run.
* c/s (client/server): a dedicated client program per service, which can
  use the PC's full power (games, IDEs, chat apps).  b/s (browser/server) is
  a kind of c/s whose client is the browser: one universal client for every
  service, speaking one protocol (HTTP).
* What servers optimise for (服务器追求): answer fast, keep data safe, serve
  many clients at once (并发量大).  Hardware gets there with bigger machines,
  more machines, clusters and distribution; software by using fewer
  resources per client and handling more clients concurrently -- which is
  what lessons 02 and 06-13 are about.

What changed from the source, and why
-------------------------------------
* The source writes "c/s: b/s架构充分发挥了PC机的性能" -- a slip: it is c/s,
  with its own client program, that makes full use of the PC; b/s trades that
  for one uniform interface (统一了应用的接口).
* The source lists Django and Flask as servers.  They are web *frameworks*:
  code that turns a request into a response.  The server is the program that
  owns the listening socket (``http.server``, gunicorn, nginx, or the lessons
  here) and hands requests to the framework (in Python through WSGI/ASGI).
* The source shows no code for section 1.  Here the server is iterative
  (循环服务器: one client at a time, the simplest model of section 2), reads
  until a whole line or request head has arrived (TCP delivers a byte
  stream, not messages), caps what it reads, and gives each client
  ``--timeout`` seconds, so one silent client cannot hold it forever.
* Shortcut, flagged: the server's HTTP side is minimal.  It answers GET and
  HEAD with one page and refuses requests with a body (413) or another
  method (405); it checks little else.  Lesson 04 parses requests properly,
  lesson 06 serves files.

One server, two kinds of client
-------------------------------
The server reads the first line a client sends.  If it looks like an HTTP
request line (``GET / HTTP/1.1``) the client is a browser (or curl): the
server reads the rest of the request head and answers with a small but valid
HTTP response -- status line, headers, blank line, HTML.  Anything else is
a raw TCP client (``nc``, or ``client`` mode below): it gets one line of
plain text back.  Same socket calls, same server: b/s is c/s.

Try it
------
    python3 lessons/01_server_overview.py           # both sides in one process, narrated
    python3 lessons/01_server_overview.py server    # a server on port 7890; in a 2nd terminal:
    python3 lessons/01_server_overview.py client --message "hello"
    python3 lessons/01_server_overview.py client --http   # the same, speaking HTTP
    nc 127.0.0.1 7890                               # type a line, press Enter
    curl -v http://127.0.0.1:7890/                  # or open that URL in a browser

A port without a mode word starts the server too, as with ``python3 -m
http.server``: ``python3 lessons/01_server_overview.py 0`` serves on a port
the OS picks (the startup line says which).  ``nc`` and ``curl`` come with
macOS; on Debian or Ubuntu, ``sudo apt-get install netcat-openbsd curl``.

Watch the server's terminal while each client talks to it.  Then connect
with ``nc`` and type nothing: every other client waits until ``--timeout``
drops you.  That is the loop model's weakness (lesson 02 measures it).

Exercise
--------
Number the clients: the server tells each TCP connection it accepts
``you are client #N``, with N = 1, 2, 3 ... in the order the connections
were accepted, counted across raw TCP clients and browsers alike (one
counter for both).  A raw TCP client that sends a line finds the text in
its one-line reply; an HTTP request (``GET /``) finds it in the HTML body of
the ``200`` response.  Solve it in a copy (``mkdir -p my_answers && cp
lessons/01_server_overview.py my_answers/``) and grade it with
``python3 -m pytest tests/exercises --submission my_answers -k 01``.
"""

import argparse
import html
import re
import socket
import sys
import threading
import time

DEFAULT_PORT = 7890
SERVER_NAME = "CourseServer/01-overview"

# Limits, so that one client cannot make the server buffer without end.
# The numbers follow CPython's http.server (64 KiB lines, 100 headers).
MAX_LINE = 64 * 1024  # a longer first line -> 414 (HTTP) or an error line (raw)
MAX_HEADERS = 100  # more header lines -> 431
DEFAULT_TIMEOUT = 5.0  # seconds a client may take to say what it wants

HTTP_REQUEST_LINE = re.compile(rb"([A-Z]+) (\S+) HTTP/(\d)\.(\d)\r?\n")
HTTP_LOOKING_START = re.compile(rb"[A-Z]+ /")  # for a first line too long to see whole


# ---------------------------------------------------------------------------
# Narration: every socket call is printed by the side that makes it.
# ---------------------------------------------------------------------------

PRINT_LOCK = threading.Lock()  # the demo's two sides print from two threads


class Narrator:
    """Prints "[side] call    why" lines; a held narrator keeps them for later."""

    def __init__(self, side, quiet=False):
        self.side = side
        self.quiet = quiet
        self.held = None

    def __call__(self, call, why=""):
        if self.quiet:
            return
        line = "[%s] %-44s %s" % (self.side, call, why)
        if self.held is not None:
            self.held.append(line.rstrip())
            return
        with PRINT_LOCK:
            print(line.rstrip(), flush=True)

    def hold(self):
        self.held = []

    def release(self):
        held, self.held = self.held or [], None
        for line in held:
            with PRINT_LOCK:
                print(line, flush=True)


def show(data, limit=60):
    """Bytes as a short Python literal, so a student sees exactly what went over the wire."""
    text = repr(bytes(data[:limit]))
    return text + ("...(%d bytes)" % len(data) if len(data) > limit else "")


# ---------------------------------------------------------------------------
# The server: socket -> bind -> listen -> (accept -> recv -> send -> close)*
# ---------------------------------------------------------------------------

def open_listener(bind, port, say):
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    say("socket(%s, SOCK_STREAM)" % family.name, "a TCP endpoint, not yet tied to any address")
    # Without SO_REUSEADDR a restarted server cannot bind while old
    # connections sit in TIME_WAIT (about a minute on Linux).
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((bind, port))
    except OSError:
        listener.close()
        raise
    picked = " (port 0: the OS picked it)" if port == 0 else ""
    say("bind((%r, %d))" % (bind, port), "-> port %d%s" % (listener.getsockname()[1], picked))
    listener.listen(5)
    say("listen(5)", "the kernel now completes handshakes and queues up to 5 clients")
    return listener


class ClientGaveUp(Exception):
    """The client closed or went quiet before saying what it wanted."""


def receive_line(conn, buffer, say, deadline):
    """recv() until buffer holds a whole line; TCP may deliver it in pieces."""
    while b"\n" not in buffer:
        if len(buffer) > MAX_LINE:
            return None  # too long: the caller answers with an error
        too_slow = "said nothing in time" if not buffer else "stalled mid-line"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ClientGaveUp(too_slow)
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(4096)
        except socket.timeout:
            raise ClientGaveUp(too_slow) from None
        say("recv(4096) -> %s" % show(chunk),
            "b'': the client closed its side" if not chunk else "")
        if not chunk:
            if buffer:
                return bytes(buffer)  # a last line without "\n" (nc, Ctrl+D)
            raise ClientGaveUp("closed the connection")
        buffer += chunk
    end = buffer.index(b"\n") + 1
    if end > MAX_LINE + 2:  # the "\n" came, but only after too many bytes
        return None
    line = bytes(buffer[:end])
    del buffer[:end]
    return line


def handle_client(conn, address, say, timeout, number):
    deadline = time.monotonic() + timeout
    buffer = bytearray()
    first_line = receive_line(conn, buffer, say, deadline)
    if HTTP_REQUEST_LINE.fullmatch(first_line or b"") or (
            first_line is None and HTTP_LOOKING_START.match(buffer)):
        reply = answer_http(conn, first_line, buffer, say, deadline, number)
    else:
        reply = answer_raw(first_line, address, number)
    say("sendall(%s)" % show(reply), "sendall loops until every byte is handed to the kernel")
    conn.settimeout(timeout)
    conn.sendall(reply)


def answer_raw(line, address, number):
    """One line of plain text for a raw TCP client."""
    if line is None:
        return b"server: you are client #%d; your line is longer than %d bytes; I stopped " \
               b"reading.\n" % (number, MAX_LINE)
    try:
        text = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return b"server: you are client #%d; you sent %d bytes that are not UTF-8 text.\n" \
            % (number, len(line))
    return ("server: hello %s:%d, you are client #%d, you sent %d bytes: %r\n"
            % (address[0], address[1], number, len(line), text)).encode("utf-8")


def answer_http(conn, request_line, buffer, say, deadline, number):
    """Read the rest of the request head, then build a small valid HTTP response."""
    if request_line is None:
        return http_response(414, "URI Too Long", "The request line is longer than %d bytes."
                             % MAX_LINE)
    method, target, major, minor = HTTP_REQUEST_LINE.fullmatch(request_line).groups()
    header_lines = []
    while True:
        line = receive_line(conn, buffer, say, deadline)
        if line is None:
            return http_response(431, "Request Header Fields Too Large",
                                 "A header line is longer than %d bytes." % MAX_LINE)
        if line in (b"\r\n", b"\n"):
            break  # the blank line: the head is complete
        if not line.endswith(b"\n"):
            raise ClientGaveUp("closed mid-request")
        header_lines.append(line.rstrip(b"\r\n"))
        if len(header_lines) > MAX_HEADERS:
            return http_response(431, "Request Header Fields Too Large",
                                 "More than %d header lines." % MAX_HEADERS)
    names = {line.split(b":", 1)[0].strip().lower() for line in header_lines}
    if (major, minor) not in ((b"1", b"0"), (b"1", b"1")):
        return http_response(505, "HTTP Version Not Supported",
                             "This server speaks HTTP/1.0 and HTTP/1.1 only.")
    if b"transfer-encoding" in names or any(
            line.lower().startswith(b"content-length:") and line.split(b":", 1)[1].strip() != b"0"
            for line in header_lines):
        # Reading a body needs Content-Length and chunked decoding (lesson 04);
        # this server refuses bodies instead, with an answer that says so.
        return http_response(413, "Content Too Large", "This server reads no request bodies.")
    if method not in (b"GET", b"HEAD"):
        return http_response(405, "Method Not Allowed", "This server answers GET and HEAD.",
                             extra_headers=["Allow: GET, HEAD"])
    request_head = request_line + b"".join(line + b"\r\n" for line in header_lines)
    page = PAGE % {"request": html.escape(request_head.decode("latin-1")), "number": number}
    return http_response(200, "OK", page=page, head_only=(method == b"HEAD"))


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Hello, browser</title></head>
<body>
<h1>Hello, browser</h1>
<p>you are client #%(number)d</p>
<p>You are a client, like <code>nc</code>: you opened a TCP connection
(<code>connect</code>), sent bytes (<code>send</code>) and are reading the answer
(<code>recv</code>).  You just happen to speak HTTP.  These are the bytes you sent:</p>
<pre>%(request)s</pre>
<p>b/s is c/s with a universal client.  The server's terminal shows every call it made.</p>
</body></html>
"""


def http_response(status, reason, explanation="", page=None, extra_headers=(), head_only=False):
    """Status line, headers, blank line, body: the smallest response a browser accepts."""
    if page is None:
        page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%d %s</title></head>"
                "\n<body><h1>%d %s</h1>\n<p>%s</p></body></html>\n"
                % (status, reason, status, reason, html.escape(explanation)))
    body = page.encode("utf-8")
    head = ["HTTP/1.1 %d %s" % (status, reason),
            "Server: " + SERVER_NAME,
            "Content-Type: text/html; charset=utf-8",
            "Content-Length: %d" % len(body),  # tells the browser where the body ends
            "Connection: close", *extra_headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + (b"" if head_only else body)


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


def serve(listener, say, timeout, clients=None, accepting=None):
    """The loop model: accept one client, talk to it, close, repeat.

    clients: stop after that many (the demo); None serves until Ctrl+C.
    accepting: a semaphore released each time the server waits in accept().
    """
    served = 0
    while clients is None or served < clients:
        say("accept()", "blocks until a client has connected ...")
        if accepting:
            accepting.release()
        try:
            conn, address = listener.accept()
        except (ConnectionAbortedError, InterruptedError):
            continue  # the client left before we accepted it
        served += 1
        say("accept() -> new socket, peer %s port %d" % address[:2],
            "one socket per client; the listener keeps listening")
        with conn:
            try:
                handle_client(conn, address, say, timeout, number=served)
                say("shutdown(SHUT_WR)", "FIN: 'my reply is complete'; wait for the client's FIN")
                close_gracefully(conn)
            except ClientGaveUp as reason:
                say("(client %s)" % reason)
            except OSError as error:  # reset, broken pipe, send timeout
                say("(%s: %s)" % (error.__class__.__name__, error.strerror or error))
        say("close()", "this client's socket; back to accept()")


# ---------------------------------------------------------------------------
# The client: socket -> connect -> send -> recv ... -> close
# ---------------------------------------------------------------------------

def run_client(host, port, say, message=None, speak_http=False, timeout=DEFAULT_TIMEOUT):
    """Connect, send one message (a line, or an HTTP request), print the reply; return it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        say("socket(%s, SOCK_STREAM)" % family.name)
        sock.settimeout(timeout)  # every blocking call gives up after this many seconds
        sock.connect((host, port))
        say("connect((%r, %d))" % (host, port),
            "three-way handshake done; my port %d was picked by the OS" % sock.getsockname()[1])
        if speak_http:
            url_host = "[%s]" % host if ":" in host else host
            data = ("GET / HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: lesson-01\r\n"
                    "Connection: close\r\n\r\n" % (url_host, port)).encode("ascii")
        else:
            data = ((message or "hello, server") + "\n").encode("utf-8")
        say("sendall(%s)" % show(data))
        sock.sendall(data)
        reply = bytearray()
        while True:
            chunk = sock.recv(4096)
            say("recv(4096) -> %s" % show(chunk),
                "b'': the server closed, the reply is complete" if not chunk else "")
            if not chunk:
                break
            reply += chunk
        say("close()", "FIN to the server: this connection is over")
    return bytes(reply)


# ---------------------------------------------------------------------------
# Command line: demo (both sides), server, client
# ---------------------------------------------------------------------------

MODES = ("demo", "server", "client")
PORTS = range(0, 65536)  # TCP port numbers; 0 asks the OS for any free one


def parse_args(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Without a mode word: the server when a port is given (as with "
               "python3 -m http.server 8000), else the demo.")
    modes = parser.add_subparsers(dest="mode", metavar="{demo,server,client}")
    demo = modes.add_parser("demo", help="run a server and two clients, narrating every call "
                                         "(the default)")
    server = modes.add_parser("server", help="run the server until Ctrl+C")
    client = modes.add_parser("client", help="connect to a running server once")
    demo.add_argument("port", nargs="?", type=int, default=None,
                      help="port of the demo's server (default 0: the OS picks a free one)")
    server.add_argument("port", nargs="?", type=int, default=DEFAULT_PORT,
                        help="port to listen on (default %(default)s; 0 lets the OS pick)")
    for mode in (demo, server):
        mode.add_argument("-b", "--bind", default="127.0.0.1", metavar="ADDR",
                          help="address to bind (default %(default)s)")
        mode.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                          help="how long a client may stay silent before the server drops it "
                               "(default %(default)s)")
    client.add_argument("port", nargs="?", type=int, default=DEFAULT_PORT,
                        help="the server's port (default %(default)s)")
    client.add_argument("-b", "--bind", default="127.0.0.1", metavar="ADDR",
                        help="the server's address (default %(default)s)")
    client.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="how long to wait for the server at each step (default %(default)s)")
    client.add_argument("--message", default="hello, server", help="the line to send")
    client.add_argument("--http", action="store_true", help="send an HTTP request instead")
    if argv[:1] and argv[0] in (*MODES, "-h", "--help"):
        args = parser.parse_args(argv)
    else:  # no mode word: a port makes it the server, as with http.server; none, the demo
        args = parser.parse_args(["demo", *argv])
        if args.port is not None:
            args = parser.parse_args(["server", *argv])
    if args.port is None:
        args.port = 0
    return args


def run_demo(args):
    server_say, client_say = Narrator("server"), Narrator("client")
    print("A server and its clients, one socket call per line.  The server is a thread of\n"
          "this process; it would work the same in another process or on another machine.\n",
          flush=True)
    listener = open_listener(args.bind, args.port, server_say)
    port = listener.getsockname()[1]
    with listener:
        accepting = threading.Semaphore(0)
        server = threading.Thread(target=serve, daemon=True,
                                  args=(listener, server_say, args.timeout, 2, accepting))
        server.start()
        accepting.acquire(timeout=args.timeout)  # only so that the story reads in order
        print("\n-- client 1: a raw TCP client sends one line --", flush=True)
        reply = run_client(args.bind, port, client_say, message="hello, server",
                           timeout=args.timeout)
        client_say("(reply: %s)" % reply.decode("utf-8", "replace").strip())
        accepting.acquire(timeout=args.timeout)
        print("\n-- client 2: the same server, asked in HTTP, as a browser would --", flush=True)
        reply = run_client(args.bind, port, client_say, speak_http=True, timeout=args.timeout)
        client_say("(reply: %s)" % reply.split(b"\r\n", 1)[0].decode("latin-1"),
                   "a status line, headers, a blank line, HTML: a browser can show it")
        server.join(args.timeout * 2)
        server_say("close()", "the listening socket: no new clients from now on")
    print("\nDone.  Run `server` mode and point nc, curl or a browser at it.", flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.port not in PORTS:
        sys.exit("Port must be between 0 and 65535, not %d" % args.port)
    try:
        if args.mode == "client":
            try:
                reply = run_client(args.bind, args.port, Narrator("client"), args.message,
                                   args.http, args.timeout)
            except OSError as error:  # refused, unreachable, timed out
                sys.exit("client: cannot talk to %s port %d: %s"
                         % (args.bind, args.port, error.strerror or error))
            print(reply.decode("utf-8", "replace"), end="", flush=True)
            return 0
        if args.mode == "demo":
            try:
                run_demo(args)
            except OSError as error:
                sys.exit("demo: %s" % (error.strerror or error))
            return 0
        say = Narrator("server")
        say.hold()  # the startup line must come first; the setup calls right after it
        try:
            listener = open_listener(args.bind, args.port, say)
        except OSError as error:
            sys.exit("Cannot listen on %s port %d: %s" % (args.bind, args.port, error.strerror))
        with listener:
            host, port = listener.getsockname()[:2]
            url_host = "[%s]" % host if ":" in host else host
            print("Serving HTTP on %s port %d (http://%s:%d/) ..." % (host, port, url_host, port),
                  flush=True)
            say.release()
            serve(listener, say, args.timeout)
    except KeyboardInterrupt:
        print("\nKeyboard interrupt received, exiting.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
