"""Exercise 02 · a pool of worker threads

`02_server_models.py pool --workers N` is a TCP echo server whose N worker
threads, started once, take accepted connections from a queue.Queue: N
clients are echoed at once, the N+1-th is accepted but waits for a free
worker, and Ctrl+C stops it cleanly.
"""

import socket
from pathlib import Path

import pytest

from servers import ECHO_STARTUP_LINE, wait_for

LESSON = "02_server_models"
HINT = ("lessons/02_server_models.py, docstring 'Exercise'; serve_threads() starts a thread "
        "per connection: the pool starts N once and hands them connections through a queue")

WAIT = 1.0  # seconds a waiting client must go unanswered; long enough to tell "never"


def start_pool(exercise, workers):
    return exercise.serve("--workers", workers, leading_args=["pool"],
                          startup_line=ECHO_STARTUP_LINE)


def echoed(connection, message):
    """Send a line; True if the same bytes come back."""
    connection.sendall(message)
    received = b""
    while len(received) < len(message):
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    return received == message


def gets_no_echo_yet(connection, message):
    connection.sendall(message)
    connection.settimeout(WAIT)
    try:
        connection.recv(65536)  # an echo, or the server closing: either way, no waiting
        return False
    except socket.timeout:
        return True
    finally:
        connection.settimeout(5.0)


def threads_of(server):
    """Threads of every process the server started (a process per client counts too)."""
    count = 0
    for pid in server.group_members():
        try:
            count += len(list(Path("/proc/%d/task" % pid).iterdir()))
        except OSError:
            pass  # it exited meanwhile
    return count


def threads_once_started(server, at_least):
    """The thread count, once the workers have had time to start (after the startup line)."""
    wait_for(lambda: threads_of(server) >= at_least, timeout=5.0)
    return threads_of(server)


@pytest.mark.points(2)
@pytest.mark.parametrize("workers", [2, 3])
def test_n_clients_are_echoed_at_the_same_time(exercise, http, workers):
    server = start_pool(exercise, workers)
    clients = [http.connect(server) for _ in range(workers)]
    for number, client in enumerate(clients, 1):
        assert echoed(client, b"client %d says hello\n" % number), \
            "client %d of %d (all connected at once) should be echoed" % (number, workers)
    for client in clients:
        client.close()


@pytest.mark.points(3)
def test_the_next_client_is_accepted_but_waits_until_a_worker_is_free(exercise, http):
    server = start_pool(exercise, 2)
    busy = [http.connect(server) for _ in range(2)]
    for client in busy:
        assert echoed(client, b"busy\n")
    waiting = http.connect(server)
    assert gets_no_echo_yet(waiting, b"my turn?\n"), \
        "with 2 workers busy, a third client must wait (no echo within %.0f s)" % WAIT
    busy[0].close()  # a worker is free: it takes the waiting connection from the queue
    received = waiting.recv(65536)
    assert received == b"my turn?\n", "once a client left, the waiting one is echoed"
    assert echoed(busy[1], b"still here\n"), "the other busy client is still served"


def test_the_workers_are_started_once_not_per_connection(exercise, http):
    server = start_pool(exercise, 3)
    at_start = threads_once_started(server, 3 + 1)
    assert at_start >= 3 + 1, "3 workers and the main thread should exist from the start"
    for round in range(3):
        clients = [http.connect(server) for _ in range(5)]  # more clients than workers
        assert echoed(clients[0], b"round %d\n" % round)
        assert threads_of(server) == at_start, "no thread is started per connection"
        for client in clients:
            client.close()


def test_ctrl_c_stops_it_cleanly_while_workers_hold_clients(exercise, http):
    server = start_pool(exercise, 2)
    clients = [http.connect(server) for _ in range(3)]
    assert echoed(clients[0], b"hello\n")
    problems = server.stop()
    assert problems == [], "Ctrl+C should stop the server at once: %s" % "; ".join(problems)
    assert server.process.returncode == 0
