"""The course site (html/) served by every server lesson, for the real-client tests.

test_browser.py, test_curl.py and test_stdlib_clients.py each run the same
servers: every id in servers.STATIC_SERVERS from lessons/, and its solution
from solutions/ when that file exists.  A new lesson or solution joins them
without an edit here.  The servers serve the real html/ through their default
docroot, as a student starts them.
"""

import email.utils
import os
import urllib.parse
from pathlib import Path

import pytest

import rawhttp
import servers
from servers import REPO, STATIC_SERVERS, script_path, start_server

SITE = REPO / "html"
SOLUTIONS = REPO / "solutions"

HOME = "/"
CHINESE_PAGE = "/%E4%B8%AD%E6%96%87.html"  # 中文.html, as a browser sends it
BROKEN_LINK = "/this-page-does-not-exist.html"  # linked from the home page on purpose
FOLDER = "/models/"
# The page of every server lesson (html/lessons/NN_name.html) and their index.
LESSON_PAGES = ["/lessons/"] + ["/lessons/%s.html" % lesson for lesson in STATIC_SERVERS]

# Media types a browser accepts for each kind of file, by extension.
MEDIA_TYPES = {
    ".html": {"text/html"},
    ".css": {"text/css"},  # a stylesheet of any other type is ignored
    ".js": {"text/javascript", "application/javascript"},
    ".svg": {"image/svg+xml"},  # browsers never sniff SVG: the type must be right
    ".png": {"image/png"},
    ".ico": {"image/vnd.microsoft.icon", "image/x-icon"},
}


def served_scripts():
    """pytest params: every server lesson, then its solution if it exists."""
    params = []
    for lesson_id in STATIC_SERVERS:
        lesson = script_path(lesson_id)  # LESSONS_FOLDER may point it at solutions/ already
        params.append(pytest.param(lesson, id=lesson_id))
        solution = script_path(lesson_id, SOLUTIONS)
        if solution.is_file() and solution.resolve() != lesson.resolve():
            params.append(pytest.param(solution, id="solution-" + lesson_id))
    return params


def site_file(url_path):
    """The bytes a server must send for url_path (percent-decoded, index.html for folders)."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url_path).path)
    if path.endswith("/"):
        path += "index.html"
    return (SITE / path.lstrip("/")).read_bytes()


def media_type(content_type):
    return (content_type or "").split(";")[0].strip().lower()


def expected_media_types(url_path):
    path = urllib.parse.urlsplit(url_path).path
    return MEDIA_TYPES[os.path.splitext(path if not path.endswith("/") else "x.html")[1]]


def assert_serves_file(path, status, header, body):
    """A client got path byte for byte, framed by Content-Length, typed for a browser.

    header(name) returns the response's value for name, or None.
    """
    expected = site_file(path)
    assert status == 200, "%s: status %s" % (path, status)
    assert body == expected, "%s: %d bytes, not the file's %d" % (path, len(body), len(expected))
    assert header("Content-Length") == str(len(expected)), path
    content_type = header("Content-Type")
    assert media_type(content_type) in expected_media_types(path), (path, content_type)
    if media_type(content_type).startswith("text/"):
        assert "charset=utf-8" in content_type.lower().replace(" ", ""), (path, content_type)
    assert email.utils.parsedate_to_datetime(header("Date")).tzname() == "UTC", header("Date")
    assert header("Server"), "no Server header"


def unavailable(reason):
    """Skip a test whose real client is missing here, but fail it in CI.

    CI (CI=true) must run these tests: there, a missing browser or curl is a
    broken .ci/run, not a reason to skip.
    """
    if os.environ.get("CI"):
        pytest.fail("%s -- CI must run this test: install it in .ci/run" % reason)
    pytest.skip(reason)


def answers_with_connection_close(port):
    """Ask like an HTTP/1.1 client (no Connection header); did the server say 'close'?"""
    with rawhttp.connect(port) as sock:
        sock.sendall(rawhttp.build_request(HOME))
        response = rawhttp.ResponseReader(sock).read_response()
    assert response.status == 200, response
    return (response.header("Connection") or "").lower() == "close"


def keeps_connections_alive(server):
    """Whether clients must see a connection carry several responses.

    The lessons in servers.CONCURRENT_SERVERS promise keep-alive (the tests
    then also check they do not answer 'Connection: close'); any other lesson
    is held to what its Connection header says.
    """
    return server.lesson in servers.CONCURRENT_SERVERS or not server.says_close


@pytest.fixture(scope="module", params=served_scripts())
def site_server(request, tmp_path_factory):
    """One server per lesson (or solution) and test module, serving the real html/."""
    script = Path(request.param)
    kind = "solution-" if script.parent == SOLUTIONS else ""
    log_folder = tmp_path_factory.mktemp(kind + script.stem)
    server = start_server(script, log_path=log_folder / "server.log")  # default docroot
    server.lesson = script.stem
    server.name = kind + script.stem
    try:
        server.says_close = answers_with_connection_close(server.port)
        server.keeps_alive = keeps_connections_alive(server)
        server.url = "http://127.0.0.1:%d" % server.port
        yield server
    finally:
        problems = server.stop()
        print("---- output of %s ----\n%s" % (script, server.output()))
    assert not problems, "server did not stop cleanly: %s" % "; ".join(problems)
