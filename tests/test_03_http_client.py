"""Lesson 03: an HTTP client over a raw socket, against servers it did not write."""

import http.server
import re
import shutil
import socket
import subprocess
import threading

import pytest

from servers import import_lesson, run_script, script_path

LESSON = script_path("03_http_client")
lesson03 = import_lesson("03_http_client")


def fetch(*args, timeout=30):
    return run_script(LESSON, *args, timeout=timeout)


def sent_lines(stdout):
    """The request as the client printed it: its '> ' lines, up to the blank '>'."""
    lines = []
    for line in stdout.splitlines():
        if line == ">":
            lines.append("")
            break
        if line.startswith("> ") and not line.startswith("> (body"):
            lines.append(line[2:])
    return lines


# -- Servers the client must cope with ------------------------------------------------

class ScriptedServer:
    """A loopback server that gives each connection to answer(connection, server)."""

    def __init__(self, answer, connections=1):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(20)
        self.port = self.listener.getsockname()[1]
        self.requests = []  # every request head received, in order
        self.thread = threading.Thread(target=self._run, args=(answer, connections), daemon=True)
        self.thread.start()

    def _run(self, answer, connections):
        with self.listener:
            for _ in range(connections):
                try:
                    conn, _ = self.listener.accept()
                except socket.timeout:
                    return
                with conn:
                    conn.settimeout(10)
                    try:
                        answer(conn, self)
                    except OSError:
                        pass

    def read_request(self, conn):
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        while length and len(body) < int(length[1]):
            body += conn.recv(65536)
        self.requests.append(head + b"\r\n\r\n" + body)
        return head

    @staticmethod
    def wait_for_close(conn):
        """Keep the connection open until the client closes it."""
        while conn.recv(65536):
            pass


def replying(*responses, then_wait=False):
    """An answer: read a request, send the next response; at the end wait for the client."""
    def answer(conn, server):
        for response in responses:
            if server.read_request(conn) is None:
                return
            conn.sendall(response)
        if then_wait:
            server.wait_for_close(conn)
    return answer


@pytest.fixture
def http_server():
    """Python's own http.server speaking HTTP/1.1 (keep-alive): a server no one here wrote."""
    seen = []  # (client port, request line, headers) per request

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            seen.append((self.client_address[1], self.requestline, dict(self.headers)))
            body = b"hello from http.server\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.seen = seen
    server.url = "http://127.0.0.1:%d/" % server.server_address[1]
    yield server
    server.shutdown()
    server.server_close()


# -- What goes over the wire, printed -------------------------------------------------

def test_it_prints_exactly_the_request_bytes_it_sends():
    server = ScriptedServer(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    result = fetch("http://127.0.0.1:%d/a/b?x=1&y=%%20#frag" % server.port, "-H", "X-Test: yes")
    assert result.returncode == 0, result.stderr
    server.thread.join(5)
    printed = ("\r\n".join(sent_lines(result.stdout)) + "\r\n").encode()
    assert server.requests == [printed]
    lines = sent_lines(result.stdout)
    assert lines[0] == "GET /a/b?x=1&y=%20 HTTP/1.1", "the #fragment stays in the client"
    assert "Host: 127.0.0.1:%d" % server.port in lines and "X-Test: yes" in lines
    assert repr(server.requests[0]) in result.stdout  # the CRLFs, shown as Python sees them


def test_it_prints_the_status_line_and_every_header_it_receives():
    server = ScriptedServer(replying(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                                     b"X-Odd:   spaced  \r\nContent-Length: 4\r\n\r\nnope"))
    result = fetch("http://127.0.0.1:%d/" % server.port)
    assert result.returncode == 0  # a 404 is an answer, not a failure of the client
    for line in ("< HTTP/1.1 404 Not Found", "< Content-Type: text/plain",
                 "< X-Odd:   spaced  ", "< Content-Length: 4"):
        assert line in result.stdout.splitlines()
    assert "nope" in result.stdout


def test_post_sends_the_body_with_its_length():
    server = ScriptedServer(replying(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
    result = fetch("http://127.0.0.1:%d/form" % server.port, "-X", "POST", "-d", "a=1&b=2")
    assert result.returncode == 0, result.stderr
    server.thread.join(5)
    request = server.requests[0]
    assert request.startswith(b"POST /form HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 7\r\n" in request and request.endswith(b"\r\n\r\na=1&b=2")
    assert b"Content-Type: application/x-www-form-urlencoded" in request


# -- Where the body ends: the three framings and the bodiless answers -----------------

@pytest.mark.parametrize("response, size, how", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 5, "Content-Length: 5"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\n!!!\r\n"
     b"0\r\nX-Trailer: t\r\n\r\n", 8, "Transfer-Encoding: chunked (2 chunks"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * 20 + b"0\r\n\r\n",
     20, "Transfer-Encoding: chunked (20 chunks"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", 0, "none: a 204 response never has a body"),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", 0,
     "none: a 304 response never has a body"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 2,
     "Content-Length: 2"),
], ids=["content-length", "chunked", "many chunks", "204", "304", "after 100 Continue"])
def test_the_body_ends_where_its_framing_says_without_waiting_for_a_close(response, size, how):
    # The server keeps the connection open afterwards: a client that read on
    # would hang until its timeout and fail.
    server = ScriptedServer(replying(response, then_wait=True))
    result = fetch("http://127.0.0.1:%d/" % server.port, "--timeout", "5")
    assert result.returncode == 0, result.stderr
    assert "* Body: %d bytes, its end found by %s" % (size, how) in result.stdout


def test_a_body_without_length_ends_when_the_server_closes():
    server = ScriptedServer(replying(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                                     + b"until the end\n" * 1000))
    result = fetch("http://127.0.0.1:%d/" % server.port)
    assert result.returncode == 0
    assert "* Body: 14000 bytes, its end found by the server closing the connection" \
        in result.stdout


def test_head_gets_no_body_even_when_content_length_says_otherwise():
    server = ScriptedServer(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
                                     then_wait=True))
    result = fetch("http://127.0.0.1:%d/" % server.port, "-X", "HEAD", "--timeout", "5")
    assert result.returncode == 0, result.stderr
    assert "none: a response to HEAD never has a body" in result.stdout


def test_binary_bodies_are_not_printed_as_text():
    server = ScriptedServer(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"
                                     b"\xff\xfe\x00\x01"))
    result = fetch("http://127.0.0.1:%d/" % server.port)
    assert result.returncode == 0
    assert "(binary, first bytes: b'\\xff\\xfe\\x00\\x01')" in result.stdout


# -- Keep-alive and statelessness, against real servers ---------------------------------

def test_repeat_reuses_one_connection_when_the_server_keeps_it_alive(http_server):
    result = fetch(http_server.url, "--repeat", "3")
    assert result.returncode == 0, result.stderr
    ports = {port for port, _, _ in http_server.seen}
    assert len(http_server.seen) == 3 and len(ports) == 1, "three requests, one connection"
    assert result.stdout.count("* Reusing the connection from local port %d" % ports.pop()) == 2
    assert result.stdout.count("* Body: 23 bytes, its end found by Content-Length: 23") == 3


def test_every_request_repeats_what_the_server_needs_it_is_stateless(http_server):
    result = fetch(http_server.url, "--repeat", "2")
    assert result.returncode == 0
    first, second = (headers for _, _, headers in http_server.seen)
    for name in ("Host", "User-Agent", "Accept"):
        assert first[name] == second[name]
    assert second.get("Connection") == "close" and "Connection" not in first
    assert "HTTP is stateless" in result.stdout


def test_repeat_reconnects_when_the_server_closes_after_each_response(launch, docroot):
    server = launch(script_path("06_static_single"), directory=docroot)
    result = fetch("http://127.0.0.1:%d/notes.txt" % server.port, "--repeat", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("* Connected: three-way handshake done") == 2
    assert "* The server closes this connection (it said Connection: close)" in result.stdout
    assert "* (a new connection: a new three-way handshake)" in result.stdout
    assert result.stdout.count("plain text") == 2


def test_a_kept_alive_connection_the_server_closed_meanwhile_is_retried_once():
    def close_after_one(conn, server):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
        # ...and close at once, as a server whose idle timeout just expired.

    def answer_second(conn, server):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo")

    answers = iter([close_after_one, answer_second])
    server = ScriptedServer(lambda conn, srv: next(answers)(conn, srv), connections=2)
    result = fetch("http://127.0.0.1:%d/" % server.port, "--repeat", "2")
    assert result.returncode == 0, result.stderr
    assert "* The server had closed the kept-alive connection; retrying on a new one" \
        in result.stdout
    assert "one" in result.stdout and "two" in result.stdout


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_it_counts_a_chunked_body_as_curl_does(launch, docroot):
    server = launch(script_path("05_real_headers"), directory=docroot)
    url = "http://127.0.0.1:%d/style.css" % server.port
    result = fetch(url)
    assert result.returncode == 0, result.stderr
    assert "Transfer-Encoding: chunked" in result.stdout
    size = int(re.search(r"\* Body: (\d+) bytes", result.stdout)[1])
    curl = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", url],
                          capture_output=True, text=True, timeout=20)
    assert size == int(curl.stdout) == (docroot / "style.css").stat().st_size


# -- Failures: one clear line and exit status 1 ---------------------------------------------

def closed_port():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return unused.getsockname()[1]


def scripted_url(answer):
    return "http://127.0.0.1:%d/" % ScriptedServer(answer).port


def silent(conn, server):
    server.read_request(conn)
    server.wait_for_close(conn)


FAILURES = [
    ("closed port", lambda: "http://127.0.0.1:%d/" % closed_port(), "connection refused"),
    ("garbage server", lambda: scripted_url(replying(b"\x00\x01\x02 SSH-2.0-OpenSSH\r\n\r\n")),
     "not HTTP"),
    ("garbage without end", lambda: scripted_url(replying(b"?" * 100 + b"\n" + b"?" * 100_000)),
     "not HTTP"),
    ("silent server", lambda: scripted_url(silent), "no answer"),
    ("body cut short", lambda: scripted_url(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 10"
                                                     b"\r\n\r\nabc")), "closed after 3 body bytes"),
    ("chunks cut short", lambda: scripted_url(replying(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")),
     "closed after"),
    ("bad chunk size", lambda: scripted_url(replying(b"HTTP/1.1 200 OK\r\n"
                                                     b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")),
     "bad chunk size"),
    ("endless head", lambda: scripted_url(replying(b"HTTP/1.1 200 OK\r\nX-Big: "
                                                   + b"b" * 100_000)), "longer than"),
    ("closed without answer", lambda: scripted_url(replying()), "without answering"),
    ("two Content-Lengths", lambda: scripted_url(replying(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")),
     "invalid Content-Length"),
    ("https", lambda: "https://127.0.0.1/", "plain HTTP"),
    ("not a URL", lambda: "127.0.0.1:7890", "not an http:// URL"),
    ("bad port", lambda: "http://127.0.0.1:99999/", "bad port"),
    ("no host", lambda: "http:///path", "not an http:// URL"),
]


@pytest.mark.parametrize("make_url, message", [case[1:] for case in FAILURES],
                         ids=[case[0] for case in FAILURES])
def test_a_failure_is_one_clear_line_and_exit_status_1(make_url, message):
    result = fetch(make_url(), "--timeout", "1")
    assert result.returncode == 1, result.stdout[-500:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_bad_options_are_refused_before_connecting():
    result = fetch("http://127.0.0.1:1/", "--repeat", "0")
    assert result.returncode == 2 and "--repeat must be at least 1" in result.stderr


# -- The docstring -----------------------------------------------------------------------

def test_the_docstring_names_its_section_and_states_the_exercise():
    doc = lesson03.__doc__
    assert doc.splitlines()[0] == \
        "Lesson 03 · An HTTP client over a raw TCP socket (3. HTTP超文本传输协议概述)"
    for part in ("无状态", "长连接", "Transfer-Encoding: chunked", "Content-Length",
                 "What changed from the source", "Try it", "Exercise"):
        assert part in doc
    exercise = " ".join(doc.split("Exercise\n--------\n")[1].split())
    for part in ("--follow", "301", "302", "303", "307", "308", "5 redirects",
                 "exit status 1"):
        assert part in exercise
