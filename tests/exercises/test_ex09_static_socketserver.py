"""Exercise 09 · a bounded thread pool as a socketserver mixin

`--workers N [--queue M]`: a mixin's process_request() puts each connection
in a queue of at most M (M defaults to N) that N threads, started once, take
connections from; when the queue is full the connection is answered 503
Service Unavailable with Retry-After: 1 and closed; server_close() stops
the threads, so Ctrl+C ends the server cleanly.
"""

import socket

import pytest

import rawhttp
from servers import wait_for

LESSON = "09_static_socketserver"
HINT = ("lessons/09_static_socketserver.py, docstring 'Exercise'; a mixin fills in one step of "
        "socketserver's chain, process_request(): ThreadingMixIn's starts a thread per "
        "connection, yours puts it in a queue.Queue(maxsize=M) that N threads take from")

WAIT = 1.0  # seconds a queued client must go unanswered


def start(exercise, site, *options):
    # A long idle timeout: a kept-alive connection holds its thread for the whole test.
    return exercise.serve("--timeout", "60", *options, directory=site)


def busy_client(http, server):
    """A kept-alive connection that has been served once: a pool thread now holds it."""
    connection = http.connect(server)
    connection.sendall(rawhttp.build_request("/notes.txt"))
    response = connection.read_response()
    assert response.status == 200, "a client is served while a pool thread is free"
    return connection


def queued_clients(http, server, count=1):
    """Connections that sent their requests and get no answer yet: they wait in the queue."""
    connections = []
    for _ in range(count):
        connection = http.connect(server)
        connection.sendall(rawhttp.build_request("/notes.txt",
                                                 headers=[("Connection", "close")]))
        connections.append(connection)
    for number, connection in enumerate(connections):
        connection.settimeout(WAIT if number == 0 else 0.05)  # WAIT in all: they wait together
        try:
            early = connection.recv(65536)
        except socket.timeout:
            early = None  # every thread is busy: nothing comes back yet, as it should
        # An assertion, not pytest.raises: its message shows what came back.
        assert early is None, ("every thread is busy, so a client beyond them waits in the "
                               "queue unanswered; this one got %r" % early[:80])
        connection.settimeout(rawhttp.TIMEOUT)
    return connections


def assert_refused(http, server):
    connection = http.connect(server)
    connection.sendall(rawhttp.build_request("/notes.txt", headers=[("Connection", "close")]))
    response = connection.read_response()
    assert response.status == 503, "every thread busy and the queue full: 503 Service Unavailable"
    assert response.header("Retry-After") == "1", "with Retry-After: 1"
    assert connection.read_until_close() == b"", "and the connection is closed"
    connection.close()


def settled_thread_count(server):
    """The server's threads once their number has held still for three readings."""
    readings = []

    def steady():
        readings.append(server.thread_count())
        return len(readings) >= 3 and len(set(readings[-3:])) == 1
    assert wait_for(steady, timeout=5.0), \
        "the server's thread count never held still for 5 s: %s" % readings[-10:]
    return readings[-1]


@pytest.mark.points(4)
def test_with_n_threads_busy_and_m_waiting_the_next_client_is_turned_away(exercise, http, site):
    server = start(exercise, site, "--workers", "2", "--queue", "1")
    busy = [busy_client(http, server) for _ in range(2)]
    waiting, = queued_clients(http, server)
    assert_refused(http, server)
    busy[0].close()  # a thread is free: it takes the waiting connection from the queue
    response = waiting.read_response()
    assert response.status == 200, "once a thread is free, the queued client is served"
    waiting.close()
    busy[1].close()


@pytest.mark.points(1)
def test_the_queue_holds_as_many_connections_as_threads_by_default(exercise, http, site):
    server = start(exercise, site, "--workers", "2")
    busy = [busy_client(http, server) for _ in range(2)]
    waiting = queued_clients(http, server, 2)
    assert_refused(http, server)
    for connection in busy:
        connection.close()
    for connection in waiting:
        assert connection.read_response().status == 200, "both queued clients are served"
        connection.close()
    for _ in range(3):  # each thread goes back to the queue after each connection
        assert http.request(server, "/notes.txt").status == 200


@pytest.mark.points(2)
def test_the_threads_are_started_once_and_do_not_grow_with_the_clients(exercise, http, site):
    workers = 3
    server = start(exercise, site, "--workers", str(workers), "--queue", "10")
    assert http.request(server, "/notes.txt").status == 200  # the pool is up by now
    idle = settled_thread_count(server)
    busy = [busy_client(http, server) for _ in range(workers)]
    waiting = queued_clients(http, server, 4)
    loaded = server.thread_count()
    assert loaded <= idle, (
        "%d threads with no client, %d with %d clients served and %d waiting: the pool is "
        "started once, not a thread per connection" % (idle, loaded, workers, len(waiting)))
    assert workers + 1 <= loaded <= workers + 3, (
        "the main thread and %d pool threads (a helper or two allowed): found %d"
        % (workers, loaded))
    for connection in busy + waiting:
        connection.close()


@pytest.mark.points(3)
def test_ctrl_c_stops_the_threads_while_clients_are_served_and_waiting(exercise, http, site):
    server = start(exercise, site, "--workers", "2", "--queue", "2")
    busy = [busy_client(http, server) for _ in range(2)]
    waiting, = queued_clients(http, server)
    problems = server.stop()
    assert problems == [], ("after Ctrl+C, with idle kept-alive clients holding every thread: "
                            "%s" % "; ".join(problems))
    for connection in busy + [waiting]:
        connection.close()
