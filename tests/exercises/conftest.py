"""The exercise grader: grades any folder of answers over sockets.

    python -m pytest tests/exercises                          # grades solutions/
    python -m pytest tests/exercises --submission my_answers   # grades my_answers/
    python -m pytest tests/exercises -k 06                     # exercise 06 only
    python -m pytest tests/exercises --submission /autograder/submission \\
        --gradescope-results /autograder/results/results.json

Each test module grades one exercise: its LESSON names the file it grades
(LESSON + ".py" in the submission folder), its docstring's first line is the
exercise's title, its HINT points into the lesson.  Each test is worth
@pytest.mark.points(N) (1 by default) and may carry its own
@pytest.mark.hint("...").  Tests start the submission only through the
`exercise` fixture and talk to it only through the `http` fixture, so that a
failure can show the conversation; see grading.py for what a report holds.

A submission that is missing, hangs, crashes or floods its output costs only
its own exercise: a missing file fails that exercise's tests at once, a
program that never prints its startup line is waited for once per exercise
(grading.STARTUP_TIMEOUT), its output is capped, every test is bounded by
TEST_TIMEOUT, and every program is killed with its whole process group when
its test (or, for a shared server, its module) ends.
"""

import json
import re
import shlex
import time
from pathlib import Path

import pytest

import grading
from servers import REPO

DEFAULT_SUBMISSION = REPO / "solutions"
TEST_TIMEOUT = 60  # seconds; generous, the machine may be busy, a hung program still ends here
MAX_UNFINISHED_RUNS = 2  # client runs that may time out in one exercise before it is given up

GRADE = pytest.StashKey()
TRANSCRIPT = pytest.StashKey()
GRADES = pytest.StashKey()
STARTED = pytest.StashKey()


def pytest_configure(config):
    # Registered here, not in pytest.ini, so that the grader is self-contained.
    config.addinivalue_line("markers", "points(n): what passing this exercise test is worth")
    config.addinivalue_line("markers", "hint(text): where in the lesson a failing student looks")
    config.stash[GRADES] = []
    config.stash[STARTED] = time.monotonic()


def submission_folder(config):
    option = config.getoption("submission", None)
    if option is None:
        return DEFAULT_SUBMISSION
    return (config.invocation_params.dir / option).resolve()


def is_exercise_module(module):
    return hasattr(module, "LESSON") and Path(module.__file__).parent == Path(__file__).parent


# ---------------------------------------------------------------------------
# Grades: one record per test, filled in as the test runs
# ---------------------------------------------------------------------------

class Grade:
    def __init__(self, item):
        module = item.module
        self.lesson = module.LESSON
        self.exercise = module.LESSON[:2]
        self.title = (module.__doc__ or module.LESSON).strip().splitlines()[0]
        marker = item.get_closest_marker("points")
        self.max_score = marker.args[0] if marker else 1
        hint = item.get_closest_marker("hint")
        self.hint = hint.args[0] if hint else getattr(module, "HINT", None)
        doc = (getattr(item, "function", None).__doc__ or "").strip()
        self.rule = doc.splitlines()[0] if doc else readable(item.name)
        self.passed = None
        self.output = ""

    @property
    def score(self):
        return self.max_score if self.passed else 0

    def failed(self, output):
        self.passed = False
        self.output = (self.output + "\n\n" + output).strip()


def readable(test_name):
    name, _, params = test_name.partition("[")
    words = re.sub(r"^test_", "", name).replace("_", " ")
    return words + (" [" + params if params else "")


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        if not is_exercise_module(getattr(item, "module", None)):
            continue
        grade = Grade(item)
        item.stash[GRADE] = grade
        config.stash[GRADES].append(grade)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    grade = item.stash.get(GRADE, None)
    if grade is None:
        return
    if report.skipped:
        grade.failed("skipped: %s" % (report.longrepr[2] if isinstance(report.longrepr, tuple)
                                      else report.longrepr))
    elif report.failed:
        if report.when == "setup" and call.excinfo.errisinstance(grading.NotGradable):
            # A fixture could not start the program: the student's failure,
            # not an error of the grader, so report it as the test failing.
            report.when = "call"
        if report.when == "call":
            text = teaching_report(item, call, grade)
            if item.config.getoption("verbose") >= 2:  # for whoever debugs the grader itself
                text += "\n\n---- the grader's traceback ----\n" + str(report.longrepr)
            report.longrepr = text
            grade.failed(text)
        else:
            grade.failed("%s of the test failed (a problem of the grader, not of your "
                         "program; please report it):\n%s" % (report.when, report.longrepr))
    elif report.when == "call" and grade.passed is None:
        grade.passed = True


def teaching_report(item, call, grade):
    error = call.excinfo.value
    if isinstance(error, grading.NotGradable):
        check = str(error)
    elif "Timeout" in str(error) and type(error).__name__ == "Failed":
        check = ("The test did not finish within %d s: your program kept the grader "
                 "waiting." % TEST_TIMEOUT)
    else:
        where = next((entry for entry in reversed(call.excinfo.traceback)
                      if Path(entry.path) == Path(item.path)), None)
        check = "The check that failed:\n  " + call.excinfo.exconly().replace("\n", "\n  ")
        if where is not None:
            check += "\n  (%s, line %d)" % (grading.relative(where.path), where.lineno + 1)
    heading = "%s: %s (worth %s point%s)" % (grade.title, grade.rule, grade.max_score,
                                              "" if grade.max_score == 1 else "s")
    transcript = item.stash.get(TRANSCRIPT, None)
    body = transcript.report(check, grade.hint) if transcript else check
    return heading + "\n\n" + body


# ---------------------------------------------------------------------------
# Fixtures: the submission, the exercise's programs, the recorded conversation
# ---------------------------------------------------------------------------

class Exercise:
    """Starts the submitted program for one exercise (one test module)."""

    def __init__(self, module, submission, log_folder):
        self.lesson = module.LESSON
        self.title = (module.__doc__ or module.LESSON).strip().splitlines()[0]
        self.submission = submission
        self.script_path = find_submitted(submission, module.LESSON + ".py")
        self.log_folder = log_folder
        self.transcript = None  # of the test running now
        self.shared = {}  # launch arguments -> a running server, or why it did not start
        self.hung = None  # set once the program failed to print its startup line in time
        self.runs_unfinished = 0  # client runs that hit their timeout
        self.programs_started = 0

    @property
    def script(self):
        if not self.script_path.is_file():
            raise grading.NotGradable(
                "Not submitted: there is no %s in %s.\nCopy lessons/%s.py there, solve its "
                "Exercise, and grade it again." % (self.script_path.name, self.submission,
                                                   self.lesson))
        return self.script_path

    def _log_path(self):
        self.programs_started += 1
        return self.log_folder / ("program-%d.log" % self.programs_started)

    def _launch(self, args, options):
        script = self.script
        if self.hung:
            raise grading.NotGradable(self.hung)
        try:
            return grading.launch(script, args, self._log_path(), **options)
        except grading.NotGradable as failure:
            if "no startup line" in str(failure):
                self.hung = ("Not tried again: in an earlier test of this exercise your program "
                             "printed no startup line within %.0f s.\n%s"
                             % (grading.STARTUP_TIMEOUT, failure))
            raise

    def serve(self, *args, **options):
        """Start the submission as a server for this test only; stopped when the test ends.

        args follow the port; options: directory=, leading_args= (words before
        the port, such as a mode), startup_line= (a regex, for non-HTTP servers).
        """
        return self.transcript.started(self._launch(args, options))

    def shared_server(self, *args, **options):
        """One server for every test of the module that asks with the same arguments."""
        key = repr((args, sorted(options.items())))
        if key not in self.shared:
            try:
                self.shared[key] = self._launch(args, options)
            except grading.NotGradable as failure:
                self.shared[key] = failure
        server = self.shared[key]
        if isinstance(server, grading.NotGradable):
            raise grading.NotGradable(str(server))
        if server.process.poll() is not None:
            raise grading.NotGradable("Your program exited (status %s) during an earlier test "
                                      "of this exercise.\n%s"
                                      % (server.process.returncode,
                                         grading.show_program_output(server)))
        return self.transcript.started(server, own=False)

    def run(self, *args, timeout=15):
        """Run the submission as a client to its end: (exit status, its output).

        A client that hangs costs its timeout twice per exercise at most: after
        that, the exercise's remaining runs fail at once.
        """
        script = self.script
        if self.runs_unfinished >= MAX_UNFINISHED_RUNS:
            raise grading.NotGradable(
                "Not tried again: in %d earlier tests of this exercise your program did not "
                "finish within %.0f s." % (self.runs_unfinished, timeout))
        self.transcript.note("The grader ran your program", "  %s" % " ".join(
            map(shlex.quote, ["python", grading.relative(script), *map(str, args)])))
        try:
            status, program = grading.run_program(script, args, timeout, self._log_path())
        except grading.NotGradable:
            self.runs_unfinished += 1
            raise
        self.transcript.started(program)
        self.transcript.note("It exited with status", "  %s" % status)
        return status, program.output()

    def close(self):
        for server in self.shared.values():
            if not isinstance(server, grading.NotGradable):
                grading.dispose(server)


def find_submitted(folder, name):
    """folder/name, or else the shallowest folder/**/name: an upload may keep its folder."""
    direct = folder / name
    if direct.is_file() or not folder.is_dir():
        return direct
    found = sorted(folder.rglob(name), key=lambda path: (len(path.parts), str(path)))
    return found[0] if found else direct


@pytest.fixture(scope="session")
def submission(pytestconfig):
    return submission_folder(pytestconfig)


@pytest.fixture(scope="module")
def exercise(request, submission, tmp_path_factory):
    folder = Exercise(request.module, submission, tmp_path_factory.mktemp(
        "ex" + request.module.LESSON[:2]))
    yield folder
    folder.close()


@pytest.fixture(scope="module")
def site(shared_docroot):
    """The docroot an exercise serves: the contract's files, read only.  A module whose
    exercise needs files of its own defines its own `site`."""
    return shared_docroot


@pytest.fixture(autouse=True)
def http(request, exercise):
    """The test's conversation with the program: connect / request / exchange, all recorded."""
    transcript = grading.Transcript(exercise)
    exercise.transcript = transcript
    request.node.stash[TRANSCRIPT] = transcript
    yield transcript
    transcript.stop_own_programs()
    exercise.transcript = None


# ---------------------------------------------------------------------------
# The grades, on the terminal and for Gradescope
# ---------------------------------------------------------------------------

def per_exercise(grades):
    exercises = {}
    for grade in grades:
        exercises.setdefault(grade.exercise, []).append(grade)
    return exercises


def summary_table(grades):
    rows = [("exercise", "points", "tests passed")]
    for tests in per_exercise(grades).values():
        rows.append((tests[0].title,
                     "%s / %s" % (sum(t.score for t in tests), sum(t.max_score for t in tests)),
                     "%d / %d" % (sum(bool(t.passed) for t in tests), len(tests))))
    rows.append(("total", "%s / %s" % (sum(t.score for t in grades),
                                       sum(t.max_score for t in grades)),
                 "%d / %d" % (sum(bool(t.passed) for t in grades), len(grades))))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = ["%-*s   %*s   %*s" % (widths[0], row[0], widths[1], row[1], widths[2], row[2])
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter, config):
    grades = [grade for grade in config.stash.get(GRADES, []) if grade.passed is not None]
    if not grades:
        return
    terminalreporter.write_sep("=", "exercise grades for %s" % submission_folder(config))
    terminalreporter.write_line(summary_table(grades))


def pytest_sessionfinish(session):
    path = session.config.getoption("gradescope_results", None)
    if not path:
        return
    grades = [grade for grade in session.config.stash.get(GRADES, []) if grade.passed is not None]
    numbers = {}
    tests = []
    for grade in grades:
        numbers[grade.exercise] = numbers.get(grade.exercise, 0) + 1
        tests.append({
            "name": "%s: %s" % (grade.title, grade.rule),
            "number": "%s.%d" % (grade.exercise, numbers[grade.exercise]),
            "score": grade.score,
            "max_score": grade.max_score,
            "status": "passed" if grade.passed else "failed",
            "output": grade.output if not grade.passed else "passed",
            "visibility": "visible",
        })
    results = {
        "score": sum(grade.score for grade in grades),
        "execution_time": round(time.monotonic() - session.config.stash[STARTED]),
        "output": summary_table(grades) if grades else "no exercise test ran",
        "visibility": "visible",
        "stdout_visibility": "visible",
        "tests": tests,
    }
    path = session.config.invocation_params.dir / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
