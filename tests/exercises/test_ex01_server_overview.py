"""Exercise 01 · clients are numbered

Each TCP connection the server accepts is told "you are client #N", N = 1, 2,
3 ... in order of acceptance, one counter for raw TCP clients and browsers:
in the one-line reply of a raw client, in the HTML body of an HTTP 200.
"""

import re
import socket

import pytest

LESSON = "01_server_overview"
HINT = ("lessons/01_server_overview.py, docstring 'Exercise'; serve() is where connections "
        "are accepted, answer_raw() and answer_http() write the replies")

NUMBER = re.compile(rb"you are client #(\d+)")


def start(exercise):
    """A fresh server: its count starts at 1."""
    return exercise.serve(leading_args=["server"])


def numbers_in(data):
    return [int(number) for number in NUMBER.findall(data)]


def ask_raw(http, server, line):
    """A raw TCP client: one line, then the reply up to the server's close."""
    return http.exchange(server, line + b"\n")


def ask_http(http, server):
    response = http.request(server, "/")
    assert response.status == 200
    return response.body


@pytest.mark.points(2)
def test_raw_tcp_clients_are_told_their_number_in_order(exercise, http):
    server = start(exercise)
    for expected in (1, 2, 3):
        reply = ask_raw(http, server, b"hello")
        assert numbers_in(reply) == [expected], \
            "raw client %d should find 'you are client #%d' in its reply" % (expected, expected)


@pytest.mark.points(2)
def test_a_browser_finds_its_number_in_the_html_body(exercise, http):
    server = start(exercise)
    for expected in (1, 2):
        assert numbers_in(ask_http(http, server)) == [expected], \
            "HTTP client %d should find 'you are client #%d' in the page" % (expected, expected)


def test_raw_and_http_clients_share_one_counter(exercise, http):
    server = start(exercise)
    seen = [numbers_in(ask_raw(http, server, b"raw")), numbers_in(ask_http(http, server)),
            numbers_in(ask_raw(http, server, b"raw again"))]
    assert seen == [[1], [2], [3]], "one counter for both kinds of client"


def test_the_number_follows_the_order_of_acceptance_not_of_speaking(exercise, http):
    server = start(exercise)
    first = http.connect(server)
    second = http.connect(server)  # accepted after first, but speaks before it
    second.sendall(b"I speak first\n")
    first.sendall(b"I connected first\n")
    replies = []
    for connection in (first, second):
        connection.shutdown(socket.SHUT_WR)
        replies.append(numbers_in(connection.read_until_close()))
        connection.close()
    assert replies == [[1], [2]], \
        "the connection accepted first is client #1, even if the second one spoke first"
