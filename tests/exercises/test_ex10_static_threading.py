"""Exercise 10 · /work in a pool of processes

`--cpu processes`: GET /work?n=N counts the primes below N in a pool of at
most os.cpu_count() worker processes, made at start-up and reused (not a
process per request), while files are still served; every /work answer
names the process that counted in `X-Computed-By: <pid>`; Ctrl+C stops the
server and every worker.
"""

import os

import pytest

import rawhttp
from servers import wait_for

LESSON = "10_static_threading"
HINT = ("lessons/10_static_threading.py, docstring 'Exercise'; answer_work_or_file() counts in "
        "the connection's thread: hand count_primes() to a "
        "concurrent.futures.ProcessPoolExecutor made in serve_forever(), and wait for its result")

# n -> the number of primes below n (pi(n - 1)), as any table of primes says.
PRIMES_BELOW = {2: 0, 3: 1, 10: 4, 100: 25, 1000: 168, 40_000: 4203, 100_000: 9592}
LONG_WORK = 300_000  # about 1 s of counting here: long enough to overlap with other requests


def start(exercise, site):
    return exercise.serve("--cpu", "processes", directory=site)


def counted_by(response):
    value = response.header("X-Computed-By")
    assert value and value.isdigit(), \
        "every /work answer carries X-Computed-By: <pid> (got %r)" % value
    return int(value)


def work(http, server, n):
    response = http.request(server, "/work?n=%d" % n)
    assert response.status == 200, "GET /work?n=%d is answered 200 (got %s)" % (
        n, response.status)
    return response


@pytest.mark.points(2)
def test_work_answers_the_number_of_primes_below_n(exercise, http, site):
    server = start(exercise, site)
    for n, expected in PRIMES_BELOW.items():
        response = work(http, server, n)
        assert response.body.decode().strip() == str(expected), \
            "/work?n=%d: %d primes below %d" % (n, expected, n)
    assert http.request(server, "/work?n=oops").status == 400, "an n that is no number: 400"


@pytest.mark.points(3)
def test_work_is_counted_in_a_worker_process_of_the_server_not_in_the_server(
        exercise, http, site):
    server = start(exercise, site)
    cores = os.cpu_count() or 1
    requests = cores + 4  # more than a pool may hold: a process per request shows
    pids = [counted_by(work(http, server, 1000)) for _ in range(requests)]
    assert server.pid not in pids, \
        "with --cpu processes the server's own process (%d) does not count" % server.pid
    started = server.group_members()  # the grader's view: every process the program started
    for pid in set(pids):
        assert pid in started, \
            "X-Computed-By names a live process the server started (%d is none)" % pid
    assert len(set(pids)) <= cores, \
        "a pool of at most os.cpu_count() workers, reused: not a process per request " \
        "(%d requests were counted by %d processes)" % (requests, len(set(pids)))


@pytest.mark.points(2)
def test_files_are_served_while_a_worker_counts(exercise, http, site):
    server = start(exercise, site)
    with http.connect(server) as slow:
        slow.sendall(rawhttp.build_request("/work?n=%d" % LONG_WORK))
        for _ in range(3):
            assert http.request(server, "/notes.txt").status == 200, \
                "a file is answered while /work counts"
        response = slow.read_response()
    assert response.status == 200 and response.body.decode().strip() == "25997", \
        "and then /work answers: 25997 primes below %d" % LONG_WORK
    assert counted_by(response) != server.pid, "counted by a worker, not by the server"


@pytest.mark.points(2)
def test_ctrl_c_stops_the_server_and_every_worker_process(exercise, http, site):
    server = start(exercise, site)
    pids = {counted_by(work(http, server, 1000)) for _ in range(4)}
    assert server.pid not in pids, "/work is counted by worker processes"
    problems = server.stop()
    assert not problems, "Ctrl+C stops the server cleanly: %s" % "; ".join(problems)
    assert server.process.returncode == 0, "and it exits with status 0"
    assert wait_for(lambda: not pids & set(server.group_members()), timeout=5), \
        "no worker process is left behind after Ctrl+C"
