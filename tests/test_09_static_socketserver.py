"""Lesson 09: what only the socketserver lesson teaches.

ForkingMixIn by default, ThreadingMixIn with --threads; both with the
settings socketserver's defaults get wrong for a web server: a listen queue
of 5 and at most 40 children.
"""

import ast
import os
import signal

import pytest

import rawhttp
from servers import script_path, wait_for

LESSON = script_path("09_static_socketserver")
DOCSTRING = ast.get_docstring(ast.parse(LESSON.read_text(encoding="utf-8")))


@pytest.mark.parametrize("options, processes, extra_threads", [
    ([], 1 + 4, 0),  # ForkingMixIn: a child per connection
    (["--threads"], 1, 4),  # ThreadingMixIn: a thread per connection
])
def test_the_mixin_decides_between_a_process_and_a_thread_per_connection(
        launch, docroot, options, processes, extra_threads):
    server = launch(LESSON, "--timeout", "60", *options, directory=docroot)
    threads_at_rest = server.thread_count()
    connections = rawhttp.open_kept_connections(server.port, 4)
    try:
        assert len(server.group_members()) == processes
        assert server.thread_count() == threads_at_rest + extra_threads
    finally:
        for sock in connections:
            sock.close()
    # The handler ends when the peer closes (the source's loop never does).
    assert wait_for(lambda: len(server.group_members()) == 1 and not server.zombies()
                    and server.thread_count() == threads_at_rest)


@pytest.mark.parametrize("options", [[], ["--threads"]], ids=["forking", "threading"])
def test_more_than_40_kept_connections_do_not_block_the_next_client(launch, docroot, options):
    # ForkingMixIn's default max_children is 40: the parent would wait in
    # waitpid() for one of the 40 to end before accepting the 41st.
    server = launch(LESSON, "--timeout", "60", *options, directory=docroot)
    connections = rawhttp.open_kept_connections(server.port, 45)
    try:
        assert rawhttp.request(server.port, "/notes.txt").body == b"plain text\n"
    finally:
        for sock in connections:
            sock.close()


def test_a_burst_of_100_connections_waits_in_the_listen_queue(launch, docroot):
    # While the parent is stopped, nobody accepts: connections wait in the
    # kernel's listen queue, whose length is request_queue_size.  With
    # socketserver's default of 5, the 7th connect would time out.
    server = launch(LESSON, directory=docroot)
    os.kill(server.pid, signal.SIGSTOP)
    burst = []
    try:
        for _ in range(100):
            burst.append(rawhttp.connect(server.port, timeout=2))
    finally:
        os.kill(server.pid, signal.SIGCONT)
    try:
        for sock in burst:
            sock.sendall(rawhttp.build_request("/notes.txt", headers=[("Connection", "close")]))
        for sock in burst:
            assert rawhttp.ResponseReader(sock).read_response().body == b"plain text\n"
    finally:
        for sock in burst:
            sock.close()


def test_the_docstring_shows_the_mixins_and_the_call_chain():
    assert DOCSTRING.startswith("Lesson 09 · ")
    assert "9. Web静态服务器-多进程(集成模块 socketserver)" in DOCSTRING.splitlines()[0]
    for words in ["ForkingMixIn", "ThreadingMixIn", "serve_forever",
                  "process_request", "request_queue_size", "What changed from the source",
                  "Try it", "Exercise", "ThreadPoolMixIn", "--workers N",
                  "503 Service Unavailable", "Retry-After: 1", "server_close"]:
        assert words in DOCSTRING
