"""Build the Gradescope autograder zip: the grader, its two entry points, no solutions/.

    python3 tests/exercises/gradescope/make_zip.py [autograder.zip]

Upload the zip as a "Zip file upload" autograder.  Gradescope unpacks it in
/autograder/source and runs setup.sh once, then run_autograder per submission.
The zip holds only what grading needs: the exercise tests and their helpers,
pytest.ini, setup.sh and run_autograder at its top.  It never holds
solutions/ (a submission could not read it anyway, see run_autograder).
"""

import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent


def grader_files():
    """(path in the zip, path on disk) of everything the autograder needs."""
    files = [("setup.sh", HERE / "setup.sh"), ("run_autograder", HERE / "run_autograder"),
             ("pytest.ini", REPO / "pytest.ini")]
    for name in ("conftest.py", "servers.py", "rawhttp.py"):
        files.append(("tests/" + name, REPO / "tests" / name))
    for path in sorted((REPO / "tests" / "exercises").glob("*.py")):
        files.append(("tests/exercises/" + path.name, path))
    assert not any("solutions" in name for name, _ in files)
    return files


def build(target):
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in grader_files():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            executable = name in ("setup.sh", "run_autograder")
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return target


def extract(archive, folder):
    """Unpack like Gradescope does, keeping the executable bits."""
    folder = Path(folder)
    with zipfile.ZipFile(archive) as opened:
        for info in opened.infolist():
            path = folder / info.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(opened.read(info))
            path.chmod((info.external_attr >> 16) & 0o777 or 0o644)
    return folder


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "autograder.zip")
    build(target)
    print("wrote %s (%d files, no solutions/)" % (target, len(grader_files())))
