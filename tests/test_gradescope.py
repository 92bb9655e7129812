"""The autograder an instructor can trust: attacks score 0, nothing outlives grading.

Each attack below was a real exploit of the grader before it ran student code
in a sandbox (issue 14).  The tests run Gradescope's own entry point,
tests/exercises/gradescope/run_autograder, from the zip the repo builds,
in a temporary $AUTOGRADER_ROOT, as root, with the student's programs run by
an unprivileged user.  To stay cheap they grade one or two exercises (-k).
Tests of the grader's behaviour that need no sandbox (time budgets, an
interrupted run, results.json's fields, -n, environment errors, a hand-out
without solutions/) run the grader directly.
"""

import csv
import importlib.util
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servers import LESSONS, REPO, one_line_error, wait_for

GRADESCOPE = REPO / "tests" / "exercises" / "gradescope"
SOLUTIONS = REPO / "solutions"
STUDENT = "grader-test"  # the sandbox user of these tests (Gradescope's is "student")
RUN_LIMIT = 300  # seconds, for one run_autograder in these tests; each takes a few

sys.path.insert(0, str(GRADESCOPE))
import make_zip  # noqa: E402

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("useradd") is None
    or not Path("/proc").is_dir(),
    reason="the sandbox needs root, useradd and /proc (as on Gradescope and in CI)")
needs_solutions = pytest.mark.skipif(not SOLUTIONS.is_dir(),
                                     reason="solutions/ is not part of this copy")


# -- The attacks: each is a student's whole file for exercise 06 (or 12) ------------------

# Every attack learns the grader's paths from its command line, as a real one did.
GRADER_ARGS = """\
import os, sys, json, signal, socket, time
def grader_args():
    return [word.decode() for word in
            open("/proc/%d/cmdline" % os.getppid(), "rb").read().split(b"\\0")]
def after(option):
    args = grader_args()
    return args[args.index(option) + 1]
def forge():
    with open(after("--gradescope-results"), "w") as out:
        json.dump({"score": 116, "output": "FORGED", "tests": []}, out)
def serve_nothing():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    print("Serving HTTP on 127.0.0.1 port %d (http://127.0.0.1:%d/) ..." % (port, port),
          flush=True)
    while True:
        listener.accept()[0].close()
"""

ATTACKS = {
    # Write a full score where the grader will look, then kill the grader.
    "forge_and_kill": GRADER_ARGS + """\
for attempt in (forge, lambda: os.kill(os.getppid(), signal.SIGKILL)):
    try:
        attempt()
    except Exception as error:
        print("attack failed:", error, flush=True)
serve_nothing()
""",
    # A double-forked process in its own session that rewrites the results for ever.
    "lingering_writer": GRADER_ARGS + """\
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            try:
                forge()
            except Exception:
                pass
            time.sleep(0.05)
    os._exit(0)
serve_nothing()
""",
    # Make the grader's own conftest pass every test of whoever is graded next.
    "poison_conftest": GRADER_ARGS + """\
try:
    conftest = os.path.join(after("--rootdir"), "tests", "exercises", "conftest.py")
    with open(conftest, "a") as out:
        out.write("\\nimport pytest\\n@pytest.fixture(autouse=True)\\n"
                  "def _poison():\\n    pytest.skip('poisoned')\\n")
except Exception as error:
    print("attack failed:", error, flush=True)
serve_nothing()
""",
    # Run the instructor's solution, uploaded with the grader by mistake.
    "run_the_solution": GRADER_ARGS + """\
solution = os.path.join(after("--rootdir"), "solutions", "06_static_single.py")
os.execv(sys.executable, [sys.executable, "-u", solution, *sys.argv[1:]])
""",
}

# Exercise 12's busy-polling lesson, moved out of the process the grader started:
# fork, new session, fork again (orphaned), and a cleared environment.
SPLIT_12 = """\
import os, sys
lesson = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unsolved", "lesson12.py")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execve(sys.executable, [sys.executable, "-u", lesson, *sys.argv[1:]], %s)
    os._exit(0)
os.wait()
while True:
    os.pause()
"""


# -- Running the autograder as Gradescope does ----------------------------------------

@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    """The Gradescope zip the repo's command builds, unpacked: a source/ to copy."""
    folder = tmp_path_factory.mktemp("zip")
    built = subprocess.run([sys.executable, str(GRADESCOPE / "make_zip.py"),
                            str(folder / "autograder.zip")], capture_output=True, text=True,
                           timeout=60)
    assert built.returncode == 0, built.stderr
    with __import__("zipfile").ZipFile(folder / "autograder.zip") as archive:
        names = archive.namelist()
    assert "run_autograder" in names and "setup.sh" in names
    assert not [name for name in names if name.startswith("solutions")], names
    source = make_zip.extract(folder / "autograder.zip", folder / "source")
    checked = subprocess.run(["bash", "-n", str(source / "setup.sh")], capture_output=True,
                             text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    return source


def autograder_root(tmp_path, unpacked, files, with_solutions=False):
    """$AUTOGRADER_ROOT with source/ (the zip), submission/ (files), results/."""
    root = tmp_path / "autograder"
    shutil.copytree(unpacked, root / "source", symlinks=True)
    if with_solutions:
        shutil.copytree(SOLUTIONS, root / "source" / "solutions")
    submission = root / "submission"
    submission.mkdir(parents=True)
    for name, content in files.items():
        path = submission / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, path)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def run_autograder(root, *pytest_args):
    """Run run_autograder on root; (results.json, its output)."""
    finished = subprocess.run(
        [sys.executable, str(root / "source" / "run_autograder")],
        env={**os.environ, "AUTOGRADER_ROOT": str(root), "GRADER_USER": STUDENT,
             "GRADER_PYTEST_ARGS": " ".join(pytest_args),
             # run_autograder stops its grader (a session of its own, with the student's
             # programs) and reports before our timeout would kill run_autograder alone.
             "GRADER_TIME_LIMIT": str(RUN_LIMIT - 60)},
        capture_output=True, text=True, timeout=RUN_LIMIT)
    results = root / "results" / "results.json"
    assert results.exists(), finished.stdout[-3000:] + finished.stderr[-3000:]
    return json.loads(results.read_text(encoding="utf-8")), finished.stdout + finished.stderr


def processes_of(user):
    """Live pids run by user (Linux /proc)."""
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if entry.stat().st_uid == uid and state != "Z":
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def assert_scores_zero(results, output):
    assert results["score"] == 0, "the attack scored:\n" + output[-3000:]
    assert "FORGED" not in json.dumps(results)
    assert results["tests"] and all(test["score"] == 0 for test in results["tests"])
    assert results["extra_data"]["finished"] is True
    assert results["extra_data"]["sandbox_user"] == STUDENT
    assert processes_of(STUDENT) == [], "a process of the submission outlived grading"


# -- Honest work keeps its marks in the sandbox -----------------------------------------

@needs_root
@needs_solutions
def test_honest_solutions_keep_full_marks_in_the_sandbox(tmp_path, unpacked):
    lessons = ["01_server_overview", "06_static_single", "12_static_nonblocking"]
    root = autograder_root(tmp_path, unpacked,
                           {name + ".py": SOLUTIONS / (name + ".py") for name in lessons})
    results, output = run_autograder(root, "-k", "'01 or 06 or 12'")
    assert results["score"] == sum(test["max_score"] for test in results["tests"]) > 0, \
        output[-3000:]
    assert {test["number"][:2] for test in results["tests"]} == {"01", "06", "12"}
    assert processes_of(STUDENT) == []
    # Only the grader could write results/, and the student can read neither it nor source/.
    for folder in ("source", "results", "submission"):
        assert (root / folder).stat().st_mode & 0o077 == 0, folder


# -- Forged grades --------------------------------------------------------------------

@needs_root
@pytest.mark.parametrize("attack", ["forge_and_kill", "lingering_writer"])
def test_a_submission_cannot_write_its_grade_or_kill_the_grader(tmp_path, unpacked, attack):
    root = autograder_root(tmp_path, unpacked, {"06_static_single.py": ATTACKS[attack]})
    results, output = run_autograder(root, "-k", "06")
    assert_scores_zero(results, output)
    assert len(results["tests"]) == 6


@needs_root
def test_a_submission_cannot_poison_the_grader_for_the_next_one(tmp_path, unpacked):
    root = autograder_root(tmp_path, unpacked,
                           {"06_static_single.py": ATTACKS["poison_conftest"]})
    conftest = root / "source" / "tests" / "exercises" / "conftest.py"
    before = conftest.read_bytes()
    results, output = run_autograder(root, "-k", "06")
    assert_scores_zero(results, output)
    assert conftest.read_bytes() == before, "the grader's conftest.py was changed"
    # The next submission graded in the same folder: the unsolved lesson scores 0.
    shutil.rmtree(root / "submission")
    (root / "submission").mkdir()
    shutil.copy(LESSONS / "06_static_single.py", root / "submission")
    results, output = run_autograder(root, "-k", "06")
    assert_scores_zero(results, output)


# -- The instructor's solutions ---------------------------------------------------------

@needs_root
@needs_solutions
def test_a_submission_cannot_run_or_link_the_uploaded_solutions(tmp_path, unpacked):
    root = autograder_root(tmp_path / "runs", unpacked,
                           {"06_static_single.py": ATTACKS["run_the_solution"]},
                           with_solutions=True)
    results, output = run_autograder(root, "-k", "06")
    assert_scores_zero(results, output)
    assert "Permission denied" in json.dumps(results)

    root = autograder_root(tmp_path / "links", unpacked, {}, with_solutions=True)
    os.symlink(root / "source" / "solutions" / "06_static_single.py",
               root / "submission" / "06_static_single.py")
    results, output = run_autograder(root, "-k", "06")
    assert_scores_zero(results, output)
    assert "dropped 06_static_single.py" in output
    assert "Not submitted" in results["tests"][0]["output"]


# -- Exercise 12 split over processes ---------------------------------------------------

@needs_root
def test_busy_polling_moved_to_an_orphan_in_another_session_still_counts(tmp_path, unpacked):
    root = autograder_root(tmp_path, unpacked, {
        "12_static_nonblocking.py": SPLIT_12 % "{}",
        "unsolved/lesson12.py": LESSONS / "12_static_nonblocking.py"})
    results, output = run_autograder(root, "-k", "12")
    assert_scores_zero(results, output)
    assert "of a core" in results["tests"][0]["output"]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="counts processes through /proc")
def test_without_a_sandbox_a_process_that_left_the_session_still_counts(tmp_path):
    """The student grading their own answers: no root, no sandbox user."""
    submission = tmp_path / "my_answers"
    (submission / "unsolved").mkdir(parents=True)
    (submission / "12_static_nonblocking.py").write_text(SPLIT_12 % "os.environ")
    shutil.copy(LESSONS / "12_static_nonblocking.py", submission / "unsolved" / "lesson12.py")
    results, output, _ = grade(submission, tmp_path / "results.json", "-k", "12")
    assert results["score"] == 0, output[-3000:]
    assert "of a core" in results["tests"][0]["output"]


# -- Batch grading ----------------------------------------------------------------------

HANGS = """\
import socket
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
print("Serving HTTP on 127.0.0.1 port %d (http://127.0.0.1:%d/) ..." % (port, port), flush=True)
held = []
while True:
    held.append(listener.accept()[0])  # accepts, never answers
"""


@needs_root
@needs_solutions
def test_batch_grades_a_small_class_in_parallel(tmp_path):
    class_folder = tmp_path / "class"
    students = {
        "ada": SOLUTIONS / "06_static_single.py",
        "bob": LESSONS / "06_static_single.py",
        "cy": HANGS,
        "dan": ATTACKS["lingering_writer"],
    }
    for name, content in students.items():
        folder = class_folder / name
        folder.mkdir(parents=True)
        target = folder / "06_static_single.py"
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_text(content)
    out = tmp_path / "out"
    finished = subprocess.run(
        [sys.executable, str(GRADESCOPE / "batch.py"), str(class_folder), str(out),
         "--jobs", "2", "--time-limit", "120", "--", "-k", "06", "--test-timeout", "4"],
        capture_output=True, text=True, timeout=RUN_LIMIT)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    with open(out / "gradebook.csv", encoding="utf-8") as book:
        rows = {row["student"]: row for row in csv.DictReader(book)}
    assert {name: int(row["total"]) for name, row in rows.items()} == \
        {"ada": 9, "bob": 0, "cy": 0, "dan": 0}
    assert rows["ada"]["ex06"] == "9" and rows["ada"]["status"] == "finished"
    for name in students:
        assert (out / "reports" / (name + ".txt")).is_file()
        assert (out / "reports" / (name + ".json")).is_file()
    hanging = json.loads((out / "reports" / "cy.json").read_text())
    outputs = [test["output"] for test in hanging["tests"]]
    assert "did not finish within 4 s" in outputs[0]
    assert all("Not run: time budget" in text for text in outputs[1:]), outputs
    assert "403 Forbidden" in (out / "reports" / "bob.txt").read_text()
    for slot in ("grader-slot1", "grader-slot2"):
        assert processes_of(slot) == [], "%s still runs a student's program" % slot


# -- The grader itself, run directly ---------------------------------------------------------

def grade(submission, results, *options, env=None):
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "tests" / "exercises"), "-p",
         "no:cacheprovider", "--submission", str(submission), "--gradescope-results",
         str(results), *options],
        cwd=REPO, capture_output=True, text=True, timeout=RUN_LIMIT, env=env)
    assert results.exists(), finished.stdout[-3000:] + finished.stderr[-3000:]
    return (json.loads(results.read_text(encoding="utf-8")), finished.stdout,
            time.monotonic() - started)


NOISY = """\
import socket
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
print("Serving HTTP on 127.0.0.1 port %d (http://127.0.0.1:%d/) ..." % (port, port), flush=True)
print("NUL \\x00 ESC \\x1b[31m red", flush=True)
while True:
    listener.accept()[0].close()
"""


def test_results_json_carries_format_visibility_tags_version_and_no_control_bytes(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "06_static_single.py").write_text(NOISY)
    results, _, _ = grade(tmp_path / "sub", tmp_path / "results.json", "-k", "06",
                          "--results-visibility", "after_due_date")
    raw = (tmp_path / "results.json").read_text(encoding="utf-8")
    assert "\x00" not in raw and "\x1b" not in raw and "\\u0000" not in raw
    assert "\\\\x1b[31m" in raw, "the ESC byte is shown escaped"
    assert results["output_format"] == "md" and results["test_output_format"] == "text"
    assert results["visibility"] == "after_due_date"
    assert results["stdout_visibility"] == "hidden"
    for test in results["tests"]:
        assert test["visibility"] == "after_due_date"
        assert test["tags"] == ["exercise 06", "06_static_single"]
    assert results["extra_data"]["grader_version"].startswith("2026.")
    assert results["extra_data"]["finished"] is True


def test_an_interrupted_run_reports_every_selected_test(tmp_path):
    submission = tmp_path / "sub"
    submission.mkdir()
    (submission / "06_static_single.py").write_text(HANGS)
    results_path = tmp_path / "results.json"
    grader = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(REPO / "tests" / "exercises"), "-q", "-p",
         "no:cacheprovider", "--submission", str(submission), "--gradescope-results",
         str(results_path), "-k", "06", "--test-timeout", "60"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        # Results are written as grading goes: the first appear before any test ends.
        assert wait_for(results_path.exists, timeout=60), "no results while grading"
        grader.send_signal(signal.SIGTERM)
        grader.wait(60)
    finally:
        if grader.poll() is None:
            os.killpg(grader.pid, signal.SIGKILL)
            grader.wait()
    results = json.loads(results_path.read_text(encoding="utf-8"))
    assert len(results["tests"]) == 6, "every selected test is reported"
    assert results["extra_data"]["interrupted"] == "SIGTERM"
    assert "interrupted" in results["output"]
    assert any("interrupted (SIGTERM)" in test["output"] for test in results["tests"])
    assert results["score"] == 0


@needs_solutions
def test_past_the_run_budget_every_remaining_test_is_reported_not_run(tmp_path):
    results, _, elapsed = grade(SOLUTIONS, tmp_path / "results.json", "-k", "01 or 06",
                                "--run-budget", "0.001")
    assert len(results["tests"]) == 10 and results["score"] == 0
    assert all("Not run: time budget" in test["output"] for test in results["tests"])
    assert elapsed < 60


def test_only_the_graders_own_timeout_ends_an_exercise(monkeypatch):
    """A test that fails with "DID NOT RAISE TimeoutError" judged the answer, not the clock:
    the exercise's other tests still run."""
    monkeypatch.syspath_prepend(str(REPO / "tests" / "exercises"))  # its imports: grading...
    spec = importlib.util.spec_from_file_location(
        "exercise_conftest", REPO / "tests" / "exercises" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)

    def failure(function):
        call = pytest.CallInfo.from_call(function, "call")
        assert call.excinfo is not None, "expected a failure"
        return call

    def pytest_timeout_fired():
        pytest.fail("Timeout (>20.0s) from pytest-timeout.")

    def raises_did_not_raise():
        with pytest.raises(TimeoutError):
            pass

    def answer_mentions_timeout():
        pytest.fail("Timeout waiting for the 503: the server answered 200")

    assert conftest.timed_out(failure(pytest_timeout_fired))
    assert not conftest.timed_out(failure(raises_did_not_raise))
    assert not conftest.timed_out(failure(answer_mentions_timeout))


def test_the_grader_refuses_xdist_in_one_line(tmp_path):
    (tmp_path / "fake_xdist.py").write_text(
        "def pytest_addoption(parser):\n"
        "    parser.getgroup('xdist')._addoption('-n', '--numprocesses', dest='numprocesses',"
        " default=None)\n")
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "tests" / "exercises"), "-p",
         "fake_xdist", "-p", "no:cacheprovider", "-n", "4", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path)})
    message = one_line_error(finished)
    assert "without -n" in message


FAILING_FORK = """\
import errno, subprocess
real_init = subprocess.Popen.__init__
launches = []
def refusing_init(self, args, *more, **options):
    if any("06_static_single" in str(word) for word in args):
        launches.append(args)
        if len(launches) == 1:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    return real_init(self, args, *more, **options)
subprocess.Popen.__init__ = refusing_init
"""


# The program starts, then the grader cannot start the thread that reads its output:
# the program must not be left running.
FAILING_THREAD = """\
import threading
real_start = threading.Thread.start
refused = []
def refusing_start(self):
    target = getattr(self, "_target", None)
    if getattr(target, "__name__", "") == "_read_output" and not refused:
        script = str(getattr(target.__self__, "script", ""))
        if "06_static_single" in script:
            refused.append(script)
            raise RuntimeError("can't start new thread")
    return real_start(self)
threading.Thread.start = refusing_start
"""


@needs_solutions
@pytest.mark.parametrize("failure, problem", [(FAILING_FORK, "EAGAIN"),
                                              (FAILING_THREAD, "could not start a thread")],
                         ids=["fork", "thread"])
def test_a_refused_fork_or_thread_is_the_environments_problem_not_the_students(
        tmp_path, failure, problem):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "failing_fork.py").write_text(failure)
    (tmp_path / "sub").mkdir()
    shutil.copy(SOLUTIONS / "06_static_single.py", tmp_path / "sub")
    shutil.copy(SOLUTIONS / "01_server_overview.py", tmp_path / "sub")
    results, output, _ = grade(tmp_path / "sub", tmp_path / "results.json", "-k", "01 or 06",
                               "-p", "failing_fork",
                               env={**os.environ, "PYTHONPATH": str(tmp_path / "plugins")})
    problems = results["extra_data"]["environment_problems"]
    assert problems and problem in problems[0], output[-3000:]
    refused = [test for test in results["tests"] if test["status"] == "failed"]
    assert len(refused) == 1 and "grading environment" in refused[0]["output"], output[-3000:]
    assert "The check that failed" not in refused[0]["output"]
    assert "grade again" in results["output"]
    assert not _marked_processes(str(tmp_path)), "a program outlived grading"


def _marked_processes(folder):
    """Live processes the grader started (its marker) whose command line names folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (b"COURSE_GRADER_PROGRAM=" in (entry / "environ").read_bytes()
                        and folder.encode() in (entry / "cmdline").read_bytes()):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_a_hand_out_without_solutions_skips_its_exercise_tests_in_one_line(tmp_path):
    """Issue 13: `python3 -m pytest tests/exercises` in a student's copy passes."""
    for name, path in make_zip.grader_files():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, tmp_path / name)
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/exercises", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stdout[-3000:]
    skipped = [line for line in finished.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and "--submission my_answers" in skipped[0], finished.stdout
    assert "exercise grades" not in finished.stdout
