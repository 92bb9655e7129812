"""Every server lesson serves the course site to the standard library's HTTP clients.

http.client is what a student's own Python client uses, and it is strict
about framing: it reads exactly Content-Length bytes (or chunks), and sends
the next request on the same socket when the response lets it.  A server
that sends a body after HEAD, a wrong length, or a silent close breaks the
next request here.  urllib.request adds redirects and error responses.
"""

import gzip
import http.client
import urllib.error
import urllib.parse
import urllib.request

import pytest

from course_site import (BROKEN_LINK, CHINESE_PAGE, FOLDER, HOME, assert_serves_file, site_file,
                         media_type)
from course_site import site_server  # noqa: F401 -- a fixture

TIMEOUT = 10.0  # seconds for any single socket operation


class HTTP10Connection(http.client.HTTPConnection):
    """http.client speaking HTTP/1.0.

    A shortcut, flagged: http.client has no public switch for the version;
    these two class attributes are the ones its own tests override.
    """

    _http_vsn = 10
    _http_vsn_str = "HTTP/1.0"


@pytest.fixture
def connection(site_server):  # noqa: F811 -- a fixture by name
    connection = http.client.HTTPConnection("127.0.0.1", site_server.port, timeout=TIMEOUT)
    yield connection
    connection.close()


def get(connection, path, method="GET", headers=None):
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    return response, response.read()


@pytest.mark.parametrize("path", [HOME, "/style.css", "/app.js", "/images/c10k.png",
                                  "/images/server-models.svg", "/favicon.ico", CHINESE_PAGE, FOLDER])
def test_get_brings_the_file_framed_by_content_length(connection, path):
    response, body = get(connection, path)
    assert response.version == 11
    assert not response.chunked
    assert_serves_file(path, response.status, response.getheader, body)


def test_head_then_get_on_one_connection_is_framed_right(connection, site_server):
    head, head_body = get(connection, "/app.js", "HEAD")
    first_socket = connection.sock
    assert head.status == 200
    assert head_body == b""
    assert head.getheader("Content-Length") == str(len(site_file("/app.js")))
    assert media_type(head.getheader("Content-Type")) in {"text/javascript",
                                                          "application/javascript"}
    # Had the server sent a body after the HEAD, the GET would read it as its status line.
    response, body = get(connection, "/app.js")
    assert_serves_file("/app.js", response.status, response.getheader, body)
    if site_server.keeps_alive:
        assert not head.will_close and connection.sock is first_socket
    else:
        assert head.will_close


def test_two_requests_share_one_connection_exactly_when_the_lesson_keeps_it_alive(
        connection, site_server):
    first, body = get(connection, "/style.css")
    assert_serves_file("/style.css", first.status, first.getheader, body)
    first_socket = connection.sock
    first_address = first_socket.getsockname() if first_socket else None
    second, body = get(connection, "/images/c10k.png")
    assert_serves_file("/images/c10k.png", second.status, second.getheader, body)
    if site_server.keeps_alive:
        assert not first.will_close, first.getheader("Connection")
        assert connection.sock is first_socket
        assert connection.sock.getsockname() == first_address
    else:
        assert first.will_close and first.getheader("Connection") == "close"


def test_http_1_0_request_is_answered_and_the_connection_ends(site_server):
    connection = HTTP10Connection("127.0.0.1", site_server.port, timeout=TIMEOUT)
    try:
        response, body = get(connection, "/app.js")
        assert_serves_file("/app.js", response.status, response.getheader, body)
        # An HTTP/1.0 client that did not ask for keep-alive must be told the
        # connection ends, or a client like http.client would reuse a dead socket.
        assert response.will_close, dict(response.getheaders())
    finally:
        connection.close()


def test_gzip_asked_for_decodes_to_the_file(connection):
    response, body = get(connection, "/style.css", headers={"Accept-Encoding": "gzip"})
    encoding = response.getheader("Content-Encoding")
    if encoding:  # a lesson that serves gzip
        assert encoding == "gzip"
        assert gzip.decompress(body) == site_file("/style.css")
        assert "accept-encoding" in (response.getheader("Vary") or "").lower()
    else:
        assert_serves_file("/style.css", response.status, response.getheader, body)


@pytest.mark.parametrize("byte_range, start, end", [("bytes=0-99", 0, 100),
                                                    ("bytes=-100", -100, None)])
def test_range_header_gets_that_part_or_the_whole_file(connection, byte_range, start, end):
    path = "/images/c10k.png"
    whole = site_file(path)
    response, body = get(connection, path, headers={"Range": byte_range})
    if response.status == 206:
        part = whole[start:end]
        first = start % len(whole)
        assert body == part
        assert response.getheader("Content-Range") == "bytes %d-%d/%d" % (
            first, first + len(part) - 1, len(whole))
    else:
        assert_serves_file(path, response.status, response.getheader, body)
        assert (response.getheader("Accept-Ranges") or "none") == "none"
    # The connection is still in step: the next response is the next file.
    again, body = get(connection, "/style.css")
    assert_serves_file("/style.css", again.status, again.getheader, body)


def test_missing_page_is_a_404_html_page_with_the_right_length(connection):
    response, body = get(connection, BROKEN_LINK)
    assert response.status == 404
    assert media_type(response.getheader("Content-Type")) == "text/html"
    assert response.getheader("Content-Length") == str(len(body))
    assert b"404" in body


# -- urllib.request, as a student's script would fetch the site ------------------------

def opener():
    """urllib without any proxy from the environment: the servers are on loopback."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_urllib_follows_the_folder_redirect_to_its_index(site_server):
    with opener().open(site_server.url + FOLDER.rstrip("/"), timeout=TIMEOUT) as response:
        body = response.read()
        assert response.geturl() == site_server.url + FOLDER
        assert_serves_file(FOLDER, response.status, response.headers.get, body)


def test_urllib_fetches_the_chinese_page_by_its_quoted_name(site_server):
    url = site_server.url + "/" + urllib.parse.quote("中文.html")
    assert url == site_server.url + CHINESE_PAGE
    with opener().open(url, timeout=TIMEOUT) as response:
        body = response.read()
        assert_serves_file(CHINESE_PAGE, response.status, response.headers.get, body)
    assert "术语表" in body.decode("utf-8")


def test_urllib_raises_http_error_404_with_the_error_page(site_server):
    with pytest.raises(urllib.error.HTTPError) as raised:
        opener().open(site_server.url + BROKEN_LINK, timeout=TIMEOUT)
    with raised.value as error:
        assert error.code == 404
        assert media_type(error.headers.get("Content-Type")) == "text/html"
        assert b"404" in error.read()
