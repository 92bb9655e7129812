"""How far apart neighbouring lessons are, and how long their docstrings run.

    python3 -m tools.lesson_figures

For each pair of neighbouring server lessons it prints the code-only changed
lines: the lines that `diff` shows as removed or added once docstrings,
comments and blank lines are left out of both files (so a reworded comment
does not count, a changed line of code counts once on each side).  Then each
server lesson's docstring length in lines.  tests/test_shared_blocks.py holds
the lessons to the limits in LIMITS.
"""

import ast
import difflib
import io
import sys
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVER_LESSONS = ["06_static_single", "07_static_multiprocessing", "08_static_fork",
                  "09_static_socketserver", "10_static_threading", "11_static_gevent",
                  "12_static_nonblocking", "13_static_epoll", "14_static_asyncio",
                  "15_static_reuseport"]

# (from, to) -> the most code-only changed lines the step may take.
LIMITS = {
    ("06", "07"): 200, ("07", "08"): 80, ("08", "09"): 80,
    ("09", "10"): 92,  # + GET /work, the CPU-bound route that shows the GIL (exercise 10)
    ("07", "10"): 80,
    ("10", "11"): 91,  # /work out, GET /visits in: the blocking SQLite call (exercise 11)
    ("11", "12"): 271,  # and /visits out again
    ("12", "13"): 200,
    # The epoll loop and the non-blocking block out, coroutines in; since issue 15's
    # profile, also class Deadline (one timer per connection, +32 lines): entering
    # asyncio.timeout() around every read cost a fifth of the CPU time under wrk.
    ("13", "14"): 318,
    # A parent and its workers, and the loop moved to selectors; since issue 15, also
    # SIGTERM and SIGHUP stopping the workers (+12 lines): `kill PID` orphaned them.
    ("13", "15"): 243,
}
MAX_DOCSTRING_LINES = 60


def lesson_path(number, folder="lessons"):
    return next((REPO / folder).glob(number + "_*.py"))


def code_lines(source):
    """The file's lines of code: no docstrings, no comments, no blank lines."""
    docstring_lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(
                    body[0].value.value, str):
                docstring_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.start[1]
    lines = []
    for number, line in enumerate(source.splitlines(), 1):
        if number in docstring_lines:
            continue
        if number in comments:
            line = line[:comments[number]]
        if line.strip():
            lines.append(line.rstrip())
    return lines


def changed_lines(old, new):
    diff = difflib.unified_diff(code_lines(old.read_text(encoding="utf-8")),
                                code_lines(new.read_text(encoding="utf-8")), n=0, lineterm="")
    return sum(1 for line in diff
               if line[:1] in "+-" and not line.startswith(("+++", "---")))


def docstring_lines(path):
    return len(ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")),
                                 clean=False).splitlines())


def step_figures():
    for (old, new), limit in LIMITS.items():
        yield old, new, changed_lines(lesson_path(old), lesson_path(new)), limit


def main():
    print("Code-only changed lines between neighbouring lessons (docstrings, comments and")
    print("blank lines left out):")
    failed = False
    for old, new, count, limit in step_figures():
        over = count > limit
        failed |= over
        print("  %s -> %s  %4d   (at most %d)%s" % (old, new, count, limit,
                                                   "  OVER" if over else ""))
    print("Docstring lines (at most %d):" % MAX_DOCSTRING_LINES)
    for name in SERVER_LESSONS:
        count = docstring_lines(lesson_path(name[:2]))
        failed |= count > MAX_DOCSTRING_LINES
        print("  %s  %3d" % (name, count))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
