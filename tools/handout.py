"""Build the student hand-out: the committed course without its answers.

    python3 -m tools.handout                     # writes course.zip
    python3 -m tools.handout --out week1.zip     # unzips into week1/
    python3 -m tools.handout --ref v1.0          # another commit, tag or branch

The zip holds the tree of a commit (HEAD by default: uncommitted changes are
not in it, as with ``git archive``), under one folder named after the zip,
without:

* ``solutions/``, the answers;
* ``.ci/``, the script that installs everything and runs the whole suite.

Its README.md is the repository's, made for a student copy: blocks between
``<!-- instructors -->`` and ``<!-- /instructors -->`` are left out, blocks
written as ``<!-- hand-out ... -->`` are shown, and links into solutions/ keep
only their text.  If the result still mentions solutions/, the build fails:
fix the markers in README.md.  In the hand-out, ``python3 -m pytest`` passes:
the tests that need solutions/ skip and say why.
"""

import argparse
import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LEFT_OUT = ("solutions", ".ci")

INSTRUCTORS_ONLY = re.compile(r"<!-- instructors -->\n.*?<!-- /instructors -->\n", re.S)
HANDOUT_ONLY = re.compile(r"<!-- hand-out\n(.*?)-->\n", re.S)
SOLUTION_LINK = re.compile(r"\[([^\]]*)\]\(solutions/[^)]*\)")


class HandoutError(Exception):
    """Something the instructor must fix: one line, exit status 1."""


def student_readme(text):
    """The README of a copy without solutions/."""
    text = INSTRUCTORS_ONLY.sub("", text)
    text = HANDOUT_ONLY.sub(lambda match: match[1], text)
    text = SOLUTION_LINK.sub(r"\1", text)
    text = re.sub(r"\n{3,}", "\n\n", text)  # where a left-out block stood
    if "solutions/" in text or "<!-- instructors -->" in text:
        line = next(line for line in text.splitlines()
                    if "solutions/" in line or "<!-- instructors -->" in line)
        raise HandoutError("README.md still speaks of solutions/ in the hand-out "
                           "(mark the block with <!-- instructors -->): %r" % line.strip())
    return text


def git_toplevel():
    """The top folder of the git checkout REPO is in, or None (a hand-out is in none)."""
    try:
        result = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=REPO,
                                capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return None
    return Path(result.stdout.strip()).resolve() if result.returncode == 0 else None


def committed_tree(ref):
    """The commit's files as a zip in memory, from git, without LEFT_OUT."""
    if git_toplevel() != REPO:  # not a checkout, or a copy unzipped inside another repo
        raise HandoutError("%s is not a git checkout of the course: the hand-out is built "
                           "from its commits" % REPO)
    excludes = [":(exclude)%s" % folder for folder in LEFT_OUT]
    try:
        result = subprocess.run(["git", "archive", "--format=zip", ref, "--", ".", *excludes],
                                cwd=REPO, capture_output=True, timeout=120)
    except FileNotFoundError:
        raise HandoutError("git is needed to build the hand-out") from None
    if result.returncode != 0:
        raise HandoutError("git archive %s failed: %s"
                           % (ref, result.stderr.decode("utf-8", "replace").strip()))
    return zipfile.ZipFile(io.BytesIO(result.stdout))


def build(out, ref="HEAD"):
    """Write the hand-out to out; return the names it holds (inside its folder)."""
    out = Path(out)
    folder = out.stem
    names = []
    with committed_tree(ref) as tree, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zipped:
        for info in tree.infolist():
            data = tree.read(info)
            if info.filename == "README.md":
                data = student_readme(data.decode("utf-8")).encode("utf-8")
            copy = zipfile.ZipInfo("%s/%s" % (folder, info.filename), info.date_time)
            copy.external_attr = info.external_attr  # keeps the executable bits
            copy.compress_type = zipfile.ZIP_STORED if info.is_dir() else zipfile.ZIP_DEFLATED
            zipped.writestr(copy, data)
            names.append(info.filename)
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m tools.handout",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="course.zip", metavar="ZIP",
                        help="the zip to write (default %(default)s); it unzips into a folder "
                             "of the same name")
    parser.add_argument("--ref", default="HEAD",
                        help="the commit to hand out (default %(default)s)")
    args = parser.parse_args(argv)
    if not args.out.endswith(".zip"):
        parser.error("--out must name a .zip file")
    try:
        names = build(args.out, args.ref)
    except (HandoutError, OSError) as error:
        if Path(args.out).is_file():
            Path(args.out).unlink()  # never leave half a hand-out behind
        if isinstance(error, OSError):
            error = "cannot write %s: %s" % (args.out, error.strerror or error)
        sys.exit("handout: %s" % error)
    files = sum(not name.endswith("/") for name in names)
    print("wrote %s: %d files from %s, without %s; unzips into %s/"
          % (args.out, files, args.ref, " and ".join(f + "/" for f in LEFT_OUT), Path(args.out).stem))
    return 0


if __name__ == "__main__":
    sys.exit(main())
