"""Copy the plumbing that several lessons share from its one source into every copy.

    python3 -m tools.sync_shared           # refresh every copy in lessons/ and solutions/
    python3 -m tools.sync_shared --check   # change nothing; list the copies that differ
    python3 -m tools.sync_shared --record  # after editing a solution's copy of a block

Each lesson is a standalone file, so the plumbing it shares with other lessons
(HTTP parsing, paths, answers, the command line; the blocking or non-blocking
connection) stands in it as a fenced block, byte-identical in every lesson
that carries it.  A fix is made once, in the block's source lesson (the one
whose page explains it), and this script copies it everywhere else.

A solution may change a shared block where its exercise needs to.  Such a
copy is listed in SOLUTION_CHANGES with the reason, and its change is kept as
a diff against the source block in tools/solution_changes/ (written by
--record).  A refresh applies that diff to the current source, so a fix in
the source reaches the solutions too; a diff that no longer applies is
named, to be redone by hand in the solution and recorded again.
tests/test_shared_blocks.py checks that every copy is what this script would
write.
"""

import argparse
import difflib
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("lessons", "solutions")
CHANGES = REPO / "tools" / "solution_changes"

# Block name -> the lesson that holds its source (and whose page explains it).
SOURCES = {
    "http": "lessons/06_static_single.py",
    "blocking connection": "lessons/07_static_multiprocessing.py",
    "non-blocking connection": "lessons/12_static_nonblocking.py",
}

# (solution file, block) -> why the exercise changes that block.
SOLUTION_CHANGES = {
    ("solutions/06_static_single.py", "http"):
        "a folder without index.html is listed: translate_path() raises Unindexed, answer() "
        "lists it",
    ("solutions/07_static_multiprocessing.py", "http"):
        "every answer names its worker: response_head() adds X-Worker-PID",
    ("solutions/08_static_fork.py", "http"):
        "every request is counted across the children: answer() asks count_request() first, "
        "which also answers /stats",
}

FENCE = re.compile(r'^# ==== (end of )?shared block "([^"]+)" =*$', re.M)


class FenceError(Exception):
    pass


def blocks(text, where="text"):
    """{name: (start, end)}: each block's span, from its opening fence line to its closing one."""
    found = {}
    opened = None
    for match in FENCE.finditer(text):
        closing, name = bool(match[1]), match[2]
        if not closing:
            if opened:
                raise FenceError('%s: block "%s" opens inside "%s"' % (where, name, opened[0]))
            if name in found:
                raise FenceError('%s: block "%s" appears twice' % (where, name))
            opened = (name, match.start())
        else:
            if not opened or opened[0] != name:
                raise FenceError('%s: block "%s" closes without opening' % (where, name))
            found[name] = (opened[1], match.end())
            opened = None
    if opened:
        raise FenceError('%s: block "%s" never closes' % (where, opened[0]))
    return found


def block_text(path, name):
    text = path.read_text(encoding="utf-8")
    start, end = blocks(text, path)[name]
    return text[start:end]


def copies():
    """Every (file, block name) pair in lessons/ and solutions/."""
    for folder in FOLDERS:
        for path in sorted((REPO / folder).glob("[0-9][0-9]_*.py")):
            for name in blocks(path.read_text(encoding="utf-8"), path):
                yield path, name


def change_path(solution, name):
    return CHANGES / ("%s.%s.diff" % (Path(solution).stem, name.replace(" ", "-")))


def expected_copy(relative, name, source):
    """What the copy of block `name` in file `relative` must be: the source, or the
    source with the solution's recorded change applied."""
    if (relative, name) not in SOLUTION_CHANGES:
        return source
    path = change_path(relative, name)
    if not path.exists():
        raise FenceError('%s: block "%s" has no recorded change: run --record' % (relative, name))
    return apply_diff(source, path.read_text(encoding="utf-8"), "%s (%s)" % (relative, name))


def make_diff(old, new):
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        "source", "solution", n=3))


def apply_diff(text, diff, where):
    """Apply a unified diff made by make_diff(): each hunk's old lines must occur in text."""
    lines = text.splitlines(True)
    hunks, hunk = [], None
    for line in diff.splitlines(True)[2:]:
        if line.startswith("@@"):
            hunk = (int(line.split()[1].split(",")[0][1:]), [], [])
            hunks.append(hunk)
        elif line[:1] in (" ", "-"):
            hunk[1].append(line[1:])
        if line[:1] in (" ", "+"):
            hunk[2].append(line[1:])
    shift = 0
    for start, old, new in hunks:
        at = [i for i in range(len(lines) - len(old) + 1) if lines[i:i + len(old)] == old]
        if not at:
            raise FenceError("%s: the recorded change no longer applies near line %d of the "
                             "block: make it again by hand, then run --record" % (where, start))
        best = min(at, key=lambda i: abs(i - (start - 1 + shift)))
        lines[best:best + len(old)] = new
        shift += len(new) - len(old)
    return "".join(lines)


def source_blocks():
    return {name: block_text(REPO / source, name) for name, source in SOURCES.items()
            if name in blocks((REPO / source).read_text(encoding="utf-8"))}


def stale_copies():
    """(file, block, what it must be) for every copy that differs from what it must be."""
    sources = source_blocks()
    for path, name in copies():
        relative = path.relative_to(REPO).as_posix()
        if name not in sources:
            raise FenceError('%s: unknown shared block "%s"' % (relative, name))
        expected = expected_copy(relative, name, sources[name])
        if block_text(path, name) != expected:
            yield path, name, expected


def sync():
    changed = []
    for path, name, expected in list(stale_copies()):
        text = path.read_text(encoding="utf-8")
        start, end = blocks(text, path)[name]
        path.write_text(text[:start] + expected + text[end:], encoding="utf-8")
        changed.append((path, name))
    return changed


def record():
    """Write each listed solution's change to its block as a diff against the source."""
    sources = source_blocks()
    CHANGES.mkdir(exist_ok=True)
    written = []
    for (solution, name) in sorted(SOLUTION_CHANGES):
        diff = make_diff(sources[name], block_text(REPO / solution, name))
        if not diff:
            raise FenceError('%s: block "%s" is the same as its source: take it out of '
                             'SOLUTION_CHANGES' % (solution, name))
        path = change_path(solution, name)
        if not path.exists() or path.read_text(encoding="utf-8") != diff:
            path.write_text(diff, encoding="utf-8")
            written.append(path)
    for path in CHANGES.glob("*.diff"):
        if path not in {change_path(*key) for key in SOLUTION_CHANGES}:
            path.unlink()
            written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="change nothing; exit 1 if a copy differs from what it must be")
    mode.add_argument("--record", action="store_true",
                      help="keep each listed solution's change to a block as a diff")
    args = parser.parse_args(argv)
    try:
        if args.record:
            for path in record():
                print("%s written" % path.relative_to(REPO))
            return 0
        if args.check:
            stale = [(path, name) for path, name, _ in stale_copies()]
        else:
            stale = sync()
    except FenceError as error:
        sys.exit(str(error))
    for path, name in stale:
        print('%s: block "%s" %s' % (path.relative_to(REPO), name,
                                     "differs from its source" if args.check else "refreshed"))
    if args.check and stale:
        print("Run: python3 -m tools.sync_shared")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
