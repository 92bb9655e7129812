"""Exercise 12 · select() instead of busy polling

The loop waits in select.select() until a socket is ready (readable, or
writable while output is pending), so an idle server burns near-zero CPU --
under 5% of one core over 2 s with 50 idle connections open -- and still
serves clients concurrently.
"""

import os
import socket
import time

import pytest

import rawhttp
from servers import make_docroot

LESSON = "12_static_nonblocking"
HINT = ("lessons/12_static_nonblocking.py, docstring 'Exercise'; PollingServer.serve_forever() "
        "asks every socket in turn: let select.select() say which ones are ready")

IDLE_CONNECTIONS = 50
MEASURED = 2.0  # seconds of CPU measurement
MOST_CPU = 0.05  # of one core
BIG_FILE = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_docroot(tmp_path_factory.mktemp("ex12") / "root")
    (root / "big.bin").write_bytes(bytes(range(256)) * (BIG_FILE // 256))
    return root


@pytest.fixture
def server_with_idle_clients(exercise, site):
    """The server, with 50 idle connections open (they must outlive the test: --timeout 60)."""
    server = exercise.serve("--timeout", "60", directory=site)
    idle = [rawhttp.connect(server.port) for _ in range(IDLE_CONNECTIONS)]
    yield server
    for sock in idle:
        sock.close()


def cpu_share_while_waiting(server, seconds=MEASURED):
    """The share of one core the server used over the next few seconds: all of its
    processes, the ones it forked or moved to another session too."""
    used, started = server.cpu_seconds(), time.monotonic()
    time.sleep(seconds)  # the measurement itself, not a synchronisation
    return (server.cpu_seconds() - used) / (time.monotonic() - started)


def served_at_once(http, server, site):
    response = http.request(server, "/notes.txt")
    return response.status == 200 and response.body == (site / "notes.txt").read_bytes()


@pytest.mark.points(3)
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="measures CPU through /proc")
def test_idle_with_50_connections_open_it_burns_under_5_percent_of_a_core(
        server_with_idle_clients, http, site):
    server = server_with_idle_clients
    assert served_at_once(http, server, site), "with 50 idle clients, a request is answered"
    share = cpu_share_while_waiting(server)
    assert share < MOST_CPU, ("idle, with %d connections open, the server used %.0f%% of a "
                              "core (at most %.0f%%)"
                              % (IDLE_CONNECTIONS, share * 100, MOST_CPU * 100))
    assert served_at_once(http, server, site), "and it still answers afterwards"


@pytest.mark.points(2)
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="measures CPU through /proc")
def test_a_half_sent_request_costs_no_cpu_and_holds_up_no_one(
        server_with_idle_clients, http, site):
    server = server_with_idle_clients
    with http.connect(server) as slow:
        slow.sendall(b"GET /notes.txt HTTP/1.1\r\nHost: x\r\n")  # the rest comes later
        assert served_at_once(http, server, site), "another client is served meanwhile"
        share = cpu_share_while_waiting(server)
        assert share < MOST_CPU, ("waiting for the rest of a request, the server used %.0f%% "
                                  "of a core" % (share * 100))
        slow.sendall(b"Connection: close\r\n\r\n")
        response = slow.read_response()
    assert response.status == 200 and response.body == (site / "notes.txt").read_bytes()


@pytest.mark.points(3)
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="measures CPU through /proc")
def test_output_waiting_for_a_slow_reader_costs_no_cpu(server_with_idle_clients, http, site):
    server = server_with_idle_clients
    with http.connect(server) as reader:
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        reader.sendall(rawhttp.build_request("/big.bin", headers=[("Connection", "close")]))
        head_arrived = reader.recv(1024)  # the response started; now we stop reading
        assert head_arrived.startswith(b"HTTP/1.1 200 ")
        share = cpu_share_while_waiting(server)
        assert share < MOST_CPU, ("with a file waiting for a client that does not read, the "
                                  "server used %.0f%% of a core: wait for 'writable'"
                                  % (share * 100))
        assert served_at_once(http, server, site), "another client is served meanwhile"
        rest = reader.read_until_close()
    body = (head_arrived + rest).split(b"\r\n\r\n", 1)[1]
    assert body == (site / "big.bin").read_bytes(), "the whole file arrives in the end"
