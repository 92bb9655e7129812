"""Lessons 12 and 13: one process, one thread, many clients -- what both loops promise.

The shared contract (test_contract.py) and the concurrent-server tests
(test_concurrent_servers.py) run on both lessons by id; the edge-triggered
mode of lesson 13 runs them too (test_13_static_epoll_edge.py).  Here is
what only a single-threaded loop must show: thousands of clients at once
on one thread, and a descriptor limit that is reached without a crash.
"""

import os
import socket

import pytest

import rawhttp
from servers import script_path

resource = pytest.importorskip("resource")  # POSIX only

LOOPS = [
    ("12_static_nonblocking",),
    ("13_static_epoll",),
    ("13_static_epoll", "--edge"),
]
MANY_CLIENTS = 2000
CONNECTIONS_ALLOWED = 24  # descriptors above the server's baseline, in the EMFILE test
CLIENTS_BEYOND_THE_LIMIT = 40


@pytest.fixture(params=LOOPS, ids=" ".join)
def loop(request):
    """(script, extra args) of a loop lesson."""
    return script_path(request.param[0]), request.param[1:]


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_2000_clients_connected_at_once_are_all_answered_by_one_thread(launch, loop, docroot):
    script, args = loop
    server = launch(script, *args, "--timeout", "60", "--quiet", directory=docroot)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if min(soft, hard) < MANY_CLIENTS + 100:
        pytest.skip("this test needs ulimit -n above %d" % (MANY_CLIENTS + 100))
    expected = (docroot / "style.css").read_bytes()
    with rawhttp.many_connections(server.port, MANY_CLIENTS) as clients:  # all before any asks
        for response in rawhttp.ask_each(clients, "/style.css"):
            assert response.status == 200
            assert response.body == expected
        assert server.open_descriptors() >= MANY_CLIENTS, "all held open at once"
        assert server.thread_count() == 1
        assert len(server.group_members()) == 1


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs prlimit (Linux)")
def test_out_of_descriptors_it_keeps_serving_and_recovers(launch, loop, docroot):
    script, args = loop
    server = launch(script, *args, "--timeout", "60", directory=docroot)
    kept = rawhttp.connect(server.port)  # accepted while descriptors were plenty
    kept_reader = rawhttp.ResponseReader(kept)
    kept.sendall(rawhttp.build_request("/notes.txt"))
    assert kept_reader.read_response().body == b"plain text\n"
    limit = server.open_descriptors() + CONNECTIONS_ALLOWED
    _, hard = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (limit, hard))

    waiting = [rawhttp.connect(server.port, timeout=15)  # the kernel completes the handshake
               for _ in range(CONNECTIONS_ALLOWED + CLIENTS_BEYOND_THE_LIMIT)]
    try:
        for sock in waiting:
            sock.sendall(rawhttp.build_request("/notes.txt", headers=[("Connection", "close")]))
        # The connection it already had is still served, at the limit.
        kept.sendall(rawhttp.build_request("/notes.txt"))
        response = kept_reader.read_response()
        assert response.status in (200, 503)
        # Every waiting client is answered in turn, as answered ones close and
        # free their descriptors.  With none to spare for opening the file,
        # "try again" is a fair answer; silence or a crash is not.
        statuses = []
        for sock in waiting:
            response = rawhttp.ResponseReader(sock).read_response()
            statuses.append(response.status)
            if response.status == 503:
                assert response.header("Retry-After")
            sock.close()
        assert set(statuses) <= {200, 503}, statuses
        assert 200 in statuses
    finally:
        for sock in waiting:
            sock.close()
        kept.close()
    assert server.process.poll() is None, "the server died"
    assert rawhttp.request(server.port, "/notes.txt").body == b"plain text\n"


def test_a_client_that_pipelines_without_reading_cannot_make_the_server_buffer_without_limit(
        launch, loop, docroot):
    script, args = loop
    server = launch(script, *args, "--quiet", directory=docroot)
    (docroot / "64k.bin").write_bytes(b"\x5a" * 65536)
    # 4 KiB per request, so that 4000 of them overflow every kernel buffer on the way.
    request = rawhttp.build_request("/64k.bin", headers=[("X-Padding", "p" * 4000)])
    before = max(server.resident_bytes().values())
    with rawhttp.connect(server.port, receive_buffer=16 * 1024) as greedy:
        greedy.settimeout(0.5)
        sent = 0
        try:
            for _ in range(4000):  # 16 MiB of requests for 250 MiB of answers
                greedy.sendall(request)
                sent += 1
        except socket.timeout:
            pass  # the server stopped reading us: TCP pushes back, as it should
        during = max(server.resident_bytes().values())
        assert rawhttp.request(server.port, "/notes.txt").body == b"plain text\n"
    assert sent < 4000, "the server read every request without sending the answers"
    assert during - before < 32 * 1024 * 1024, \
        "buffered %.0f MiB for one client that reads nothing" % ((during - before) / 2 ** 20)
