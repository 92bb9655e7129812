"""The exercise grader: grades any folder of answers over sockets.

    python3 -m pytest tests/exercises --submission my_answers          # grades my_answers/
    python3 -m pytest tests/exercises --submission my_answers -k 06    # exercise 06 only
    python3 -m pytest tests/exercises      # grades solutions/ (skipped in a hand-out copy)
    python3 -m pytest tests/exercises --submission /autograder/submission \\
        --gradescope-results /autograder/results/results.json --sandbox-user student

Each test module grades one exercise: its LESSON names the file it grades
(LESSON + ".py" in the submission folder), its docstring's first line is the
exercise's title, its HINT points into the lesson.  Each test is worth
@pytest.mark.points(N) (1 by default) and may carry its own
@pytest.mark.hint("...").  Points follow difficulty, on one scale for every
exercise: 1 for a variant of a check already made, 2 for a check that a
careful reading of the exercise passes, 3 for one that needs the lesson's
model understood, 4 or 5 for one that needs concurrency reasoned out (a
race, a timer, a process's life and death).  Tests start the submission only through the
`exercise` fixture and talk to it only through the `http` fixture, so that a
failure can show the conversation; see grading.py for what a report holds.

A submission that is missing, hangs, crashes or floods its output costs only
its own exercise: a missing file fails that exercise's tests at once, a
program that never prints its startup line is waited for once per exercise
(grading.STARTUP_TIMEOUT), its output is capped, every test is bounded by
--test-timeout (20 s), and the first test of an exercise that runs out of
time ends that exercise: its other tests fail "not run: time budget".
--run-budget bounds the whole run the same way.  Every process a program
started -- its group, its descendants, anything carrying its marker, and
with --sandbox-user anything running as that user -- is killed when its test
(or, for a shared server, its exercise) ends; see sandbox.py.

results.json is rewritten (atomically) after every test, so a run cut short
leaves its partial grades, and written a last time after every process of
the submission is gone.  A run interrupted by SIGINT or SIGTERM reports
every selected test, the ones it did not reach as "not run".
"""

import hashlib
import json
import os
import re
import shlex
import signal
import time
from pathlib import Path

import pytest

import grading
import sandbox as sandboxing
from servers import REPO

DEFAULT_SUBMISSION = REPO / "solutions"
NO_SUBMISSION = ("no solutions/ in this copy of the course: grade your own answers with "
                 "python3 -m pytest tests/exercises --submission my_answers")
TEST_TIMEOUT = 20  # seconds, default of --test-timeout; a test takes 1-5 s on a busy machine
GRADER_VERSION = "2026.12"
GRADER_FILES = ["tests/servers.py", "tests/rawhttp.py", "tests/exercises/conftest.py",
                "tests/exercises/grading.py", "tests/exercises/sandbox.py"]

GRADE = pytest.StashKey()
TRANSCRIPT = pytest.StashKey()
GRADES = pytest.StashKey()
STATE = pytest.StashKey()


class RunState:
    """What the whole run knows beyond single tests."""

    def __init__(self, config):
        self.started = time.monotonic()
        self.stopped = {}  # exercise number -> why its remaining tests are not run
        self.causes = {}  # (exercise, cause) -> the first grade that failed with it
        self.interrupted = None  # the signal's name, when the run was interrupted
        self.environment_problems = []
        self.sandbox = sandboxing.Sandbox(config.getoption("sandbox_user", None),
                                          config.getoption("sandbox_work", None),
                                          config.getoption("student_python", None))
        self.reproduce_port = grading.free_port()


def refuse_xdist(config):
    workers = config.getoption("numprocesses", None) or config.getoption("dist", "no") != "no"
    if workers:
        raise pytest.UsageError(
            "the exercise grader runs its tests one at a time (they share servers and "
            "time budgets): run tests/exercises without -n")


def pytest_configure(config):
    # Registered here, not in pytest.ini, so that the grader is self-contained.
    config.addinivalue_line("markers", "points(n): what passing this exercise test is worth")
    config.addinivalue_line("markers", "hint(text): where in the lesson a failing student looks")
    config.addinivalue_line("markers", "visibility(v): Gradescope visibility of this test")
    refuse_xdist(config)
    config.stash[GRADES] = []
    config.stash[STATE] = RunState(config)
    CONFIG[:] = [config]
    if config.getoption("sandbox_user", None):
        sandboxing.become_subreaper()
    if config.getoption("gradescope_results", None):
        # SIGTERM (Gradescope's timeout, a batch limit) ends the run the way Ctrl+C does,
        # so the results say which tests were not reached.
        def terminate(number, frame):
            config.stash[STATE].interrupted = "SIGTERM"
            raise KeyboardInterrupt
        signal.signal(signal.SIGTERM, terminate)


def submission_folder(config):
    option = config.getoption("submission", None)
    if option is None:
        return DEFAULT_SUBMISSION
    return (config.invocation_params.dir / option).resolve()


def nothing_to_grade(config):
    return config.getoption("submission", None) is None and not DEFAULT_SUBMISSION.is_dir()


def grader_version():
    digest = hashlib.sha256()
    for name in GRADER_FILES + sorted(
            str(path.relative_to(REPO)) for path in Path(__file__).parent.glob("test_ex*.py")):
        try:
            digest.update((REPO / name).read_bytes())
        except OSError:
            pass
    return "%s+%s" % (GRADER_VERSION, digest.hexdigest()[:12])


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
        visibility = item.get_closest_marker("visibility")
        self.visibility = visibility.args[0] if visibility else None
        doc = (getattr(item, "function", None).__doc__ or "").strip()
        self.rule = doc.splitlines()[0] if doc else readable(item.name)
        self.number = None  # "06.3", once the selection is known
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
    timeout = config.getoption("test_timeout", None) or TEST_TIMEOUT
    for item in items:
        if not is_exercise_module(getattr(item, "module", None)):
            continue
        item.stash[GRADE] = Grade(item)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(timeout))


def pytest_collection_finish(session):
    """The grades of the selected tests only (after -k), numbered per exercise."""
    grades = [item.stash[GRADE] for item in session.items if GRADE in item.stash]
    numbers = {}
    for grade in grades:
        numbers[grade.exercise] = numbers.get(grade.exercise, 0) + 1
        grade.number = "%s.%d" % (grade.exercise, numbers[grade.exercise])
    session.config.stash[GRADES] = grades


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Budgets: an exercise whose test ran out of time, or a run past its budget, runs
    no more tests (they fail at once, with the reason)."""
    grade = item.stash.get(GRADE, None)
    if grade is None:
        return
    state = item.config.stash[STATE]
    budget = item.config.getoption("run_budget", None)
    if budget and time.monotonic() - state.started > budget:
        raise grading.NotGradable(
            "Not run: time budget. The whole grading run may take %d s and has used it up "
            "(your programs kept the grader waiting in earlier exercises)." % budget)
    if grade.exercise in state.stopped:
        raise grading.NotGradable("Not run: time budget. " + state.stopped[grade.exercise])


def timed_out(call):
    """Whether pytest-timeout ended the test (not a test that failed on the word "Timeout",
    such as pytest.raises(TimeoutError) not raising, which is the student's answer's fault)."""
    error = call.excinfo.value if call.excinfo else None
    return (error is not None and type(error).__name__ == "Failed"
            and str(error).startswith("Timeout (>") and str(error).endswith("from pytest-timeout."))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    grade = item.stash.get(GRADE, None)
    if grade is None:
        return
    state = item.config.stash[STATE]
    if report.skipped:
        if nothing_to_grade(item.config) and isinstance(report.longrepr, tuple):
            # One place for all of them, so that -ra folds them into one line.
            report.longrepr = (grading.relative(__file__), 1, "Skipped: " + NO_SUBMISSION)
        else:
            grade.failed("skipped: %s" % (report.longrepr[2] if isinstance(
                report.longrepr, tuple) else report.longrepr))
    elif report.failed:
        problem = sandboxing.environment_problem(call.excinfo.value)
        if problem:
            # The machine refused the grader something (a fork, memory, a descriptor):
            # no judgement on the submission, and the instructor must know.
            text = ("A problem of the grading environment, not of your program: %s.\n"
                    "This test could not be graded; it must be graded again (tell your "
                    "instructor)." % problem)
            state.environment_problems.append("%s (%s): %s" % (grade.number, report.when,
                                                               problem))
            report.longrepr = text
            grade.failed(text)
            return
        if report.when == "setup" and (call.excinfo.errisinstance(grading.NotGradable)
                                       or timed_out(call)):
            # A fixture could not start the program, or it kept the grader waiting:
            # the student's failure, not an error of the grader.
            report.when = "call"
        if report.when == "call":
            text = teaching_report(item, call, grade)
            if item.config.getoption("verbose") >= 2:  # for whoever debugs the grader itself
                text += "\n\n---- the grader's traceback ----\n" + str(report.longrepr)
            report.longrepr = text
            grade.failed(text)
            if timed_out(call) or "did not finish within" in str(call.excinfo.value):
                state.stopped.setdefault(grade.exercise, (
                    "Test %s (%s) ran out of time, so this exercise's remaining tests were "
                    "not run." % (grade.number, grade.rule)))
        else:
            grade.failed("%s of the test failed (a problem of the grader, not of your "
                         "program; please report it):\n%s" % (report.when, report.longrepr))
    elif report.when == "call" and grade.passed is None:
        grade.passed = True


@pytest.hookimpl(trylast=True)
def pytest_runtest_logfinish(nodeid, location):
    """Results as grading goes: a run killed later still leaves these grades."""
    if CONFIG:
        write_results(CONFIG[0], final=False)


CONFIG = []  # the session's config, for hooks that are not given it
def teaching_report(item, call, grade):
    error = call.excinfo.value
    timeout = item.config.getoption("test_timeout", None) or TEST_TIMEOUT
    if isinstance(error, grading.NotGradable):
        check = str(error)
    elif timed_out(call):
        check = ("The test did not finish within %d s: your program kept the grader "
                 "waiting." % timeout)
    else:
        where = next((entry for entry in reversed(call.excinfo.traceback)
                      if Path(entry.path) == Path(item.path)), None)
        check = "The check that failed:\n  " + call.excinfo.exconly().replace("\n", "\n  ")
        if where is not None:
            check += "\n  (%s, line %d)" % (grading.relative(where.path), where.lineno + 1)
    heading = "%s: %s (worth %s point%s)" % (grade.title, grade.rule, grade.max_score,
                                              "" if grade.max_score == 1 else "s")
    # One block per root cause: a later test of the same exercise that fails the same
    # way refers to the first instead of repeating its bytes, output and hint.
    cause = (grade.exercise, re.sub(r"\d{4,}", "#", check))
    first = item.config.stash[STATE].causes.setdefault(cause, grade)
    if first is not grade and not check.startswith("Not run"):
        lines = [line.strip() for line in check.splitlines()
                 if line.strip() and line.strip() != "The check that failed:"]
        return "%s\n\nSame cause as test %s (%s), reported in full there:\n  %s" % (
            heading, first.number, first.rule, lines[0] if lines else check)
    transcript = item.stash.get(TRANSCRIPT, None)
    body = transcript.report(check, grade.hint) if transcript else check
    return heading + "\n\n" + body


# ---------------------------------------------------------------------------
# Fixtures: the submission, the exercise's programs, the recorded conversation
# ---------------------------------------------------------------------------

class Exercise:
    """Starts the submitted program for one exercise (one test module)."""

    def __init__(self, module, submission, log_folder, state):
        self.lesson = module.LESSON
        self.number = module.LESSON[:2]
        self.submission = submission
        self.script_path = find_submitted(submission, module.LESSON + ".py")
        self.log_folder = log_folder
        self.sandbox = state.sandbox
        self.reproduce_port = state.reproduce_port
        self.transcript = None  # of the test running now
        self.shared = {}  # launch arguments -> a running server, or why it did not start
        self.hung = None  # set once the program failed to print its startup line in time
        self.programs_started = 0
        self.kept_sites = {}

    def keep_site(self, directory):
        """A copy of a docroot next to the submission, for the reproduce command: the
        grader's own folder is temporary."""
        directory = Path(directory)
        if directory not in self.kept_sites:
            target = self.submission.parent / (self.submission.name + ".sites") / self.number
            try:
                grading.copy_site(directory.parent, target)
                self.kept_sites[directory] = target / directory.name
            except OSError:
                self.kept_sites[directory] = directory  # read-only upload: keep the original
        return self.kept_sites[directory]

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
            return grading.launch(script, args, self._log_path(), self.sandbox, self.number,
                                  **options)
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

        A client that does not finish in time ends the exercise (its other tests
        are not run).
        """
        script = self.script
        self.transcript.note("The grader ran your program", "  %s" % " ".join(
            map(shlex.quote, ["python3", grading.relative(script), *map(str, args)])))
        status, program = grading.run_program(script, args, timeout, self._log_path(),
                                              self.sandbox, self.number)
        self.transcript.started(program)
        self.transcript.note("It exited with status", "  %s" % status)
        return status, program.output()

    def close(self):
        for server in self.shared.values():
            if not isinstance(server, grading.NotGradable):
                grading.dispose(server)
        # Whatever the exercise's programs left behind, wherever it went.
        self.sandbox.kill_all()


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


@pytest.fixture(scope="session", autouse=True)
def graded_folder(pytestconfig, tmp_path_factory):
    """The folder graded; skips every exercise test (one line) when there is none."""
    if nothing_to_grade(pytestconfig):
        pytest.skip(NO_SUBMISSION)
    state = pytestconfig.stash[STATE]
    if state.sandbox.user is not None and state.sandbox.work is None:
        work = tmp_path_factory.getbasetemp() / "sandbox"
        work.mkdir(exist_ok=True)
        state.sandbox.work = work
        sandboxing.let_through(work)
    return submission_folder(pytestconfig)


@pytest.fixture(scope="module")
def exercise(request, submission, tmp_path_factory):
    folder = Exercise(request.module, submission, tmp_path_factory.mktemp(
        "ex" + request.module.LESSON[:2]), request.config.stash[STATE])
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
    if not grades or nothing_to_grade(config):
        return
    terminalreporter.write_sep("=", "exercise grades for %s" % submission_folder(config))
    terminalreporter.write_line(summary_table(grades))
    state = config.stash[STATE]
    for problem in state.environment_problems:
        terminalreporter.write_line("grading-environment problem (grade again): " + problem)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    state = session.config.stash[STATE]
    if exitstatus == pytest.ExitCode.INTERRUPTED and state.interrupted is None:
        state.interrupted = "SIGINT"
    # A second signal must not cut the last write short (run_autograder still has SIGKILL).
    handlers = {number: signal.signal(number, signal.SIG_IGN)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        # Nothing the submission started may outlive grading, nor write after us.
        state.sandbox.kill_all()
        write_results(session.config, final=True)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def escaped(value):
    """Strings with control characters (NUL, ESC...) made visible, recursively."""
    if isinstance(value, str):
        return CONTROL.sub(lambda match: "\\x%02x" % ord(match[0]) if ord(match[0]) < 0xd800
                           else "\ufffd", value)
    if isinstance(value, list):
        return [escaped(item) for item in value]
    if isinstance(value, dict):
        return {key: escaped(item) for key, item in value.items()}
    return value


def results_document(config, final):
    state = config.stash[STATE]
    visibility = config.getoption("results_visibility", None) or "visible"
    grades = list(config.stash.get(GRADES, []))
    if state.interrupted:
        pending = "not run: the grading was interrupted (%s) before this test" % (
            state.interrupted)
    elif final:
        pending = "not run"
    else:
        pending = "not run yet: grading was still going on (if this stays, it was cut short)"
    tests = []
    for grade in grades:
        tests.append({
            "name": "%s: %s" % (grade.title, grade.rule),
            "number": grade.number,
            "score": grade.score,
            "max_score": grade.max_score,
            "status": "passed" if grade.passed else "failed",
            "output": ("passed" if grade.passed else grade.output if grade.passed is False
                       else pending),
            "tags": ["exercise %s" % grade.exercise, grade.lesson],
            "visibility": grade.visibility or visibility,
        })
    notes = []
    if state.interrupted:
        notes.append("The grading was interrupted (%s): tests it did not reach are reported "
                     "as not run." % state.interrupted)
    elif not final:
        notes.append("Grading in progress: these are partial results.")
    for problem in state.environment_problems:
        notes.append("A problem of the grading environment (not of your program) in test "
                     "%s: grade again." % problem)
    table = summary_table(grades) if grades else "no exercise test ran"
    return escaped({
        "score": sum(grade.score for grade in grades),
        "execution_time": round(time.monotonic() - state.started),
        "output": "```\n%s\n```%s" % (table, "".join("\n\n" + note for note in notes)),
        "output_format": "md",
        "test_output_format": "text",
        "visibility": visibility,
        "stdout_visibility": "visible" if visibility == "visible" else "hidden",
        "tests": tests,
        "extra_data": {
            "grader_version": grader_version(),
            "finished": final and not state.interrupted,
            "interrupted": state.interrupted,
            "environment_problems": state.environment_problems,
            "sandbox_user": state.sandbox.user.pw_name if state.sandbox.user else None,
        },
    })


def write_results(config, final):
    path = config.getoption("gradescope_results", None)
    if not path or not config.stash.get(GRADES, []):
        return
    path = config.invocation_params.dir / path
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results_document(config, final), indent=2, ensure_ascii=False) + "\n"
    # Atomically: a reader (or a cut-short run) sees the old file or the new one, whole.
    temporary = path.with_name(".%s.%d.tmp" % (path.name, os.getpid()))
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
