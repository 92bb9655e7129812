"""Lesson 05: the headers of the source's Baidu capture, made locally; the two-view client."""

import email.utils
import gzip
import http.client
import http.cookiejar
import http.cookies
import inspect
import re
import shutil
import socket
import subprocess
import urllib.request

import pytest

import rawhttp
from servers import (Launcher, import_lesson, one_line_error, run_script, script_path,
                     wait_for_output)
from test_contract import BAD_REQUESTS

LESSON = script_path("05_real_headers")
lesson05 = import_lesson("05_real_headers")
lesson04 = import_lesson("04_request_response")
lesson06 = import_lesson("06_static_single")
BROWSER = [("Accept-Encoding", "gzip, deflate, br"), ("Accept", "text/html,*/*;q=0.8")]


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_docroot):
    launcher = Launcher(tmp_path_factory.mktemp("05"))
    started = launcher(LESSON, directory=shared_docroot)
    started.docroot = shared_docroot
    yield started
    problems = launcher.stop_all()
    assert not problems, "server did not stop cleanly: %s" % "; ".join(problems)


def raw_get(port, path="/headers", headers=(), version="HTTP/1.1", method="GET"):
    """The response exactly as it came over the wire (the server closes after it)."""
    headers = list(headers)
    if version == "HTTP/1.1":
        headers.append(("Connection", "close"))
    return rawhttp.exchange(port, rawhttp.build_request(path, method, headers, version))


def split_raw(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def dechunk(body):
    """Chunks as they came: (list of chunk sizes, joined data); checks the framing strictly."""
    sizes, data = [], bytearray()
    while True:
        line, _, body = body.partition(b"\r\n")
        size = int(line, 16)
        if size == 0:
            assert body == b"\r\n", "the last chunk ends the message"
            return sizes, bytes(data)
        sizes.append(size)
        data += body[:size]
        assert body[size:size + 2] == b"\r\n"
        body = body[size + 2:]


def header_values(head, name):
    return [line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:]
            if line.split(":", 1)[0].lower() == name.lower()]


def cookies_set(head):
    jar = http.cookies.SimpleCookie()
    for value in header_values(head, "Set-Cookie"):
        jar.load(value)
    return jar


# -- Content-Encoding: gzip and Transfer-Encoding: chunked ---------------------------------

def test_the_headers_page_comes_gzipped_in_several_chunks(server):
    head, body = split_raw(raw_get(server.port, headers=BROWSER))
    assert head.startswith("HTTP/1.1 200 OK\r\n")
    assert header_values(head, "Transfer-Encoding") == ["chunked"]
    assert header_values(head, "Content-Encoding") == ["gzip"]
    assert header_values(head, "Content-Length") == [], "chunked: no length up front"
    sizes, data = dechunk(body)
    assert len(sizes) >= 3, "generated and flushed piece by piece"
    page = gzip.decompress(data).decode("utf-8")
    assert "<h1>The headers of this visit, explained</h1>" in page
    assert "Strict-Transport-Security" in page and "Traceid" in page


@pytest.mark.parametrize("accept_encoding, compressed", [
    (None, False),
    ("gzip", True),
    ("gzip, deflate, br", True),
    ("br;q=1.0, gzip;q=0.8", True),
    ("*", True),
    ("x-gzip", True),
    ("gzip;q=0", False),
    ("identity", False),
    ("deflate, br", False),
    ("*, gzip;q=0", False),
])
def test_gzip_only_when_accept_encoding_allows_it(server, accept_encoding, compressed):
    headers = [("Accept-Encoding", accept_encoding)] if accept_encoding is not None else []
    head, body = split_raw(raw_get(server.port, "/style.css", headers))
    _, data = dechunk(body)
    expected = (server.docroot / "style.css").read_bytes()
    assert header_values(head, "Vary") == ["Accept-Encoding"]
    if compressed:
        assert header_values(head, "Content-Encoding") == ["gzip"]
        assert gzip.decompress(data) == expected
    else:
        assert header_values(head, "Content-Encoding") == []
        assert data == expected


def test_binary_files_are_never_gzipped_and_do_not_vary(server):
    head, body = split_raw(raw_get(server.port, "/image.png", BROWSER))
    assert header_values(head, "Content-Encoding") == [] and header_values(head, "Vary") == []
    assert header_values(head, "Content-Type") == ["image/png"]
    assert dechunk(body)[1] == (server.docroot / "image.png").read_bytes()


def test_a_file_larger_than_one_piece_streams_in_many_chunks(server):
    big = server.docroot / "big-05.txt"
    big.write_bytes(b"".join(b"line %06d of a big text file\n" % n for n in range(20_000)))
    head, body = split_raw(raw_get(server.port, "/big-05.txt", BROWSER))
    sizes, data = dechunk(body)
    assert gzip.decompress(data) == big.read_bytes()
    assert len(sizes) >= 2


def test_http_client_de_chunks_and_gzip_gunzips(server):
    for headers, decode in (({"Accept-Encoding": "gzip"}, gzip.decompress),
                            ({}, lambda data: data)):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=rawhttp.TIMEOUT)
        connection.request("GET", "/notes.txt", headers=headers)
        response = connection.getresponse()
        assert response.chunked
        assert decode(response.read()) == b"plain text\n"
        connection.close()


def test_an_http_1_0_client_gets_no_chunks_the_close_ends_the_body(server):
    head, body = split_raw(raw_get(server.port, "/notes.txt", [("Accept-Encoding", "gzip")],
                                   version="HTTP/1.0"))
    assert header_values(head, "Transfer-Encoding") == []
    assert header_values(head, "Connection") == ["close"]
    assert gzip.decompress(body) == b"plain text\n"


def test_head_has_the_headers_of_the_get_and_no_body(server):
    raw = raw_get(server.port, "/style.css", BROWSER, method="HEAD")
    head, body = split_raw(raw)
    assert body == b""
    for name in ("Content-Type", "Content-Encoding", "Transfer-Encoding", "Vary"):
        assert header_values(head, name), name


def test_keep_alive_serves_several_requests_on_one_connection(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=rawhttp.TIMEOUT)
    for path in ("/notes.txt", "/headers", "/image.png"):
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Connection") == "keep-alive"
        response.read()
    connection.close()


# -- The other headers of the capture -----------------------------------------------------------

def test_cache_control_expires_date_hsts_server_and_trace_id(server):
    head, _ = split_raw(raw_get(server.port, "/notes.txt"))
    assert header_values(head, "Cache-Control") == ["private"]
    date = email.utils.parsedate_to_datetime(header_values(head, "Date")[0])
    expires = email.utils.parsedate_to_datetime(header_values(head, "Expires")[0])
    assert date.tzname() == expires.tzname() == "UTC"
    assert expires < date, "as in the capture: stale at once"
    assert header_values(head, "Strict-Transport-Security") == ["max-age=172800"]
    assert header_values(head, "Server") == ["CourseServer/05-headers"]
    assert re.fullmatch(r"\d{20,40}", header_values(head, "Traceid")[0])


def test_every_response_has_its_own_trace_id_and_the_log_names_it(server):
    ids = {header_values(split_raw(raw_get(server.port, "/notes.txt"))[0], "Traceid")[0]
           for _ in range(5)}
    assert len(ids) == 5
    for trace_id in ids:
        wait_for_output(server, r"Traceid: %s$" % trace_id)


# -- Set-Cookie, and the cookie read back --------------------------------------------------------

def test_set_cookie_carries_path_and_domain(server):
    head, _ = split_raw(raw_get(server.port))
    cookies = cookies_set(head)
    assert cookies["visits"].value == "1" and cookies["visits"]["path"] == "/"
    session = cookies["session"]
    assert session["path"] == "/" and session["domain"] == "127.0.0.1"
    assert session["httponly"] is True and re.fullmatch(r"[0-9a-f]{16}", session.value)


@pytest.mark.parametrize("host, domain", [
    ("127.0.0.1:7890", "127.0.0.1"),
    ("www.example.test", "www.example.test"),
    ("localhost:7890", ""),
    ("[::1]:7890", ""),
    ("bad host!", ""),
])
def test_the_cookie_domain_is_one_a_browser_accepts(server, host, domain):
    head, _ = split_raw(raw_get(server.port, headers=[("Host", host)]))
    assert cookies_set(head)["session"]["domain"] == domain


def test_the_cookie_is_read_back_on_the_next_request(server):
    first, _ = split_raw(raw_get(server.port))
    session = cookies_set(first)["session"].value
    cookie = "visits=1; session=%s" % session
    second, body = split_raw(raw_get(server.port, headers=[("Cookie", cookie)]))
    again = cookies_set(second)
    assert again["visits"].value == "2"
    assert "session" not in again, "a known session is not set again"
    page = dechunk(body)[1].decode("utf-8")
    assert "This is visit 2" in page and session in page


def test_a_standard_cookie_jar_keeps_the_cookies_and_sends_them_back(server):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    url = "http://127.0.0.1:%d/headers" % server.port
    for visit in (1, 2, 3):
        with opener.open(url, timeout=rawhttp.TIMEOUT) as response:
            assert "This is visit %d" % visit in response.read().decode("utf-8")
    assert {cookie.name for cookie in jar} == {"visits", "session"}


def test_a_malformed_cookie_counts_as_none(server):
    head, _ = split_raw(raw_get(server.port, headers=[("Cookie", 'visits="unterminated; x')]))
    assert cookies_set(head)["visits"].value == "1"


# -- Bad input, methods, files --------------------------------------------------------------

def test_only_get_and_head_the_others_are_405_after_their_body_is_read(server):
    response = rawhttp.request(server.port, "/", method="POST", body=b"a=1")
    assert response.status == 405 and response.header("Allow") == "GET, HEAD"
    raw = rawhttp.exchange(server.port, b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                           b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert rawhttp.parse(raw).status == 405


@pytest.mark.parametrize("data, status", [case[1:] for case in rawhttp.MALFORMED_REQUESTS],
                         ids=[case[0] for case in rawhttp.MALFORMED_REQUESTS])
def test_malformed_requests_get_a_clear_4xx_and_the_server_keeps_serving(server, data, status):
    response = rawhttp.parse(rawhttp.exchange(server.port, data))
    assert response.status == status and response.header("Connection") == "close"
    assert rawhttp.request(server.port, "/notes.txt").status == 200


HEAD_CASES = [case for case in BAD_REQUESTS if b"Transfer-Encoding" not in case[1]]


@pytest.mark.parametrize("data, status", [case[1:] for case in HEAD_CASES],
                         ids=[case[0] for case in HEAD_CASES])
def test_a_bad_request_gets_the_same_answer_as_from_lesson_06(server, data, status):
    assert rawhttp.parse(rawhttp.exchange(server.port, data)).status == status


@pytest.mark.parametrize("path", ["/../root-outside/secret.txt", "/%2e%2e/root-outside/secret.txt",
                                  "/link-out.txt", "/missing.html"])
def test_files_are_found_by_lesson_06s_safe_mapping(server, path):
    raw = raw_get(server.port, path)
    assert rawhttp.parse(raw).status in (403, 404) and b"SECRET" not in raw


def test_shared_blocks_are_lesson_06s_and_lesson_04s_unchanged():
    for name in ("check_head_limits", "parse_request_head", "close_gracefully",
                 "translate_path", "content_type"):
        assert inspect.getsource(getattr(lesson05, name)) == \
            inspect.getsource(getattr(lesson06, name)), name
    for name in ("body_framing", "read_body", "receive_more", "receive_line", "keep_alive",
                 "refuse_busy", "error_response", "receive_head", "response_head",
                 "open_listener"):
        assert inspect.getsource(getattr(lesson05, name)) == \
            inspect.getsource(getattr(lesson04, name)), name


def test_a_missing_file_gets_an_error_page_like_the_site_with_a_link_home(server):
    response = rawhttp.parse(raw_get(server.port, "/missing.html"))
    assert response.status == 404
    assert b"<style>" in response.body and b'<a href="/">Course home</a>' in response.body


@pytest.mark.parametrize("port", ["65536", "99999", "-1"])
def test_a_port_outside_0_to_65535_is_a_one_line_error(port):
    assert "between 0 and 65535" in one_line_error(run_script(LESSON, port))


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_curl_compressed_gets_the_file_and_raw_shows_the_chunks(server):
    url = "http://127.0.0.1:%d/style.css" % server.port
    plain = subprocess.run(["curl", "-s", "--compressed", url], capture_output=True, timeout=20)
    assert plain.stdout == (server.docroot / "style.css").read_bytes()
    raw = subprocess.run(["curl", "-s", "--raw", "-H", "Accept-Encoding: gzip", url],
                         capture_output=True, timeout=20)
    sizes, data = dechunk(raw.stdout)
    assert gzip.decompress(data) == plain.stdout


# -- The client: view source, view parsed ----------------------------------------------------

@pytest.fixture(scope="module")
def client_run(server):
    result = run_script(LESSON, "client", "http://127.0.0.1:%d/headers" % server.port,
                        "--requests", "2")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_the_client_shows_each_response_twice(client_run):
    assert client_run.count("---- view source: the bytes as they arrived ----") == 2
    assert client_run.count("---- view parsed: de-chunked, decompressed, explained ----") == 2


def test_view_source_shows_the_chunk_sizes_and_the_gzip_bytes(client_run):
    source = client_run.split("---- view source")[1].split("---- view parsed")[0]
    assert "Transfer-Encoding: chunked" in source and "Content-Encoding: gzip" in source
    # repr() quotes bytes with " instead of ' when they hold a ' and no ": the
    # gzip bytes are different on every visit, so either quote may come.
    assert re.search(r"b['\"][0-9a-f]+\\r\\n\\x1f\\x8b\\x08", source), "size line, gzip magic"


def test_view_parsed_de_chunks_gunzips_and_explains(client_run):
    parsed = client_run.split("---- view parsed")[1].split("==== request 2")[0]
    match = re.search(r"Chunks: ([\d + ]+) bytes \(sizes in decimal\), then the 0-size chunk -> "
                      r"(\d+) bytes de-chunked", parsed)
    assert sum(int(size) for size in match[1].split(" + ")) == int(match[2])
    assert re.search(r"Body: gzip: %s compressed bytes -> \d+ bytes" % match[2], parsed)
    assert "<h1>The headers of this visit, explained</h1>" in parsed
    for note in ("already stale", "browsers ignore it over plain http", "cookie session=",
                 "a unique id for this one response"):
        assert note in parsed


def test_the_client_sends_the_cookies_back_and_the_server_counts_the_visit(client_run):
    second = client_run.split("==== request 2 ====")[1]
    assert re.search(r"^> Cookie: visits=1; session=[0-9a-f]{16}$", second, re.MULTILINE)
    assert re.search(r"^Set-Cookie: visits=2; Path=/", second, re.MULTILINE)
    assert not re.search(r"^Set-Cookie: session=", second, re.MULTILINE)


def test_the_client_sends_the_captures_browser_headers(client_run):
    request = client_run.split("==== request 1 ====")[1].split("==== response 1")[0]
    for header in ("> Accept-Encoding: gzip, deflate", "> Accept-Language: zh-CN,zh;q=0.9",
                   "> Upgrade-Insecure-Requests: 1", "> Cache-Control: max-age=0"):
        assert header in request


@pytest.mark.parametrize("url, message", [
    (None, "connection refused"),
    ("https://127.0.0.1/", "plain HTTP"),
    ("nonsense", "not an http:// URL"),
])
def test_client_failures_are_one_line_and_exit_status_1(url, message):
    if url is None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            url = "http://127.0.0.1:%d/" % unused.getsockname()[1]
    result = run_script(LESSON, "client", url)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_the_client_refuses_a_gzip_bomb():
    bomb = gzip.compress(b"\0" * (lesson05.MAX_DECODED + 1))
    with pytest.raises(lesson05.ClientError, match="decompresses to more than"):
        lesson05.decode_body(bomb, "gzip")


# -- The docstring ------------------------------------------------------------------------------

def test_the_docstring_explains_the_capture_and_states_the_exercise():
    doc = lesson05.__doc__
    assert doc.splitlines()[0] == \
        "Lesson 05 · Real headers, reproduced (5. 访问百度请求信息和应答信息)"
    for part in ("Content-Encoding: gzip", "Transfer-Encoding: chunked", "Vary: Accept-Encoding",
                 "Set-Cookie", "Cache-Control: private", "Expires", "Date",
                 "Strict-Transport-Security", "Server", "Traceid", "view source", "view parsed",
                 "What changed from the source", "Try it", "Exercise"):
        assert part in doc, part
    exercise = " ".join(doc.split("Exercise\n--------\n")[1].split())
    for part in ("ETag", "Last-Modified", "If-None-Match", "If-Modified-Since",
                 "304 Not Modified"):
        assert part in exercise
