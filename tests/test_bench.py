"""bench/: the load generator trusts no response, and the runner's quick mode works.

The load generator is checked against tiny fake servers that lie in one
way each (a wrong byte, a short body, a wrong status); the runner against
a real lesson, in a bounded smoke run.
"""

import socket
import socketserver
import sys
import threading

import pytest

from servers import REPO

sys.path.insert(0, str(REPO))
from bench import loadgen, run  # noqa: E402

BODY = bytes(range(256)) * 8  # 2 KiB, every byte value


class FakeServer(socketserver.ThreadingTCPServer):
    """Answers every request with the bytes answer(request_number) returns."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer, close_after_each=False):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.answer = answer
        self.close_after_each = close_after_each
        self.answered = 0
        self.lock = threading.Lock()


class FakeHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(10)
        received = b""
        while True:
            while b"\r\n\r\n" not in received:
                try:
                    chunk = self.request.recv(65536)
                except (socket.timeout, ConnectionError):
                    return
                if not chunk:
                    return
                received += chunk
            received = received.split(b"\r\n\r\n", 1)[1]
            with self.server.lock:
                number = self.server.answered
                self.server.answered += 1
            data, close = self.server.answer(number)
            try:
                self.request.sendall(data)
            except ConnectionError:
                return
            if close or self.server.close_after_each:
                return


@pytest.fixture
def fake_server():
    servers = []

    def start(answer, close_after_each=False):
        server = FakeServer(answer, close_after_each)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return "http://127.0.0.1:%d/file" % server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def response(body, status=b"200 OK", length=None, extra=b""):
    length = len(body) if length is None else length
    return (b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(length).encode()
            + b"\r\n" + extra + b"\r\n" + body)


def test_correct_responses_all_count_as_successes(fake_server):
    url = fake_server(lambda number: (response(BODY), False))
    report = loadgen.load(url, BODY, connections=20, requests=5, timeout=10)
    assert report["successes"] == report["requests"] == 100
    assert report["errors"] == {}
    assert report["opened"] == 20
    assert report["latency_ms"]["p50"] is not None


def test_one_wrong_byte_is_an_error(fake_server):
    wrong = bytearray(BODY)
    wrong[1234] ^= 0x01

    def answer(number):
        return response(bytes(wrong) if number % 2 else BODY), False

    report = loadgen.load(fake_server(answer), BODY, connections=10, requests=2, timeout=10)
    assert report["errors"] == {"wrong body": report["requests"] - report["successes"]}
    assert 0 < report["successes"] < report["requests"]


def test_a_short_body_is_an_error_not_a_hang(fake_server):
    url = fake_server(lambda number: (response(BODY[:1000], length=len(BODY)), True))
    report = loadgen.load(url, BODY, connections=5, requests=1, timeout=10)
    assert report["successes"] == 0
    assert report["errors"] == {"short body": 5}


def test_a_status_other_than_200_is_an_error(fake_server):
    url = fake_server(lambda number: (response(BODY, status=b"404 Not Found"), False))
    report = loadgen.load(url, BODY, connections=3, requests=1, timeout=10)
    assert report["successes"] == 0
    assert report["errors"] == {"status 404": 3}


def test_a_server_that_closes_after_each_answer_is_asked_again_on_a_new_connection(fake_server):
    url = fake_server(lambda number: (response(BODY, extra=b"Connection: close\r\n"), True))
    report = loadgen.load(url, BODY, connections=4, requests=3, timeout=10)
    assert report["successes"] == 12
    assert report["opened"] == 12


def test_a_silent_server_is_a_timeout(fake_server):
    url = fake_server(lambda number: (b"", False))
    report = loadgen.load(url, BODY, connections=2, requests=1, timeout=1.5)
    assert report["errors"] == {"timeout": 2}


def test_wrk_output_is_read_into_numbers():
    output = """Running 1s test @ http://127.0.0.1:1/index.html
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.50ms  200.00us   5.00ms   90.00%
  Latency Distribution
     50%    1.20ms
     75%    1.60ms
     90%  850.00us
     99%    1.10s
  61234 requests in 1.00s, 130.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  61234.56
Transfer/sec:    130.00MB
"""
    figures = run.parse_wrk(output)
    assert figures["requests_per_second"] == 61234.56
    assert figures["requests"] == 61234
    assert figures["latency_ms"] == {"p50": 1.2, "p90": 0.85, "p99": 1100.0}
    assert figures["socket_errors"] == 5
    assert figures["non_2xx"] == 7


def test_quick_run_of_a_lesson_verifies_every_response_and_renders_a_table():
    results = run.measure(["13_static_epoll"], concurrency=(10,), quick=True, anchors=False,
                          hold=300, log=lambda text: None)
    environment, row = results
    assert environment["name"] == "environment"
    assert "failed" not in row, row.get("failed")
    assert row["smoke"]["successes"] == row["smoke"]["requests"] > 0
    assert row["hold"]["successes"] == row["hold"]["connections"] == 300
    assert row["problems"] == []
    table = run.markdown(results)
    assert "| 13_static_epoll |" in table and "300/300" in table
