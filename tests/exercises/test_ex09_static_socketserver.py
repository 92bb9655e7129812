"""Exercise 09 · Range requests

Range: bytes=a-b, bytes=a- and bytes=-n get 206 Partial Content with
Content-Range: bytes a-b/size and exactly those bytes; 200s carry
Accept-Ranges: bytes; an unsatisfiable range gets 416 with Content-Range:
bytes */size; a malformed or multi-range header may be ignored (a full 200).
"""

import pytest

import rawhttp
from servers import make_docroot

LESSON = "09_static_socketserver"
HINT = ("lessons/09_static_socketserver.py, docstring 'Exercise'; answer() (the shared "
        "\"http\" block) builds a file's answer with file_head(), and a large file is queued as "
        "a FileBody sent from its offset: both learn about a first byte")

SMALL = bytes(range(256)) * 8  # 2048 bytes, sent with the head in one call
LARGE = bytes(range(251)) * 1200  # 301200 bytes, sent with sendfile()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_docroot(tmp_path_factory.mktemp("ex09") / "root")
    (root / "small.bin").write_bytes(SMALL)
    (root / "large.bin").write_bytes(LARGE)
    return root


def start(exercise, site):
    return exercise.shared_server(directory=site)


def ranged(http, server, path, spec):
    return http.request(server, path, headers=[("Range", spec)])


def assert_part(response, first, last, data):
    assert response.status == 206, "a satisfiable range gets 206 Partial Content"
    assert response.header("Content-Range") == "bytes %d-%d/%d" % (first, last, len(data))
    assert response.header("Content-Length") == str(last - first + 1)
    assert response.body == data[first:last + 1], "exactly bytes %d to %d" % (first, last)


@pytest.mark.points(2)
def test_a_first_last_range_gets_exactly_those_bytes(exercise, http, site):
    server = start(exercise, site)
    assert_part(ranged(http, server, "/small.bin", "bytes=10-19"), 10, 19, SMALL)
    assert_part(ranged(http, server, "/small.bin", "bytes=0-0"), 0, 0, SMALL)


def test_an_open_range_or_a_last_position_past_the_end_runs_to_the_end(exercise, http, site):
    server = start(exercise, site)
    assert_part(ranged(http, server, "/small.bin", "bytes=2000-"), 2000, 2047, SMALL)
    assert_part(ranged(http, server, "/small.bin", "bytes=2040-99999"), 2040, 2047, SMALL)


def test_a_suffix_range_gets_the_last_n_bytes(exercise, http, site):
    server = start(exercise, site)
    assert_part(ranged(http, server, "/small.bin", "bytes=-100"), 1948, 2047, SMALL)
    assert_part(ranged(http, server, "/small.bin", "bytes=-5000"), 0, 2047, SMALL)


@pytest.mark.points(2)
def test_a_range_of_a_large_file_is_exact_too(exercise, http, site):
    server = start(exercise, site)
    assert_part(ranged(http, server, "/large.bin", "bytes=100000-199999"), 100000, 199999,
                LARGE)
    assert_part(ranged(http, server, "/large.bin", "bytes=-70000"), len(LARGE) - 70000,
                len(LARGE) - 1, LARGE)


@pytest.mark.points(2)
def test_an_unsatisfiable_range_is_refused_with_the_size(exercise, http, site):
    server = start(exercise, site)
    for spec in ("bytes=2048-", "bytes=5000-6000"):
        response = ranged(http, server, "/small.bin", spec)
        assert response.status == 416, "%s lies beyond the 2048 bytes: 416" % spec
        assert response.header("Content-Range") == "bytes */2048"


def test_whole_files_advertise_accept_ranges_and_odd_range_headers_get_the_whole_file(
        exercise, http, site):
    server = start(exercise, site)
    whole = http.request(server, "/small.bin")
    assert whole.status == 200 and whole.header("Accept-Ranges") == "bytes"
    for spec in ("bytes=abc", "pages=1-2", "bytes=0-1,5-6"):
        response = ranged(http, server, "/small.bin", spec)
        if response.status == 206:  # a multi-range answer is allowed, as multipart
            assert spec == "bytes=0-1,5-6" and "multipart/byteranges" in response.header(
                "Content-Type", "")
        else:
            assert response.status == 200 and response.body == SMALL, \
                "%r may be ignored: then the whole file" % spec


def test_ranges_keep_the_connection_alive(exercise, http, site):
    server = start(exercise, site)
    with http.connect(server) as connection:
        for first, last in ((0, 9), (100, 199)):
            connection.sendall(rawhttp.build_request(
                "/small.bin", headers=[("Range", "bytes=%d-%d" % (first, last))]))
            assert_part(connection.read_response(), first, last, SMALL)
