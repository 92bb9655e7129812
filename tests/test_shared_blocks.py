"""The lessons' shared plumbing: fenced, identical everywhere, and below each lesson's own idea.

Every server lesson is one standalone file.  What several lessons share stands in
fenced blocks that tools/sync_shared.py copies from one source; these tests hold
every copy to it, keep each lesson's model on its first screen, and keep the
step from one lesson to the next small (tools/lesson_figures.py prints the figures).
"""

import ast
import re

import pytest

from servers import REPO
from tools import lesson_figures, sync_shared

FAMILIES = {
    "blocking": (["06", "07", "08", "09", "10", "11"], {"http", "blocking connection"}),
    "non-blocking": (["12", "13", "15"], {"http", "non-blocking connection"}),
    "asyncio": (["14"], {"http"}),  # asyncio's streams are its connection plumbing
}
SERVER_FILES = [(folder, number, blocks)
                for numbers, blocks in FAMILIES.values() for number in numbers
                for folder in ("lessons", "solutions")]


def server_file(folder, number):
    return lesson_figures.lesson_path(number, folder)


def test_every_copy_of_a_shared_block_is_identical_to_its_source():
    stale = ["%s: %s" % (path.relative_to(REPO), name)
             for path, name, _ in sync_shared.stale_copies()]
    assert stale == [], "run python3 -m tools.sync_shared"


@pytest.mark.parametrize("folder, number, expected", SERVER_FILES,
                         ids=["%s/%s" % case[:2] for case in SERVER_FILES])
def test_each_server_file_carries_the_blocks_of_its_family(folder, number, expected):
    text = server_file(folder, number).read_text(encoding="utf-8")
    assert set(sync_shared.blocks(text)) == expected


@pytest.mark.parametrize("change", sorted(sync_shared.SOLUTION_CHANGES))
def test_a_solution_listed_as_changing_a_block_really_changes_it(change):
    solution, name = change
    source = sync_shared.block_text(REPO / sync_shared.SOURCES[name], name)
    assert sync_shared.block_text(REPO / solution, name) != source, \
        "identical to its source: remove it from SOLUTION_CHANGES"
    assert sync_shared.SOLUTION_CHANGES[change].strip(), "say why the exercise changes it"


@pytest.mark.parametrize("folder, number, expected", SERVER_FILES,
                         ids=["%s/%s" % case[:2] for case in SERVER_FILES])
def test_the_lessons_own_model_comes_right_after_the_imports_and_before_the_plumbing(
        folder, number, expected):
    text = server_file(folder, number).read_text(encoding="utf-8")
    spans = sorted(sync_shared.blocks(text).values())
    before, after = text[:spans[0][0]], text[spans[-1][1]:]
    assert re.search(r"^def serve_forever\(listener, site\):", before, re.M), \
        "the model (serve_forever) stands above the shared blocks"
    between = [text[end:start] for (_, end), (start, _) in zip(spans, spans[1:])]
    assert all(not part.strip() for part in between), "nothing but blank lines between blocks"
    assert ast.parse(after).body[-1].test.comparators[0].value == "__main__"
    assert not re.search(r"^(def|class) ", after, re.M), "no code after the shared blocks"
    module = ast.parse(text)
    first_code = next(node for node in module.body[1:]  # after the docstring
                      if not isinstance(node, (ast.Import, ast.ImportFrom, ast.Try, ast.Expr)))
    assert isinstance(first_code, (ast.Assign, ast.FunctionDef, ast.ClassDef))
    assert first_code.lineno < text[:spans[0][0]].count("\n"), "the model before the plumbing"


@pytest.mark.parametrize("name", lesson_figures.SERVER_LESSONS)
def test_a_server_lessons_docstring_fits_on_one_screen_and_a_half(name):
    path = lesson_figures.lesson_path(name[:2])
    assert lesson_figures.docstring_lines(path) <= lesson_figures.MAX_DOCSTRING_LINES


@pytest.mark.parametrize("old, new, count, limit", list(lesson_figures.step_figures()),
                         ids=["%s->%s" % step for step in lesson_figures.LIMITS])
def test_the_step_from_one_lesson_to_the_next_is_small(old, new, count, limit):
    assert count <= limit, "%s -> %s changes %d lines of code" % (old, new, count)


def test_code_only_lines_leave_out_docstrings_comments_and_blank_lines():
    source = '"""Module."""\n\nx = 1  # one\n\n\ndef f():\n    """Doc\n    string."""\n    # note\n    return x\n'
    assert lesson_figures.code_lines(source) == ["x = 1", "def f():", "    return x"]


@pytest.mark.parametrize("text, error", [
    ('# ==== shared block "a" ====\n', 'block "a" never closes'),
    ('# ==== end of shared block "a" ====\n', 'block "a" closes without opening'),
    ('# ==== shared block "a" ====\n# ==== shared block "b" ====\n', 'opens inside'),
    ('# ==== shared block "a" ====\n# ==== end of shared block "a" ====\n' * 2, "appears twice"),
])
def test_broken_fences_are_named(text, error):
    with pytest.raises(sync_shared.FenceError, match=error):
        sync_shared.blocks(text)


@pytest.mark.parametrize("name", lesson_figures.SERVER_LESSONS)
def test_a_server_lessons_docstring_names_its_parts_its_grading_command_and_its_page(name):
    doc = ast.get_docstring(ast.parse(lesson_figures.lesson_path(name[:2]).read_text(
        encoding="utf-8")))
    assert doc.startswith("Lesson %s · " % name[:2])
    for heading in ("What changed from the source", "Try it", "Exercise"):
        assert heading in doc, heading
    text = " ".join(doc.split())
    assert "python3 -m pytest tests/exercises --submission my_answers -k %s" % name[:2] in text
    assert "http://127.0.0.1:7890/lessons/%s.html" % name in text
