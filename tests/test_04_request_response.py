"""Lesson 04: a server that shows a request's anatomy, checked with clients no one here wrote."""

import http.client
import inspect
import json
import shutil
import socket
import subprocess

import pytest

import rawhttp
from servers import (Launcher, import_lesson, one_line_error, run_script, script_path,
                     start_server)
from test_contract import BAD_REQUESTS

LESSON = script_path("04_request_response")
lesson04 = import_lesson("04_request_response")
lesson06 = import_lesson("06_static_single")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the tests that leave it as they found it."""
    launcher = Launcher(tmp_path_factory.mktemp("04"))
    started = launcher(LESSON)
    yield started
    problems = launcher.stop_all()
    assert not problems, "server did not stop cleanly: %s" % "; ".join(problems)


def exchange(port, method, path, body=None, headers=None, encode_chunked=False):
    """One request with http.client (a client no one here wrote): (response, body bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=rawhttp.TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=headers or {},
                           encode_chunked=encode_chunked)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def view(port, method="GET", path="/", body=None, headers=None, **options):
    """The server's JSON description of a request."""
    headers = {"Accept": "application/json", **(headers or {})}
    response, data = exchange(port, method, path, body, headers, **options)
    assert response.status == 200, data[:300]
    assert response.getheader("Content-Type") == "application/json"
    return json.loads(data)


def assert_still_serves(port):
    assert view(port)["request_line"]["method"] == "GET"


# -- The anatomy of a request ------------------------------------------------------------

def test_the_request_line_path_and_query_are_taken_apart(server):
    seen = view(server.port, path="/search?q=http&lang=zh&lang=en&empty=&%E4%B8%AD=%E6%96%87")
    assert seen["request_line"] == {"method": "GET", "version": "HTTP/1.1",
                                    "target": "/search?q=http&lang=zh&lang=en&empty=&"
                                              "%E4%B8%AD=%E6%96%87"}
    assert seen["path"] == "/search"
    assert seen["query"] == {"q": ["http"], "lang": ["zh", "en"], "empty": [""], "中": ["文"]}


def test_headers_are_shown_in_arrival_order_with_their_own_spelling_and_explained(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=rawhttp.TIMEOUT)
    connection.putrequest("GET", "/", skip_accept_encoding=True)
    for name, value in [("Accept", "application/json"), ("X-First", "1"),
                        ("referer", "http://example.test/"), ("X-Last", "2")]:
        connection.putheader(name, value)
    connection.endheaders()
    seen = json.loads(connection.getresponse().read())
    connection.close()
    names = [name for name, _ in seen["headers"]]
    assert names == ["Host", "Accept", "X-First", "referer", "X-Last"]
    assert "host" in seen["header_notes"] and "referer" in seen["header_notes"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_body_announced_by_content_length_is_shown_whole(server, method):
    seen = view(server.port, method, "/form", body=b"name=Ada&lang=py&lang=c",
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert seen["request_line"]["method"] == method
    assert seen["body"]["framing"] == "Content-Length: 23"
    assert seen["body"]["text"] == "name=Ada&lang=py&lang=c"
    assert seen["body"]["form"] == {"name": ["Ada"], "lang": ["py", "c"]}


def test_a_chunked_body_is_reassembled(server):
    pieces = [b"first piece, ", "第二块, ".encode("utf-8"), b"x" * 70_000]
    seen = view(server.port, "POST", "/upload", body=iter(pieces), encode_chunked=True)
    assert seen["body"]["framing"] == "Transfer-Encoding: chunked (3 chunks)"
    assert seen["body"]["text"].encode("utf-8") == b"".join(pieces)


def test_chunk_extensions_and_trailers_are_accepted(server):
    raw = rawhttp.exchange(server.port, b"POST / HTTP/1.1\r\nHost: x\r\n"
                           b"Accept: application/json\r\n"
                           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                           b"4;name=value\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Checksum: 1\r\n\r\n")
    response = rawhttp.parse(raw)
    assert response.status == 200
    assert json.loads(response.body)["body"]["text"] == "Wikipedia"


def test_json_and_binary_bodies(server):
    seen = view(server.port, "POST", "/api", body=b'{"a": [1, 2]}',
                headers={"Content-Type": "application/json"})
    assert seen["body"]["json"] == {"a": [1, 2]}
    seen = view(server.port, "PUT", "/blob", body=bytes(range(256)),
                headers={"Content-Type": "application/octet-stream"})
    assert seen["body"]["length"] == 256 and "text" not in seen["body"]
    assert seen["body"]["base64"].startswith("AAECAwQF")


def test_each_request_says_which_connection_and_which_request_on_it_keep_alive(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=rawhttp.TIMEOUT)
    seen = []
    for _ in range(3):
        connection.request("GET", "/", headers={"Accept": "application/json"})
        response = connection.getresponse()
        assert response.getheader("Connection") == "keep-alive"
        seen.append(json.loads(response.read())["connection"])
    connection.close()
    assert [entry["request_number"] for entry in seen] == [1, 2, 3]
    assert len({entry["number"] for entry in seen}) == 1


def test_http_1_0_gets_keep_alive_only_when_it_asks(server):
    closed = rawhttp.parse(rawhttp.exchange(server.port, b"GET / HTTP/1.0\r\n\r\n"))
    assert closed.header("Connection") == "close"
    with rawhttp.connect(server.port) as sock:
        reader = rawhttp.ResponseReader(sock)
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert reader.read_response().header("Connection") == "keep-alive"


# -- Accept decides the format ---------------------------------------------------------------

@pytest.mark.parametrize("accept, kind", [
    (None, "text/html; charset=utf-8"),
    ("*/*", "text/html; charset=utf-8"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
     "text/html; charset=utf-8"),  # a browser's
    ("application/json", "application/json"),
    ("text/html;q=0.5, application/json", "application/json"),
    ("application/json;q=0.5, text/html", "text/html; charset=utf-8"),
    ("application/*", "application/json"),
])
def test_accept_chooses_json_or_html(server, accept, kind):
    response, body = exchange(server.port, "GET", "/", headers={"Accept": accept} if accept else {})
    assert response.getheader("Content-Type") == kind
    assert response.getheader("Vary") == "Accept"
    if kind == "application/json":
        json.loads(body)
    else:
        assert body.startswith(b"<!DOCTYPE html>") and b"<h1>200 OK</h1>" in body


def test_the_html_page_escapes_what_the_client_sent(server):
    response, body = exchange(server.port, "GET", "/?q=%3Cscript%3E",
                              headers={"X-Evil": "<script>alert(1)</script>"})
    assert b"<script>" not in body and b"&lt;script&gt;" in body


# -- The methods of the section ---------------------------------------------------------------

def test_head_sends_the_head_of_the_get_and_no_body(server):
    raws = {}
    for method in ("GET", "HEAD"):
        raws[method] = rawhttp.exchange(server.port, rawhttp.build_request(
            "/same", method, [("Connection", "close")]))
    get, head = rawhttp.parse(raws["GET"]), rawhttp.parse(raws["HEAD"], "HEAD")
    assert head.status == 200 and raws["HEAD"].endswith(b"\r\n\r\n")
    assert head.header("Content-Type") == get.header("Content-Type")
    # The same page as for the GET; only the connection's number may differ in width.
    assert abs(int(head.header("Content-Length")) - len(get.body)) <= 1


@pytest.mark.parametrize("target", ["/", "*"])
def test_options_lists_the_allowed_methods(server, target):
    raw = rawhttp.exchange(server.port, b"OPTIONS %s HTTP/1.1\r\nHost: x\r\nConnection: close"
                           b"\r\n\r\n" % target.encode())
    response = rawhttp.parse(raw)
    assert response.status == 200
    assert set(response.header("Allow").split(", ")) == {
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"}


def test_trace_echoes_the_request_but_not_its_credentials(server):
    response, body = exchange(server.port, "TRACE", "/echo?x=1",
                              headers={"X-Mine": "yes", "Cookie": "session=secret",
                                       "Authorization": "Basic c2VjcmV0"})
    assert response.status == 200
    assert response.getheader("Content-Type") == "message/http"
    assert body.startswith(b"TRACE /echo?x=1 HTTP/1.1\r\n")
    assert b"X-Mine: yes\r\n" in body
    assert b"secret" not in body and b"c2VjcmV0" not in body


def test_connect_is_405_with_allow(server):
    raw = rawhttp.exchange(server.port, b"CONNECT example.test:443 HTTP/1.1\r\n"
                           b"Host: example.test:443\r\n\r\n")
    response = rawhttp.parse(raw)
    assert response.status == 405 and "GET" in response.header("Allow")
    assert_still_serves(server.port)


def test_an_unknown_method_is_501(server):
    response, _ = exchange(server.port, "BREW", "/pot")
    assert response.status == 501
    assert_still_serves(server.port)


# -- /status/NNN: every class of status -----------------------------------------------------

@pytest.mark.parametrize("code, header, value", [
    (200, None, None),
    (201, None, None),
    (301, "Location", "/"),
    (302, "Location", "/"),
    (307, "Location", "/"),
    (308, "Location", "/"),
    (401, "WWW-Authenticate", 'Basic realm="lesson 04"'),
    (403, None, None),
    (404, None, None),
    (405, "Allow", "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE"),
    (418, None, None),
    (429, "Retry-After", "1"),
    (500, None, None),
    (503, "Retry-After", "1"),
])
def test_status_path_answers_that_status_with_the_headers_it_needs(server, code, header, value):
    response, body = exchange(server.port, "GET", "/status/%d" % code,
                              headers={"Accept": "application/json"})
    assert response.status == code
    if header:
        assert response.getheader(header) == value
    assert json.loads(body)["path"] == "/status/%d" % code


@pytest.mark.parametrize("code", [204, 205, 304])
def test_bodiless_statuses_have_no_body_and_the_connection_stays_usable(server, code):
    with rawhttp.connect(server.port) as sock:
        reader = rawhttp.ResponseReader(sock)
        sock.sendall(rawhttp.build_request("/status/%d" % code))
        response = reader.read_response()
        assert response.status == code and response.body == b""
        assert response.header("Content-Length") in (None, "0")
        sock.sendall(rawhttp.build_request("/after", headers=[("Accept", "application/json")]))
        after = reader.read_response()
    assert json.loads(after.body)["path"] == "/after", "nothing was left over on the connection"


def test_a_redirect_location_can_be_chosen_but_not_used_to_inject_headers(server):
    response, _ = exchange(server.port, "GET", "/status/303?location=/elsewhere%3Fa%3D1")
    assert response.status == 303 and response.getheader("Location") == "/elsewhere?a=1"
    response, _ = exchange(server.port, "GET", "/status/302?location=/x%0d%0aSet-Cookie:%20a=1")
    assert response.status == 400 and response.getheader("Set-Cookie") is None


@pytest.mark.parametrize("code", [100, 102, 103])
def test_informational_statuses_come_as_an_interim_response_before_the_final_one(server, code):
    with rawhttp.connect(server.port) as sock:
        reader = rawhttp.ResponseReader(sock)
        sock.sendall(rawhttp.build_request("/status/%d" % code,
                                           headers=[("Accept", "application/json")]))
        interim = reader.read_response()
        final = reader.read_response()
    assert interim.status == code and interim.body == b""
    assert final.status == 200
    assert json.loads(final.body)["interim_response"].startswith(str(code))


def test_no_interim_response_for_an_http_1_0_client(server):
    raw = rawhttp.exchange(server.port, b"GET /status/103 HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and b" 103 " not in raw.split(b"\r\n")[0]


@pytest.mark.parametrize("path", ["/status/101", "/status/999", "/status/099", "/status/299"])
def test_statuses_that_cannot_be_shown_are_400(server, path):
    response, _ = exchange(server.port, "GET", path)
    assert response.status == 400
    assert_still_serves(server.port)


# -- Limits and bad input ---------------------------------------------------------------------

def test_a_body_over_the_limit_is_413_before_it_is_read(server):
    with rawhttp.connect(server.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                     % (lesson04.MAX_BODY + 1))
        response = rawhttp.ResponseReader(sock).read_response()  # no body sent, yet answered
    assert response.status == 413 and response.header("Connection") == "close"
    assert_still_serves(server.port)


def test_a_chunked_body_over_the_limit_is_413(server):
    chunk = b"%x\r\n" % (512 * 1024) + b"x" * (512 * 1024) + b"\r\n"
    raw = rawhttp.exchange(server.port, b"POST / HTTP/1.1\r\nHost: x\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n")
    assert rawhttp.parse(raw).status == 413
    assert_still_serves(server.port)


def test_a_body_at_the_limit_is_accepted(server):
    seen = view(server.port, "POST", "/", body=b"y" * lesson04.MAX_BODY)
    assert seen["body"]["length"] == lesson04.MAX_BODY


@pytest.mark.parametrize("data, status", [case[1:] for case in rawhttp.MALFORMED_REQUESTS],
                         ids=[case[0] for case in rawhttp.MALFORMED_REQUESTS])
def test_malformed_requests_get_a_clear_4xx_and_the_server_keeps_serving(server, data, status):
    response = rawhttp.parse(rawhttp.exchange(server.port, data))
    assert response.status == status
    assert response.header("Connection") == "close"
    assert_still_serves(server.port)


# The contract's cases about the request head; not those about bodies or file paths.
HEAD_CASES = [case for case in BAD_REQUESTS
              if b"Transfer-Encoding" not in case[1] and "path" not in case[0]]


@pytest.mark.parametrize("data, status", [case[1:] for case in HEAD_CASES],
                         ids=[case[0] for case in HEAD_CASES])
def test_a_bad_request_head_gets_the_same_answer_as_from_lesson_06(server, data, status):
    response = rawhttp.parse(rawhttp.exchange(server.port, data))
    assert response.status == status
    assert_still_serves(server.port)


@pytest.mark.parametrize("data", [
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET index.html HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["unknown transfer coding", "chunked in HTTP/1.0", "path without slash"])
def test_framing_the_server_cannot_trust_is_refused(server, data):
    response = rawhttp.parse(rawhttp.exchange(server.port, data))
    assert response.status in (400, 501)
    assert_still_serves(server.port)


def test_the_head_parser_is_lesson_06s_unchanged():
    # error_response is not in the list: its page leads back to this server's own start page.
    # Nor are receive_head, response_head and open_listener: lesson 06 reads into a
    # Connection, caches its Date header and can ask for SO_REUSEPORT (lesson 15); lesson
    # 05 shares lesson 04's (tests/test_05_real_headers.py).
    for name in ("check_head_limits", "parse_request_head", "close_gracefully"):
        assert inspect.getsource(getattr(lesson04, name)) == \
            inspect.getsource(getattr(lesson06, name)), name


def test_an_error_page_looks_like_the_site_and_links_back_to_the_start_page(server):
    raw = rawhttp.exchange(server.port, b"CONNECT example.org:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    response = rawhttp.parse(raw)
    assert response.status == 405
    assert b"<h1>405 Method Not Allowed</h1>" in response.body
    assert b"<style>" in response.body and b'<a href="/">' in response.body


# -- Connections: a stalled or idle client, and many at once -------------------------------------

def test_an_idle_keep_alive_connection_does_not_block_other_clients(server):
    with rawhttp.connect(server.port) as idle:
        idle.sendall(rawhttp.build_request("/"))
        rawhttp.ResponseReader(idle).read_response()  # now idle, kept alive
        assert_still_serves(server.port)  # served while idle still holds its connection


def test_a_half_sent_body_gets_408_after_the_timeout(launch):
    quick = launch(LESSON, "--timeout", "0.5")
    with rawhttp.connect(quick.port) as slow:
        slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        response = rawhttp.ResponseReader(slow).read_response()
    assert response.status == 408
    assert_still_serves(quick.port)


def test_past_the_connection_limit_the_next_client_gets_503(launch):
    busy = launch(LESSON, "--timeout", "30")
    holders = [rawhttp.connect(busy.port) for _ in range(lesson04.MAX_CONNECTIONS)]
    try:
        for holder in holders:  # each is being served: a request answered, kept alive
            holder.sendall(rawhttp.build_request("/"))
            rawhttp.ResponseReader(holder).read_response()
        raw = rawhttp.exchange(busy.port, rawhttp.build_request("/"))
        response = rawhttp.parse(raw)
        assert response.status == 503 and response.header("Retry-After") == "1"
    finally:
        for holder in holders:
            holder.close()
    assert rawhttp.request(busy.port, "/").status == 200


# -- Real clients ----------------------------------------------------------------------------

@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_curl_uploads_are_shown_whole(server, tmp_path):
    upload = tmp_path / "upload.txt"
    upload.write_bytes("上传 upload\n".encode("utf-8") * 1000)
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
        result = subprocess.run(["curl", "-s", "--max-time", "20", "-T", str(upload),
                                 "-H", "Accept: application/json", "-H", "Expect:", *extra,
                                 "http://127.0.0.1:%d/upload" % server.port],
                                capture_output=True, timeout=30)
        seen = json.loads(result.stdout)
        assert seen["request_line"]["method"] == "PUT"
        assert seen["body"]["text"].encode("utf-8") == upload.read_bytes()
        framing = "Transfer-Encoding" if extra else "Content-Length"
        assert seen["body"]["framing"].startswith(framing)


# -- Start, stop, docstring ---------------------------------------------------------------------

def test_directory_is_accepted_and_ignored(tmp_path):
    started = start_server(LESSON, directory=tmp_path)
    try:
        assert rawhttp.request(started.port, "/").status == 200
    finally:
        assert started.stop() == []


def test_port_in_use_is_a_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_script(LESSON, port)
    one_line_error(result)


@pytest.mark.parametrize("port", ["65536", "99999", "-1"])
def test_a_port_outside_0_to_65535_is_a_one_line_error(port):
    assert "between 0 and 65535" in one_line_error(run_script(LESSON, port))


def test_the_docstring_walks_the_visit_and_states_the_exercise():
    doc = lesson04.__doc__
    assert doc.splitlines()[0] == "Lesson 04 · A request, taken apart (4. Web网站概述)"
    for part in ("DNS", "three-way handshake", "four-way close", "三次握手", "四次挥手",
                 "notebooks/01_http_structure.ipynb", "What changed from the source",
                 "Try it", "Exercise"):
        assert part in doc
    exercise = " ".join(doc.split("Exercise\n--------\n")[1].split())
    for part in ("Expect: 100-continue", "HTTP/1.1 100 Continue", "413",
                 "without ``100 Continue``"):
        assert part in exercise
