"""Exercise 03 · the client follows redirects

With --follow, a 301, 302, 303, 307 or 308 response with a Location is
followed (a relative Location resolved against the current URL), each hop
printed; at most 5 redirects: a loop or a 6th redirect is a one-line error
with exit status 1.  Without --follow nothing changes.
"""

import http.server
import re
import threading
from http import HTTPStatus

import pytest

LESSON = "03_http_client"
HINT = ("lessons/03_http_client.py, docstring 'Exercise'; run() makes one exchange and returns "
        "nothing yet: the response's status and Location header decide the next URL")

FINAL_PAGE = b"<p>the final page</p>\n"


class RedirectingSite(http.server.ThreadingHTTPServer):
    """The grader's own web server: redirects by path, and a log of what it was asked."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.log = []  # (request line, status, location)
        self.lock = threading.Lock()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.server_address[1], path)

    def answer(self, path):
        """(status, Location or None) for a path."""
        if path == "/final":
            return 200, None
        match = re.fullmatch(r"/status/(\d{3})", path)
        if match:
            return int(match[1]), "/final"
        match = re.fullmatch(r"/chain/(\d+)", path)  # N more redirects to go
        if match:
            left = int(match[1])
            return (302, "/chain/%d" % (left - 1)) if left else (200, None)
        if path == "/relative/deeper/start":
            return 302, "../next"  # -> /relative/next
        if path == "/relative/next":
            return 301, self.url("/final")  # an absolute Location
        if path in ("/loop/a", "/loop/b"):
            return 302, "/loop/b" if path == "/loop/a" else "/loop/a"
        return 404, None

    def paths(self):
        with self.lock:
            return [line.split()[1] for line, _, _ in self.log]

    def shown(self):
        with self.lock:
            return "\n".join("  %s  ->  %d%s" % (line, status,
                                                 " Location: " + location if location else "")
                             for line, status, location in self.log) or "  (no request at all)"


class Handler(http.server.BaseHTTPRequestHandler):
    timeout = 5  # a client that stalls cannot hold a thread of the test
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        status, location = self.server.answer(self.path)
        with self.server.lock:
            self.server.log.append((self.requestline, status, location))
        body = FINAL_PAGE if status == 200 else b"redirecting\n" if location else b"not here\n"
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_HEAD = do_GET

    def log_message(self, *args):  # the log above is the record; stderr stays quiet
        pass


@pytest.fixture
def site(http):
    server = RedirectingSite()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    http.note("What the grader's web server was asked, and answered", server.shown)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def fetch(exercise, site, path, *options):
    status, output = exercise.run(site.url(path), *options)
    assert "Traceback" not in output, "the client crashed with a traceback"
    return status, output


# Ids without digits, so that `-k 01` selects exercise 01 and not "301".
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308],
                         ids=lambda status: HTTPStatus(status).name.lower())
def test_each_redirect_status_is_followed_to_the_final_page(exercise, site, status):
    code, output = fetch(exercise, site, "/status/%d" % status, "--follow")
    assert site.paths() == ["/status/%d" % status, "/final"], \
        "after a %d the client asks for its Location, /final" % status
    assert code == 0 and FINAL_PAGE.decode().strip() in output


@pytest.mark.points(2)
def test_relative_and_absolute_locations_are_resolved_against_the_current_url(exercise, site):
    code, output = fetch(exercise, site, "/relative/deeper/start", "--follow")
    assert site.paths() == ["/relative/deeper/start", "/relative/next", "/final"], \
        "'../next' seen from /relative/deeper/start is /relative/next"
    assert code == 0


@pytest.mark.points(2)
def test_every_hop_is_printed_request_and_response(exercise, site):
    code, output = fetch(exercise, site, "/relative/deeper/start", "--follow")
    for path in ("/relative/deeper/start", "/relative/next", "/final"):
        assert re.search(r"GET %s HTTP/1\.[01]" % re.escape(path), output), \
            "the request for %s is printed" % path
    for status in ("302", "301", "200"):
        assert re.search(r"HTTP/1\.[01] %s " % status, output), \
            "the %s response is printed" % status


def test_five_redirects_are_followed(exercise, site):
    code, output = fetch(exercise, site, "/chain/5", "--follow")
    assert site.paths()[-1] == "/chain/0" and len(site.paths()) == 6
    assert code == 0 and FINAL_PAGE.decode().strip() in output


@pytest.mark.points(1)
def test_a_sixth_redirect_is_a_one_line_error_with_exit_status_1(exercise, site):
    code, output = fetch(exercise, site, "/chain/6", "--follow")
    assert len(site.paths()) == 6 and "/chain/0" not in site.paths(), \
        "the first request and 5 redirects: the 6th redirect is not followed"
    assert code == 1, "too many redirects: exit status 1"


@pytest.mark.points(1)
def test_a_redirect_loop_is_an_error_with_exit_status_1(exercise, site):
    code, output = fetch(exercise, site, "/loop/a", "--follow")
    assert code == 1, "a redirect loop: exit status 1"
    assert len(site.paths()) <= 6, "it gave up after at most 5 redirects"


def test_follow_is_opt_in_without_it_one_request_is_made(exercise, site):
    code, output = fetch(exercise, site, "/status/302")
    assert site.paths() == ["/status/302"] and code == 0
    code, output = fetch(exercise, site, "/status/302", "--follow")
    assert site.paths()[1:] == ["/status/302", "/final"], "with --follow, it follows"
