"""Lesson 02: the basic server models as echo servers, and the demo that measures them."""

import os
import re
import socket
import subprocess
import sys
import threading

import pytest

import rawhttp
from servers import (ECHO_STARTUP_LINE, Launcher, import_lesson, one_line_error, run_script,
                     script_path, wait_for, wait_for_output)

LESSON = script_path("02_server_models")
lesson02 = import_lesson("02_server_models")

TCP_MODELS = ["loop", "select", "thread", "process", "threading-tcp", "forking-tcp"]
UDP_MODELS = ["udp", "threading-udp", "forking-udp"]
CONCURRENT_TCP_MODELS = ["select", "thread", "process", "threading-tcp", "forking-tcp"]


def start(launch, model, *args):
    return launch(LESSON, *args, leading_args=[model], startup_line=ECHO_STARTUP_LINE)


def echo_of(sock, data):
    """Send data and read back exactly as many bytes (the echo)."""
    sock.sendall(data)
    received = bytearray()
    while len(received) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return bytes(received)


def assert_echoes(port, data=b"still echoing\n"):
    with rawhttp.connect(port) as sock:
        assert echo_of(sock, data) == data


def udp_echo(port, data, timeout=rawhttp.TIMEOUT):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", port))
        reply, _ = sock.recvfrom(65535)
        return reply


def test_every_model_of_the_source_can_be_chosen_by_name():
    assert set(lesson02.DEMO_ORDER) == set(TCP_MODELS + UDP_MODELS)
    assert set(lesson02.UDP_MODELS) == set(UDP_MODELS)


# -- Every TCP model echoes exactly, whatever it is sent ---------------------------------

@pytest.fixture(scope="module", params=TCP_MODELS)
def tcp_server(request, tmp_path_factory):
    launcher = Launcher(tmp_path_factory.mktemp("echo-" + request.param))
    server = start(launcher, request.param)
    server.model = request.param
    yield server
    problems = launcher.stop_all()
    assert not problems, "server did not stop cleanly: %s" % "; ".join(problems)


def test_tcp_startup_line_says_what_it_serves_and_how_to_talk_to_it(tcp_server):
    first_line = tcp_server.output().splitlines()[0]
    assert first_line == "Serving TCP echo on 127.0.0.1 port %d (nc 127.0.0.1 %d) ..." % (
        tcp_server.port, tcp_server.port)


@pytest.mark.parametrize("data", [
    b"hello\n",
    "你好，世界\n".encode("utf-8"),
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # garbage
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # an echo server does not care that it is HTTP
    bytes(range(256)) * 400,  # 100 KB
], ids=["line", "utf-8", "garbage", "http", "100 KB"])
def test_tcp_models_echo_every_byte(tcp_server, data):
    with rawhttp.connect(tcp_server.port) as sock:
        assert echo_of(sock, data) == data
        assert echo_of(sock, b"and again\n") == b"and again\n"
    assert_echoes(tcp_server.port)


def test_a_client_that_sends_and_closes_at_once_still_gets_every_byte(tcp_server):
    data = b"x" * 300_000
    reply = rawhttp.exchange(tcp_server.port, data)  # send, shut down writing, read to the end
    assert reply == data


def test_a_client_that_sends_while_reading_slowly_gets_it_all_back(tcp_server):
    data = os.urandom(4 * 1024 * 1024)
    with rawhttp.connect(tcp_server.port) as sock:
        sender = threading.Thread(target=sock.sendall, args=(data,))
        sender.start()
        received = bytearray()
        while len(received) < len(data):
            chunk = sock.recv(65536)
            assert chunk, "closed after %d bytes" % len(received)
            received += chunk
        sender.join(rawhttp.TIMEOUT)
    assert bytes(received) == data


def test_a_client_that_resets_costs_nothing(tcp_server):
    sock = rawhttp.connect(tcp_server.port)
    sock.sendall(b"x" * 100_000)
    rawhttp.reset(sock)
    assert_echoes(tcp_server.port)


# -- UDP: datagrams, no connections ------------------------------------------------------

@pytest.mark.parametrize("model", UDP_MODELS)
def test_udp_models_echo_each_datagram(launch, model):
    server = start(launch, model)
    assert server.output().splitlines()[0] == (
        "Serving UDP echo on 127.0.0.1 port %d (nc -u 127.0.0.1 %d) ..." % (server.port,
                                                                            server.port))
    for data in (b"hello\n", bytes(range(256)), b"z" * 60_000):
        assert udp_echo(server.port, data) == data


# -- The models' difference: does a second client wait for the first? -------------------

@pytest.mark.parametrize("model", CONCURRENT_TCP_MODELS)
def test_concurrent_models_serve_a_second_client_while_the_first_stays(launch, model):
    server = start(launch, model)
    with rawhttp.connect(server.port) as first:
        assert echo_of(first, b"first\n") == b"first\n"  # first is being served now
        with rawhttp.connect(server.port) as second:
            assert echo_of(second, b"second\n") == b"second\n"
        assert echo_of(first, b"first again\n") == b"first again\n"


def test_the_loop_model_makes_the_second_client_wait_until_the_first_leaves(launch):
    server = start(launch, "loop")
    first = rawhttp.connect(server.port)
    assert echo_of(first, b"first\n") == b"first\n"
    second = rawhttp.connect(server.port, timeout=1.0)  # the kernel accepts it for us...
    second.sendall(b"second\n")
    with pytest.raises(socket.timeout):
        second.recv(100)  # ...but for a whole second no echo: the server is with the first
    first.close()
    second.settimeout(rawhttp.TIMEOUT)
    assert second.recv(100) == b"second\n"
    second.close()


def test_a_silent_client_is_dropped_after_the_timeout(launch):
    server = start(launch, "loop", "--timeout", "0.5")
    with rawhttp.connect(server.port) as silent:
        assert silent.recv(100) == b""
    assert_echoes(server.port)
    wait_for_output(server, r"silent for 0\.5 s, dropped")


@pytest.mark.parametrize("model", ["thread", "process"])
def test_each_client_is_served_by_its_own_thread_or_process(launch, model):
    server = start(launch, model)
    with rawhttp.connect(server.port) as one, rawhttp.connect(server.port) as two:
        echo_of(one, b"1\n")
        echo_of(two, b"2\n")
        output = wait_for_output(server, r"(connected[\s\S]*){2}")
    workers = re.findall(r"\[%s pid (\d+) (.+?)\] 127\.0\.0\.1:\d+ connected" % model, output)
    assert len(workers) == 2
    if model == "thread":
        assert workers[0][1] != workers[1][1], "two threads"
    else:
        assert workers[0][0] != workers[1][0] and str(server.pid) not in (workers[0][0],
                                                                           workers[1][0])


# -- Processes: no zombies, no orphans --------------------------------------------------

@pytest.mark.parametrize("model", ["process", "forking-tcp"])
def test_finished_children_are_reaped(launch, model):
    server = start(launch, model)
    for _ in range(5):
        assert_echoes(server.port)
    output = wait_for_output(server, r"(left after[\s\S]*){5}")
    children = set(re.findall(r"\[%s pid (\d+) MainThread\] \S+ left after" % model, output))
    assert len(children) == 5 and str(server.pid) not in children
    # A child logs, then exits, then the parent reaps it (on SIGCHLD, or within
    # half a second for socketserver).  Until reaped, /proc still lists it, as
    # a zombie: wait, within a bound, for every one to be gone.
    def unreaped():
        return [pid for pid in children if os.path.exists("/proc/%s" % pid)]

    wait_for(lambda: not unreaped(), timeout=5)
    assert unreaped() == []


@pytest.mark.parametrize("model", ["loop", "select", "thread", "process", "threading-tcp",
                                   "forking-tcp"])
def test_ctrl_c_with_clients_connected_exits_cleanly(launch, model):
    server = start(launch, model)
    clients = [rawhttp.connect(server.port) for _ in range(3)]
    for client in clients:
        client.sendall(b"hi\n")
    assert echo_of(clients[0], b"x") in (b"hi\nx", b"hi\n")  # the server is busy with them
    assert server.stop() == []
    assert server.process.returncode == 0
    assert "Keyboard interrupt received, exiting." in server.output()
    for client in clients:
        client.close()


# -- Platforms and ports -----------------------------------------------------------------

@pytest.mark.parametrize("model", ["process", "forking-tcp", "forking-udp"])
def test_without_fork_the_forking_models_name_another_model(model, tmp_path):
    # Simulate Windows: the same script, with os.fork removed before it runs.
    runner = ("import os, runpy, sys; del os.fork; sys.argv = [sys.argv[1], %r, '0']; "
              "runpy.run_path(sys.argv[0], run_name='__main__')" % model)
    result = subprocess.run([sys.executable, "-c", runner, str(LESSON)], capture_output=True,
                            text=True, timeout=30)
    message = one_line_error(result)
    assert "os.fork" in message and "thread" in message


@pytest.mark.parametrize("model", ["loop", "udp", "threading-tcp"])
def test_port_in_use_is_a_one_line_error(model):
    kind = socket.SOCK_DGRAM if model == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        result = run_script(LESSON, model, port)
    assert "port %d" % port in one_line_error(result)


# -- The command line: http.server's shape where it makes sense -----------------------------

def test_a_port_without_a_model_word_starts_the_loop_model(launch):
    server = launch(LESSON, startup_line=ECHO_STARTUP_LINE)  # "02_server_models.py 0 --bind ..."
    assert server.output().startswith("Serving TCP echo on 127.0.0.1 port %d " % server.port)
    with rawhttp.connect(server.port) as sock:
        assert echo_of(sock, b"loop?\n") == b"loop?\n"
    wait_for_output(server, r"^\[loop pid ")


@pytest.mark.parametrize("args", [["99999"], ["loop", "65536"], ["udp", "-1"]])
def test_a_port_outside_0_to_65535_is_a_one_line_error(args):
    assert "between 0 and 65535" in one_line_error(run_script(LESSON, *args))


def test_the_demo_takes_no_port():
    result = run_script(LESSON, "demo", "8000")
    assert result.returncode == 2 and "the demo takes no port" in result.stderr


# -- The demo: the section's pros and cons, measured ---------------------------------------

@pytest.fixture(scope="module")
def demo_rows():
    result = run_script(LESSON, "demo", "--hold", "1", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        match = re.match(r"(\S+)\s+.+?\s+(\d+) ms   (yes|no)", line)
        if match:
            rows[match[1]] = (int(match[2]), match[3])
    return rows


def test_the_demo_measures_every_model(demo_rows):
    assert list(demo_rows) == lesson02.DEMO_ORDER


def test_in_the_demo_the_loop_model_makes_the_quick_client_wait_for_the_slow_one(demo_rows):
    waited, overlapped = demo_rows["loop"]
    assert overlapped == "no"
    assert waited >= 900  # the slow client held the server for 1 s


@pytest.mark.parametrize("model", ["udp", "select", "thread", "process", "threading-tcp",
                                   "forking-tcp", "threading-udp", "forking-udp"])
def test_in_the_demo_the_other_models_serve_the_quick_client_at_once(demo_rows, model):
    waited, overlapped = demo_rows[model]
    assert overlapped == "yes"  # served while the slow client still held its connection
    assert waited < demo_rows["loop"][0]


def test_the_docstring_names_its_section_and_states_the_exercise():
    doc = lesson02.__doc__
    assert doc.splitlines()[0] == "Lesson 02 · Server models, measured (2. 服务器模型)"
    for part in ("循环服务器模型", "IO多路复用", "并发服务器", "socketserver", "ThreadingTCPServer",
                 "ForkingTCPServer", "What changed from the source", "Try it", "Exercise"):
        assert part in doc
    exercise = " ".join(doc.split("Exercise\n--------\n")[1].split())
    assert "pool --workers N" in exercise and "queue.Queue" in exercise
    assert "N+1-th" in exercise
