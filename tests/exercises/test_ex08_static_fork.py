"""Exercise 08 · one count across every child

GET /stats answers 200 text/plain with one number: how many GET and HEAD
requests all the children together have answered so far, each counted as
its answer begins (so /stats counts itself).  A counter in each child's own
copy of memory is not one count; concurrent children must lose none.
"""

import pytest

import rawhttp

LESSON = "08_static_fork"
HINT = ("lessons/08_static_fork.py, docstring 'Exercise'; every connection gets a new child, a "
        "copy of the parent: the count must live in memory that fork() shares instead of "
        "copying (made before the first fork), and answer() is where a request begins to be "
        "answered")

CONCURRENT = 10  # children serving at the same time
PIPELINED = 200  # requests each of them answers, sent in one go


def start(exercise, site):
    return exercise.serve(directory=site)


def stats(http, server, method="GET"):
    """The count /stats answers, on a fresh connection (so a fresh child)."""
    response = http.request(server, "/stats", method=method)
    assert response.status == 200, "GET /stats answers 200 OK"
    kind = response.header("Content-Type") or ""
    assert kind.split(";")[0].strip() == "text/plain", \
        "the count comes as text/plain (got Content-Type %r)" % kind
    return response


def count_in(response):
    text = response.body.decode("ascii", "replace").strip()
    assert text.isdigit(), "the body is one whole number, such as 7 (got %r)" % text
    return int(text)


@pytest.mark.points(3)
def test_stats_answers_the_count_as_plain_text_and_counts_itself(exercise, http, site):
    server = start(exercise, site)
    assert http.request(server, "/notes.txt").status == 200  # one child serves it, and ends
    assert count_in(stats(http, server)) == 2, \
        "one request for a file, then /stats itself: 2 (another child, the same count)"


@pytest.mark.points(2)
def test_requests_from_one_client_after_another_all_add_up(exercise, http, site):
    server = start(exercise, site)
    for path in ("/notes.txt", "/no-such-file", "/index.html", "/notes.txt"):
        http.request(server, path)  # each on its own connection, so in its own child
    http.request(server, "/notes.txt", method="HEAD")
    assert count_in(stats(http, server)) == 6, \
        "five requests (a 404 and a HEAD too), each in a child of its own, then /stats: 6"
    with http.connect(server) as kept:  # one child, several requests
        for _ in range(3):
            kept.sendall(rawhttp.build_request("/notes.txt"))
            assert kept.read_response().status == 200
        kept.sendall(rawhttp.build_request("/stats"))
        assert count_in(kept.read_response()) == 10, \
            "three more on one kept-alive connection, and this /stats: 10"
    head = stats(http, server, method="HEAD")
    assert head.body == b"", "HEAD /stats: the same head, no body"
    assert count_in(stats(http, server)) == 12, "HEAD /stats counted too, then this one: 12"


@pytest.mark.points(4)
def test_children_answering_at_the_same_time_lose_no_count(exercise, http, site):
    server = start(exercise, site)
    connections = [http.connect(server) for _ in range(CONCURRENT)]
    burst = rawhttp.build_request("/notes.txt") * PIPELINED
    for connection in connections:  # every child has its whole burst before any is read
        connection.sendall(burst)
    for connection in connections:
        for _ in range(PIPELINED):
            assert connection.read_response().status == 200
        connection.close()
    total = CONCURRENT * PIPELINED
    assert count_in(stats(http, server)) == total + 1, (
        "%d children answered %d requests each at the same time, then /stats: %d; a count "
        "read and written back without a lock loses the ones another child made meanwhile"
        % (CONCURRENT, PIPELINED, total + 1))
