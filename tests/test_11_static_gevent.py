"""Lesson 11: what only the gevent lesson teaches.

Greenlets, not threads: many connections, one thread.  patch_all() before
every other import.  --max-connections bounds the greenlets with a Pool, and
the clients beyond it wait to be accepted.
"""

import ast
import socket
import sqlite3

import pytest

import rawhttp
from servers import one_line_error, run_script, script_path

LESSON = script_path("11_static_gevent")
SOURCE = LESSON.read_text(encoding="utf-8")
DOCSTRING = ast.get_docstring(ast.parse(SOURCE))


def test_patch_all_comes_before_every_other_import():
    statements = ast.parse(SOURCE).body[1:]  # after the docstring
    imports = [(index, node) for index, node in enumerate(statements)
               if isinstance(node, (ast.Import, ast.ImportFrom))
               or isinstance(node, ast.Try) and isinstance(node.body[0], ast.ImportFrom)]
    patch = next(index for index, node in enumerate(statements)
                 if "monkey.patch_all()" in ast.unparse(node))
    first_import, first = imports[0]
    assert "from gevent import monkey" in ast.unparse(first)
    assert all(index > patch for index, _ in imports[1:]), "an import runs before patch_all()"
    assert first_import < patch


def test_many_connections_are_served_by_one_thread(launch, docroot):
    server = launch(LESSON, "--timeout", "60", directory=docroot)
    threads_at_rest = server.thread_count()
    connections = rawhttp.open_kept_connections(server.port, 20)
    try:
        assert server.group_members() == [server.pid]
        assert server.thread_count() == threads_at_rest
    finally:
        for sock in connections:
            sock.close()


def test_max_connections_makes_the_next_client_wait_for_a_free_slot(launch, docroot):
    server = launch(LESSON, "--timeout", "60", "--max-connections", "2", directory=docroot)
    first, second = rawhttp.connect(server.port), rawhttp.connect(server.port)
    try:
        for holder in (first, second):  # both served, both kept open
            holder.sendall(rawhttp.build_request("/notes.txt"))
            assert rawhttp.ResponseReader(holder).read_response().status == 200
        with rawhttp.connect(server.port, timeout=1.0) as third:
            third.sendall(rawhttp.build_request("/notes.txt", headers=[("Connection", "close")]))
            with pytest.raises(socket.timeout):
                third.recv(1)  # a whole second without an answer: no free slot
            first.close()  # frees a slot
            third.settimeout(rawhttp.TIMEOUT)
            response = rawhttp.ResponseReader(third).read_response()
            assert response.body == b"plain text\n"
    finally:
        first.close()
        second.close()


def test_max_connections_must_be_positive(docroot):
    one_line_error(run_script(LESSON, "0", "--max-connections", "0", "--directory", docroot))


def test_the_docstring_shows_streamserver_and_states_the_exercise():
    assert DOCSTRING.startswith("Lesson 11 · ")
    assert "11. Web静态服务器-多协程(gevent + monkey)" in DOCSTRING.splitlines()[0]
    for words in ["What changed from the source", "Try it", "Exercise", "StreamServer",
                  "Pool", "patch_all", "/visits", "BEGIN EXCLUSIVE", "BUSY_TIMEOUT",
                  "GEVENT_MONITOR_THREAD_ENABLE=1", "appears to be blocked", "Blocked"]:
        assert words in DOCSTRING
    assert "threadpool" not in DOCSTRING, "the exercise does not give its answer away"


def test_visits_counts_each_visit_in_the_database_it_is_given(launch, docroot, tmp_path):
    database = tmp_path / "visits.db"
    server = launch(LESSON, "--database", database, directory=docroot)
    for expected in (b"1", b"2", b"3"):
        response = rawhttp.request(server.port, "/visits")
        assert response.status == 200 and response.body.strip() == expected
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM visits").fetchone() == (3,)
