"""Lesson 08: what only the fork-per-connection server teaches.

One child per connection, made by os.fork: the parent keeps no client socket,
the child keeps no listening socket and leaves when its connection ends,
every child is reaped.  (That none outlives the parent, even one
interrupted alone, is in test_concurrent_servers.py.)
"""

import ast
import subprocess
import sys

import rawhttp
from servers import one_line_error, script_path, wait_for

LESSON = script_path("08_static_fork")
DOCSTRING = ast.get_docstring(ast.parse(LESSON.read_text(encoding="utf-8")))


def test_each_connection_has_its_own_child_holding_only_its_client_socket(launch, docroot):
    server = launch(LESSON, "--timeout", "60", directory=docroot)
    connections = rawhttp.open_kept_connections(server.port, 4)
    try:
        children = [pid for pid in server.group_members() if pid != server.pid]
        assert len(children) == 4
        # The parent closed its copy of each client socket after fork(); each
        # child closed its copy of the listening socket.
        assert server.open_descriptors([server.pid], sockets_only=True) == 1
        for child in children:
            assert server.open_descriptors([child], sockets_only=True) == 1
    finally:
        for sock in connections:
            sock.close()


def test_a_child_leaves_when_its_connection_ends_and_is_reaped(launch, docroot):
    server = launch(LESSON, "--timeout", "60", directory=docroot)
    connections = rawhttp.open_kept_connections(server.port, 5)
    for sock in connections:
        sock.close()
    # The source's child fell back into the accept loop instead of leaving.
    # Nobody connects now: reaping must not depend on the next accept().
    assert wait_for(lambda: list(server.group_processes()) == [server.pid]), \
        "children still there (Z = zombie): %s" % server.group_processes()


def test_without_os_fork_a_one_line_message_points_to_lesson_07(tmp_path):
    without_fork = "import os, runpy, sys; del os.fork; sys.argv[0] = %r; " \
                   "runpy.run_path(sys.argv[0], run_name='__main__')" % str(LESSON)
    result = subprocess.run([sys.executable, "-c", without_fork, "0"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.stdout == ""
    assert "07_static_multiprocessing" in one_line_error(result)


def test_the_docstring_names_its_section_and_exercise():
    assert DOCSTRING.startswith("Lesson 08 · ")
    assert "8. Web静态服务器-多进程(os.fork)" in DOCSTRING.splitlines()[0]
    for words in ["What changed from the source", "Try it", "Exercise", "os._exit",
                  "SIGCHLD", "WNOHANG", "SIG_IGN", "GET /stats", "copy", "lose no count"]:
        assert words in DOCSTRING
