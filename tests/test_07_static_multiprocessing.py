"""Lesson 07: what only the process-per-connection server teaches.

The shared contract (test_contract.py) and what every concurrent lesson keeps
(test_concurrent_servers.py) are tested elsewhere; here: one child process
per connection, the parent's copy of the client socket, reaping, and the
``spawn`` start method of macOS and Windows.
"""

import ast
import multiprocessing

import pytest

import rawhttp
from servers import script_path, wait_for

LESSON = script_path("07_static_multiprocessing")
DOCSTRING = ast.get_docstring(ast.parse(LESSON.read_text(encoding="utf-8")))


# Processes multiprocessing starts once and keeps, besides the server itself.
HELPERS = {"fork": 0, "spawn": 1, "forkserver": 2}  # the resource tracker; and the fork server


@pytest.mark.parametrize("start_method", [
    method for method in HELPERS if method in multiprocessing.get_all_start_methods()])
def test_each_connection_has_its_own_child_and_the_parent_keeps_no_copy(launch, docroot,
                                                                         start_method):
    server = launch(LESSON, "--timeout", "60", "--start-method", start_method, directory=docroot)
    assert rawhttp.request(server.port, "/").status == 200  # starts the helpers
    at_rest = 1 + HELPERS[start_method]
    assert wait_for(lambda: len(server.group_members()) == at_rest)
    connections = rawhttp.open_kept_connections(server.port, 4)
    try:
        assert len(server.group_members()) == at_rest + 4
        # The listening socket is the only socket the parent holds: it closed
        # its copy of each client socket once the child had one.
        assert server.open_descriptors([server.pid], sockets_only=True) == 1
    finally:
        for sock in connections:
            sock.close()
    # Nobody connects now: the parent must still notice its children ending.
    assert wait_for(lambda: len(server.group_members()) == at_rest and not server.zombies()), \
        "finished children were not reaped: zombies %s" % server.zombies()


def test_spawned_children_serve_concurrently_and_stop_on_ctrl_c(launch, docroot):
    server = launch(LESSON, "--timeout", "60", "--start-method", "spawn", directory=docroot)
    with rawhttp.connect(server.port) as holder:
        holder.sendall(b"GET /notes.txt HTTP/1.1\r\nHost: x\r\n")  # half a request, held
        response = rawhttp.request(server.port, "/style.css")
        assert response.status == 200
        assert response.body == (docroot / "style.css").read_bytes()
        assert server.stop() == []  # with holder's child still serving
    assert server.process.returncode == 0


def test_the_docstring_names_its_sections_and_exercise():
    assert DOCSTRING.startswith("Lesson 07 · ")
    assert "7. Web静态服务器-多进程(multiprocessing)" in DOCSTRING.splitlines()[0]
    for words in ["What changed from the source", "Try it", "Exercise", "--workers",
                  "X-Worker-PID", "spawn"]:
        assert words in DOCSTRING
