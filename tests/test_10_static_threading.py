"""Lesson 10: what only the thread-per-connection server teaches.

One process, a thread per connection, and a piece of state every thread
shares -- the numbered access log -- kept whole by a Lock.
"""

import ast
import re
import threading

import rawhttp
from servers import script_path, wait_for

LESSON = script_path("10_static_threading")
DOCSTRING = ast.get_docstring(ast.parse(LESSON.read_text(encoding="utf-8")))
LOG_LINE = re.compile(r'\S+ - - \[[^\]]+\] "[^"]*" \d+ \d+ #(\d+)')


def test_each_connection_has_its_own_thread_in_one_process(launch, docroot):
    server = launch(LESSON, "--timeout", "60", directory=docroot)
    threads_at_rest = server.thread_count()
    connections = rawhttp.open_kept_connections(server.port, 5)
    try:
        assert server.group_members() == [server.pid]
        assert server.thread_count() == threads_at_rest + 5
    finally:
        for sock in connections:
            sock.close()
    assert wait_for(lambda: server.thread_count() == threads_at_rest), \
        "a thread outlived its connection"


def test_the_shared_log_numbers_every_request_once_from_many_threads(launch, docroot):
    server = launch(LESSON, directory=docroot)
    clients, requests_each = 20, 20

    def client():
        with rawhttp.connect(server.port) as sock:
            reader = rawhttp.ResponseReader(sock)
            for _ in range(requests_each - 1):
                sock.sendall(rawhttp.build_request("/notes.txt"))
                assert reader.read_response().status == 200
            sock.sendall(rawhttp.build_request("/notes.txt", headers=[("Connection", "close")]))
            assert reader.read_response().status == 200

    workers = [threading.Thread(target=client) for _ in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    total = clients * requests_each
    log_lines = lambda: server.output().splitlines()[1:]  # noqa: E731 (after the startup line)
    wait_for(lambda: len(log_lines()) >= total)
    numbers = []
    for line in log_lines():
        match = LOG_LINE.fullmatch(line)
        assert match, "a log line was cut or mixed with another: %r" % line
        numbers.append(int(match[1]))
    assert sorted(numbers) == list(range(1, total + 1)), "a number was lost or given twice"


def test_the_docstring_explains_the_gil_and_states_the_exercise():
    assert DOCSTRING.startswith("Lesson 10 · ")
    assert "10. Web静态服务器-多线程(threading)" in DOCSTRING.splitlines()[0]
    for words in ["What changed from the source", "Try it", "Exercise", "GIL", "Lock",
                  "--workers", "--queue", "503 Service Unavailable", "Retry-After: 1"]:
        assert words in DOCSTRING
