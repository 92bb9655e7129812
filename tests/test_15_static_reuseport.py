"""Lesson 15: N worker processes, each with its own SO_REUSEPORT listener on the one port.

The shared contract and the concurrent-server tests run on lesson 15
elsewhere (tests/servers.py counts its resident workers).  Here is what only
this lesson promises: every worker owns a listening socket of its own, all
on the same port (with --shared: one socket for all); the kernel spreads new
connections across them; a dead worker's share goes to the others; and
--cpu-pin gives each worker a CPU of its own; and `kill` or a closed
terminal stops the workers with the parent, as Ctrl+C does.
"""

import os
import signal
import socket

import pytest

import rawhttp
from servers import import_lesson, script_path, start_server, wait_for

LESSON = script_path("15_static_reuseport")
HELD = 40  # connections held open at once: the chance that all hash to one of 2 workers is 2**-39

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc") or not hasattr(socket, "SO_REUSEPORT"),
                                reason="reads /proc; needs SO_REUSEPORT")


def workers_of(server, count):
    """The worker pids, once the parent has started all `count` of them."""
    assert wait_for(lambda: len(server.workers()) == count), \
        "expected %d workers besides the parent: %s" % (count, server.workers())
    return server.workers()


def listening_inodes(port):
    """The inodes of the listening TCP sockets on this port (any address)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    return inodes


def socket_inodes(pid):
    inodes = set()
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    return inodes


def test_each_worker_owns_a_listening_socket_of_its_own_on_the_one_port(launch, docroot):
    server = launch(LESSON, "--workers", "3", directory=docroot)
    workers = workers_of(server, 3)
    listening = listening_inodes(server.port)
    owned = [socket_inodes(pid) & listening for pid in workers]
    assert [len(mine) for mine in owned] == [1, 1, 1], "one listener in each worker"
    assert len(set.union(*owned)) == 3, "three different sockets, bound to one port"


def test_with_shared_every_worker_holds_the_one_listener(launch, docroot):
    server = launch(LESSON, "--workers", "2", "--shared", directory=docroot)
    workers = workers_of(server, 2)
    listening = listening_inodes(server.port)
    assert len(listening) == 1, "one listening socket"
    assert all(socket_inodes(pid) & listening == listening for pid in workers)
    assert http_status(server) == 200


def http_status(server):
    with rawhttp.connect(server.port) as sock:
        sock.sendall(rawhttp.build_request("/notes.txt"))
        return rawhttp.ResponseReader(sock).read_response().status


def test_the_kernel_spreads_new_connections_across_the_workers(launch, docroot):
    server = launch(LESSON, "--workers", "2", "--timeout", "60", directory=docroot)
    workers = workers_of(server, 2)
    clients = rawhttp.open_kept_connections(server.port, HELD)
    try:
        # Each worker holds its listener and some of the connections.
        held = [server.open_descriptors([pid], sockets_only=True) - 1 for pid in workers]
        assert sum(held) == HELD
        assert min(held) >= 1, "every worker got some of %d new connections: %s" % (HELD, held)
    finally:
        for sock in clients:
            sock.close()


def test_when_a_worker_dies_the_others_take_every_new_connection(launch, docroot):
    server = launch(LESSON, "--workers", "2", directory=docroot)
    dead = workers_of(server, 2)[0]
    os.kill(dead, signal.SIGKILL)
    assert wait_for(lambda: dead not in server.group_members()), "the parent reaps it"
    # Were its listener still open somewhere, about half of these would wait forever.
    assert [http_status(server) for _ in range(20)] == [200] * 20


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_kill_or_a_closed_terminal_stops_the_workers_with_the_parent(tmp_path, docroot, name):
    number = getattr(signal, name)
    # Not the launch fixture: it expects Ctrl+C's exit status 0.
    server = start_server(LESSON, "--workers", "2", directory=docroot,
                          log_path=tmp_path / "server.log")
    try:
        workers = workers_of(server, 2)
        os.kill(server.pid, number)  # the parent only, as `kill PID` does
        assert server.process.wait(10) == -number, \
            "it dies of the signal, as http.server does:\n" + server.output()
        assert not [pid for pid in workers if pid in server.group_members()], \
            "no worker outlives the parent (an orphan would keep the port)"
        with pytest.raises(ConnectionRefusedError):
            rawhttp.connect(server.port)
        assert "Traceback" not in server.output()
    finally:
        server.kill()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs and sched_getaffinity")
def test_cpu_pin_gives_each_worker_a_cpu_of_its_own(launch, docroot):
    server = launch(LESSON, "--workers", "2", "--cpu-pin", directory=docroot)
    workers = workers_of(server, 2)
    assert wait_for(lambda: all(len(os.sched_getaffinity(pid)) == 1 for pid in workers))
    cpus = [os.sched_getaffinity(pid) for pid in workers]
    assert cpus[0] != cpus[1]
    assert http_status(server) == 200


def test_without_so_reuseport_it_names_the_lessons_to_run_instead(monkeypatch):
    lesson = import_lesson("15_static_reuseport")
    monkeypatch.delattr(lesson.socket, "SO_REUSEPORT")
    with pytest.raises(SystemExit) as stopped:
        lesson.prepare(lesson.parse_args(["0"]))
    message = str(stopped.value.code)
    assert "lesson 14" in message and "13" in message and "\n" not in message
