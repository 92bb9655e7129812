"""Exercise 15 · the parent replaces a worker that dies

With `--workers N`, when a worker ends while the server runs (here: killed
with SIGKILL), the parent starts a new worker on a listener of the same
port, so that N workers share the new connections again; Ctrl+C still stops
every worker, the new ones too.
"""

import os
import signal

import pytest

import rawhttp
from servers import wait_for

LESSON = "15_static_reuseport"
HINT = ("lessons/15_static_reuseport.py, docstring 'Exercise'; serve_forever's os.wait() loop "
        "learns which worker ended: start_worker() can start another with the same index, on a "
        "listener the parent kept")

WORKERS = 2
HELD = 40  # connections held at once: all 40 hash to one of 2 workers with chance 2**-39
REPLACED_WITHIN = 5.0  # seconds


def start_and_kill_a_worker(exercise, site):
    """A server with WORKERS workers, one of them killed; (server, the killed pid)."""
    server = exercise.serve("--workers", WORKERS, "--timeout", "60", directory=site)
    assert wait_for(lambda: len(server.workers()) == WORKERS), \
        "the lesson starts %d workers with --workers %d" % (WORKERS, WORKERS)
    killed = server.workers()[0]
    os.kill(killed, signal.SIGKILL)
    return server, killed


def replaced(server, killed):
    def n_workers_without_the_killed_one():
        workers = server.workers()
        return killed not in workers and len(workers) == WORKERS
    return wait_for(n_workers_without_the_killed_one, REPLACED_WITHIN)


@pytest.mark.points(4)
def test_a_killed_worker_is_replaced_within_seconds(exercise, http, site):
    server, killed = start_and_kill_a_worker(exercise, site)
    assert replaced(server, killed), \
        "%d workers again within %.0f s of killing one (now: %s)" % (
            WORKERS, REPLACED_WITHIN, server.workers())
    assert http.request(server, "/notes.txt").status == 200


@pytest.mark.points(3)
def test_the_new_worker_takes_its_share_of_new_connections(exercise, http, site):
    server, killed = start_and_kill_a_worker(exercise, site)
    assert replaced(server, killed), "a new worker replaces the killed one"
    clients = []
    try:
        for _ in range(HELD):
            client = http.connect(server)
            clients.append(client)
            client.sendall(rawhttp.build_request("/notes.txt"))
            assert client.read_response().status == 200
        # Each worker holds its listener, and the connections the kernel gave it.
        held = {pid: server.open_descriptors([pid], sockets_only=True) - 1
                for pid in server.workers()}
        assert min(held.values()) >= 1, \
            "both workers hold some of %d new connections (held: %s)" % (HELD, held)
    finally:
        for client in clients:
            client.close()


@pytest.mark.points(2)
def test_after_a_replacement_ctrl_c_stops_every_worker(exercise, http, site):
    server, killed = start_and_kill_a_worker(exercise, site)
    assert replaced(server, killed), "a new worker replaces the killed one"
    problems = server.stop()
    assert problems == [], "Ctrl+C stops the parent and every worker: %s" % "; ".join(problems)
