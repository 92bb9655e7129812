"""Exercise 11 · a blocking call gevent did not patch

GET /visits counts each visit in an SQLite database (--database FILE).
While another program holds the database's write lock, a client of /visits
waits for it (up to the lesson's BUSY_TIMEOUT, 10 s) and then gets its count;
every other client is served meanwhile, as if nothing waited.
"""

import os
import socket
import sqlite3
from contextlib import contextmanager

import pytest

import rawhttp

LESSON = "11_static_gevent"
HINT = ("lessons/11_static_gevent.py, docstring 'Exercise'; run it with "
        "GEVENT_MONITOR_THREAD_ENABLE=1 and read the 'Blocked Stack': which call waits, and "
        "why could gevent not switch to another greenlet there?  gevent.get_hub().threadpool "
        "runs a function in a real thread")

WAITS = 0.5  # seconds a client of /visits must be seen waiting for the lock
ANSWERED_WITHIN = 2.0  # seconds a file may take while /visits waits: generous, well under BUSY_TIMEOUT (10 s)


@pytest.fixture
def database(exercise, tmp_path_factory):
    """A fresh database file's path, in a folder the program can write to (its journal too)."""
    folder = tmp_path_factory.mktemp("ex11-db") / "db"
    folder.mkdir()
    exercise.sandbox.readable(folder)  # a sandboxed program can reach it...
    folder.chmod(0o777)  # ...and create the database and its journal there
    return folder / "visits.db"


def start(exercise, site, database):
    return exercise.serve("--database", database, directory=site)


def visits(response):
    assert response.status == 200, "GET /visits is answered 200 (got %s)" % response.status
    return int(response.body.decode().strip())


@contextmanager
def locked(database):
    """Another program writes: it holds the database's exclusive lock until the block ends."""
    other = sqlite3.connect(database, isolation_level=None)
    os.chmod(database, 0o666)  # the grader may be another user than the program
    try:
        # Its undo journal in memory: a journal file of the grader's own, left
        # for a moment after it lets go, could stop the program from writing.
        other.execute("PRAGMA journal_mode=MEMORY")
        other.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        other.close()  # rolls back, and lets go of the lock


def waiting_for_visits(http, server):
    """A client that asked /visits and, the database being locked, has no answer yet."""
    connection = http.connect(server)
    connection.sendall(rawhttp.build_request("/visits"))
    connection.settimeout(WAITS)
    with pytest.raises(socket.timeout):
        connection.recv(65536)  # the lock is held: /visits waits for it (no quick 503)
    connection.settimeout(rawhttp.TIMEOUT)
    return connection


def assert_file_answered_meanwhile(http, server):
    with http.connect(server, timeout=ANSWERED_WITHIN) as other:
        other.sendall(rawhttp.build_request("/notes.txt"))
        try:
            response = other.read_response()
        except (rawhttp.NoResponse, socket.timeout):
            pytest.fail("while one client's /visits waited for the database, another client's "
                        "GET /notes.txt got no answer within %.0f s: the whole server stood still"
                        % ANSWERED_WITHIN)
        assert response.status == 200


@pytest.mark.points(4)
def test_files_are_served_while_a_client_of_visits_waits_for_the_database(
        exercise, http, site, database):
    server = start(exercise, site, database)
    assert visits(http.request(server, "/visits")) == 1, "the first visit counts 1"
    with locked(database):
        waiting = waiting_for_visits(http, server)
        for _ in range(3):
            assert_file_answered_meanwhile(http, server)
    assert visits(waiting.read_response()) == 2, \
        "once the database is free, the waiting client gets its count: 2"
    waiting.close()


@pytest.mark.points(3)
def test_many_clients_of_visits_wait_together_and_each_visit_is_counted(
        exercise, http, site, database):
    server = start(exercise, site, database)
    assert visits(http.request(server, "/visits")) == 1
    with locked(database):
        waiting = [waiting_for_visits(http, server) for _ in range(3)]
        assert_file_answered_meanwhile(http, server)
    counts = sorted(visits(connection.read_response()) for connection in waiting)
    assert counts == [2, 3, 4], "three visits that waited are counted once each: 2, 3, 4"
    for connection in waiting:
        connection.close()
    assert visits(http.request(server, "/visits")) == 5, "and the next one counts 5"
