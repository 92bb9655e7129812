"""The exercise grader itself: it can fail, it can pass, and a bad submission costs little.

Each check runs the grader the way an instructor does, in a subprocess with
--submission and --gradescope-results, and reads the results.json it wrote:
  * on lessons/ (the unsolved starting point) every exercise scores 0;
  * on solutions/ every exercise scores full marks;
  * on a folder of tiny broken programs (one hangs before its startup line,
    one crashes, one floods its output, one is missing) each costs only its
    own exercise, the run ends in bounded time, and no process is left.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servers import LESSONS, REPO, STATIC_SERVERS

EXERCISES = REPO / "tests" / "exercises"
SOLUTIONS = REPO / "solutions"
GRADER_TIMEOUT = 600  # a whole grading run; it is designed to take well under two minutes


def graded_lessons():
    """Lesson ids that have exercise tests, from the LESSON line of each test module."""
    lessons = []
    for module in sorted(EXERCISES.glob("test_ex*.py")):
        match = re.search(r'^LESSON = "(\w+)"$', module.read_text(encoding="utf-8"), re.M)
        assert match, "%s names no LESSON" % module.name
        lessons.append(match[1])
    return lessons


GRADED = graded_lessons()


def run_grader(submission, results, *options):
    """Grade a folder; (results.json as a dict, the terminal output, seconds taken)."""
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", str(EXERCISES), "-p", "no:cacheprovider",
         "--submission", str(submission), "--gradescope-results", str(results), *options],
        cwd=REPO, capture_output=True, text=True, timeout=GRADER_TIMEOUT)
    elapsed = time.monotonic() - started
    assert results.exists(), "no results.json written:\n%s\n%s" % (finished.stdout[-3000:],
                                                                   finished.stderr[-3000:])
    return json.loads(results.read_text(encoding="utf-8")), finished.stdout, elapsed


def by_exercise(results):
    exercises = {}
    for test in results["tests"]:
        exercises.setdefault(test["number"].split(".")[0], []).append(test)
    return exercises


@pytest.fixture(scope="module")
def lessons_graded(tmp_path_factory):
    """The unsolved lessons, graded from a copy (the grader keeps docroots next to it)."""
    folder = tmp_path_factory.mktemp("graded") / "lessons"
    shutil.copytree(LESSONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    results, output, elapsed = run_grader(folder, folder.parent / "results.json")
    return results, output.replace(str(folder), str(LESSONS)), elapsed


@pytest.fixture(scope="module")
def solutions_graded(tmp_path_factory):
    if not SOLUTIONS.is_dir():
        pytest.skip("solutions/ is not part of this copy of the course (a student hand-out)")
    return run_grader(SOLUTIONS, tmp_path_factory.mktemp("solutions") / "results.json")


# -- The grader can fail, and can pass ---------------------------------------------

def test_every_exercise_has_a_lesson_and_a_solution():
    assert GRADED, "no exercise tests found"
    for lesson in GRADED:
        assert (LESSONS / (lesson + ".py")).is_file(), "no lesson for exercise %s" % lesson
        if SOLUTIONS.is_dir():
            assert (SOLUTIONS / (lesson + ".py")).is_file(), "no solution for %s" % lesson


def test_dash_k_with_an_exercise_number_selects_that_exercise_only():
    """The lessons say "grade it with -k NN": no other exercise's test may match NN."""
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", str(EXERCISES), "--collect-only", "-q",
         "-p", "no:cacheprovider"], cwd=REPO, capture_output=True, text=True, timeout=120)
    test_ids = [line for line in collected.stdout.splitlines() if "::" in line]
    assert test_ids, collected.stdout[-3000:]
    for lesson in GRADED:
        strays = [test_id for test_id in test_ids
                  if lesson[:2] in test_id and "test_ex%s_" % lesson[:2] not in test_id]
        assert not strays, "-k %s would also run %s" % (lesson[:2], strays)


def test_every_exercise_scores_zero_on_the_unsolved_lessons(lessons_graded):
    results, output, _ = lessons_graded
    exercises = by_exercise(results)
    assert sorted(exercises) == sorted(lesson[:2] for lesson in GRADED), output[-3000:]
    for number, tests in exercises.items():
        passed = [test["name"] for test in tests if test["status"] == "passed"]
        assert not passed, "exercise %s: these tests pass without the exercise: %s" % (
            number, passed)
        assert sum(test["score"] for test in tests) == 0
        assert sum(test["max_score"] for test in tests) > 0
    assert results["score"] == 0


def test_every_exercise_scores_full_marks_on_the_solutions(solutions_graded):
    results, output, elapsed = solutions_graded
    exercises = by_exercise(results)
    assert sorted(exercises) == sorted(lesson[:2] for lesson in GRADED), output[-3000:]
    for number, tests in exercises.items():
        failed = {test["name"]: test["output"][:3000] for test in tests
                  if test["status"] != "passed"}
        assert not failed, "exercise %s fails on its solution: %s" % (number, failed)
        assert sum(test["score"] for test in tests) == sum(test["max_score"] for test in tests)
    assert results["score"] == sum(test["max_score"] for test in results["tests"]) > 0
    print("grading solutions/ took %.1f s" % elapsed)


def test_results_json_has_the_gradescope_shape(solutions_graded):
    results, _, _ = solutions_graded
    assert isinstance(results["score"], (int, float))
    assert isinstance(results["execution_time"], (int, float))
    assert results["tests"]
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "output", "visibility"}
        assert test["visibility"] in ("hidden", "after_due_date", "after_published", "visible")
        assert 0 <= test["score"] <= test["max_score"]


def test_the_terminal_shows_a_summary_table(lessons_graded):
    results, output, _ = lessons_graded
    assert "exercise grades for %s" % LESSONS in output
    table = output[output.index("exercise grades for"):]
    for number in by_exercise(results):
        assert re.search(r"^Exercise %s .*\s0 / \d+\s+0 / \d+$" % number, table, re.M), table
    assert re.search(r"^total\s+0 / \d+", table, re.M)


def test_a_failure_shows_the_bytes_a_way_to_reproduce_a_hint_and_the_programs_output(
        lessons_graded):
    results, _, _ = lessons_graded
    report = next(test["output"] for test in results["tests"] if test["number"] == "06.1")
    assert "the grader sent" in report and "GET /listed/ HTTP/1.1\\r\\n" in report
    assert "your program sent back" in report and "403 Forbidden" in report
    curl = re.search(r"curl -v --path-as-is .*http://127\.0\.0\.1:(\d+)/listed/", report)
    assert curl and int(curl[1]) != 7890, "a free port, not the course site's"
    start = re.search(r"python3 \S+06_static_single\.py %s --bind 127\.0\.0\.1 "
                      r"--directory (\S+)" % curl[1], report)
    assert start, "the command that starts the program, on the same port"
    assert (Path(start[1]) / "listed").is_dir(), "the docroot outlives the run"
    assert "Hint: lessons/06_static_single.py" in report
    assert "==== output of your program" in report and "Serving HTTP on" in report


def test_a_failure_with_the_same_cause_as_an_earlier_one_refers_to_it(lessons_graded):
    results, _, _ = lessons_graded
    exercise = by_exercise(results)["06"]
    first, later = exercise[0]["output"], [test["output"] for test in exercise[1:]]
    assert "What the grader sent and received" in first
    for report in later:
        assert "Same cause as test 06.1" in report, report
        assert "What the grader sent and received" not in report and len(report) < 600


def test_the_solutions_differ_from_their_lessons_only_by_the_exercise():
    if not SOLUTIONS.is_dir():
        pytest.skip("solutions/ is not part of this copy of the course")
    for lesson in GRADED:
        solved = (SOLUTIONS / (lesson + ".py")).read_text(encoding="utf-8")
        unsolved = (LESSONS / (lesson + ".py")).read_text(encoding="utf-8")
        docstring = unsolved[:unsolved.index('"""', unsolved.index('"""') + 3)]
        assert solved.startswith(docstring), "%s: the solution changed the lesson's docstring" \
            % lesson
        assert solved != unsolved, "%s: the solution is the unsolved lesson" % lesson


def test_every_server_solution_keeps_the_shared_contract():
    """A solution is its lesson plus the exercise: the lesson's contract still holds."""
    solved = [lesson for lesson in STATIC_SERVERS if (SOLUTIONS / (lesson + ".py")).is_file()]
    if not solved:
        pytest.skip("no solution of a static server lesson in this copy of the course")
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "tests" / "test_contract.py"), "-q",
         "-p", "no:cacheprovider", "-k", " or ".join(solved)],
        cwd=REPO, capture_output=True, text=True, timeout=GRADER_TIMEOUT,
        env={**os.environ, "LESSONS_FOLDER": str(SOLUTIONS)})
    assert finished.returncode == 0, finished.stdout[-5000:]
    assert " passed" in finished.stdout


# -- A broken submission costs only its own exercise ----------------------------------

BROKEN = {
    # Never prints its startup line.
    "hangs": "import time\ntime.sleep(3600)\n",
    # Starts, then dies with a traceback on its first connection.
    "crashes": """\
import socket, sys
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
print("Serving HTTP on 127.0.0.1 port %d (http://127.0.0.1:%d/) ..." % (port, port), flush=True)
listener.accept()
raise RuntimeError("the student's bug")
""",
    # Starts, closes every connection, and prints without end.
    "floods": """\
import socket, sys, threading
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
print("Serving HTTP on 127.0.0.1 port %d (http://127.0.0.1:%d/) ..." % (port, port), flush=True)
def flood():
    while True:
        sys.stdout.write("flood " * 10000 + "\\n")
threading.Thread(target=flood, daemon=True).start()
while True:
    listener.accept()[0].close()
""",
}


def processes_running(marker):
    """Pids of live processes whose command line mentions marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="counts processes through /proc")
def test_a_hanging_crashing_flooding_or_missing_submission_costs_only_its_own_exercise(
        tmp_path):
    if not SOLUTIONS.is_dir():
        pytest.skip("needs solutions/ for the one good exercise")
    # Server exercises whose tests start the program over HTTP (the broken
    # programs above pretend to be HTTP servers), and one good solution.
    roles = ["06_static_single", "02_server_models", "04_request_response",
             "05_real_headers", "01_server_overview"]
    if not set(roles) <= set(GRADED):
        pytest.skip("needs exercises %s" % roles)
    good, hangs, crashes, floods, missing = roles
    folder = tmp_path / "broken-submissions"
    folder.mkdir()
    shutil.copy(SOLUTIONS / (good + ".py"), folder)
    for lesson, kind in [(hangs, "hangs"), (crashes, "crashes"), (floods, "floods")]:
        (folder / (lesson + ".py")).write_text(BROKEN[kind])
    selection = " or ".join("test_ex" + lesson for lesson in (good, hangs, crashes, floods,
                                                                missing))
    results, output, elapsed = run_grader(folder, tmp_path / "results.json", "-k", selection)

    exercises = by_exercise(results)
    good_tests = exercises[good[:2]]
    assert all(test["status"] == "passed" for test in good_tests), \
        "the good exercise lost points to its broken neighbours:\n%s" % output[-3000:]
    expected_messages = {
        hangs: "printed no startup line within",
        crashes: "RuntimeError: the student's bug",
        floods: "more bytes of output",
        missing: "Not submitted",
    }
    for lesson, message in expected_messages.items():
        tests = exercises[lesson[:2]]
        assert sum(test["score"] for test in tests) == 0
        assert any(message in test["output"] for test in tests), \
            "exercise %s: no test says %r" % (lesson[:2], message)
    # One startup timeout, once for the exercise that hangs, plus ordinary tests.
    assert elapsed < 120, "a broken submission kept the grader %.0f s" % elapsed
    assert processes_running(str(folder)) == [], "processes left behind"
    assert len(output) < 2_000_000, "the flood reached the grader's own output"
