"""Lesson 14: one thread and one coroutine per connection, on asyncio's portable loop.

The shared contract, the concurrent-server tests and the real clients run on
lesson 14 elsewhere (tests/servers.py STATIC_SERVERS).  Here is what only the
asyncio lesson promises: thousands of connections in one thread, a client
that stops reading stalls nobody else, it runs where epoll does not exist
(selectors picks poll, or kqueue on macOS), and Ctrl+C ends it at once even
with clients connected.
"""

import os
import time

import pytest

import rawhttp
from servers import import_lesson, make_docroot, script_path

LESSON = script_path("14_static_asyncio")
MANY = 2000  # connections held at once
BIG_SIZE = 20 * 1024 * 1024
TINY_RECEIVE_BUFFER = 16 * 1024  # so the server's sends block while we do not read
OTHERS = 20  # requests from other clients while one client stalls


@pytest.fixture
def site(tmp_path):
    root = make_docroot(tmp_path / "root")
    (root / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    return root


@pytest.fixture
def descriptors():
    """Enough descriptors for MANY connections on both ends (the server inherits the limit)."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * MANY + 200
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip("the hard descriptor limit (%d) is below %d" % (hard, wanted))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_one_thread_holds_2000_connections_and_answers_each(launch, site, descriptors):
    server = launch(LESSON, "--quiet", "--timeout", "60", directory=site)
    with rawhttp.many_connections(server.port, MANY) as clients:
        for response in rawhttp.ask_each(clients, "/notes.txt"):
            assert response.body == b"plain text\n"
        assert server.open_descriptors(sockets_only=True) > MANY, "all held at once"
        assert server.thread_count() == 1, "a coroutine per connection, not a thread"


def test_a_client_that_stops_reading_a_large_file_stalls_nobody_else(launch, site):
    server = launch(LESSON, "--timeout", "30", directory=site)
    with rawhttp.connect(server.port, receive_buffer=TINY_RECEIVE_BUFFER) as stalled:
        stalled.sendall(rawhttp.build_request("/big.bin"))
        assert stalled.recv(1), "its download has begun, and it reads no more"
        started = time.monotonic()
        for _ in range(OTHERS):
            assert rawhttp.request(server.port, "/notes.txt").body == b"plain text\n"
        # Its coroutine waits in loop.sendfile(); the loop serves everybody else.
        assert time.monotonic() - started < 5, "the others waited for the stalled client"


def test_without_epoll_selectors_picks_another_loop_and_it_still_serves(launch, site, tmp_path):
    # As on macOS (kqueue) or any system without epoll: asyncio's default loop
    # is built on selectors.DefaultSelector, the best the system offers.
    wrapper = tmp_path / "without_epoll.py"
    wrapper.write_text(
        "import runpy, select, sys\n"
        "del select.epoll  # before asyncio imports selectors\n"
        "sys.argv[0] = %r\n"
        "runpy.run_path(%r, run_name='__main__')\n" % (str(LESSON), str(LESSON)))
    server = launch(wrapper, directory=site)
    with rawhttp.connect(server.port) as sock:
        for _ in range(3):  # keep-alive on the fallback loop too
            sock.sendall(rawhttp.build_request("/notes.txt"))
            assert rawhttp.ResponseReader(sock).read_response().body == b"plain text\n"


def test_ctrl_c_ends_it_at_once_while_clients_are_connected(launch, site):
    server = launch(LESSON, "--timeout", "60", directory=site)
    with rawhttp.many_connections(server.port, 20) as clients:
        for sock in clients[:10]:  # ten kept alive after an answer, ten that never asked
            sock.sendall(rawhttp.build_request("/notes.txt"))
            assert rawhttp.ResponseReader(sock).read_response().status == 200
        started = time.monotonic()
        assert server.stop() == [], "a clean exit, code 0, no traceback"
        assert time.monotonic() - started < 5, "it does not wait for its clients to leave"
        assert "Keyboard interrupt received, exiting." in server.output()


def test_the_docstring_compares_it_with_lessons_11_and_13_and_names_its_loop():
    doc = import_lesson("14_static_asyncio").__doc__
    assert doc.startswith("Lesson 14 · ")
    assert "14. C10K问题" in doc
    for heading in ("What changed from the source", "Try it", "Exercise"):
        assert heading in doc
    text = " ".join(doc.split())
    assert "lesson 11" in text and "lesson 13" in text and "await" in text
    assert "selectors" in text and "epoll" in text and "kqueue" in text
    for point in ("14.1", "14.2", "14.3"):
        assert point in text, "the source's points it covers"
    exercise = " ".join(doc.split("Exercise\n--------\n", 1)[1].split())
    assert "--max-connections" in exercise and "asyncio.Semaphore" in exercise
    assert "-k 14" in exercise
    assert "http://127.0.0.1:7890/lessons/14_static_asyncio.html" in doc
