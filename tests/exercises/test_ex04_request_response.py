"""Exercise 04 · Expect: 100-continue

A request with "Expect: 100-continue" gets "HTTP/1.1 100 Continue" before
the server reads its body, then the final response; a body announced too
large gets 413 at once, without the 100 and without waiting for the body.
"""

import json

import pytest
import rawhttp

LESSON = "04_request_response"
HINT = ("lessons/04_request_response.py, docstring 'Exercise'; handle_connection() calls "
        "read_body() right after parsing the head: the 100 goes between the two")

INTERIM_WAIT = 4.0  # seconds to wait for the 100; a solved server sends it at once
TOO_LARGE = 10 ** 9  # bytes announced; the lesson's limit is 1 MiB


def start(exercise):
    return exercise.shared_server()


def head_expecting_continue(length=None, chunked=False):
    headers = [("Accept", "application/json"), ("Content-Type", "text/plain"),
               ("Expect", "100-continue"), ("Connection", "close")]
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        headers.append(("Content-Length", str(length)))
    return rawhttp.build_request("/upload", "POST", headers)


def read_interim(connection):
    """The 100 Continue, read before any body byte was sent."""
    connection.settimeout(INTERIM_WAIT)
    response = connection.read_response("POST")
    connection.settimeout(rawhttp.TIMEOUT)
    return response


def body_described(response):
    """The body text the lesson's JSON page says it received."""
    view = json.loads(response.body)
    return json.dumps(view.get("body"))


@pytest.mark.points(3)
def test_continue_comes_before_the_body_and_the_final_response_after_it(exercise, http):
    server = start(exercise)
    body = b"the body, sent only when invited"
    with http.connect(server) as connection:
        connection.sendall(head_expecting_continue(len(body)))
        interim = read_interim(connection)
        assert (interim.status, interim.reason) == (100, "Continue"), \
            "the first thing back is the interim 'HTTP/1.1 100 Continue'"
        connection.sendall(body)
        final = connection.read_response("POST")
    assert final.status == 200, "after the body, the usual final response"
    assert body.decode() in body_described(final), "the body sent after the 100 was read"


def test_a_chunked_body_is_invited_with_continue_too(exercise, http):
    server = start(exercise)
    with http.connect(server) as connection:
        connection.sendall(head_expecting_continue(chunked=True))
        assert read_interim(connection).status == 100
        connection.sendall(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        final = connection.read_response("POST")
    assert final.status == 200 and "hello world" in body_described(final)


@pytest.mark.points(3)
def test_a_body_too_large_is_refused_at_once_instead_of_invited(exercise, http):
    server = start(exercise)
    with http.connect(server) as connection:  # an acceptable body is invited...
        connection.sendall(head_expecting_continue(10))
        assert read_interim(connection).status == 100
    with http.connect(server) as connection:  # ... a too large one is refused before it is sent
        connection.sendall(head_expecting_continue(TOO_LARGE))
        connection.settimeout(INTERIM_WAIT)
        first = connection.read_response("POST")
    assert first.status == 413, "no 100 Continue for a body over the limit: 413 at once"
