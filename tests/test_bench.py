"""bench/: the load generator trusts no response, and the runner's quick mode works.

The load generator is checked against tiny fake servers that lie in one
way each (a wrong byte, a short body, a wrong status); the runner against
a real lesson, in a bounded smoke run, and against a fake lesson that
offers --no-cache, for the caches-off path; its report against figures
made up for the purpose.
"""

import json
import socket
import socketserver
import sys
import textwrap
import threading

import pytest

from servers import REPO, STATIC_SERVERS

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


def test_quick_run_of_a_lesson_verifies_every_response_in_both_cache_modes():
    """Caches off is measured where the lesson's --help offers --no-cache, else said skipped."""
    results = run.measure(["13_static_epoll"], concurrency=(10,), quick=True, anchors=False,
                          hold=300, log=lambda text: None, caches="both")
    environment, on, off = results
    assert environment["name"] == "environment" and environment["caches"] == "both"
    assert (on["name"], on["cache"]) == ("13_static_epoll", True)
    assert "failed" not in on, on.get("failed")
    assert on["smoke"]["successes"] == on["smoke"]["requests"] > 0
    assert on["hold"]["successes"] == on["hold"]["connections"] == 300
    assert on["problems"] == []
    table = run.markdown(results)
    assert "| 13_static_epoll · caches on |" in table and "300/300" in table
    assert (off["name"], off["cache"]) == ("13_static_epoll", False)
    assert "--no-cache" not in on["options"]
    if "--no-cache" in run.lesson_help(run.LESSONS / "13_static_epoll.py"):
        assert "failed" not in off, off.get("failed")
        assert "--no-cache" in off["options"]
        assert off["smoke"]["successes"] == off["smoke"]["requests"] > 0
        assert "hold" not in off  # the hold test runs with the caches on only
    else:
        assert off["skipped"] == run.NO_CACHE_OPTION
        assert "| 13_static_epoll · caches off | skipped: its --help has no --no-cache |" \
            in table


# A lesson as bench/run.py sees one: the startup line, the CLI, files served
# with keep-alive, a clean exit on Ctrl+C.  OFFERS_NO_CACHE decides whether
# its --help has --no-cache.
FAKE_LESSON = textwrap.dedent('''\
    import argparse, http.server, os, sys

    OFFERS_NO_CACHE = %(offers)s
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int, nargs="?", default=7890)
    parser.add_argument("-b", "--bind", default="127.0.0.1")
    parser.add_argument("-d", "--directory", default=".")
    parser.add_argument("--timeout", type=float, default=15)
    parser.add_argument("--quiet", action="store_true")
    if OFFERS_NO_CACHE:
        parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args()
    cache = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = args.timeout

        def do_GET(self):
            path = os.path.join(args.directory, self.path.lstrip("/"))
            if getattr(args, "no_cache", False) or path not in cache:
                with open(path, "rb") as file:
                    cache[path] = file.read()
            body = cache[path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *arguments):
            pass

    http.server.ThreadingHTTPServer.request_queue_size = 128  # listen(5) would drop SYNs
    server = http.server.ThreadingHTTPServer((args.bind, args.port), Handler)
    host, port = server.server_address[:2]
    print("Serving HTTP on %%s port %%d (http://%%s:%%d/) ..." %% (host, port, host, port),
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Keyboard interrupt received, exiting.")
    ''')


def fake_lesson(folder, name, offers_no_cache):
    (folder / (name + ".py")).write_text(FAKE_LESSON % {"offers": offers_no_cache})
    return name


def test_caches_off_runs_each_lesson_again_with_no_cache_side_by_side(tmp_path):
    name = fake_lesson(tmp_path, "98_static_fake", offers_no_cache=True)
    results = run.measure([name], concurrency=(10,), quick=True, anchors=False, hold=50,
                          log=lambda text: None, caches="both", folder=tmp_path)
    environment, on, off = results
    assert environment["name"] == "environment"
    for row in (on, off):
        assert "failed" not in row, row.get("failed")
        assert row["name"] == name and row["problems"] == []
        assert row["smoke"]["successes"] == row["smoke"]["requests"] > 0
        if run.shutil.which("wrk"):
            assert row["throughput"]["10"]["median"] > 0
    assert (on["cache"], off["cache"]) == (True, False)
    assert on["label"] != off["label"]
    assert "--no-cache" in off["options"] and "--no-cache" not in on["options"]
    assert on["hold"]["successes"] == on["hold"]["connections"] == 50
    assert "hold" not in off
    for row in results[1:]:  # the schema bench/README.md promises tools/lesson_pages.py
        assert {"name", "label", "cache", "throughput", "options"} <= set(row)
    table = run.markdown(results)
    assert "## Caches on" in table and "## Caches off" in table
    assert "| 98_static_fake · caches off |" in table and "caches on ÷ off c=10" in table


def test_caches_off_alone_measures_only_the_caches_off_rows(tmp_path):
    with_option = fake_lesson(tmp_path, "97_static_fake", offers_no_cache=True)
    without = fake_lesson(tmp_path, "96_static_fake", offers_no_cache=False)
    servers, entries = run.servers_to_measure([with_option, without], anchors=False,
                                              caches="off", folder=tmp_path)
    assert [(server.name, server.cache) for server in servers] == [(with_option, False)]
    assert entries[1] == {"name": without, "label": without + " · caches off", "cache": False,
                          "skipped": run.NO_CACHE_OPTION}
    servers, entries = run.servers_to_measure([with_option, without], anchors=False,
                                              caches="on", folder=tmp_path)
    assert [(server.name, server.cache) for server in servers] == [(with_option, True),
                                                                    (without, True)]


def made_up_results(load_before, load_after, others=1.0):
    """A run's results with invented figures: every server lesson, both modes, both anchors."""
    environment = {
        "name": "environment", "date": "2026-01-01T00:00:00", "system": "Linux 6", "cpus": 2,
        "cpu_model": "a CPU", "python": "3.11.7", "gil": True, "wrk": "wrk 4.1.0",
        "nginx": "nginx 1.22.1", "server_cpu": 0, "load_cpu": 1,
        "load_average": load_before, "load_average_after": load_after,
        "settings": dict(run.FULL), "concurrency": [10, 100, 1000], "quick": False,
        "caches": "both",
        "cpu_work": {"cpus": 2, "seconds": 600.0, "available": 1200.0, "busy": 900.0,
                     "ours": 850.0 - others, "kernel_threads": 50.0, "others": others,
                     "steal": 0.0}}

    def row(name, cache, rps, **extra):
        figures = {"median": rps, "runs": [rps], "requests_per_second": rps, "requests": 1,
                   "latency_ms": {}, "socket_errors": 0, "non_2xx": 0}
        return dict(name=name, label=extra.pop("label", name), cache=cache, options=[],
                    problems=[],
                    throughput={str(c): dict(figures) for c in (10, 100, 1000)}, **extra)

    hold = {"connections": 10000, "successes": 10000, "wall_seconds": 1.0,
            "peak_memory_bytes": 30e6}
    rows = []
    for lesson in STATIC_SERVERS:
        for variant, _, pinned in run.VARIANTS.get(lesson, [(None, [], True)]):
            more = dict(variant=variant, label="%s (%s)" % (lesson, variant),
                        **({} if pinned else {"pinned": False})) if variant else {}
            rows.append(row(lesson, True, 20000.0, hold=hold, **more))
            rows.append(row(lesson, False, 10000.0, **more))
    rows.append(row("http.server", False, 4000.0, anchor=True, hold=hold))
    rows.append(row("nginx", True, 160000.0, anchor=True, hold=hold))
    return [environment] + rows


def test_the_report_says_plainly_when_other_work_shared_the_machine():
    table = run.markdown(made_up_results((2387.2, 1443.8, 725.3), (1.9, 1.5, 1.2)))
    assert "Other work shared the machine" in table
    assert "2387.2" in table and "nothing else ran" not in table.lower()
    busy = run.markdown(made_up_results((0.2, 0.1, 0.1), (1.9, 1.5, 1.2), others=300.0))
    assert "Other work shared the machine" in busy and "25 %" in busy


def test_the_report_claims_no_idle_machine_it_did_not_measure():
    table = run.markdown(made_up_results((0.2, 0.1, 0.1), (1.9, 1.5, 1.2)))
    assert "Other work shared the machine" not in table
    assert "No sign of other work" in table and "nothing else ran" not in table.lower()
    ended_busy = run.markdown(made_up_results((0.2, 0.1, 0.1), (350.0, 90.0, 30.0)))
    assert "counts the benchmark's own work too" in ended_busy


def test_the_report_has_both_tables_ratios_and_one_sentence_per_model():
    table = run.markdown(made_up_results((0.2, 0.1, 0.1), (1.9, 1.5, 1.2)))
    on, off = table.split("## Caches on")[1].split("## Caches off")
    assert "| 13_static_epoll | 20,000 | 20,000 | 20,000 | 0.12 × | 0.12 × | 5.00 × |" in on
    assert "| 13_static_epoll | 10,000 | 10,000 | 10,000 | 0.06 × | 0.06 × | 2.50 × | 2.00 × |" \
        in off
    assert "| nginx | 160,000" in on and "| nginx | 160,000" in off  # measured once, shown twice
    sentences = table.split("## What each row shows, and what it does not")[1]
    for number in ("06", "07", "08", "09", "10", "11", "12", "13", "14", "15"):
        assert sentences.count("- **%s · " % number) == 1


def test_lesson_15_is_measured_with_1_worker_pinned_and_2_workers_one_per_cpu():
    servers, entries = run.servers_to_measure(["15_static_reuseport"], anchors=False,
                                              caches="both")
    assert [(server.label, server.cache, server.pinned) for server in servers] == [
        ("15_static_reuseport (1 worker) · caches on", True, True),
        ("15_static_reuseport (1 worker) · caches off", False, True),
        ("15_static_reuseport (2 workers) · caches on", True, False),
        ("15_static_reuseport (2 workers) · caches off", False, False)]
    assert all(server.name == "15_static_reuseport" for server in servers)  # as pages look it up
    assert servers[0].args[-2:] == ["--workers", "1"]
    assert servers[2].args[-3:] == ["--workers", "2", "--cpu-pin"]


def test_each_lesson_15_row_is_compared_with_its_own_caches_on_twin_and_explained():
    results = made_up_results((0.2, 0.1, 0.1), (1.9, 1.5, 1.2))
    for row in results[1:]:
        if row.get("variant") == "2 workers" and row["cache"]:
            row["throughput"]["100"]["median"] = 40000.0
    table = run.markdown(results)
    on, off = table.split("## Caches on")[1].split("## Caches off")
    assert "| 15_static_reuseport (1 worker) | 20,000 |" in on
    assert "| 15_static_reuseport (2 workers) | 20,000 | 40,000 | 20,000 | 0.25 × |" in on
    # caches on ÷ off: each row against its own twin, not the other variant's
    assert "| 15_static_reuseport (1 worker) | 10,000 | 10,000 | 10,000 | 0.06 × | 0.06 × | " \
        "2.50 × | 2.00 × |" in off
    assert "| 15_static_reuseport (2 workers) | 10,000 | 10,000 | 10,000 | 0.06 × | 0.06 × | " \
        "2.50 × | 4.00 × |" in off
    sentence = table.split("- **15 · ")[1].split("\n")[0]
    assert "**1 worker**" in sentence and "**2 workers**" in sentence
    assert "not a speed-up" in sentence and "load generator" in sentence
    assert "except lesson 15 with 2 workers" in table


def test_the_reference_files_hold_the_run_as_markdown_and_as_latest_json(tmp_path):
    results = made_up_results((0.2, 0.1, 0.1), (1.9, 1.5, 1.2))
    written = run.save_reference(results, tmp_path)
    latest = run.save(results, tmp_path / "results")
    assert sorted(path.name for path in written) == ["RESULTS.json", "RESULTS.md"]
    assert json.loads((tmp_path / "RESULTS.json").read_text()) == json.loads(
        (tmp_path / "results" / "latest.json").read_text()) == json.loads(json.dumps(results))
    assert "--reference" in (tmp_path / "RESULTS.md").read_text()
    assert tmp_path / "results" / "latest.md" in latest


def test_the_reference_is_written_only_by_a_full_run():
    for narrowed in (["--quick"], ["--caches", "on"], ["--lessons", "13_static_epoll"],
                     ["--no-anchors"], ["--hold", "10"]):
        with pytest.raises(SystemExit):
            run.parse_args(["--reference", *narrowed])
    assert run.parse_args(["--reference"]).caches == "both"
