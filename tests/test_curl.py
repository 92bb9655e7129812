"""Every server lesson serves the course site to curl, as its "Try it" commands use it.

Debian's curl, a client none of us wrote: -v GET, -I HEAD, --http1.0,
--compressed, -r ranges, redirects, and two URLs on one command line (which
reuses the connection when the server keeps it alive).  curl reports each
transfer and its headers as JSON (-w); bodies go to files (-o) and are compared
byte for byte with html/.
"""

import json
import os
import shutil
import subprocess

import pytest

from course_site import (BROKEN_LINK, CHINESE_PAGE, FOLDER, HOME, assert_serves_file, site_file,
                         unavailable)
from course_site import site_server  # noqa: F401 -- a fixture

CURL = shutil.which("curl")
MAX_TIME = 20  # seconds curl may spend on one command (--max-time)


class Transfer:
    """One URL's transfer, as curl's -w '%{json}%{header_json}' reports it, plus its body."""

    def __init__(self, info, headers, body):
        self.info = info
        self.body = body
        self.status = info["response_code"]
        self.headers = {name.lower(): values for name, values in headers.items()}

    def header(self, name):
        values = self.headers.get(name.lower())
        return ", ".join(values) if values else None

    def __repr__(self):
        return "<curl %s -> %s, %d bytes>" % (self.info.get("url"), self.status, len(self.body))


class Curl:
    def __init__(self, server, folder):
        self.server = server
        self.folder = folder
        self.runs = 0

    def __call__(self, *args, paths=(), expect_exit=0):
        """Run curl with args and one '-o FILE URL' per path; return (Transfers, stderr)."""
        if not CURL:
            unavailable("curl is not installed (apt-get install curl)")
        self.runs += 1
        outputs = []
        targets = []
        for index, path in enumerate(paths):
            output = self.folder / ("run%d-body%d" % (self.runs, index))
            outputs.append(output)
            targets += ["-o", str(output), self.server.url + path]
        # -q first: ignore any ~/.curlrc.  No proxy, whatever the environment says.
        command = [CURL, "-q", "--silent", "--show-error", "--noproxy", "*",
                   "--max-time", str(MAX_TIME), "-w", "%{json}%{header_json}", *args, *targets]
        result = subprocess.run(command, capture_output=True, timeout=MAX_TIME + 10,
                                stdin=subprocess.DEVNULL, env=without_proxies(os.environ))
        stderr = result.stderr.decode("utf-8", "replace")
        assert result.returncode == expect_exit, "%s exited %d: %s" % (
            " ".join(command), result.returncode, stderr[-2000:])
        reports = json_objects(result.stdout.decode("utf-8"))
        assert len(reports) == 2 * len(paths), result.stdout
        transfers = [Transfer(info, headers, output.read_bytes() if output.exists() else b"")
                     for info, headers, output in zip(reports[::2], reports[1::2], outputs)]
        return transfers, stderr


def json_objects(text):
    """The JSON values written one after another in text (curl's -w output)."""
    decoder = json.JSONDecoder()
    values = []
    position = 0
    while text[position:].strip():
        while text[position].isspace():
            position += 1
        value, position = decoder.raw_decode(text, position)
        values.append(value)
    return values


def without_proxies(environment):
    return {name: value for name, value in environment.items()
            if not name.lower().endswith("_proxy")}


@pytest.fixture
def curl(site_server, tmp_path):  # noqa: F811 -- a fixture by name
    return Curl(site_server, tmp_path)


def test_verbose_get_shows_the_exchange_and_brings_the_home_page(curl):
    (home,), verbose = curl("-v", paths=[HOME])
    assert_serves_file(HOME, home.status, home.header, home.body)
    assert "> GET / HTTP/1.1" in verbose
    assert "< HTTP/1.1 200 OK" in verbose
    assert "< content-length: %d" % len(site_file(HOME)) in verbose.lower()


@pytest.mark.parametrize("path", ["/style.css", "/app.js", "/images/c10k.png", "/favicon.ico",
                                  "/images/server-models.svg", CHINESE_PAGE, FOLDER])
def test_get_brings_every_file_of_the_site_byte_exact(curl, path):
    (transfer,), _ = curl(paths=[path])
    assert_serves_file(path, transfer.status, transfer.header, transfer.body)


def test_head_with_dash_capital_i_gets_the_head_and_no_body(curl):
    (head,), verbose = curl("-I", "-v", paths=["/style.css"])
    assert head.status == 200
    assert head.info["size_download"] == 0
    assert head.header("Content-Length") == str(len(site_file("/style.css")))
    assert head.header("Content-Type").startswith("text/css")
    assert "> HEAD /style.css HTTP/1.1" in verbose
    assert head.body.startswith(b"HTTP/1.1 200 ") and head.body.endswith(b"\r\n\r\n")


def test_http_1_0_requests_are_answered_one_connection_each(curl):
    transfers, verbose = curl("--http1.0", "-v", paths=["/app.js", "/style.css"])
    assert "> GET /app.js HTTP/1.0" in verbose
    for path, transfer in zip(["/app.js", "/style.css"], transfers):
        assert_serves_file(path, transfer.status, transfer.header, transfer.body)
    # An HTTP/1.0 client did not ask for keep-alive: each request had its own connection.
    assert [transfer.info["num_connects"] for transfer in transfers] == [1, 1]


def test_compressed_transfer_decodes_to_the_file(curl):
    (transfer,), verbose = curl("--compressed", "-v", paths=["/style.css"])
    assert "> Accept-Encoding: " in verbose
    encoding = transfer.header("Content-Encoding")
    assert transfer.status == 200
    assert transfer.body == site_file("/style.css")  # curl decoded it, if it was encoded
    if encoding:  # a lesson that serves gzip: the compressed body is what was framed
        assert encoding == "gzip", encoding
        assert transfer.header("Content-Length") in (None, str(transfer.info["size_download"]))
        assert "accept-encoding" in (transfer.header("Vary") or "").lower()
    else:  # identity, exactly as on disk
        assert_serves_file("/style.css", transfer.status, transfer.header, transfer.body)


@pytest.mark.parametrize("byte_range, start, end", [("0-99", 0, 100), ("-100", -100, None),
                                                    ("100-", 100, None)])
def test_range_request_gets_that_part_or_the_whole_file(curl, byte_range, start, end):
    path = "/images/c10k.png"
    whole = site_file(path)
    (transfer,), _ = curl("-r", byte_range, paths=[path])
    if transfer.status == 206:  # ranges supported: exactly the part asked for
        part = whole[start:end]
        first = start % len(whole)
        assert transfer.body == part
        assert transfer.header("Content-Range") == "bytes %d-%d/%d" % (
            first, first + len(part) - 1, len(whole))
        assert transfer.header("Content-Length") == str(len(part))
    else:  # a server may ignore Range, but must not then claim to support it
        assert_serves_file(path, transfer.status, transfer.header, transfer.body)
        assert (transfer.header("Accept-Ranges") or "none") == "none"


def test_two_urls_share_one_connection_exactly_when_the_lesson_keeps_it_alive(curl):
    transfers, verbose = curl("-v", paths=["/style.css", "/app.js"])
    for path, transfer in zip(["/style.css", "/app.js"], transfers):
        assert_serves_file(path, transfer.status, transfer.header, transfer.body)
    connects = [transfer.info["num_connects"] for transfer in transfers]
    if curl.server.keeps_alive:
        assert connects == [1, 0], verbose
        assert "Re-using existing connection" in verbose
    else:
        assert connects == [1, 1], verbose
        assert transfers[0].header("Connection") == "close"


def test_broken_link_is_a_404_html_page_and_fail_makes_curl_exit_22(curl):
    (missing,), _ = curl(paths=[BROKEN_LINK])
    assert missing.status == 404
    assert missing.header("Content-Type").startswith("text/html")
    assert b"404" in missing.body
    assert missing.header("Content-Length") == str(len(missing.body))
    curl("--fail", paths=[BROKEN_LINK], expect_exit=22)


def test_folder_without_slash_redirects_and_location_leads_to_its_index(curl):
    (moved,), _ = curl(paths=[FOLDER.rstrip("/")])
    assert moved.status == 301
    assert moved.header("Location").endswith(FOLDER)
    (followed,), _ = curl("-L", paths=[FOLDER.rstrip("/")])
    assert followed.info["num_redirects"] == 1
    assert followed.info["url_effective"] == curl.server.url + FOLDER
    assert_serves_file(FOLDER, followed.status, followed.header, followed.body)

