"""Lessons 11 and 13 answer small files from memory, and the memory stays honest.

Both keep a small file's response (nginx's open_file_cache), format the
Date header once a second and remember request heads they have parsed;
both have --quiet, which drops the access-log line per answer.  A cache may
serve an edited file for at most the rest of the second it was checked in.
"""

import time

import pytest

import rawhttp
from servers import script_path

CACHING_LESSONS = ["11_static_gevent", "13_static_epoll"]


@pytest.fixture(params=CACHING_LESSONS)
def lesson(request):
    return script_path(request.param)


def test_an_edited_file_is_served_fresh_within_a_second(launch, lesson, docroot):
    server = launch(lesson, directory=docroot)
    page = docroot / "fresh.txt"
    page.write_text("first version\n")
    assert rawhttp.request(server.port, "/fresh.txt").body == b"first version\n"
    page.write_text("second, longer version\n")
    time.sleep(1.1)  # the documented bound: a cached answer is trusted for the rest of its second
    assert rawhttp.request(server.port, "/fresh.txt").body == b"second, longer version\n"
    page.unlink()
    time.sleep(1.1)
    assert rawhttp.request(server.port, "/fresh.txt").status == 404


def test_cached_answers_still_carry_the_current_date_and_honour_head(launch, lesson, docroot):
    server = launch(lesson, directory=docroot)
    first = rawhttp.request(server.port, "/notes.txt")
    time.sleep(1.1)  # into the next second of the clock
    second = rawhttp.request(server.port, "/notes.txt")
    assert first.header("Date") != second.header("Date")
    with rawhttp.connect(server.port) as sock:
        sock.sendall(rawhttp.build_request("/notes.txt", "HEAD", [("Connection", "close")]))
        raw = rawhttp.ResponseReader(sock).read_until_close()
    assert raw.endswith(b"\r\n\r\n") and b"Content-Length: 11\r\n" in raw


def test_quiet_drops_the_line_per_answer_but_keeps_errors(launch, lesson, docroot):
    server = launch(lesson, "--quiet", directory=docroot)
    assert rawhttp.request(server.port, "/notes.txt").status == 200
    assert rawhttp.request(server.port, "/missing.txt").status == 404
    assert rawhttp.request(server.port, "/notes.txt").status == 200  # after the 404 is logged
    output = server.output()
    assert '"GET /missing.txt HTTP/1.1" 404' in output
    assert "/notes.txt" not in output
