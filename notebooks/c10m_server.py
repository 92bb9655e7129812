#!/usr/bin/env python3
"""The C10M notebook's test server: one file, served by 1..N event-loop workers.

Not a lesson.  It answers every request with the same file, so that what the
notebook measures is how connections are spread over processes and CPUs and
how bytes leave the machine, not path mapping or parsing (it does no path
mapping and only looks for the blank line and ``Connection: close``; never
expose it).

    python3 notebooks/c10m_server.py 0 --file html/index.html --workers 2 --mode reuseport --pin

Modes of spreading connections over workers (section 15 of the chapter):

* ``shared``    -- one listening socket, inherited by every worker; each
                   worker's epoll wakes on every new connection and all but
                   one get EAGAIN from accept() (the thundering herd).
* ``reuseport`` -- each worker binds its own socket to the same port with
                   SO_REUSEPORT; the kernel hashes each new connection's
                   4-tuple to one socket, so exactly one worker wakes.

``--pin`` keeps worker i on CPU i (os.sched_setaffinity): its caches stay
warm and the scheduler never migrates it.  ``--sendfile`` sends the file with
os.sendfile (the kernel copies page cache to socket, zero-copy) instead of
os.pread + send (kernel -> user buffer -> kernel).
"""

import argparse
import os
import selectors
import signal
import socket
import sys

CHUNK = 256 * 1024


def listeners(bind, port, count, reuseport):
    """count listening sockets on one port (all the same socket unless reuseport)."""
    sockets = []
    for index in range(count if reuseport else 1):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        # The first socket learns the port (0 -> the OS picks); the others join it.
        listener.bind((bind, sockets[0].getsockname()[1] if sockets else port))
        listener.listen(4096)
        listener.setblocking(False)
        sockets.append(listener)
    return sockets if reuseport else sockets * count


class Connection:
    def __init__(self, sock):
        self.sock = sock
        self.inbox = bytearray()
        self.head = b""
        self.offset = None  # file offset while a body is being sent
        self.close_after = False


class Worker:
    def __init__(self, index, listener, path, use_sendfile):
        self.index = index
        self.listener = listener
        self.file = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.file).st_size
        self.use_sendfile = use_sendfile
        self.selector = selectors.DefaultSelector()
        self.stats = {"connections": 0, "requests": 0, "bytes": 0, "empty_accepts": 0}

    def run(self):
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        while True:
            for key, events in self.selector.select():
                if key.data is None:
                    self.accept()
                elif events & selectors.EVENT_WRITE:
                    self.send(key.data)
                else:
                    self.receive(key.data)

    def accept(self):
        accepted = 0
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                break
            except (ConnectionAbortedError, InterruptedError):
                continue
            accepted += 1
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, Connection(sock))
        self.stats["connections"] += accepted
        if not accepted:  # woken for a connection another worker took (shared mode)
            self.stats["empty_accepts"] += 1

    def close(self, connection):
        self.selector.unregister(connection.sock)
        connection.sock.close()

    def receive(self, connection):
        try:
            data = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionError:
            data = b""
        if not data:
            self.close(connection)
            return
        connection.inbox += data
        self.start_response(connection)

    def start_response(self, connection):
        end = connection.inbox.find(b"\r\n\r\n")
        if end < 0 or connection.offset is not None:
            return
        head = bytes(connection.inbox[:end]).lower()
        del connection.inbox[:end + 4]
        connection.close_after = b"connection: close" in head or head.endswith(b"http/1.0")
        connection.head = ("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                           "Content-Length: %d\r\n%s\r\n" % (
                               self.size, "Connection: close\r\n" if connection.close_after
                               else "")).encode("ascii")
        connection.offset = 0
        self.stats["requests"] += 1
        self.selector.modify(connection.sock, selectors.EVENT_WRITE, connection)
        self.send(connection)

    def send(self, connection):
        try:
            while connection.head:
                # MSG_MORE: "a body follows", so the head does not leave as a
                # small segment of its own.  Without it, Nagle's algorithm and
                # the client's delayed ACK add 40 ms to every response.
                sent = connection.sock.send(connection.head, socket.MSG_MORE)
                connection.head = connection.head[sent:]
                self.stats["bytes"] += sent
            while connection.offset < self.size:
                count = min(CHUNK, self.size - connection.offset)
                if self.use_sendfile:
                    sent = os.sendfile(connection.sock.fileno(), self.file, connection.offset,
                                       count)
                else:
                    sent = connection.sock.send(os.pread(self.file, count, connection.offset))
                if sent == 0:
                    raise ConnectionResetError
                connection.offset += sent
                self.stats["bytes"] += sent
        except (BlockingIOError, InterruptedError):
            return  # the socket buffer is full: epoll says when to go on
        except ConnectionError:
            self.close(connection)
            return
        connection.offset = None
        if connection.close_after:
            self.close(connection)
            return
        self.selector.modify(connection.sock, selectors.EVENT_READ, connection)
        self.start_response(connection)  # a pipelined request may already wait


def run_worker(index, listener, args):
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[index % len(cpus)]})
    worker = Worker(index, listener, args.file, args.sendfile)
    try:
        worker.run()
    except KeyboardInterrupt:
        pass
    report = "worker %d pid %d cpus %s: %s\n" % (
        index, os.getpid(), sorted(os.sched_getaffinity(0)),
        " ".join("%s=%d" % item for item in worker.stats.items()))
    os.write(sys.stdout.fileno(), report.encode())  # one write: workers share the pipe


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", nargs="?", type=int, default=7890)
    parser.add_argument("-b", "--bind", default="127.0.0.1", metavar="ADDR")
    parser.add_argument("-d", "--directory", help="ignored (accepted for the harness)")
    parser.add_argument("--file", required=True, help="the one file every request gets")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--mode", choices=("shared", "reuseport"), default="shared")
    parser.add_argument("--pin", action="store_true", help="pin worker i to CPU i")
    parser.add_argument("--sendfile", action="store_true", help="zero-copy os.sendfile")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.mode == "reuseport" and not hasattr(socket, "SO_REUSEPORT"):
        sys.exit("SO_REUSEPORT is not available on this platform; use --mode shared.")
    if not hasattr(os, "fork"):
        sys.exit("This server forks its workers (POSIX only).")
    sockets = listeners(args.bind, args.port, args.workers, args.mode == "reuseport")
    host, port = sockets[0].getsockname()
    print("Serving HTTP on %s port %d (http://%s:%d/) ..." % (host, port, host, port), flush=True)
    children = []
    for index in range(args.workers):
        pid = os.fork()
        if pid == 0:
            try:
                run_worker(index, sockets[index], args)
            finally:
                os._exit(0)  # never return into the parent's code
        children.append(pid)
    for listener in set(sockets):
        listener.close()  # only the workers accept
    while children:
        try:
            pid, _ = os.waitpid(-1, 0)
            children.remove(pid)
        except KeyboardInterrupt:
            continue  # Ctrl+C reached the whole group: wait for the workers to report
        except ChildProcessError:
            break
    print("Keyboard interrupt received, exiting.", flush=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
