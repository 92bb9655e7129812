"""Lesson 06: what only the single-task server teaches, and its parser on its own."""

import importlib.util
import socket
import time

import pytest

import rawhttp
from servers import script_path

LESSON = script_path("06_static_single")


def load_lesson():
    spec = importlib.util.spec_from_file_location("lesson06", LESSON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lesson06 = load_lesson()


# -- The limitation the lesson is about -------------------------------------------

def test_while_one_client_holds_the_server_a_second_client_waits(launch, docroot):
    server = launch(LESSON, "--timeout", "30", directory=docroot)
    holder = rawhttp.connect(server.port)
    waiter = rawhttp.connect(server.port, timeout=1.0)
    waiter.sendall(rawhttp.build_request("/", headers=[("Connection", "close")]))
    with pytest.raises(socket.timeout):
        waiter.recv(1)  # nothing for a whole second: the server is busy with holder
    holder.close()
    waiter.settimeout(rawhttp.TIMEOUT)
    started = time.monotonic()
    response = rawhttp.ResponseReader(waiter).read_response()
    assert response.status == 200
    assert time.monotonic() - started < 3, "served once the first client let go"
    waiter.close()


def test_a_silent_client_is_dropped_after_the_timeout(launch, docroot):
    server = launch(LESSON, "--timeout", "0.5", directory=docroot)
    with rawhttp.connect(server.port) as silent:
        started = time.monotonic()
        assert silent.recv(1024) == b"", "closed without a response: it asked nothing"
        assert 0.4 < time.monotonic() - started < 4
    assert rawhttp.request(server.port, "/").status == 200


def test_a_half_sent_request_gets_408_after_the_timeout(launch, docroot):
    server = launch(LESSON, "--timeout", "0.5", directory=docroot)
    with rawhttp.connect(server.port) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        response = rawhttp.ResponseReader(slow).read_response()
    assert response.status == 408
    assert rawhttp.request(server.port, "/").status == 200


def test_a_slowloris_client_cannot_stretch_the_timeout(launch, docroot):
    server = launch(LESSON, "--timeout", "1", directory=docroot)
    with rawhttp.connect(server.port) as drip:
        started = time.monotonic()
        with pytest.raises((BrokenPipeError, ConnectionResetError, rawhttp.NoResponse)):
            for _ in range(40):  # one header byte every 0.1 s, for up to 4 s
                drip.sendall(b"X")
                drip.settimeout(0.1)
                try:
                    if drip.recv(65536):
                        raise rawhttp.NoResponse("answered, as it should")
                except socket.timeout:
                    pass
        assert time.monotonic() - started < 3


def test_keep_alive_is_declined_and_pipelined_requests_get_one_answer(launch, docroot):
    server = launch(LESSON, directory=docroot)
    two = (rawhttp.build_request("/notes.txt", headers=[("Connection", "keep-alive")])
           + rawhttp.build_request("/sub/page.html"))
    raw = rawhttp.exchange(server.port, two)
    response = rawhttp.parse(raw)
    assert response.header("Connection") == "close"
    assert response.body == b"plain text\n"
    assert raw.count(b"HTTP/1.1 ") == 1


def test_a_browser_like_burst_of_connections_is_served_one_by_one(launch, docroot):
    server = launch(LESSON, directory=docroot)
    sockets = [rawhttp.connect(server.port) for _ in range(6)]  # as a browser opens them
    for sock in sockets:
        sock.sendall(rawhttp.build_request("/style.css", headers=[("Connection", "close")]))
    for sock in sockets:
        assert rawhttp.ResponseReader(sock).read_response().status == 200
        sock.close()


def test_the_docstring_names_its_section_and_exercise():
    doc = lesson06.__doc__
    assert "6. Web静态服务器-单任务" in doc
    assert "What changed from the source" in doc and "Try it" in doc and "Exercise" in doc


# -- The parser is a pure function: bytes in, request or error out -------------------

@pytest.mark.parametrize("head, method, target, version, headers", [
    (b"GET / HTTP/1.1\r\nHost: a", "GET", "/", (1, 1), {"host": "a"}),
    (b"HEAD /x?y=1 HTTP/1.0", "HEAD", "/x?y=1", (1, 0), {}),
    (b"GET / HTTP/1.1\nHost: a\nAccept:  */* ", "GET", "/", (1, 1), {"host": "a", "accept": "*/*"}),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2", "GET", "/", (1, 1),
     {"host": "a", "x-a": "1, 2"}),
])
def test_parse_request_head_accepts(head, method, target, version, headers):
    request = lesson06.parse_request_head(head)
    assert (request.method, request.target, request.version, request.headers) == \
        (method, target, version, headers)


@pytest.mark.parametrize("head, status", [
    (b"", 400),
    (b"GET /", 400),
    (b"G\xc3T / HTTP/1.1\r\nHost: a", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\n: empty-name", 400),
    (b"GET / HTTP/1.12\r\nHost: a", 400),
    (b"GET / HTTP/2.0", 505),
])
def test_parse_request_head_rejects(head, status):
    with pytest.raises(lesson06.HTTPError) as caught:
        lesson06.parse_request_head(head)
    assert caught.value.status == status


def test_limits_are_checked_before_the_head_is_complete():
    with pytest.raises(lesson06.HTTPError) as caught:
        lesson06.check_head_limits(b"GET /" + b"a" * (lesson06.MAX_REQUEST_LINE + 1))
    assert caught.value.status == 414
    with pytest.raises(lesson06.HTTPError) as caught:
        lesson06.check_head_limits(b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * (lesson06.MAX_HEADERS + 1))
    assert caught.value.status == 431
    lesson06.check_head_limits(b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * lesson06.MAX_HEADERS)


@pytest.mark.parametrize("target", ["/../x", "/%2e%2e/x", "/a/../../x", "/..%2f..%2fx"])
def test_translate_path_never_leaves_the_root(tmp_path, target):
    root = tmp_path / "root"
    root.mkdir()
    (root / "x").write_text("inside")
    (tmp_path / "x").write_text("outside")
    assert lesson06.translate_path(target, str(root)) == str(root / "x")
