"""Every server lesson has its page on the course site, with the committed run's figures.

The pages (html/lessons/NN_name.html, same stem as lessons/NN_name.py) are
written by hand except for the region between <!-- bench:begin --> and
<!-- bench:end -->, which tools/lesson_pages.py fills from bench/RESULTS.json.
These tests need no server and no browser: test_browser.py loads the pages
in Chromium.
"""

import html.parser
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from servers import REPO, STATIC_SERVERS

sys.path.insert(0, str(REPO))
from tools import lesson_pages  # noqa: E402 -- after the path

SITE = REPO / "html"
PAGES = SITE / "lessons"
BROKEN_ON_PURPOSE = {"/this-page-does-not-exist.html"}  # the home page's 404 demonstration


def page_of(stem):
    return PAGES / (stem + ".html")


# -- One page per server lesson ------------------------------------------------------

def test_the_script_finds_exactly_the_server_lessons_the_tests_know():
    assert lesson_pages.server_lessons() == STATIC_SERVERS


@pytest.mark.parametrize("stem", STATIC_SERVERS)
def test_every_server_lesson_has_a_page_with_its_stem(stem):
    assert page_of(stem).is_file(), "no page for lessons/%s.py: write html/lessons/%s.html" % (
        stem, stem)


# A lesson built on an earlier one than the lesson just before it: its page diffs against that.
DIFFED_AGAINST = {"15_static_reuseport": "13_static_epoll"}  # 15's loop is 13's, on selectors


@pytest.mark.parametrize("stem", STATIC_SERVERS)
def test_a_page_names_its_source_its_exercise_and_its_neighbours(stem):
    text = page_of(stem).read_text(encoding="utf-8")
    links = set(Links.of(page_of(stem)).hrefs)
    assert "lessons/%s.py" % stem in text
    assert 'id="exercise"' in text and "-k %s" % stem[:2] in text, "no exercise or grading command"
    assert "/lessons/" in links, "no link to the index of lessons"
    index = STATIC_SERVERS.index(stem)
    if index > 0:
        before = DIFFED_AGAINST.get(stem, STATIC_SERVERS[index - 1])
        assert "/lessons/%s.html" % before in links, "no link to the previous lesson's page"
        assert "diff lessons/%s.py lessons/%s.py" % (before, stem) in text, "no diff to run"
    if index + 1 < len(STATIC_SERVERS):
        assert "/lessons/%s.html" % STATIC_SERVERS[index + 1] in links, "no link to the next page"


def test_the_index_the_home_page_and_the_readme_link_every_lesson_page():
    index = set(Links.of(PAGES / "index.html").hrefs)
    home = set(Links.of(SITE / "index.html").hrefs)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for stem in STATIC_SERVERS:
        assert "/lessons/%s.html" % stem in index, stem
        assert "/lessons/%s.html" % stem in home, stem
        assert "](html/lessons/%s.html)" % stem in readme, stem
    assert "/lessons/" in home


# -- The measured region ---------------------------------------------------------------

@pytest.mark.parametrize("page", lesson_pages.pages(), ids=lambda page: page.name)
def test_a_pages_figures_are_what_the_script_writes_from_the_committed_run(page):
    text = page.read_text(encoding="utf-8")
    results = lesson_pages.load_results()
    expected = lesson_pages.filled(text, results, lesson_pages.stems_for(page))
    assert text == expected, ("%s differs from bench/RESULTS.json: "
                              "run python3 -m tools.lesson_pages" % page.relative_to(REPO))


def test_the_check_mode_agrees_and_exits_0():
    done = subprocess.run([sys.executable, "-m", "tools.lesson_pages", "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_without_a_committed_run_the_region_says_so_in_one_line():
    region = lesson_pages.region(None, ["13_static_epoll"])
    lines = region.splitlines()
    assert lines[0] == lesson_pages.BEGIN and lines[-1] == lesson_pages.END
    assert len(lines) == 3 and "No reference run committed yet: python3 -m bench.run" in lines[1]


def fake_run():
    """A run shaped like bench.run.measure()'s, with a caches-off row for one lesson."""
    def server(name, rps, cache=None, label=None):
        row = {"name": name, "label": label or name,
               "throughput": {c: {"median": rps * k, "socket_errors": 0, "non_2xx": 0}
                              for c, k in (("10", 1.0), ("100", 1.0), ("1000", 0.5))},
               "hold": {"successes": 10000, "connections": 10000, "wall_seconds": 1.54,
                        "peak_memory_bytes": 34_000_000}}
        if cache is not None:
            row["cache"] = cache
        return row
    env = {"name": "environment", "date": "2026-12-03T12:00:00", "cpus": 2, "cpu_model": "Xeon",
           "system": "Linux", "python": "3.11.7", "server_cpu": 0, "load_cpu": 1,
           "settings": {"wrk_runs": 3, "wrk_seconds": 3, "hold": 10000}, "quick": False}
    return [env,
            server("13_static_epoll", 13_900, cache=False, label="13_static_epoll (caches off)"),
            server("13_static_epoll", 118_898, cache=True),
            server("12_static_nonblocking", 13_400, cache=True),
            server("http.server", 3_751, label="python -m http.server"),
            server("nginx", 174_364, label="nginx (1 worker, tuned)")]


def cells(region):
    """The rows of a region's table, as lists of cell texts."""
    rows = []
    for line in region.splitlines():
        if line.startswith("<tr><t") and "<td" in line:
            parser = Cells()
            parser.feed(line)
            rows.append(parser.cells)
    return rows


class Cells(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells = []

    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th"):
            self.cells.append("")

    def handle_data(self, data):
        if self.cells:
            self.cells[-1] += data


def test_a_lesson_shows_its_rows_caches_on_first_with_ratios_to_the_anchors_of_the_same_run():
    region = lesson_pages.region(fake_run(), ["13_static_epoll"])
    assert cells(region) == [
        ["on", "118,898", "118,898", "59,449", "0.68 ×", "32 ×", "10000/10000", "1.5 s", "34 MB"],
        ["off", "13,900", "13,900", "6,950", "0.08 ×", "3.71 ×", "10000/10000", "1.5 s", "34 MB"],
    ]
    assert "12_static_nonblocking" not in region
    assert "2026-12-03T12:00:00" in region


def test_the_index_shows_every_lesson_of_the_run_in_course_order():
    region = lesson_pages.region(fake_run(), STATIC_SERVERS)
    assert [row[:2] for row in cells(region)] == [
        ["12_static_nonblocking", "on"], ["13_static_epoll", "on"], ["13_static_epoll", "off"]]


def test_lesson_15s_rows_say_how_many_workers_each_ran_with():
    rows = fake_run()
    for variant, rps in (("1 worker", 50_000), ("2 workers", 80_000)):
        for cache in (True, False):
            row = {"name": "15_static_reuseport", "variant": variant, "cache": cache,
                   "label": "15_static_reuseport (%s)" % variant,
                   "throughput": {c: {"median": rps / (1 if cache else 2), "socket_errors": 0,
                                      "non_2xx": 0} for c in ("10", "100", "1000")}}
            rows.insert(-2, row)
    region = lesson_pages.region(rows, ["15_static_reuseport"])
    assert [row[:3] for row in cells(region)] == [
        ["on (1 worker)", "50,000", "50,000"], ["off (1 worker)", "25,000", "25,000"],
        ["on (2 workers)", "80,000", "80,000"], ["off (2 workers)", "40,000", "40,000"]]


def test_a_lesson_missing_from_the_run_says_so():
    region = lesson_pages.region(fake_run(), ["10_static_threading"])
    assert "Not in the committed run" in region and "<table" not in region


def test_a_region_changed_by_hand_is_put_back():
    page = page_of("13_static_epoll")
    text = page.read_text(encoding="utf-8")
    tampered = text.replace(lesson_pages.END, "<p>1,000,000 req/s</p>\n" + lesson_pages.END)
    assert tampered != text
    assert lesson_pages.filled(tampered, lesson_pages.load_results(),
                               ["13_static_epoll"]) == text


def test_a_page_without_exactly_one_region_is_refused():
    with pytest.raises(ValueError):
        lesson_pages.filled("<p>no markers</p>", None, ["13_static_epoll"])


# -- Internal links --------------------------------------------------------------------

class Links(html.parser.HTMLParser):
    """Every href/src of a page, and every id it defines."""

    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            if attrs.get(name) and tag in ("a", "link", "img", "script"):
                self.hrefs.append(attrs[name])

    @classmethod
    def of(cls, path):
        links = cls()
        links.feed(Path(path).read_text(encoding="utf-8"))
        return links


def site_path(page, href):
    """The file and fragment an internal link points to, or None for an outside link."""
    url = urllib.parse.urlsplit(href)
    if url.scheme or url.netloc:
        return None
    base = "/" + page.relative_to(SITE).as_posix()
    path = urllib.parse.unquote(urllib.parse.urljoin(base, url.path)) if url.path else base
    if path in BROKEN_ON_PURPOSE:
        return None
    target = SITE / path.lstrip("/")
    if path.endswith("/"):
        target = target / "index.html"
    return target, url.fragment


SITE_PAGES = [PAGES / "index.html", SITE / "index.html", SITE / "models" / "index.html"] + [
    page_of(stem) for stem in STATIC_SERVERS]


@pytest.mark.parametrize("page", SITE_PAGES, ids=lambda page: page.relative_to(SITE).as_posix())
def test_every_internal_link_of_a_page_reaches_a_file_and_its_anchor(page):
    if not page.is_file():
        pytest.fail("missing: %s" % page.relative_to(REPO))
    broken = []
    for href in Links.of(page).hrefs:
        target = site_path(page, href)
        if target is None:
            continue
        path, fragment = target
        if path.name.startswith("notebooks") or "/notebooks/" in path.as_posix():
            continue  # rendered by notebooks/export.py, not committed: the home page says so
        if not path.is_file():
            broken.append("%s: no file %s" % (href, path.relative_to(REPO)))
        elif fragment and path.suffix == ".html" and fragment not in Links.of(path).ids:
            broken.append("%s: no id %r in %s" % (href, fragment, path.relative_to(REPO)))
    assert not broken, broken
