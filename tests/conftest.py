"""Fixtures that launch lesson scripts as subprocesses and always stop them."""

import signal

import pytest

from servers import STATIC_SERVERS, Launcher, make_docroot, script_path

# A pytest started in the background by a non-interactive shell inherits
# SIGINT as "ignored", and so would every server it starts: Ctrl+C tests
# would then hang.  Give our children the default disposition back.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# Options of the exercise grader (tests/exercises/).  They live here, not
# there, because pytest honours pytest_addoption only in the conftests it
# loads at start-up, and tests/exercises/conftest.py is not one of them when
# the whole tests/ folder runs.
def pytest_addoption(parser):
    group = parser.getgroup("exercises", "exercise grader (tests/exercises)")
    group.addoption("--submission", metavar="DIR", default=None,
                    help="folder of exercise answers to grade (default: the repo's solutions/)")
    group.addoption("--gradescope-results", metavar="PATH", default=None,
                    help="also write the grades in Gradescope's results.json format to PATH")
    group.addoption("--results-visibility", default="visible",
                    choices=["visible", "hidden", "after_due_date", "after_published"],
                    help="Gradescope visibility of the results and each test")
    group.addoption("--sandbox-user", metavar="NAME", default=None,
                    help="run the submission as this unprivileged user (the grader is root)")
    group.addoption("--sandbox-work", metavar="DIR", default=None,
                    help="folder for the sandboxed programs' working folders")
    group.addoption("--student-python", metavar="PATH", default=None,
                    help="the python3 the sandbox user runs (default: ours, if it can)")
    group.addoption("--test-timeout", metavar="SECONDS", type=float, default=None,
                    help="time limit of one exercise test (default 20)")
    group.addoption("--run-budget", metavar="SECONDS", type=float, default=None,
                    help="time limit of the whole grading run: later tests are not run")


@pytest.fixture(scope="session")
def shared_docroot(tmp_path_factory):
    """One read-only docroot for the tests that only read files."""
    return make_docroot(tmp_path_factory.mktemp("site") / "root")


@pytest.fixture
def docroot(tmp_path):
    """A fresh docroot a test may change."""
    return make_docroot(tmp_path / "root")


@pytest.fixture
def launch(tmp_path):
    """launch(script, *extra_args, directory=..., cwd=...) -> a started ServerProcess."""
    launcher = Launcher(tmp_path)
    yield launcher
    problems = launcher.stop_all()
    assert not problems, "server did not stop cleanly: %s" % "; ".join(problems)


@pytest.fixture(scope="module", params=STATIC_SERVERS)
def static_server(request, tmp_path_factory, shared_docroot):
    """One server per lesson, shared by a module's tests that leave it as they found it."""
    launcher = Launcher(tmp_path_factory.mktemp(request.param))
    server = launcher(script_path(request.param), directory=shared_docroot)
    server.docroot = shared_docroot
    server.lesson = request.param
    yield server
    problems = launcher.stop_all()
    assert not problems, "server did not stop cleanly: %s" % "; ".join(problems)
