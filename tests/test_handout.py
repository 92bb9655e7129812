"""The student hand-out (python3 -m tools.handout): no answers, a README for a
student copy, and exercise tests that pass in it (they skip: nothing is submitted).

The hand-out is built from the committed tree, so this test checks what the
last commit would hand out, not uncommitted changes.
"""

import os
import re
import subprocess
import sys
import zipfile

import pytest

from servers import REPO

sys.path.insert(0, str(REPO))
from tools import handout  # noqa: E402


pytestmark = pytest.mark.skipif(handout.git_toplevel() != REPO,
                                reason="the hand-out is built from git; this copy is not a "
                                       "git checkout (it may be a hand-out itself)")


@pytest.fixture(scope="module")
def unzipped(tmp_path_factory):
    folder = tmp_path_factory.mktemp("handout")
    result = subprocess.run([sys.executable, "-m", "tools.handout", "--out",
                             str(folder / "course.zip")], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(folder / "course.zip") as archive:
        names = archive.namelist()
        archive.extractall(folder)
    assert all(name.startswith("course/") for name in names), names[:5]
    return folder / "course"


def test_the_handout_leaves_out_the_answers_and_ci(unzipped):
    top = {path.name for path in unzipped.iterdir()}
    assert "solutions" not in top and ".ci" not in top
    assert {"README.md", "lessons", "tests", "html", "requirements.txt",
            "requirements-student.txt", "pytest.ini"} <= top
    assert len(list((unzipped / "lessons").glob("[0-9][0-9]_*.py"))) == \
        len(list((REPO / "lessons").glob("[0-9][0-9]_*.py"))), "every lesson is handed out"


def test_the_handout_readme_fits_a_student_copy(unzipped):
    readme = (unzipped / "README.md").read_text(encoding="utf-8")
    assert "solutions" not in readme
    assert not re.search(r"diff lessons/\S+ solutions/", readme), "no answer to diff against"
    assert "<!--" not in readme
    assert "python3 -m pytest tests/exercises --submission my_answers -k 06" in readme
    assert "| clients are numbered |" in readme  # the course map keeps the exercise, no link


def test_the_handouts_own_exercise_tests_pass(unzipped):
    """Nothing is submitted in a hand-out: every exercise test skips, none fails."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("LESSONS_FOLDER", "PYTEST_ADDOPTS")}
    result = subprocess.run([sys.executable, "-m", "pytest", "tests/exercises", "-q",
                             "-p", "no:cacheprovider"], cwd=unzipped, env=env,
                            capture_output=True, text=True, timeout=600)
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "failed" not in summary and "error" not in summary, summary


def test_a_readme_that_still_names_solutions_stops_the_build():
    with pytest.raises(handout.HandoutError, match="solutions/"):
        handout.student_readme("See solutions/06_static_single.py for the answer.\n")


def test_instructor_blocks_go_and_hand_out_blocks_show():
    text = ("Intro.\n<!-- instructors -->\nsolutions/ has the answers.\n<!-- /instructors -->\n"
            "<!-- hand-out\nNothing to grade here.\n-->\n"
            "| 6 | [listing](solutions/06_static_single.py) |\n")
    assert handout.student_readme(text) == "Intro.\nNothing to grade here.\n| 6 | listing |\n"
