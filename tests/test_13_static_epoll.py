"""Lesson 13: an epoll loop sleeps when nothing happens, never spins, and stays correct while fast.

The shared contract, the concurrent-server tests and the single-thread
loop tests run on lesson 13 elsewhere (and again in --edge mode,
test_13_static_epoll_edge.py).  Here is what only the epoll lesson
promises: no CPU while idle, no spin when descriptors run out, and off
Linux it says where to go.  Its caches are tested with lesson 11's
(test_cached_answers.py).
"""

import os
import subprocess
import sys

import pytest

import rawhttp
from servers import cpu_used_over, import_lesson, one_line_error, script_path, wait_for_output

LESSON = script_path("13_static_epoll")
MODES = [(), ("--edge",)]
IDLE_CLIENTS = 50
MEASURED_SECONDS = 2.0  # a measuring window, not a wait for the server


@pytest.fixture(params=MODES, ids=lambda mode: " ".join(mode) or "level-triggered")
def mode(request):
    return request.param


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_with_50_idle_keep_alive_connections_the_loop_sleeps(launch, docroot, mode):
    server = launch(LESSON, *mode, "--timeout", "60", directory=docroot)
    clients = [rawhttp.connect(server.port) for _ in range(IDLE_CLIENTS)]
    try:
        for sock in clients:  # each one served, then idle: nothing to read, nothing to send
            sock.sendall(rawhttp.build_request("/notes.txt"))
            assert rawhttp.ResponseReader(sock).read_response().status == 200
        spent = cpu_used_over(server, MEASURED_SECONDS)
    finally:
        for sock in clients:
            sock.close()
    # Watching EPOLLOUT on idle sockets (always writable) would wake the loop
    # at every turn: a whole core.  The bound is the exercise of lesson 12.
    assert spent < 0.05 * MEASURED_SECONDS, \
        "%.2f s of CPU in %.1f s idle" % (spent, MEASURED_SECONDS)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux")
def test_out_of_descriptors_the_loop_waits_instead_of_spinning(launch, docroot, mode):
    resource = pytest.importorskip("resource")
    server = launch(LESSON, *mode, "--timeout", "60", directory=docroot)
    assert rawhttp.request(server.port, "/notes.txt").status == 200
    _, hard = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (server.open_descriptors() + 5, hard))
    held = [rawhttp.connect(server.port) for _ in range(30)]  # 25 more than it may accept
    try:
        wait_for_output(server, "accept: Too many open files")  # it has hit the limit ...
        # ... and clients keep waiting in the listen queue while we measure.
        spent = cpu_used_over(server, MEASURED_SECONDS)
    finally:
        for sock in held:
            sock.close()
    # A loop that retried accept() at once would burn a whole core here.
    assert spent < 0.15 * MEASURED_SECONDS, "%.2f s of CPU in %.1f s" % (spent, MEASURED_SECONDS)
    assert rawhttp.request(server.port, "/notes.txt").body == b"plain text\n"


def test_without_epoll_it_says_which_lesson_to_use_instead(tmp_path):
    code = ("import runpy, select, sys; del select.epoll; sys.argv = [%r, '0'];"
            " runpy.run_path(%r, run_name='__main__')" % (str(LESSON), str(LESSON)))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, cwd=tmp_path)
    message = one_line_error(result)
    assert "12_static_nonblocking" in message and "selectors" in message


def test_the_docstring_names_its_section_the_edge_triggered_trap_and_the_exercise():
    doc = import_lesson("13_static_epoll").__doc__
    assert doc.startswith("Lesson 13 · ")
    assert "13. Web静态服务器-IO多路复用" in doc
    for heading in ("What changed from the source", "Try it", "Exercise"):
        assert heading in doc
    assert "EPOLLET" in doc and "BlockingIOError" in doc
    exercise = " ".join(doc.split("Exercise\n--------\n", 1)[1].split())
    assert "--header-timeout" in exercise and "408" in exercise and "heap" in exercise
