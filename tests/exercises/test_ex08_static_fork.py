"""Exercise 08 · at most N children

`--max-children N`: while N children are busy serving, the next connection
is answered 503 Service Unavailable with Retry-After: 1 (and closed)
instead of getting a new fork.
"""

import time

import pytest

import rawhttp

LESSON = "08_static_fork"
HINT = ("lessons/08_static_fork.py, docstring 'Exercise'; serve_forever() forks for every "
        "connection, and the children set always knows how many are still serving")

MAX_CHILDREN = 2


def start(exercise, site):
    # A long idle timeout: a kept-alive connection keeps its child busy.
    return exercise.serve("--timeout", "60", "--max-children", MAX_CHILDREN, directory=site)


def kept_connection(http, server):
    """A keep-alive connection, served once and left open: its child stays busy."""
    connection = http.connect(server)
    connection.sendall(rawhttp.build_request("/notes.txt"))
    assert connection.read_response().status == 200, "below the limit, clients are served"
    return connection


def ask(http, server):
    connection = http.connect(server)
    connection.sendall(rawhttp.build_request("/notes.txt", headers=[("Connection", "close")]))
    response = connection.read_response()
    response.rest = connection.read_until_close()
    connection.close()
    return response


@pytest.mark.points(3)
def test_with_n_children_busy_the_next_client_is_turned_away_with_retry_after(
        exercise, http, site):
    server = start(exercise, site)
    kept = [kept_connection(http, server) for _ in range(MAX_CHILDREN)]
    processes = len(server.group_members())
    refused = ask(http, server)
    assert refused.status == 503, "with %d children busy: 503 Service Unavailable" % (
        MAX_CHILDREN)
    assert refused.header("Retry-After") == "1", "with Retry-After: 1"
    assert refused.rest == b"", "and the connection is closed"
    assert len(server.group_members()) <= processes, "no child was forked for it"
    for connection in kept:
        connection.close()


@pytest.mark.points(2)
def test_once_a_child_has_finished_a_new_client_is_served_again(exercise, http, site):
    server = start(exercise, site)
    kept = [kept_connection(http, server) for _ in range(MAX_CHILDREN)]
    assert ask(http, server).status == 503
    kept[0].close()  # its child sees the close, ends, and is reaped
    deadline = time.monotonic() + 10.0
    for _ in range(200):  # the reaping takes a moment: ask until served, within bounds
        response = ask(http, server)
        if response.status == 200 or time.monotonic() > deadline:
            break
    assert response.status == 200, "a finished child frees its place for the next client"
    kept[1].close()
