"""Lesson 12: polling non-blocking sockets works, and costs CPU even when nobody asks anything.

Files, keep-alive, pipelining, timeouts and thousands of clients are tested
with the other lessons (test_contract.py, test_concurrent_servers.py,
test_12_13_event_loops.py).  Here: the price of polling, and the lesson's text.
"""

import os

import pytest

import rawhttp
from servers import cpu_used_over, import_lesson, script_path

LESSON = script_path("12_static_nonblocking")
IDLE_CLIENTS = 50
MEASURED_SECONDS = 1.5  # a measuring window, not a wait for the server


def idle_cpu_seconds(server, clients=IDLE_CLIENTS):
    """CPU the server uses over MEASURED_SECONDS while `clients` connections sit idle."""
    idle = [rawhttp.connect(server.port) for _ in range(clients)]
    try:
        for sock in idle[-1:]:  # the last one answered: every one before it is accepted
            sock.sendall(rawhttp.build_request("/notes.txt"))
            assert rawhttp.ResponseReader(sock).read_response().status == 200
        return cpu_used_over(server, MEASURED_SECONDS)
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_polling_spins_while_idle_and_a_poll_interval_trades_cpu_for_latency(launch, docroot):
    spinning = launch(LESSON, "--poll-interval", "0", "--timeout", "60", directory=docroot)
    napping = launch(LESSON, "--poll-interval", "0.05", "--timeout", "60", directory=docroot)
    spent_spinning = idle_cpu_seconds(spinning)
    spent_napping = idle_cpu_seconds(napping)
    # On an idle machine the first is a whole core and the second about 1%;
    # the bounds leave room for a machine busy with other work.
    assert spent_spinning > 0.1 * MEASURED_SECONDS, "no poll interval: the loop never sleeps"
    assert spent_spinning > 5 * spent_napping


def test_the_docstring_names_its_section_measures_polling_and_states_the_exercise():
    doc = import_lesson("12_static_nonblocking").__doc__
    assert doc.startswith("Lesson 12 · ")
    assert "12. Web静态服务器-非阻塞IO" in doc
    for heading in ("What changed from the source", "The cost of polling", "Try it", "Exercise"):
        assert heading in doc
    assert "--poll-interval" in doc
    exercise = " ".join(doc.split("Exercise\n--------\n", 1)[1].split())
    assert "select.select" in exercise and "5% of one core over 2 s" in exercise
    assert "50 idle connections" in exercise
