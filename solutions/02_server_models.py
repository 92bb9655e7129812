#!/usr/bin/env python3
"""Lesson 02 · Server models, measured (2. 服务器模型)

Section 2 of the source names the three basic ways a server can serve more
than one client, with their pros and cons.  Here each model is a small echo
server (it sends back whatever it receives), chosen by name, and a ``demo``
measures the difference: it starts every model, connects a slow client that
holds its connection, then a quick one, and prints how long the quick one
waited.  That table is the section's list of pros and cons, measured.

The three basic models (基本的服务器模型)
-----------------------------------------
1. The loop model (循环服务器模型): one thread accepts a client, serves it
   to the end, then accepts the next.  Simple, but one client that stays
   connected holds everyone else up.  It fits UDP (``udp``): there are no
   connections, every datagram is a complete request that is answered at
   once, so no client can hold the server.
2. I/O multiplexing (IO多路复用): one thread asks the kernel which of many
   sockets are ready (``select``/``poll``/``epoll``) and serves only those.
   Cheap -- no thread or process per client -- and ideal for I/O-bound
   servers, but it is still one thread: a handler that blocks or computes
   for long stalls every client.  Lessons 12 and 13 build a web server on it.
3. Concurrent servers (并发服务器): a new process (``process``, with
   ``os.fork``) or thread (``thread``) per client, while the main one keeps
   accepting.  Multi-tasking and simple to write, but each client costs a
   process or a thread: memory, creation time, and (for threads) locks
   (同步互斥) and, in CPython's default build, the GIL: one thread runs
   Python bytecode at a time, though blocking I/O and many C calls release
   it, so threads do serve network clients concurrently.  The free-threaded
   build (PEP 703: python3.13t, supported from 3.14 by PEP 779) has no GIL.
   Coroutines (gevent) are lesson 11.

The standard library's ``socketserver`` module packs these as classes
(集成模块): ``threading-tcp`` is ``ThreadingTCPServer`` (= ``ThreadingMixIn``
+ ``TCPServer``), ``forking-tcp`` is ``ForkingTCPServer``, and
``threading-udp`` / ``forking-udp`` are their UDP twins, with
``StreamRequestHandler`` / ``DatagramRequestHandler`` for the handler.

What changed from the source, and why
-------------------------------------
* The source lists the models in prose; here each is code you can run and a
  measurement you can repeat.
* The source's forking server (section 8) rightly closes the parent's copy
  of the client socket (else the client never sees the connection end) and
  avoids zombies by ignoring ``SIGCHLD``.  But its child, once done, falls
  back into the accept loop with the listener it closed: ``accept()`` raises
  EBADF (an OSError), ``except Exception: continue`` swallows it, and the
  child spins at 100 % CPU serving nobody, for ever.  Here each
  child ends with ``os._exit``, and the parent reaps children itself with
  ``waitpid`` on ``SIGCHLD``, which works the same on every POSIX system.
  Ctrl+C is held back while ``fork`` runs (``ctrl_c_held``): landing in the
  middle, it would make the new child print a traceback.
* Every blocking model gives a connection ``--timeout`` seconds of silence
  before it drops it, so one forgotten ``nc`` cannot hold a loop server for
  ever.  (The ``select`` model keeps idle connections: they cost it nothing
  but a descriptor.  Lesson 13 adds idle timeouts to an event loop.)
* ``sendall``, not ``send``: ``send`` may send only part of the buffer.
* A client that sends and closes at once (``printf ... | nc``) still gets
  every byte echoed: the ``select`` model flushes what it owes before it
  closes, and stops reading from a client that does not read its echo
  (backpressure), so one client cannot fill the server's memory.
* Ctrl+C stops every model cleanly, children and threads included.

Try it
------
    python3 lessons/02_server_models.py                 # the measured table (about 3 s)
    python3 lessons/02_server_models.py loop            # an echo server on port 7890
    nc 127.0.0.1 7890                                   # type lines; in a 2nd terminal,
    nc 127.0.0.1 7890                                   # ... this one gets no echo until
                                                        # the first leaves: the loop model
    python3 lessons/02_server_models.py thread          # now both are served at once
    python3 lessons/02_server_models.py udp 7891        # then: nc -u 127.0.0.1 7891

A port without a model word starts the loop model, as ``python3 -m
http.server`` would start its server: ``python3 lessons/02_server_models.py 0``
listens on a port the OS picks (the startup line says which).  ``nc`` comes
with macOS; on Debian or Ubuntu, ``sudo apt-get install netcat-openbsd``.

Models: loop, udp, select, thread, process, threading-tcp, forking-tcp,
threading-udp, forking-udp.  The forking ones need ``os.fork`` (Linux,
macOS); on Windows they say so and name a model to use instead.

Exercise
--------
A ``pool`` model: ``python3 lessons/02_server_models.py pool --workers N``
starts an echo server (TCP, with the same startup line as the other TCP
models) whose N worker threads, started once at start-up, are fed accepted
connections through a ``queue.Queue``: the main thread only accepts and puts
each connection in the queue, a worker takes one, echoes until the client
leaves, then takes the next.  N clients are served at once; the N+1-th is
accepted but gets no echo until one of the N leaves.  Ctrl+C stops it
cleanly.  Solve it in a copy (``mkdir -p my_answers && cp
lessons/02_server_models.py my_answers/``) and grade it with
``python3 -m pytest tests/exercises --submission my_answers -k 02``.
"""

import argparse
import os
import queue
import selectors
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time

DEFAULT_PORT = 7890
DEFAULT_TIMEOUT = 30.0  # seconds of silence before a blocking model drops a connection
DEFAULT_HOLD = 1.0  # seconds the demo's slow client keeps its connection
DEFAULT_WORKERS = 4  # threads of the pool model
MAX_PENDING = 256 * 1024  # echo bytes the select model keeps per client before it stops reading
MAX_DATAGRAM = 65535

TCP_MODELS = ["loop", "select", "thread", "pool", "process", "threading-tcp", "forking-tcp"]
UDP_MODELS = ["udp", "threading-udp", "forking-udp"]
NEEDS_FORK = {"process", "forking-tcp", "forking-udp"}
DEMO_ORDER = ["loop", "udp", "select", "thread", "pool", "process",
              "threading-tcp", "forking-tcp", "threading-udp", "forking-udp"]
HOW_IT_SERVES = {
    "loop": "one connection at a time",
    "udp": "one datagram at a time",
    "select": "one thread, ready sockets",
    "thread": "a thread per connection",
    "pool": "N threads fed by a queue",
    "process": "a process per connection",
    "threading-tcp": "socketserver, thread each",
    "forking-tcp": "socketserver, process each",
    "threading-udp": "socketserver, thread each",
    "forking-udp": "socketserver, process each",
}


def log(model, message):
    """One line per event on stderr, naming the process and thread that did the work."""
    print("[%s pid %d %s] %s" % (model, os.getpid(), threading.current_thread().name, message),
          file=sys.stderr, flush=True)


def peer(address):
    return "%s:%d" % address[:2]


# ---------------------------------------------------------------------------
# The work every TCP model does for one client: echo until it leaves.
# ---------------------------------------------------------------------------

def echo_connection(conn, address, timeout, model):
    """Send back every byte until the client closes, stalls or resets."""
    log(model, "%s connected" % peer(address))
    echoed = 0
    ending = "left"
    conn.settimeout(timeout)
    try:
        while True:
            data = conn.recv(65536)
            if not data:  # b"": the client closed its side
                break
            conn.sendall(data)  # send() may send only part; sendall loops
            echoed += len(data)
    except socket.timeout:
        ending = "silent for %g s, dropped" % timeout
    except ConnectionError as error:  # reset, broken pipe
        ending = error.__class__.__name__
    log(model, "%s %s after %d bytes echoed" % (peer(address), ending, echoed))


def accept(listener):
    """accept(), skipping clients that left before we got to them."""
    while True:
        try:
            return listener.accept()
        except (ConnectionAbortedError, InterruptedError):
            continue


# ---------------------------------------------------------------------------
# 1. The loop model, TCP and UDP
# ---------------------------------------------------------------------------

def serve_loop(listener, timeout):
    while True:
        conn, address = accept(listener)
        with conn:
            echo_connection(conn, address, timeout, "loop")  # everyone else waits here


def serve_udp(sock, timeout):
    while True:
        data, address = sock.recvfrom(MAX_DATAGRAM)  # one datagram = one whole request
        sock.sendto(data, address)
        log("udp", "%s sent %d bytes, echoed" % (peer(address), len(data)))


# ---------------------------------------------------------------------------
# 2. I/O multiplexing: one thread, many sockets, serve whichever is ready
# ---------------------------------------------------------------------------

class EchoState:
    """What the select model remembers about one client between events."""

    def __init__(self, address):
        self.address = address
        self.outgoing = bytearray()  # received, not yet echoed
        self.reading = True  # False once the client has closed its side
        self.echoed = 0


def serve_select(listener, timeout):
    listener.setblocking(False)
    selector = selectors.DefaultSelector()  # epoll on Linux, kqueue on macOS, select elsewhere
    selector.register(listener, selectors.EVENT_READ)
    try:
        while True:
            for key, events in selector.select():
                if key.fileobj is listener:
                    accept_ready(listener, selector)
                else:
                    serve_ready(key.fileobj, key.data, events, selector)
    finally:
        for key in list(selector.get_map().values()):
            if key.fileobj is not listener:
                key.fileobj.close()
        selector.close()


def accept_ready(listener, selector):
    try:
        conn, address = listener.accept()
    except (BlockingIOError, ConnectionAbortedError):
        return  # another event took it, or the client left
    conn.setblocking(False)  # a blocking call here would stall every client
    selector.register(conn, selectors.EVENT_READ, EchoState(address))
    log("select", "%s connected (%d open)" % (peer(address), len(selector.get_map()) - 1))


def serve_ready(conn, state, events, selector):
    try:
        if events & selectors.EVENT_READ:
            data = conn.recv(65536)
            if data:
                state.outgoing += data
            else:
                state.reading = False  # flush what we owe, then close
        if state.outgoing:
            sent = conn.send(state.outgoing)  # non-blocking: may send only part
            del state.outgoing[:sent]
            state.echoed += sent
    except BlockingIOError:
        pass  # not ready after all; the selector will tell us again
    except ConnectionError as error:
        return close_client(conn, state, selector, error.__class__.__name__)
    if not state.reading and not state.outgoing:
        return close_client(conn, state, selector, "left")
    # Listen for "writable" only while there is something to write (else the
    # selector would wake us at once, for ever), and stop reading from a
    # client that does not read its echo.
    wanted = ((selectors.EVENT_READ if state.reading and len(state.outgoing) < MAX_PENDING else 0)
              | (selectors.EVENT_WRITE if state.outgoing else 0))
    if wanted != selector.get_key(conn).events:
        selector.modify(conn, wanted, state)


def close_client(conn, state, selector, ending):
    selector.unregister(conn)
    conn.close()
    log("select", "%s %s after %d bytes echoed" % (peer(state.address), ending, state.echoed))


# ---------------------------------------------------------------------------
# 3. Concurrent servers: a thread or a process per client
# ---------------------------------------------------------------------------

def serve_threads(listener, timeout):
    while True:
        conn, address = accept(listener)
        # daemon: Ctrl+C ends the server even while clients are connected.
        threading.Thread(target=serve_and_close, args=(conn, address, timeout, "thread"),
                         daemon=True).start()


def serve_and_close(conn, address, timeout, model):
    with conn:
        echo_connection(conn, address, timeout, model)


def serve_pool(listener, timeout, workers):
    """N threads, started once, take accepted connections from a queue.Queue.

    The main thread only accepts.  The queue has no bound: the N+1-th client
    is accepted and waits in it, unanswered, until a worker is free.  Unlike
    a thread per connection, N caps the threads however many clients come.
    """
    connections = queue.Queue()

    def work():
        while True:
            conn, address = connections.get()  # blocks while the queue is empty
            serve_and_close(conn, address, timeout, "pool")

    for number in range(1, workers + 1):
        # daemon: Ctrl+C ends the server even while workers hold clients.
        threading.Thread(target=work, name="worker-%d" % number, daemon=True).start()
    while True:
        connections.put(accept(listener))


def serve_processes(listener, timeout):
    children = set()

    def reap(*_):
        # One SIGCHLD may stand for several exited children: loop until none is left.
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)

    signal.signal(signal.SIGCHLD, reap)  # collect each child as it exits: no zombies
    try:
        while True:
            conn, address = accept(listener)
            with ctrl_c_held():
                pid = os.fork()
            if pid == 0:  # the child: serve this one client, then exit
                try:
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    listener.close()  # only the parent accepts
                    allow_ctrl_c()
                    serve_and_close(conn, address, timeout, "process")
                except KeyboardInterrupt:
                    pass  # Ctrl+C reaches the whole process group; the parent reports it
                finally:
                    os._exit(0)  # never return into the parent's loop
            conn.close()  # the parent's copy; else the client never sees the child's FIN
            children.add(pid)
    finally:
        stop_children(children)


class ctrl_c_held:
    """Hold Ctrl+C (SIGINT) back across fork(), in the parent and the new child.

    A SIGINT that lands in the middle of fork() would interrupt Python's own
    after-fork bookkeeping in the child and print a traceback.  Blocked, it
    waits: the parent lets it through right after fork(), the child once it
    is ready for it (allow_ctrl_c).
    """

    def __init__(self):
        self.parent = os.getpid()

    def __enter__(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    def __exit__(self, *exc):
        if os.getpid() == self.parent:
            allow_ctrl_c()


def allow_ctrl_c():
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def stop_children(children, grace=2.0):
    """Ctrl+C has reached the children too; give them a moment, then insist."""
    deadline = time.monotonic() + grace
    for pid in list(children):
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.02)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


# ---------------------------------------------------------------------------
# The same, from the standard library: socketserver
# ---------------------------------------------------------------------------

class EchoStreamHandler(socketserver.BaseRequestHandler):
    def setup(self):
        if "forking" in self.server.model:  # a new child, ready for Ctrl+C (ctrl_c_held)
            allow_ctrl_c()

    def handle(self):
        echo_connection(self.request, self.client_address, self.server.idle_timeout,
                        self.server.model)


class EchoDatagramHandler(socketserver.DatagramRequestHandler):
    def setup(self):
        if "forking" in self.server.model:  # a new child, ready for Ctrl+C (ctrl_c_held)
            allow_ctrl_c()
        super().setup()

    def handle(self):
        data = self.rfile.read()  # the datagram; whatever goes to wfile is sent back
        self.wfile.write(data)
        log(self.server.model, "%s sent %d bytes, echoed" % (peer(self.client_address), len(data)))


def socketserver_class(model):
    base = {
        "threading-tcp": socketserver.ThreadingTCPServer,
        "threading-udp": socketserver.ThreadingUDPServer,
        "forking-tcp": getattr(socketserver, "ForkingTCPServer", None),
        "forking-udp": getattr(socketserver, "ForkingUDPServer", None),
    }[model]

    class Server(base):
        allow_reuse_address = True

        def handle_error(self, request, client_address):
            # socketserver prints a whole traceback; one line says enough.
            log(model, "%s: %r" % (peer(client_address), sys.exc_info()[1]))

        def process_request(self, request, client_address):
            if "forking" not in model:
                return super().process_request(request, client_address)
            with ctrl_c_held():  # the fork happens in here
                super().process_request(request, client_address)

        daemon_threads = True  # Ctrl+C does not wait for connected clients
        block_on_close = "forking" in model  # do wait for children, so none is orphaned
        # UDPServer reads datagrams into 8192 bytes by default and silently cuts
        # longer ones: allow the largest a UDP datagram can be.
        max_packet_size = MAX_DATAGRAM

    return Server


def serve_socketserver(model, bind, port, timeout):
    server_class = socketserver_class(model)
    server_class.address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    handler = EchoDatagramHandler if model in UDP_MODELS else EchoStreamHandler
    try:
        server = server_class((bind, port), handler)  # socket, bind, listen
    except OSError as error:
        sys.exit("Cannot listen on %s port %d: %s" % (bind, port, error.strerror))
    server.model, server.idle_timeout = model, timeout
    with server:
        announce(model, server.socket)
        try:
            server.serve_forever()
        finally:
            if "forking" in model and server.active_children:
                stop_children(set(server.active_children))
                server.active_children.clear()


# ---------------------------------------------------------------------------
# Starting a model by name
# ---------------------------------------------------------------------------

SERVE = {"loop": serve_loop, "udp": serve_udp, "select": serve_select,
         "thread": serve_threads, "pool": serve_pool, "process": serve_processes}


def open_socket(model, bind, port):
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    kind = socket.SOCK_DGRAM if model in UDP_MODELS else socket.SOCK_STREAM
    sock = socket.socket(family, kind)
    # Without SO_REUSEADDR a restarted server cannot bind while old
    # connections sit in TIME_WAIT (about a minute on Linux).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def announce(model, sock):
    host, port = sock.getsockname()[:2]
    udp = model in UDP_MODELS
    print("Serving %s echo on %s port %d (nc %s%s %d) ..."
          % ("UDP" if udp else "TCP", host, port, "-u " if udp else "", host, port), flush=True)


def run_server(model, bind, port, timeout, workers=DEFAULT_WORKERS):
    if model in NEEDS_FORK and not hasattr(os, "fork"):
        sys.exit("The %s model needs os.fork, which this system lacks: use the %s model "
                 "instead (or lesson 07, multiprocessing)."
                 % (model, "threading-udp" if model in UDP_MODELS else "thread"))
    if model not in SERVE:
        return serve_socketserver(model, bind, port, timeout)
    try:
        sock = open_socket(model, bind, port)
    except OSError as error:
        sys.exit("Cannot listen on %s port %d: %s" % (bind, port, error.strerror))
    with sock:
        announce(model, sock)
        if model == "pool":
            serve_pool(sock, timeout, workers)
        else:
            SERVE[model](sock, timeout)


# ---------------------------------------------------------------------------
# The demo: every model, one slow client, one quick client
# ---------------------------------------------------------------------------

def client_socket(udp, host, port, timeout):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect((host, port))  # for UDP: only fixes where send() goes
    return sock


def echo_once(sock, message, udp):
    if udp:
        sock.send(message)  # one datagram
    else:
        sock.sendall(message)
    received = bytearray()
    while len(received) < len(message):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed before echoing")
        received += chunk
    return bytes(received)


def measure(model, host, port, hold, timeout):
    """(seconds the quick client waited, whether it was served while the slow one stayed)."""
    udp = model in UDP_MODELS
    slow_ready, release, slow_left = threading.Event(), threading.Event(), threading.Event()
    problems = []

    def slow_client():
        try:
            with client_socket(udp, host, port, timeout) as sock:
                echo_once(sock, b"slow client here\n", udp)
                slow_ready.set()
                release.wait(hold)  # hold the connection, saying nothing
                slow_left.set()
        except OSError as error:
            problems.append(error)
            slow_ready.set()

    slow = threading.Thread(target=slow_client)
    slow.start()
    try:
        slow_ready.wait(timeout)
        started = time.monotonic()
        with client_socket(udp, host, port, timeout) as sock:
            echo_once(sock, b"quick client here\n", udp)
        waited = time.monotonic() - started
        overlapped = not slow_left.is_set()
    finally:
        release.set()
        slow.join(timeout)
    if problems:
        raise problems[0]
    return waited, overlapped


def start_model(model, bind):
    """This script, run as one model's server on a free port; returns (process, port)."""
    command = [sys.executable, "-u", os.path.abspath(__file__), model, "0", "--bind", bind]
    posix = os.name == "posix"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, text=True, start_new_session=posix)
    line = process.stdout.readline()  # the startup line, or "" if it could not start
    try:
        return process, int(line.split(" port ")[1].split()[0])
    except (IndexError, ValueError):
        stop_model(process)
        raise RuntimeError("the %s model did not start: %r" % (model, line)) from None


def stop_model(process):
    """Ctrl+C to the model's whole process group, as a terminal would."""
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.terminate()
        process.wait(10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()


def run_demo(bind, hold, timeout):
    print("Each model in turn: a slow client connects and holds its connection for %g s;\n"
          "then a quick client sends one line.  How long does the quick one wait?\n" % hold,
          flush=True)
    header = "%-14s %-27s %13s   %s" % ("model", "how it serves", "quick waited",
                                          "served while the slow one stayed?")
    print(header)
    print("-" * len(header), flush=True)
    for model in DEMO_ORDER:
        if model in NEEDS_FORK and not hasattr(os, "fork"):
            print("%-14s %-27s %13s   %s" % (model, HOW_IT_SERVES[model], "-", "n/a: no os.fork"))
            continue
        process, port = start_model(model, bind)
        try:
            waited, overlapped = measure(model, bind, port, hold, timeout)
        finally:
            stop_model(process)
        print("%-14s %-27s %10.0f ms   %s" % (
            model, HOW_IT_SERVES[model], waited * 1000,
            "yes" if overlapped else "no: it waited for the slow client to leave"), flush=True)
    print("\n"
          "loop    simple; one client holds up everyone (循环: 结构简单, 不能同时处理多个客户端)\n"
          "udp     the loop model's home: no connection to hold (适用于UDP, 要求处理请求很快完成)\n"
          "select  one thread, tiny cost per client, but a slow handler stalls all (IO多路复用)\n"
          "thread  a thread per client: concurrent, cheaper than a process; locks, GIL (多线程)\n"
          "process a process per client: isolated, concurrent; costs memory and fork time (多进程)\n"
          "The socketserver rows are the same models from the standard library (集成模块).",
          flush=True)


PORTS = range(0, 65536)  # TCP and UDP port numbers; 0 asks the OS for any free one


def parse_args(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    models = [*DEMO_ORDER, "demo"]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Without a model word: the loop model when a port is given (as with "
               "python3 -m http.server 8000), else the demo.")
    parser.add_argument("model", choices=models,
                        help="which echo server to run, or 'demo' to measure them all")
    parser.add_argument("port", nargs="?", type=int, default=None,
                        help="port to listen on (default %d; 0 lets the OS pick); the demo "
                             "takes none, it starts each model on a free port" % DEFAULT_PORT)
    parser.add_argument("-b", "--bind", default="127.0.0.1", metavar="ADDR",
                        help="address to bind (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="silence after which a blocking model drops a client "
                             "(default %(default)s)")
    parser.add_argument("--hold", type=float, default=DEFAULT_HOLD, metavar="SECONDS",
                        help="demo: how long the slow client holds its connection "
                             "(default %(default)s)")
    parser.add_argument("--workers", type=positive, default=DEFAULT_WORKERS, metavar="N",
                        help="pool: how many worker threads (default %(default)s)")
    if not (argv[:1] and argv[0] in (*models, "-h", "--help")):
        # No model word: a port makes it the loop model, as with http.server; none, the demo.
        argv = ["demo", *argv]
        if parser.parse_args(argv).port is not None:
            argv[0] = "loop"
    args = parser.parse_args(argv)
    if args.model == "demo" and args.port is not None:
        parser.error("the demo takes no port: it starts each model on a free one")
    if args.port is None:
        args.port = DEFAULT_PORT
    return args


def positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1")
    return int(text)


def main(argv=None):
    args = parse_args(argv)
    if args.port not in PORTS:
        sys.exit("Port must be between 0 and 65535, not %d" % args.port)
    try:
        if args.model == "demo":
            run_demo(args.bind, args.hold, args.timeout)
        else:
            run_server(args.model, args.bind, args.port, args.timeout, args.workers)
    except KeyboardInterrupt:
        print("\nKeyboard interrupt received, exiting.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
