"""Exercise 14 · a bound on connections with asyncio.Semaphore

`--max-connections N` serves at most N connections at once; a further
client waits (a suspended coroutine) and is served as soon as a connection
closes, or gets 503 Service Unavailable with Retry-After, then a close, if
no slot frees within --timeout seconds; every ending gives its slot back.
"""

import socket
import time

import pytest

import rawhttp

LESSON = "14_static_asyncio"
HINT = ("lessons/14_static_asyncio.py, docstring 'Exercise'; serve() starts one serve_client() "
        "coroutine per client: make one asyncio.Semaphore in serve(), acquire it in "
        "serve_client() under the connection's Deadline (its expiry is a CancelledError "
        "with deadline.expired set), release it in its finally clause")

QUIET = 0.5  # seconds a waiting client must hear nothing
BEAT = 0.3  # seconds between the requests of a client that keeps its slot busy


def start(exercise, site, limit, timeout):
    return exercise.serve("--max-connections", limit, "--timeout", timeout, directory=site)


def served(http, server):
    """A kept-alive connection that has had its first answer: it holds a slot."""
    client = http.connect(server)
    client.sendall(rawhttp.build_request("/notes.txt"))
    assert client.read_response().status == 200
    return client


def answer_has_begun(connection):
    connection.settimeout(0.01)
    try:
        return bool(connection.sock.recv(1, socket.MSG_PEEK))
    except socket.timeout:
        return False
    finally:
        connection.settimeout(rawhttp.TIMEOUT)


@pytest.mark.points(3)
def test_a_client_beyond_the_limit_waits_and_is_served_when_a_slot_frees(exercise, http, site):
    server = start(exercise, site, limit=2, timeout=30)
    first, second = served(http, server), served(http, server)
    with http.connect(server) as third:
        third.sendall(rawhttp.build_request("/notes.txt"))
        assert third.silent_for(QUIET), "two connections are open: the third waits unanswered"
        first.close()
        response = third.read_response()  # its coroutine got the slot: served at once
        assert response.status == 200 and response.body == b"plain text\n"
    second.sendall(rawhttp.build_request("/notes.txt"))
    assert second.read_response().status == 200, "the others are served as before"
    second.close()


@pytest.mark.points(3)
def test_a_client_that_waits_longer_than_the_timeout_is_refused_with_retry_after(
        exercise, http, site):
    server = start(exercise, site, limit=1, timeout=1.5)
    busy = served(http, server)
    with http.connect(server) as waiting:
        waiting.sendall(rawhttp.build_request("/notes.txt"))
        started = time.monotonic()
        for _ in range(int(10 / BEAT)):  # bounded: the test ends even if no answer comes
            if answer_has_begun(waiting):
                break
            busy.sendall(rawhttp.build_request("/notes.txt"))  # the slot stays taken:
            assert busy.read_response().status == 200  # busy never idles out
            time.sleep(BEAT)  # the busy client's think time, not synchronisation
        waited = time.monotonic() - started
        response = waiting.read_response()
        assert response.status == 503, "no slot within --timeout: 503 Service Unavailable"
        assert response.header("Retry-After"), "a 503 says when to try again: Retry-After"
        assert 1.0 < waited < 8, "the 503 comes about --timeout (1.5 s) after the connection " \
                                 "(took %.1f s)" % waited
        assert waiting.read_until_close() == b"", "then the connection is closed"
    busy.close()


@pytest.mark.points(3)
def test_every_way_a_connection_ends_gives_its_slot_back(exercise, http, site):
    server = start(exercise, site, limit=2, timeout=1)
    for _ in range(3):
        # Closed by the server after "Connection: close".
        assert http.request(server, "/notes.txt").status == 200
        # Reset by the client in the middle of a request.
        with http.connect(server) as reset:
            reset.sendall(b"GET /notes.txt HTTP/1.1\r\n")
            rawhttp.reset(reset.sock)
        # Closed by the client after an answer.
        served(http, server).close()
    with http.connect(server) as idle:  # closed by the server: idle for --timeout
        assert idle.read_until_close() == b""
    with http.connect(server) as stalled:  # a head that never ends: 408, then closed
        stalled.sendall(b"GET /notes.txt HTTP/1.1\r\n")
        assert stalled.read_response().status == 408
    # Had any of those kept its slot, one of these two would wait, then get 503.
    both = [http.connect(server) for _ in range(2)]
    for client in both:
        client.sendall(rawhttp.build_request("/notes.txt"))
    for client in both:
        assert client.read_response().status == 200, "both slots are free again"
        client.close()


def test_n_slots_serve_n_connections_at_once(exercise, http, site):
    server = exercise.serve("--max-connections", 40, "--timeout", 30, directory=site)
    clients = [served(http, server) for _ in range(40)]  # 40 slots: all served at once
    for client in clients:
        client.close()
