"""Exercise 10 · a bounded thread pool

`--workers N [--queue M]`: N threads serve connections taken from a queue of
at most M accepted connections (M defaults to N); when the queue is full the
next connection is answered 503 Service Unavailable with Retry-After: 1 and
closed.
"""

import socket

import pytest

import rawhttp

LESSON = "10_static_threading"
HINT = ("lessons/10_static_threading.py, docstring 'Exercise'; serve_forever() starts a thread "
        "per connection: start N once, and feed them through a queue.Queue(maxsize=M)")

WAIT = 1.0  # seconds a queued client must go unanswered


def start(exercise, site, *options):
    # A long idle timeout: a kept-alive connection holds its worker for the whole test.
    return exercise.serve("--timeout", "60", *options, directory=site)


def busy_client(http, server):
    """A kept-alive connection that has been served once: a worker now holds it."""
    connection = http.connect(server)
    connection.sendall(rawhttp.build_request("/notes.txt"))
    response = connection.read_response()
    assert response.status == 200, "a client is served while there are free workers"
    return connection


def queued_client(http, server):
    """A connection that sent its request and gets no answer yet: it waits in the queue."""
    connection = http.connect(server)
    connection.sendall(rawhttp.build_request("/notes.txt", headers=[("Connection", "close")]))
    connection.settimeout(WAIT)
    with pytest.raises(socket.timeout):
        connection.recv(65536)  # no worker is free: nothing comes back yet
    connection.settimeout(rawhttp.TIMEOUT)
    return connection


def assert_refused(http, server):
    connection = http.connect(server)
    connection.sendall(rawhttp.build_request("/notes.txt", headers=[("Connection", "close")]))
    response = connection.read_response()
    assert response.status == 503, "workers busy and queue full: 503 Service Unavailable"
    assert response.header("Retry-After") == "1", "with Retry-After: 1"
    assert connection.read_until_close() == b"", "and the connection is closed"
    connection.close()


@pytest.mark.points(3)
def test_with_n_workers_busy_and_m_waiting_the_next_client_is_turned_away(exercise, http, site):
    server = start(exercise, site, "--workers", "2", "--queue", "1")
    busy = [busy_client(http, server) for _ in range(2)]
    waiting = queued_client(http, server)
    assert_refused(http, server)
    busy[0].close()  # a worker is free: it takes the waiting connection from the queue
    response = waiting.read_response()
    assert response.status == 200, "once a worker is free, the queued client is served"
    waiting.close()
    busy[1].close()


@pytest.mark.points(2)
def test_the_queue_holds_as_many_connections_as_workers_by_default(exercise, http, site):
    server = start(exercise, site, "--workers", "2")
    busy = [busy_client(http, server) for _ in range(2)]
    waiting = [queued_client(http, server) for _ in range(2)]
    assert_refused(http, server)
    for connection in busy + waiting:
        connection.close()


def test_a_single_worker_serves_connections_one_after_another(exercise, http, site):
    server = start(exercise, site, "--workers", "1", "--queue", "2")
    first = busy_client(http, server)
    second = queued_client(http, server)
    first.close()
    assert second.read_response().status == 200
    second.close()
    for _ in range(3):  # the worker goes back to the queue after each connection
        assert http.request(server, "/notes.txt").status == 200
