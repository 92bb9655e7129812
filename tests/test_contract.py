"""The contract every static server lesson keeps (DEVELOPERS.md, lesson 06).

Parametrized over servers.STATIC_SERVERS: a new server lesson joins by id.
Each test leaves the shared server as it found it; tests that send bad
input end by checking that the server still serves.
"""

import email.utils
import socket

import pytest

import rawhttp
from servers import STARTUP_LINE, one_line_error, run_script, script_path


def assert_still_serves(server):
    response = rawhttp.request(server.port, "/")
    assert response.status == 200
    assert response.body == (server.docroot / "index.html").read_bytes()


# -- Serving files ------------------------------------------------------------

@pytest.mark.parametrize("path, name, content_type", [
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/index.html", "index.html", "text/html; charset=utf-8"),
    ("/style.css", "style.css", "text/css; charset=utf-8"),
    ("/app.js", "app.js", "text/javascript; charset=utf-8"),
    ("/notes.txt", "notes.txt", "text/plain; charset=utf-8"),
    ("/image.png", "image.png", "image/png"),
    ("/sub/", "sub/index.html", "text/html; charset=utf-8"),
    ("/sub/page.html", "sub/page.html", "text/html; charset=utf-8"),
    ("/%E4%B8%AD%E6%96%87.html", "中文.html", "text/html; charset=utf-8"),
    ("/with%20space.txt", "with space.txt", "text/plain; charset=utf-8"),
    ("/empty.txt", "empty.txt", "text/plain; charset=utf-8"),
])
def test_get_serves_the_file_byte_exact_with_its_type(static_server, path, name, content_type):
    response = rawhttp.request(static_server.port, path)
    expected = (static_server.docroot / name).read_bytes()
    assert response.status == 200
    assert response.body == expected
    assert response.header("Content-Length") == str(len(expected))
    assert response.header("Content-Type") == content_type


def test_response_carries_date_and_server(static_server):
    response = rawhttp.request(static_server.port, "/")
    assert response.version == "HTTP/1.1"
    assert email.utils.parsedate_to_datetime(response.header("Date")).tzname() == "UTC"
    assert response.header("Server")


@pytest.mark.parametrize("path", ["/notes.txt?x=1&y=2", "/notes.txt#part", "/notes.txt?a#b"])
def test_query_and_fragment_do_not_change_the_file(static_server, path):
    response = rawhttp.request(static_server.port, path)
    assert response.status == 200
    assert response.body == b"plain text\n"


def test_dot_segments_inside_the_docroot_resolve(static_server):
    response = rawhttp.request(static_server.port, "/sub/../notes.txt")
    assert response.status == 200
    assert response.body == b"plain text\n"


def test_head_sends_the_same_head_and_no_body(static_server):
    get = rawhttp.request(static_server.port, "/style.css")
    with rawhttp.connect(static_server.port) as sock:
        sock.sendall(rawhttp.build_request("/style.css", "HEAD", [("Connection", "close")]))
        raw = rawhttp.ResponseReader(sock).read_until_close()
    head = rawhttp.parse(raw, "HEAD")
    assert head.status == 200
    assert raw.endswith(b"\r\n\r\n"), "a HEAD response must end after its head"
    for name in ("Content-Type", "Content-Length"):
        assert head.header(name) == get.header(name)


def test_folder_without_slash_redirects_to_folder_with_slash(static_server):
    response = rawhttp.request(static_server.port, "/sub?q=1")
    assert response.status == 301
    assert response.header("Location") in ("/sub/?q=1", "http://127.0.0.1:%d/sub/?q=1"
                                           % static_server.port)


# -- Errors that explain themselves -------------------------------------------

def test_missing_file_is_404_with_an_html_body(static_server):
    response = rawhttp.request(static_server.port, "/no-such-file.html")
    assert response.status == 404
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert b"404" in response.body
    assert response.header("Content-Length") == str(len(response.body))


def test_head_of_a_missing_file_has_no_body(static_server):
    with rawhttp.connect(static_server.port) as sock:
        sock.sendall(rawhttp.build_request("/missing", "HEAD", [("Connection", "close")]))
        raw = rawhttp.ResponseReader(sock).read_until_close()
    assert raw.startswith(b"HTTP/1.1 404 ")
    assert raw.endswith(b"\r\n\r\n")


def test_error_pages_escape_what_the_client_sent(static_server):
    response = rawhttp.request(static_server.port, "/%3Cscript%3Ealert(1)%3C/script%3E")
    assert response.status == 404
    assert b"<script>" not in response.body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"])
def test_other_known_methods_are_405_with_allow(static_server, method):
    response = rawhttp.request(static_server.port, "/", method=method, body=b"x=1")
    assert response.status == 405
    assert response.header("Allow") == "GET, HEAD"
    assert_still_serves(static_server)


def test_unknown_method_is_501(static_server):
    response = rawhttp.request(static_server.port, "/", method="BREW")
    assert response.status == 501
    assert_still_serves(static_server)


def test_a_body_announced_by_content_length_is_read_not_misparsed(static_server):
    body = b"GET /sub/page.html HTTP/1.1\r\n\r\n" * 100  # looks like requests; is a body
    response = rawhttp.request(static_server.port, "/notes.txt", body=body)
    assert response.status == 200
    assert response.body == b"plain text\n"
    assert_still_serves(static_server)


def test_an_oversized_body_is_refused_with_413(static_server):
    response = rawhttp.request(static_server.port, "/", method="POST",
                               headers=[("Content-Length", str(10 ** 10))])
    assert response.status == 413
    assert_still_serves(static_server)


# -- The docroot is a wall ----------------------------------------------------

TRAVERSALS = [
    "/../secret.txt",
    "/../root-outside/secret.txt",
    "/../../../../../../etc/passwd",
    "/%2e%2e/root-outside/secret.txt",
    "/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "/..%2froot-outside%2fsecret.txt",
    "/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/sub/..%5c..%5croot-outside%5csecret.txt",
    "/..\\root-outside\\secret.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/link-out.txt",
    "/link-dir/secret.txt",
    "/fifo",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_nothing_outside_the_docroot_is_served(static_server, path):
    raw = rawhttp.exchange(static_server.port, rawhttp.build_request(
        path, headers=[("Connection", "close")]))
    response = rawhttp.parse(raw)
    assert response.status in (400, 403, 404), raw[:300]
    assert b"SECRET" not in raw and b"root:" not in raw
    assert_still_serves(static_server)


# -- Bad input: a clear answer, and the server keeps serving -------------------

BAD_REQUESTS = [
    ("garbage bytes", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)) + b"\r\n\r\n", 400),
    ("blank lines only", b"\r\n\r\n", 400),
    ("no version", b"GET /\r\n\r\n", 400),
    ("too many words", b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400),
    ("lower-case protocol", b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
    ("header without colon", b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("folded header", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  continued\r\n\r\n", 400),
    ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two Content-Lengths", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    ("negative Content-Length", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    ("non-UTF-8 path", b"GET /%ff%fe.html HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("raw byte in the path", b"GET /\xe4\xb8\xad.html HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("NUL in the path", b"GET /index.html%00.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("path without slash", b"GET index.html HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("HTTP/3.0", b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    ("HTTP/0.9", b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505),
    ("100 KB URL", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ("100 KB URL, never finished", b"GET /" + b"a" * 100_000, 414),
    ("200 header lines", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: yes\r\n" * 200 + b"\r\n", 431),
    ("100 KB header line", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n", 431),
    ("chunked request body", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
]


# Requests whose head parses: only the path in them is wrong.
WELL_FRAMED = {data for name, data, _ in BAD_REQUESTS
               if name in ("non-UTF-8 path", "NUL in the path", "path without slash")}


@pytest.mark.parametrize("data, status", [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_request_gets_a_clear_answer_and_the_server_keeps_serving(static_server, data, status):
    raw = rawhttp.exchange(static_server.port, data)
    response = rawhttp.parse(raw)
    assert response.status == status, raw[:300]
    if data in WELL_FRAMED:
        # The head parsed and the body length is known, so the server may keep
        # the connection (as nginx does after a 404); whatever it says must hold.
        assert response.header("Connection") in ("close", "keep-alive")
    else:
        assert response.header("Connection") == "close", "after a broken head, close"
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert_still_serves(static_server)


@pytest.mark.parametrize("data", sorted(WELL_FRAMED))
def test_after_an_error_to_a_well_framed_request_the_connection_header_tells_the_truth(
        static_server, data):
    with rawhttp.connect(static_server.port) as sock:
        sock.sendall(data)
        reader = rawhttp.ResponseReader(sock)
        error = reader.read_response()
        assert error.status >= 400
        if error.header("Connection") == "close":
            assert reader.read_until_close() == b""
        else:
            assert error.header("Connection") == "keep-alive"
            sock.sendall(rawhttp.build_request("/notes.txt"))
            assert reader.read_response().body == b"plain text\n"


def test_bare_lf_line_endings_are_accepted_for_netcat_users(static_server):
    raw = rawhttp.exchange(static_server.port, b"GET /notes.txt HTTP/1.0\n\n")
    response = rawhttp.parse(raw)
    assert response.status == 200
    assert response.body == b"plain text\n"


def test_http_1_0_is_answered_and_closed(static_server):
    raw = rawhttp.exchange(static_server.port, b"GET /notes.txt HTTP/1.0\r\n\r\n")
    response = rawhttp.parse(raw)
    assert response.status == 200
    assert response.body == b"plain text\n"


def test_request_split_into_tiny_pieces_is_reassembled(static_server):
    data = rawhttp.build_request("/notes.txt", headers=[("Connection", "close")])
    with rawhttp.connect(static_server.port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(data), 3):
            sock.sendall(data[i:i + 3])
        response = rawhttp.ResponseReader(sock).read_response()
    assert response.status == 200
    assert response.body == b"plain text\n"


def test_client_that_resets_mid_request_costs_nothing(static_server):
    sock = rawhttp.connect(static_server.port)
    sock.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-Half: ")
    rawhttp.reset(sock)
    assert_still_serves(static_server)


def test_client_that_resets_mid_response_costs_nothing(static_server):
    big = static_server.docroot / "big.bin"
    if not big.exists():
        big.write_bytes(b"\xab" * (4 * 1024 * 1024))
    sock = rawhttp.connect(static_server.port, receive_buffer=4096)
    sock.sendall(rawhttp.build_request("/big.bin", headers=[("Connection", "close")]))
    sock.recv(1024)
    rawhttp.reset(sock)
    assert_still_serves(static_server)


def test_a_client_that_only_connects_and_leaves_costs_nothing(static_server):
    for _ in range(20):
        rawhttp.connect(static_server.port).close()
    assert_still_serves(static_server)


# -- Starting and stopping, as a student does ------------------------------------

def test_startup_line_names_the_real_port(static_server):
    first_line = static_server.output().splitlines()[0]
    match = STARTUP_LINE.fullmatch(first_line)
    assert match and int(match["port"]) == static_server.port != 0
    assert match["host"] == "127.0.0.1"


@pytest.fixture
def lesson(static_server):
    return script_path(static_server.lesson)


def test_default_docroot_is_the_course_site_whatever_the_working_folder(launch, lesson, tmp_path):
    server = launch(lesson, cwd=tmp_path)  # no --directory
    response = rawhttp.request(server.port, "/")
    assert response.status == 200
    assert response.body == (lesson.parent.parent / "html" / "index.html").read_bytes()


def test_ctrl_c_with_a_connection_open_exits_cleanly(launch, lesson, docroot):
    server = launch(lesson, directory=docroot)
    with rawhttp.connect(server.port) as idle_client:
        idle_client.sendall(b"GET / HTTP/1.1\r\n")  # a request left half-sent
        assert server.stop() == []
    assert server.process.returncode == 0
    assert server.output().splitlines()[-1].strip(), "Ctrl+C should say one line"


def test_serves_on_ipv6_loopback(launch, lesson, docroot):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("::1 is not configured on this machine")
    server = launch(lesson, directory=docroot, bind="::1")
    assert "(http://[::1]:%d/)" % server.port in server.output()
    response = rawhttp.request(server.port, "/notes.txt", host="::1")
    assert response.body == b"plain text\n"


def test_port_in_use_is_a_one_line_error(launch, lesson, docroot):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_script(lesson, port, "--directory", docroot)
    assert "port %d" % port in one_line_error(result)


@pytest.mark.parametrize("timeout", ["0", "-1", "nan"])
def test_a_timeout_not_above_zero_is_a_one_line_error(lesson, docroot, timeout):
    result = run_script(lesson, "0", "--timeout", timeout, "--directory", docroot)
    assert "--timeout" in one_line_error(result)
