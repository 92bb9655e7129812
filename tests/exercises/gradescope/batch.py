"""Grade a whole class: a folder of student folders, N at a time, each in its own sandbox.

    python3 tests/exercises/gradescope/batch.py CLASS_FOLDER OUT_FOLDER [--jobs 4]
            [--time-limit 600] [-- extra pytest words, e.g. -k 06]

CLASS_FOLDER holds one folder per student (its name is the student's), each
with that student's answers (NN_name.py files).  Each student is graded
exactly as Gradescope grades one submission (run_autograder, in a fresh
autograder folder with its own copy of the grader, so nothing one student
does reaches the next), as root with a sandbox user per parallel slot
(grader-slot1 ... grader-slotN): a slot's processes are all killed before
its next student starts.  Writes OUT_FOLDER/gradebook.csv (student, points
per exercise, total, how the run ended) and OUT_FOLDER/reports/STUDENT.txt
and STUDENT.json (the student's full report and results.json).
"""

import argparse
import csv
import json
import os
import queue
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_zip  # noqa: E402

SLOT_USER = "grader-slot%d"


def grade_one(student, slots, time_limit, pytest_args, scratch):
    """Grade one student's folder; (results dict or None, the run's own output)."""
    user = slots.get()
    root = Path(tempfile.mkdtemp(prefix="autograder-", dir=scratch))
    try:
        source = root / "source"
        for name, path in make_zip.grader_files():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
        shutil.copytree(student, root / "submission", symlinks=True)
        environment = {**os.environ, "AUTOGRADER_ROOT": str(root), "GRADER_USER": user,
                       "GRADER_TIME_LIMIT": str(time_limit),
                       "GRADER_PYTEST_ARGS": shlex.join(pytest_args)}
        try:
            finished = subprocess.run([sys.executable, str(source / "run_autograder")],
                                      env=environment, capture_output=True, text=True,
                                      timeout=time_limit + 60)
            output = finished.stdout + finished.stderr
        except subprocess.TimeoutExpired as expired:
            output = "batch: run_autograder overran its limit\n%s" % (expired.stdout or "")
        results_path = root / "results" / "results.json"
        results = (json.loads(results_path.read_text(encoding="utf-8"))
                   if results_path.exists() else None)
        return results, output
    finally:
        shutil.rmtree(root, ignore_errors=True)
        slots.put(user)


def exercise_points(results):
    points = {}
    for test in (results or {}).get("tests", []):
        number = test["number"].split(".")[0]
        points[number] = points.get(number, 0) + test["score"]
    return points


def ending(results):
    if results is None:
        return "no results"
    extra = results.get("extra_data", {})
    if extra.get("environment_problems"):
        return "grade again: grading-environment problem"
    if extra.get("interrupted"):
        return "cut short (%s)" % extra["interrupted"]
    return "finished" if extra.get("finished") else "unfinished"


def report_text(student, results, output):
    lines = ["Report for %s" % student, ""]
    if results is None:
        lines += ["No results were written.", "", output[-5000:]]
        return "\n".join(lines)
    lines += [results.get("output", "").replace("```", "").strip(), ""]
    for test in results.get("tests", []):
        if test["status"] != "passed":
            lines += ["-" * 72, "%s  %s" % (test["number"], test["output"]), ""]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("class_folder", type=Path)
    parser.add_argument("out_folder", type=Path)
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="students graded at once (default: half the cores)")
    parser.add_argument("--time-limit", type=float, default=600,
                        help="seconds one student's grading may take (default 600)")
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    options = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    options.pytest_args = extra
    students = sorted(path for path in options.class_folder.iterdir() if path.is_dir())
    if not students:
        parser.error("no student folders in %s" % options.class_folder)
    if os.geteuid() != 0:
        print("batch: not root, so the students' programs run without a sandbox",
              file=sys.stderr)
    reports = options.out_folder / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="batch-"))
    os.chmod(scratch, 0o711)  # the sandbox users pass through to their working folders
    slots = queue.Queue()
    for number in range(1, options.jobs + 1):
        slots.put(SLOT_USER % number)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(options.jobs) as pool:
            futures = {student.name: pool.submit(grade_one, student, slots,
                                                 options.time_limit, options.pytest_args,
                                                 scratch)
                       for student in students}
            graded = {name: future.result() for name, future in futures.items()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    exercises = sorted({number for results, _ in graded.values()
                        for number in exercise_points(results)})
    with open(options.out_folder / "gradebook.csv", "w", newline="", encoding="utf-8") as book:
        writer = csv.writer(book)
        writer.writerow(["student", *("ex" + number for number in exercises), "total",
                         "status"])
        for name, (results, output) in graded.items():
            points = exercise_points(results)
            writer.writerow([name, *(points.get(number, 0) for number in exercises),
                             (results or {}).get("score", 0), ending(results)])
            (reports / (name + ".txt")).write_text(report_text(name, results, output),
                                                   encoding="utf-8")
            (reports / (name + ".json")).write_text(json.dumps(results, indent=2) + "\n",
                                                    encoding="utf-8")
    print("graded %d students in %.0f s (%d at a time): %s"
          % (len(students), time.monotonic() - started, options.jobs,
             options.out_folder / "gradebook.csv"))


if __name__ == "__main__":
    main()
