"""Exercise 07 · prefork

`--workers N` starts N worker processes at start-up, each accepting on the
shared listening socket (no process per connection); every response carries
X-Worker-PID: <pid of the worker>; Ctrl+C stops all of them.
"""


import pytest

import rawhttp
from servers import wait_for

LESSON = "07_static_multiprocessing"
HINT = ("lessons/07_static_multiprocessing.py, docstring 'Exercise'; serve_forever() makes a "
        "process per connection: make N at start-up, each running an accept() loop")

WORKERS = 3


def start(exercise, site):
    # A long idle timeout: a kept-alive connection keeps its worker busy.
    return exercise.serve("--timeout", "60", "--workers", WORKERS, directory=site)


def processes_once_started(server, expected):
    """The group's processes, once the workers had a moment to start (after the startup line)."""
    wait_for(lambda: len(server.group_members()) >= expected)
    return set(server.group_members())


def worker_pid(response):
    value = response.header("X-Worker-PID")
    assert value and value.isdigit(), \
        "every response carries X-Worker-PID: <pid> (got %r)" % value
    return int(value)


def served_on_a_kept_connection(http, server):
    """A keep-alive connection, served once, and left open: its worker stays with it."""
    connection = http.connect(server)
    connection.sendall(rawhttp.build_request("/notes.txt"))
    response = connection.read_response()
    assert response.status == 200
    return connection, worker_pid(response)


@pytest.mark.points(3)
def test_n_workers_exist_from_the_start_and_no_process_is_made_per_connection(
        exercise, http, site):
    server = start(exercise, site)
    at_start = processes_once_started(server, WORKERS + 1)
    assert len(at_start) == WORKERS + 1, \
        "the server and %d workers, before any client came (found %d processes)" % (
            WORKERS, len(at_start))
    for _ in range(6):
        assert http.request(server, "/notes.txt").status == 200
    assert set(server.group_members()) == at_start, "the same processes serve every client"


@pytest.mark.points(3)
def test_every_response_names_its_worker_and_n_clients_meet_n_workers(exercise, http, site):
    server = start(exercise, site)
    workers = processes_once_started(server, WORKERS + 1) - {server.pid}
    error = http.request(server, "/no-such-file")
    assert error.status == 404 and worker_pid(error) in workers, \
        "an error answer names its worker too, one of the worker processes"
    kept = [served_on_a_kept_connection(http, server) for _ in range(WORKERS)]
    pids = [pid for _, pid in kept]
    assert len(set(pids)) == WORKERS, \
        "%d clients held at once were served by %d different workers" % (WORKERS, len(set(pids)))
    assert set(pids) <= workers, "X-Worker-PID names one of the worker processes"
    for connection, _ in kept:
        connection.close()


@pytest.mark.points(2)
def test_ctrl_c_stops_the_server_and_every_worker(exercise, http, site):
    server = start(exercise, site)
    processes_once_started(server, WORKERS + 1)
    kept = [served_on_a_kept_connection(http, server) for _ in range(2)]
    problems = server.stop()
    assert problems == [], "after Ctrl+C: %s" % "; ".join(problems)
    for connection, _ in kept:
        connection.close()
