"""Exercise 11 · gzip

Text (text/*, JavaScript, JSON, SVG) is gzip-compressed when Accept-Encoding
allows gzip (q > 0), with Content-Encoding: gzip and the compressed
Content-Length; every response for those types carries Vary:
Accept-Encoding; binary types, and clients without gzip, get the identity
body.
"""

import gzip
import json

import pytest

import rawhttp
from servers import make_docroot

LESSON = "11_static_gevent"
HINT = ("lessons/11_static_gevent.py, docstring 'Exercise'; CachedFile.response() (small files) "
        "and answer() with file_head() (the shared \"http\" block) build each file's answer: "
        "Content-Encoding, Vary and the Content-Length of what is sent go there")

TEXT_FILES = ["/style.css", "/app.js", "/notes.txt", "/index.html", "/data.json", "/logo.svg",
              "/big.txt"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_docroot(tmp_path_factory.mktemp("ex11") / "root")
    (root / "data.json").write_text(json.dumps({"lesson": 11, "words": ["gzip"] * 50}))
    (root / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg">'
                                   + '<circle r="1"/>' * 40 + "</svg>\n")
    (root / "big.txt").write_text("a line of text that repeats, as text does\n" * 5000)
    return root


def start(exercise, site):
    return exercise.shared_server(directory=site)


def fetch(http, server, path, accept_encoding=None, method="GET"):
    headers = [("Accept-Encoding", accept_encoding)] if accept_encoding is not None else []
    return http.request(server, path, method=method, headers=headers)


def assert_gzipped(response, original):
    assert response.status == 200
    assert response.header("Content-Encoding") == "gzip", "text for a gzip client is gzipped"
    assert response.header("Content-Length") == str(len(response.body)), \
        "Content-Length counts the compressed bytes"
    assert gzip.decompress(response.body) == original, "the body unzips to the file"
    assert "accept-encoding" in (response.header("Vary") or "").lower()


def assert_identity(response, original, text):
    assert response.status == 200
    assert response.header("Content-Encoding") in (None, "identity"), "sent as it is"
    assert response.body == original
    if text:
        assert "accept-encoding" in (response.header("Vary") or "").lower(), \
            "a text response varies with Accept-Encoding, even uncompressed"


@pytest.mark.parametrize("path", TEXT_FILES, ids=lambda path: path.strip("/").replace(".", "-"))
def test_text_is_gzipped_for_a_client_that_accepts_gzip(exercise, http, site, path):
    server = start(exercise, site)
    original = (site / path.lstrip("/")).read_bytes()
    assert_gzipped(fetch(http, server, path, "gzip, deflate, br"), original)


@pytest.mark.parametrize("accept, gzipped", [
    ("gzip", True), ("deflate, gzip;q=0.5", True), ("*", True), ("GZIP", True),
    ("gzip;q=0", False), ("identity", False), ("br, deflate", False), ("gzip;q=0, *", False),
], ids=["gzip", "gzip-half", "star", "upper-case", "gzip-refused", "identity", "no-gzip",
        "star-but-not-gzip"])
def test_the_accept_encoding_weights_decide(exercise, http, site, accept, gzipped):
    server = start(exercise, site)
    original = (site / "style.css").read_bytes()
    response = fetch(http, server, "/style.css", accept)
    if gzipped:
        assert_gzipped(response, original)
    else:
        assert_identity(response, original, text=True)


@pytest.mark.points(2)
def test_only_text_is_compressed_and_without_accept_encoding_nothing_is(exercise, http, site):
    server = start(exercise, site)
    assert_identity(fetch(http, server, "/image.png", "gzip"), (site / "image.png").read_bytes(),
                    text=False)
    assert_identity(fetch(http, server, "/notes.txt"), (site / "notes.txt").read_bytes(),
                    text=True)


def test_head_announces_the_same_compressed_length_without_a_body(exercise, http, site):
    server = start(exercise, site)
    get = fetch(http, server, "/big.txt", "gzip")
    head = fetch(http, server, "/big.txt", "gzip", method="HEAD")
    assert head.status == 200 and head.header("Content-Encoding") == "gzip"
    assert head.header("Content-Length") == get.header("Content-Length") == str(len(get.body))


def test_gzipped_responses_keep_the_connection_alive(exercise, http, site):
    server = start(exercise, site)
    with http.connect(server) as connection:
        for path in ("/style.css", "/big.txt", "/app.js"):
            connection.sendall(rawhttp.build_request(path, headers=[("Accept-Encoding", "gzip")]))
            assert_gzipped(connection.read_response(), (site / path.lstrip("/")).read_bytes())
