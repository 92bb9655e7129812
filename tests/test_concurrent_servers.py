"""What every concurrent server lesson adds over lesson 06, whatever its model.

Parametrized over servers.CONCURRENT_SERVERS (processes, fork, socketserver,
threads, gevent, and later the event loops): a new lesson joins by id.  The
tests speak only sockets and read only /proc, so they state the contract,
not how a lesson keeps it:

* a client that holds its connection, sends slowly or reads slowly never
  delays another;
* HTTP/1.1 keeps the connection open (长连接), ``Connection: close`` and
  HTTP/1.0 close it, pipelined requests are all answered in order, and an
  idle connection, or one whose client stops reading, is closed after
  ``--timeout`` seconds;
* files are streamed: 20 MiB arrive byte-exact, to a slow reader and to two
  readers at once, without the file entering the server's memory;
* a client that leaves or resets at any point costs only its own
  connection: descriptors return to their baseline and no zombie remains.
"""

import os
import signal
import socket
import time

import pytest

import rawhttp
from servers import CONCURRENT_SERVERS, make_docroot, script_path, wait_for

BIG_SIZE = 20 * 1024 * 1024
MEDIUM_SIZE = 48 * 1024  # under the 64 KiB up to which a file may be kept in memory
TINY_RECEIVE_BUFFER = 16 * 1024  # so the server's sends block while we do not read


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The contract docroot plus random bytes: big.bin (20 MiB) and medium.bin (48 KiB)."""
    root = make_docroot(tmp_path_factory.mktemp("concurrent") / "root")
    (root / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (root / "medium.bin").write_bytes(os.urandom(MEDIUM_SIZE))
    return root


@pytest.fixture(params=CONCURRENT_SERVERS)
def lesson(request):
    return script_path(request.param)


@pytest.fixture
def server(launch, lesson, site):
    return launch(lesson, directory=site)


def file_bytes(site, path):
    return (site / path.lstrip("/")).read_bytes()


def assert_serves(port, site, path="/notes.txt"):
    response = rawhttp.request(port, path)
    assert response.status == 200
    assert response.body == file_bytes(site, path)


def start_download(port, path="/big.bin", receive_buffer=None):
    """A connection that has asked for path and read only the head of the answer."""
    sock = rawhttp.connect(port, receive_buffer=receive_buffer)
    sock.sendall(rawhttp.build_request(path, headers=[("Connection", "close")]))
    reader = rawhttp.ResponseReader(sock)
    head = rawhttp.parse(reader.read_head() + b"\r\n\r\n", "HEAD")
    assert head.status == 200
    return sock, reader, int(head.header("Content-Length"))


def assert_still_open(sock):
    """Nothing to read and no FIN: the server keeps the connection."""
    sock.settimeout(0.2)
    with pytest.raises(socket.timeout):
        sock.recv(1)
    sock.settimeout(rawhttp.TIMEOUT)


def assert_closed_by_server(sock):
    """The server's FIN arrives (within the socket timeout) with no more bytes."""
    try:
        assert sock.recv(65536) == b""
    except ConnectionResetError:
        pass  # also closed; a RST may overtake the FIN after unread input


# -- Concurrency: nobody waits for somebody else ------------------------------

def test_a_client_that_sends_slowly_does_not_delay_others(launch, lesson, site):
    # A long --timeout: a server that served one client at a time would keep
    # everybody waiting far beyond the 5 s each request below may take.
    server = launch(lesson, "--timeout", "60", directory=site)
    pieces = [b"GET /notes.txt HTTP/1.1\r\n", b"Host: x\r\n", b"X-Slow: yes\r\n", b"\r\n"]
    with rawhttp.connect(server.port) as slow:
        for piece in pieces[:-1]:
            slow.sendall(piece)
            assert_serves(server.port, site, "/style.css")  # while slow is mid-request
        slow.sendall(pieces[-1])
        response = rawhttp.ResponseReader(slow).read_response()
    assert response.status == 200
    assert response.body == b"plain text\n"


def test_a_client_that_holds_an_idle_connection_does_not_delay_others(launch, lesson, site):
    server = launch(lesson, "--timeout", "60", directory=site)
    holders = [rawhttp.connect(server.port) for _ in range(3)]
    try:
        holders[0].sendall(rawhttp.build_request("/notes.txt"))  # keep-alive, then idle
        assert rawhttp.ResponseReader(holders[0]).read_response().status == 200
        for _ in range(5):
            assert_serves(server.port, site)
        for holder in holders:
            assert_still_open(holder)
    finally:
        for holder in holders:
            holder.close()


def test_a_client_that_reads_slowly_does_not_delay_others(server, site):
    sock, reader, size = start_download(server.port, receive_buffer=TINY_RECEIVE_BUFFER)
    with sock:
        # The server is now blocked sending to sock, whose buffers are full.
        assert_serves(server.port, site)
        assert_serves(server.port, site, "/image.png")
        body = reader.read_exactly(size)
    assert body == file_bytes(site, "/big.bin")


def test_two_downloads_progress_at_the_same_time(server, site):
    first, first_reader, size = start_download(server.port, receive_buffer=TINY_RECEIVE_BUFFER)
    second, second_reader, _ = start_download(server.port, receive_buffer=TINY_RECEIVE_BUFFER)
    bodies = [bytearray(), bytearray()]
    with first, second:
        # Taking turns: if the server sent one file after the other, the
        # second would stall until the first was read to the end.
        while len(bodies[0]) < size or len(bodies[1]) < size:
            for body, reader in zip(bodies, (first_reader, second_reader)):
                wanted = min(256 * 1024, size - len(body))
                if wanted:
                    body += reader.read_exactly(wanted)
    expected = file_bytes(site, "/big.bin")
    assert bodies[0] == expected
    assert bodies[1] == expected


def test_200_concurrent_clients_are_all_answered(server, site):
    expected = file_bytes(site, "/style.css")
    with rawhttp.many_connections(server.port, 200) as clients:  # all before any is answered
        for response in rawhttp.ask_each(clients, "/style.css"):
            assert response.status == 200
            assert response.body == expected


# -- Persistent connections (长连接) ------------------------------------------

def test_http_1_1_keeps_the_connection_for_request_after_request(server, site):
    with rawhttp.connect(server.port) as sock:
        reader = rawhttp.ResponseReader(sock)
        for path in ["/notes.txt", "/style.css", "/image.png", "/", "/notes.txt"]:
            sock.sendall(rawhttp.build_request(path))
            response = reader.read_response()
            assert response.status == 200
            assert response.body == file_bytes(site, path if path != "/" else "/index.html")
            assert response.header("Connection", "").lower() != "close"
        assert_still_open(sock)


def test_pipelined_requests_in_one_packet_are_all_answered_in_order(server, site):
    requests = [
        ("GET", "/notes.txt", b""),
        ("HEAD", "/style.css", b""),
        ("GET", "/image.png", b""),
        ("GET", "/app.js", b"GET /sub/page.html HTTP/1.1\r\n\r\n"),  # a body, not a request
        ("GET", "/empty.txt", b""),
        ("GET", "/sub/", b""),
    ]
    data = b"".join(rawhttp.build_request(path, method, body=body)
                    for method, path, body in requests)
    with rawhttp.connect(server.port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(data)  # under 64 KiB on loopback: one segment
        reader = rawhttp.ResponseReader(sock)
        for method, path, _ in requests:
            response = reader.read_response(method)
            assert response.status == 200, path
            expected = file_bytes(site, path if path != "/sub/" else "/sub/index.html")
            assert response.header("Content-Length") == str(len(expected))
            assert response.body == (b"" if method == "HEAD" else expected)
        assert_still_open(sock)


def test_a_404_or_301_keeps_the_connection_and_the_requests_after_it_are_answered(server):
    # The request was framed correctly, so the next one starts where it ended (nginx: the same).
    data = (rawhttp.build_request("/notes.txt") + rawhttp.build_request("/missing.html")
            + rawhttp.build_request("/sub") + rawhttp.build_request("/style.css"))
    with rawhttp.connect(server.port) as sock:
        sock.sendall(data)
        reader = rawhttp.ResponseReader(sock)
        assert reader.read_response().status == 200
        missing = reader.read_response()
        assert (missing.status, missing.header("Connection")) == (404, "keep-alive")
        assert int(missing.header("Content-Length")) == len(missing.body) > 0
        folder = reader.read_response()
        assert (folder.status, folder.header("Location")) == (301, "/sub/")
        assert reader.read_response().status == 200
        assert_still_open(sock)


def test_a_broken_request_closes_the_connection_and_drops_what_follows(server):
    data = (rawhttp.build_request("/notes.txt") + b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n"
            + rawhttp.build_request("/style.css"))
    with rawhttp.connect(server.port) as sock:
        sock.sendall(data)
        reader = rawhttp.ResponseReader(sock)
        assert reader.read_response().status == 200
        error = reader.read_response()
        assert error.status == 400
        assert error.header("Connection") == "close"
        assert reader.read_until_close() == b""


@pytest.mark.parametrize("version, connection, stays_open", [
    ("HTTP/1.1", None, True),
    ("HTTP/1.1", "keep-alive", True),
    ("HTTP/1.1", "close", False),
    ("HTTP/1.1", "Keep-Alive, Close", False),
    ("HTTP/1.0", None, False),
    ("HTTP/1.0", "keep-alive", True),
    ("HTTP/1.0", "close", False),
])
def test_the_connection_header_and_version_decide_who_closes(server, version, connection,
                                                             stays_open):
    headers = [("Connection", connection)] if connection else []
    with rawhttp.connect(server.port) as sock:
        sock.sendall(rawhttp.build_request("/notes.txt", headers=headers, version=version))
        reader = rawhttp.ResponseReader(sock)
        response = reader.read_response()
        assert response.body == b"plain text\n"
        said = (response.header("Connection") or "").lower()
        if stays_open:
            assert said != "close"
            if version == "HTTP/1.0":
                assert said == "keep-alive", "an HTTP/1.0 client needs to be told"
            sock.sendall(rawhttp.build_request("/style.css", version=version,
                                               headers=[("Connection", "close")]))
            assert reader.read_response().status == 200
        else:
            assert said == "close"
            assert reader.read_until_close() == b""


@pytest.mark.parametrize("before", ["before any request", "after a response"])
def test_an_idle_connection_is_closed_after_the_timeout(launch, lesson, site, before):
    server = launch(lesson, "--timeout", "1", directory=site)
    with rawhttp.connect(server.port) as sock:
        if before == "after a response":
            sock.sendall(rawhttp.build_request("/notes.txt"))
            assert rawhttp.ResponseReader(sock).read_response().status == 200
        idle_since = time.monotonic()
        assert_closed_by_server(sock)  # no answer: there was no request to answer
        assert time.monotonic() - idle_since > 0.8, "closed before the idle timeout"
    assert_serves(server.port, site)


def test_the_idle_timeout_counts_from_the_last_request_not_the_first(launch, lesson, site):
    server = launch(lesson, "--timeout", "2", directory=site)
    with rawhttp.connect(server.port) as sock:
        reader = rawhttp.ResponseReader(sock)
        for _ in range(3):  # 2.4 s in all, longer than the timeout; idle 1.2 s at most
            sock.sendall(rawhttp.build_request("/notes.txt"))
            assert reader.read_response().status == 200
            time.sleep(1.2)  # the client's think time, not synchronisation
        sock.sendall(rawhttp.build_request("/notes.txt", headers=[("Connection", "close")]))
        assert reader.read_response().status == 200


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
@pytest.mark.parametrize("asked", ["200 pipelined small files", "one 20 MiB file"])
def test_a_client_that_stops_reading_is_let_go_after_the_timeout(launch, lesson, site, asked):
    server = launch(lesson, "--timeout", "1", directory=site)
    assert_serves(server.port, site)
    baseline = server.idle_descriptors(sockets_only=True)
    if asked == "one 20 MiB file":
        sock, _, _ = start_download(server.port, receive_buffer=TINY_RECEIVE_BUFFER)
    else:  # 9 MiB of answers: more than the buffers on both sides hold
        sock = rawhttp.connect(server.port, receive_buffer=TINY_RECEIVE_BUFFER)
        sock.sendall(rawhttp.build_request("/medium.bin") * 200)
    with sock:  # and never read: the server's sends block
        # Peeking reads nothing: it waits until the answers have begun, so the
        # connection is in the hands of whoever serves it.  (Counted earlier,
        # a forking server's parent could be caught between closing its copy
        # and the child showing up in /proc, and the count look like baseline.)
        assert sock.recv(1, socket.MSG_PEEK), "the server never began to answer"
        wait_for(lambda: server.open_descriptors(sockets_only=True) <= baseline, 15)
        assert server.open_descriptors(sockets_only=True) <= baseline, \
            "a client that stopped reading still holds its connection\n" + server.report()
    assert_serves(server.port, site)


# -- Files are streamed ---------------------------------------------------------

def test_a_20_mib_file_arrives_byte_exact(server, site):
    response = rawhttp.request(server.port, "/big.bin")
    assert response.status == 200
    assert response.header("Content-Length") == str(BIG_SIZE)
    assert response.body == file_bytes(site, "/big.bin")


def test_a_20_mib_file_arrives_byte_exact_to_a_slow_reader(server, site):
    sock, reader, size = start_download(server.port, receive_buffer=TINY_RECEIVE_BUFFER)
    body = bytearray()
    with sock:
        for pause in range(size // (4 * 1024 * 1024) + 1):
            body += reader.read_exactly(min(4 * 1024 * 1024, size - len(body)))
            time.sleep(0.2)  # a reader that stops now and then: the server must wait, not give up
    assert body == file_bytes(site, "/big.bin")


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_download_does_not_load_the_file_into_the_server_memory(server):
    before = max(server.resident_bytes().values())
    sock, reader, size = start_download(server.port, receive_buffer=TINY_RECEIVE_BUFFER)
    with sock:
        reader.read_exactly(1024 * 1024)  # the server is mid-file and blocked on us
        during = max(server.resident_bytes().values())
    assert during - before < 10 * 1024 * 1024, \
        "a 20 MiB download grew the largest server process by %.1f MiB" % ((during - before) / 2 ** 20)


# -- Leaving at any point costs only the leaver's connection -------------------

def leave_after_connecting(port):
    rawhttp.connect(port).close()


def reset_mid_request(port):
    sock = rawhttp.connect(port)
    sock.sendall(b"GET /notes.txt HTTP/1.1\r\nHost: x\r\n")
    rawhttp.reset(sock)


def reset_after_the_request(port):
    sock = rawhttp.connect(port)
    sock.sendall(rawhttp.build_request("/big.bin"))
    rawhttp.reset(sock)


def reset_mid_download(port):
    sock, reader, _ = start_download(port, receive_buffer=TINY_RECEIVE_BUFFER)
    reader.read_exactly(64 * 1024)
    rawhttp.reset(sock)


def reset_between_keep_alive_requests(port):
    sock = rawhttp.connect(port)
    sock.sendall(rawhttp.build_request("/notes.txt"))
    rawhttp.ResponseReader(sock).read_response()
    rawhttp.reset(sock)


def close_with_pipelined_requests_unread(port):
    sock = rawhttp.connect(port)
    sock.sendall(rawhttp.build_request("/image.png") * 50)
    sock.close()


def close_after_a_request(port):
    rawhttp.request(port, "/notes.txt")


LEAVERS = [leave_after_connecting, reset_mid_request, reset_after_the_request,
           reset_mid_download, reset_between_keep_alive_requests,
           close_with_pipelined_requests_unread, close_after_a_request]


@pytest.mark.parametrize("leave", LEAVERS, ids=lambda leave: leave.__name__)
def test_a_client_leaving_at_any_point_does_not_disturb_a_download(server, site, leave):
    sock, reader, size = start_download(server.port)
    with sock:
        for _ in range(3):
            leave(server.port)
        body = reader.read_exactly(size)
    assert body == file_bytes(site, "/big.bin")
    assert_serves(server.port, site)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_after_300_connections_descriptors_return_to_baseline_and_no_zombie_remains(server, site):
    for _ in range(5):  # let lazily opened descriptors (caches, pools) open first
        assert_serves(server.port, site)
    baseline = server.idle_descriptors()
    for cycle in range(300):
        LEAVERS[cycle % len(LEAVERS)](server.port)
    assert_serves(server.port, site)
    # Lingering closes and child exits take a moment.
    wait_for(lambda: server.open_descriptors() <= baseline and not server.zombies(), 20)
    assert server.open_descriptors() <= baseline, "descriptors leaked\n" + server.report()
    assert server.zombies() == [], "children exited but were never reaped"


# -- Ctrl+C ----------------------------------------------------------------------

def test_no_process_outlives_a_server_interrupted_alone(server, site):
    # `kill -INT <pid>` reaches the server's main process only, not the
    # children a terminal's Ctrl+C would reach too: the server must end them.
    kept = []
    for _ in range(3):
        sock = rawhttp.connect(server.port)
        sock.sendall(rawhttp.build_request("/notes.txt"))
        assert rawhttp.ResponseReader(sock).read_response().status == 200
        kept.append(sock)
    downloading, reader, _ = start_download(server.port, receive_buffer=TINY_RECEIVE_BUFFER)
    try:
        os.kill(server.pid, signal.SIGINT)
        assert server.process.wait(10) == 0
        assert wait_for(lambda: not server.group_members(), 2.0), \
            "processes outlived the server by 2 s: %s" % server.group_members()
    finally:
        for sock in kept + [downloading]:
            sock.close()


def test_ctrl_c_with_connections_in_every_state_leaves_no_process_behind(server, site):
    idle = rawhttp.connect(server.port)
    half = rawhttp.connect(server.port)
    half.sendall(b"GET /notes.txt HTTP/1.1\r\nHost: x\r\n")
    kept = rawhttp.connect(server.port)
    kept.sendall(rawhttp.build_request("/notes.txt"))
    rawhttp.ResponseReader(kept).read_response()
    downloading, reader, _ = start_download(server.port, receive_buffer=TINY_RECEIVE_BUFFER)
    reader.read_exactly(64 * 1024)
    try:
        assert server.stop() == []
        assert server.process.returncode == 0
    finally:
        for sock in (idle, half, kept, downloading):
            sock.close()
