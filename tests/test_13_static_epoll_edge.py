"""Lesson 13 in edge-triggered mode (--edge) keeps every promise of the level-triggered one.

Rather than repeat them, this module imports the shared contract and the
concurrent-server tests and runs them again, with every server launched
with --edge.  Edge-triggered epoll reports a socket once, when it becomes
ready: a loop that stops reading or writing before BlockingIOError loses
clients, and these tests are where that shows.
"""

import pytest

from servers import Launcher, script_path
from test_concurrent_servers import *  # noqa: F401,F403 -- collected again, here in edge mode
from test_contract import *  # noqa: F401,F403

LESSON = "13_static_epoll"


@pytest.fixture
def launch(launch):
    """The usual launcher, with --edge added to every server it starts."""
    def launch_edge(script, *args, **options):
        return launch(script, *args, "--edge", **options)
    return launch_edge


@pytest.fixture
def lesson():
    return script_path(LESSON)


@pytest.fixture(scope="module")
def static_server(tmp_path_factory, shared_docroot):
    launcher = Launcher(tmp_path_factory.mktemp("edge"))
    server = launcher(script_path(LESSON), "--edge", directory=shared_docroot)
    server.docroot = shared_docroot
    server.lesson = LESSON
    yield server
    problems = launcher.stop_all()
    assert not problems, "server did not stop cleanly: %s" % "; ".join(problems)
