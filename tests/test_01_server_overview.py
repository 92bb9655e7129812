"""Lesson 01: one server, a raw TCP client and a browser; every socket call narrated."""

import http.client
import re
import shutil
import socket
import subprocess

import pytest

import rawhttp
from servers import import_lesson, one_line_error, run_script, script_path, wait_for_output

LESSON = script_path("01_server_overview")
lesson01 = import_lesson("01_server_overview")


@pytest.fixture
def server(launch):
    return launch(LESSON, leading_args=["server"])


def raw_exchange(port, data):
    """Send data, stop sending, read the whole reply (the server closes after it)."""
    return rawhttp.exchange(port, data)


def assert_still_serves(port):
    assert raw_exchange(port, b"still there?\n").startswith(b"server: hello ")
    response = rawhttp.request(port, "/")
    assert response.status == 200 and b"Hello, browser" in response.body


# -- The narrated run: both sides in one process ------------------------------------

@pytest.fixture(scope="module")
def narrated():
    result = run_script(LESSON, timeout=20)  # finishes by itself, with port 0
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout.splitlines()


def first(lines, side, call):
    prefix = "[%s] %s" % (side, call)
    return next(index for index, line in enumerate(lines) if line.startswith(prefix))


@pytest.mark.parametrize("side, calls", [
    ("server", ["socket(", "bind(", "listen(", "accept()", "accept() -> new socket", "recv(",
                "sendall(", "shutdown(", "close()"]),
    ("client", ["socket(", "connect(", "sendall(", "recv(", "close()"]),
])
def test_the_narrated_run_prints_every_socket_call_of_each_side(narrated, side, calls):
    for call in calls:
        assert any(line.startswith("[%s] %s" % (side, call)) for line in narrated), call


def test_the_narrated_run_reads_in_the_order_things_happen(narrated):
    assert first(narrated, "server", "socket(") < first(narrated, "server", "bind(") \
        < first(narrated, "server", "listen(") < first(narrated, "server", "accept()") \
        < first(narrated, "client", "socket(") < first(narrated, "client", "connect(")
    # Each side announces a send before making it, so the other side's recv comes after.
    assert first(narrated, "client", "sendall(") < first(narrated, "server", "recv(")
    assert first(narrated, "server", "sendall(") < first(narrated, "client", "recv(")


def test_the_narrated_run_shows_the_same_server_answering_a_raw_client_and_http(narrated):
    text = "\n".join(narrated)
    assert "(reply: server: hello 127.0.0.1:" in text
    assert "(reply: HTTP/1.1 200 OK)" in text
    assert sum(line.startswith("[server] accept() -> new socket") for line in narrated) == 2
    assert narrated[-1].startswith("[server] close()") or "Done" in narrated[-1]


def test_bind_to_port_0_reports_the_port_the_os_picked(narrated):
    bind_line = narrated[first(narrated, "server", "bind(")]
    port = int(re.search(r"-> port (\d+)", bind_line)[1])
    assert port != 0
    assert "connect(('127.0.0.1', %d))" % port in "\n".join(narrated)


# -- Server mode: the startup line, then the calls as they happen --------------------

def test_server_mode_narrates_its_setup_right_after_the_startup_line(server):
    lines = wait_for_output(server, r"^\[server\] accept\(\)").splitlines()
    assert lines[0].startswith("Serving HTTP on 127.0.0.1 port %d " % server.port)
    assert [line.split()[1].split("(")[0] for line in lines[1:4]] == ["socket", "bind", "listen"]


def test_a_raw_tcp_client_gets_a_one_line_reply(server):
    reply = raw_exchange(server.port, "你好, server\n".encode("utf-8"))
    assert reply.startswith(b"server: hello 127.0.0.1:")
    assert "'你好, server'" in reply.decode("utf-8")
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1


def test_a_last_line_without_newline_is_still_answered(server):
    assert b"'no newline'" in raw_exchange(server.port, b"no newline")


def test_a_browser_gets_a_valid_html_page_from_the_same_server(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=rawhttp.TIMEOUT)
    try:
        connection.request("GET", "/anything", headers={"User-Agent": "test-browser"})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert int(response.getheader("Content-Length")) == len(body)
    assert b"Hello, browser" in body and b"GET /anything HTTP/1.1" in body
    assert b"User-Agent: test-browser" in body


def test_head_gets_the_head_without_the_page(server):
    raw = raw_exchange(server.port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\n")


def test_what_the_browser_sent_is_shown_escaped(server):
    response = rawhttp.request(server.port, "/", headers=[("X-Evil", "<script>alert(1)</script>")])
    assert b"<script>" not in response.body and b"&lt;script&gt;" in response.body


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_curl_gets_the_page(server):
    result = subprocess.run(["curl", "-s", "-i", "--max-time", "10",
                             "http://127.0.0.1:%d/" % server.port],
                            capture_output=True, timeout=20)
    assert result.returncode == 0
    assert result.stdout.startswith(b"HTTP/1.1 200 OK") and b"Hello, browser" in result.stdout


def test_the_server_narrates_each_client(server):
    raw_exchange(server.port, b"ping\n")
    text = wait_for_output(server, r"^\[server\] close\(\)")
    assert re.search(r"\[server\] accept\(\) -> new socket, peer 127\.0\.0\.1 port \d+", text)
    assert "[server] recv(4096) -> b'ping\\n'" in text


# -- Bad input: a clear answer, and the server keeps serving ---------------------------

@pytest.mark.parametrize("data, expected", [
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)) + b"\r\n\r\n",
     b"server: you sent 22 bytes that are not UTF-8 text."),  # up to the first "\n"
    (b"x" * 100_000 + b"\n", b"server: your line is longer than 65536 bytes"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", b" 413 "),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", b" 413 "),
    (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b" 414 "),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n", b" 431 "),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: yes\r\n" * 200 + b"\r\n", b" 431 "),
    (b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", b" 405 "),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", b" 505 "),
], ids=["garbage", "endless line", "truncated chunks", "short body", "100 KB URL",
        "100 KB header", "200 headers", "DELETE", "HTTP/2.0"])
def test_bad_input_gets_a_clear_answer_and_the_server_keeps_serving(server, data, expected):
    reply = raw_exchange(server.port, data)
    if expected.startswith(b" "):  # an HTTP status
        response = rawhttp.parse(reply)
        assert response.status == int(expected), reply[:200]
        assert response.header("Connection") == "close"
        assert response.header("Allow") == ("GET, HEAD" if response.status == 405 else None)
    else:
        assert reply.startswith(expected), reply[:200]
    assert_still_serves(server.port)


def test_a_client_that_resets_costs_nothing(server):
    sock = rawhttp.connect(server.port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    rawhttp.reset(sock)
    assert_still_serves(server.port)


# -- The loop model, visible: one client at a time -------------------------------------

def test_while_one_client_is_silent_the_next_one_waits_until_the_timeout(launch):
    server = launch(LESSON, "--timeout", "2", leading_args=["server"])
    with rawhttp.connect(server.port) as silent:
        waiter = rawhttp.connect(server.port, timeout=1.0)
        waiter.sendall(b"me too\n")
        with pytest.raises(socket.timeout):
            waiter.recv(1)  # a whole second: the server is busy with the silent client
        waiter.settimeout(rawhttp.TIMEOUT)
        reply = rawhttp.ResponseReader(waiter).read_until_close()  # after the timeout
        waiter.close()
        assert silent.recv(100) == b"", "the silent client is dropped"
    assert b"'me too'" in reply
    wait_for_output(server, r"\(client said nothing in time\)")


# -- Client mode ------------------------------------------------------------------------

def test_client_mode_narrates_and_prints_the_reply(server):
    result = run_script(LESSON, "client", server.port, "--message", "from the client")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[client] socket(")
    assert any(line.startswith("[client] connect(('127.0.0.1', %d))" % server.port)
               for line in lines)
    assert lines[-1].startswith("server: hello") and "'from the client'" in lines[-1]


def test_client_mode_can_speak_http(server):
    result = run_script(LESSON, "client", server.port, "--http")
    assert result.returncode == 0
    assert "HTTP/1.1 200 OK" in result.stdout and "Hello, browser" in result.stdout


def test_client_mode_against_a_closed_port_is_one_line_and_status_1():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = run_script(LESSON, "client", port)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "client: cannot talk to 127.0.0.1 port %d: Connection refused" % port]


def test_server_mode_on_a_port_in_use_is_a_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_script(LESSON, "server", port)
    assert "port %d" % port in one_line_error(result)


# -- The command line: http.server's shape where it makes sense ------------------------------

def test_a_port_without_a_mode_word_starts_the_server(launch):
    server = launch(LESSON)  # "01_server_overview.py 0 --bind 127.0.0.1", as the README says
    assert server.output().startswith("Serving HTTP on 127.0.0.1 port %d " % server.port)
    assert raw_exchange(server.port, b"ping\n").startswith(b"server: hello ")


@pytest.mark.parametrize("args", [["99999"], ["server", "65536"], ["client", "-1"],
                                  ["demo", "70000"]])
def test_a_port_outside_0_to_65535_is_a_one_line_error(args):
    assert "between 0 and 65535" in one_line_error(run_script(LESSON, *args))


@pytest.mark.parametrize("mode, words", [
    ("server", ["port to listen on", "address to bind", "before the server drops it"]),
    ("demo", ["port of the demo's server", "address to bind"]),
    ("client", ["the server's port", "the server's address", "how long to wait for the server"]),
])
def test_each_modes_help_describes_that_mode(mode, words):
    result = run_script(LESSON, mode, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for word in words:
        assert word in text, (mode, word)
    if mode == "client":
        assert "listen" not in text and "bind" not in text.replace("--bind", "")


# -- The docstring ----------------------------------------------------------------------

def test_the_docstring_names_its_section_and_states_the_exercise():
    doc = lesson01.__doc__
    assert doc.splitlines()[0] == "Lesson 01 · Client and server, made visible (1. 服务器概述)"
    for part in ("硬件服务器", "软件服务器", "c/s", "b/s", "服务器追求",
                 "What changed from the source", "Try it", "Exercise"):
        assert part in doc
    exercise = " ".join(doc.split("Exercise\n--------\n")[1].split())
    assert "you are client #N" in exercise and "1, 2, 3" in exercise
