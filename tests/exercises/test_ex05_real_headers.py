"""Exercise 05 · conditional requests

A 200 for a file carries an ETag (a quoted string that changes with the
file) and Last-Modified; If-None-Match naming the current ETag (or "*"), or
else If-Modified-Since not older than Last-Modified, gets 304 Not Modified
with the same ETag and no body.
"""

import email.utils
import os
import re

import pytest

import rawhttp
from servers import make_docroot

LESSON = "05_real_headers"
HINT = ("lessons/05_real_headers.py, docstring 'Exercise'; answer() builds the head of every "
        "file response: the validators and the 304 decision belong there")

ENTITY_TAG = re.compile(r'(W/)?"[^"\x00-\x1f]*"')
DAY = 24 * 3600


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_docroot(tmp_path_factory.mktemp("ex05") / "root")
    os.utime(root / "notes.txt", (1_700_000_000, 1_700_000_000))  # a known, whole-second date
    return root


def start(exercise, site):
    return exercise.shared_server(directory=site)


def get(http, server, path, *headers):
    """GET with no compression asked for, on a connection closed after the response."""
    return http.request(server, path, headers=[("Accept-Encoding", "identity"), *headers])


def validators(http, server, path="/notes.txt"):
    response = get(http, server, path)
    assert response.status == 200
    etag = response.header("ETag")
    assert etag and ENTITY_TAG.fullmatch(etag), \
        "a 200 for a file carries an ETag, a quoted string such as \"abc-123\" (got %r)" % etag
    assert response.header("Last-Modified"), "a 200 for a file carries Last-Modified"
    return etag, response.header("Last-Modified")


def conditional(http, server, path, *headers):
    """A conditional GET, raw: so that a body after a 304 cannot hide."""
    request = rawhttp.build_request(path, headers=[("Accept-Encoding", "identity"),
                                                   ("Connection", "close"), *headers])
    raw = http.exchange(server, request)
    return rawhttp.parse(raw), raw


def assert_not_modified(response, raw, etag):
    assert response.status == 304, "the cached copy is current: 304 Not Modified"
    assert raw.endswith(b"\r\n\r\n") and raw.count(b"\r\n\r\n") == 1, \
        "a 304 ends with its head: no body"
    assert response.header("ETag") == etag, "a 304 carries the same ETag"


@pytest.mark.points(2)
def test_a_file_comes_with_an_etag_and_its_modification_time_in_gmt(exercise, http, site):
    server = start(exercise, site)
    _, last_modified = validators(http, server)
    assert last_modified.endswith(" GMT")
    assert email.utils.parsedate_to_datetime(last_modified).timestamp() == 1_700_000_000, \
        "Last-Modified is the file's modification time"


@pytest.mark.points(2)
def test_if_none_match_with_the_current_etag_is_not_modified_and_a_stale_one_gets_the_file(
        exercise, http, site):
    server = start(exercise, site)
    etag, _ = validators(http, server)
    assert_not_modified(*conditional(http, server, "/notes.txt", ("If-None-Match", etag)), etag)
    stale = get(http, server, "/notes.txt", ("If-None-Match", '"not-the-current-one"'))
    assert stale.status == 200 and stale.body == b"plain text\n", "another ETag: the file"


def test_if_none_match_star_or_a_list_naming_the_etag_is_not_modified(exercise, http, site):
    server = start(exercise, site)
    etag, _ = validators(http, server)
    assert_not_modified(*conditional(http, server, "/notes.txt", ("If-None-Match", "*")), etag)
    listed = '"older-one", %s' % etag
    assert_not_modified(*conditional(http, server, "/notes.txt", ("If-None-Match", listed)),
                        etag)


@pytest.mark.points(2)
def test_the_etag_changes_when_the_file_changes(exercise, http, site):
    server = start(exercise, site)
    changing = site / "changing.txt"
    changing.write_text("first version\n")
    os.utime(changing, (1_700_000_000, 1_700_000_000))
    before, _ = validators(http, server, "/changing.txt")
    changing.write_text("second version, longer\n")
    os.utime(changing, (1_700_000_100, 1_700_000_100))
    after, _ = validators(http, server, "/changing.txt")
    assert after != before, "a changed file has a new ETag"
    response = get(http, server, "/changing.txt", ("If-None-Match", before))
    assert response.status == 200 and response.body == b"second version, longer\n", \
        "the old ETag no longer matches: the new file is sent"


@pytest.mark.points(2)
def test_if_modified_since_not_older_than_last_modified_is_not_modified(exercise, http, site):
    server = start(exercise, site)
    etag, last_modified = validators(http, server)
    later = email.utils.formatdate(1_700_000_000 + DAY, usegmt=True)
    earlier = email.utils.formatdate(1_700_000_000 - DAY, usegmt=True)
    for since in (last_modified, later):
        response, raw = conditional(http, server, "/notes.txt", ("If-Modified-Since", since))
        assert_not_modified(response, raw, etag)
    response = get(http, server, "/notes.txt", ("If-Modified-Since", earlier))
    assert response.status == 200 and response.body == b"plain text\n", \
        "changed since that date: the file"


def test_if_none_match_is_decided_before_if_modified_since(exercise, http, site):
    server = start(exercise, site)
    etag, last_modified = validators(http, server)
    earlier = email.utils.formatdate(1_700_000_000 - DAY, usegmt=True)
    assert_not_modified(*conditional(http, server, "/notes.txt", ("If-None-Match", etag),
                                     ("If-Modified-Since", earlier)), etag)
    response = get(http, server, "/notes.txt", ("If-None-Match", '"stale"'),
                   ("If-Modified-Since", last_modified))
    assert response.status == 200, "with If-None-Match present, If-Modified-Since is ignored"
