"""Exercise 13 · slowloris defence

`--header-timeout S` closes a connection whose request head is not complete
S seconds after its first byte (408 Request Timeout, then close), while the
idle timeout (--timeout) still closes idle keep-alive connections; both are
deadlines in the loop's heap.
"""

import socket
import time

import pytest

import rawhttp

LESSON = "13_static_epoll"
HINT = ("lessons/13_static_epoll.py, docstring 'Exercise'; EpollServer keeps one deadline per "
        "connection in self.timers: a head's first byte starts a second, earlier one")

DRIP = 0.2  # seconds between the bytes of a slowloris client


def start(exercise, site, timeout, header_timeout):
    return exercise.serve("--timeout", timeout, "--header-timeout", header_timeout,
                          directory=site)


def drip_until_answered(connection, most_seconds):
    """Send a never-ending head a byte every DRIP s; the seconds until the server answers."""
    started = time.monotonic()
    connection.sendall(b"GET /notes.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    for _ in range(int(most_seconds / DRIP)):  # bounded: the test ends even if no answer comes
        connection.settimeout(DRIP)
        try:
            if connection.sock.recv(1, socket.MSG_PEEK):  # an answer has begun
                break
        except socket.timeout:
            pass
        try:
            connection.sendall(b"z")  # each byte would reset a timer that only measures silence
        except (BrokenPipeError, ConnectionResetError):
            break
    connection.settimeout(rawhttp.TIMEOUT)
    return time.monotonic() - started


@pytest.mark.points(4)
def test_a_head_unfinished_s_seconds_after_its_first_byte_times_out_and_is_closed(
        exercise, http, site):
    server = start(exercise, site, timeout=30, header_timeout=1)
    with http.connect(server) as slow:
        waited = drip_until_answered(slow, most_seconds=10)
        response = slow.read_response()
        assert response.status == 408, "a head still unfinished after 1 s: 408 Request Timeout"
        # Generous bounds: the machine may be busy.  Only --timeout (30 s) would be later.
        assert 0.8 < waited < 8, "the 408 comes about 1 s after the first byte (took %.1f s)" % (
            waited)
        assert slow.read_until_close() == b"", "then the connection is closed"
    assert http.request(server, "/notes.txt").status == 200, "and others are still served"


@pytest.mark.points(3)
def test_the_clock_starts_at_the_first_byte_and_stops_at_the_end_of_the_head(
        exercise, http, site):
    server = start(exercise, site, timeout=30, header_timeout=1)
    with http.connect(server) as client:
        assert client.silent_for(1.5), \
            "a connection that has sent nothing has no head to time out: it stays open"
        request = rawhttp.build_request("/notes.txt")
        client.sendall(request[:10])  # a slow head, but finished within the header timeout
        assert client.silent_for(0.5), "half a head, within the header timeout: no answer yet"
        client.sendall(request[10:])
        response = client.read_response()
        assert response.status == 200 and response.body == b"plain text\n"
        assert client.silent_for(1.5), \
            "after its answer the clock stops: kept alive and idle past the header timeout"
        client.sendall(rawhttp.build_request("/notes.txt", headers=[("Connection", "close")]))
        assert client.read_response().status == 200


@pytest.mark.points(3)
def test_the_idle_timeout_still_closes_idle_keep_alive_connections(exercise, http, site):
    server = start(exercise, site, timeout=1, header_timeout=10)
    with http.connect(server) as client:
        client.sendall(rawhttp.build_request("/notes.txt"))
        assert client.read_response().status == 200
        started = time.monotonic()
        assert client.read_until_close() == b"", "an idle kept-alive connection is closed"
        assert 0.8 < time.monotonic() - started < 6, "after about --timeout (1 s) of silence"


def test_many_slow_clients_each_get_their_request_timeout(exercise, http, site):
    server = start(exercise, site, timeout=30, header_timeout=1)
    slow = [http.connect(server) for _ in range(20)]
    for client in slow:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    started = time.monotonic()
    for client in slow:
        assert client.read_response().status == 408
        client.close()
    assert time.monotonic() - started < 8, "each within about 1 s of its first byte"
