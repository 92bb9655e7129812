"""The course site has no dead ends on a fresh clone: every link between its pages
leads to a file in html/ (the home page's one deliberate 404 aside), and the
notebook pages are a committed reference run (or, in a copy without one, a page that
says how to render them).

Read from the files, without a server: what any lesson serves is html/ itself.
"""

import html.parser
import urllib.parse
from pathlib import Path

import pytest

from course_site import BROKEN_LINK, SITE

NOTEBOOK_PAGES = ["notebooks/01_http_structure.html", "notebooks/02_c10k.html"]


def site_pages():
    """The site's own pages, and the notebook pages (the committed reference run)."""
    pages = [*SITE.glob("*.html"), *SITE.glob("*/index.html"), *SITE.glob("lessons/*.html")]
    pages += [SITE / page for page in NOTEBOOK_PAGES]
    return sorted(set(pages))


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.found.append(value)


def links_of(page):
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.found


def target_file(page, link):
    """The file in html/ a same-site link leads to, or None for another site."""
    parts = urllib.parse.urlsplit(link)
    if parts.scheme or parts.netloc or not parts.path:  # http:, mailto:, "#section"
        return None
    path = urllib.parse.unquote(parts.path)
    base = SITE if path.startswith("/") else page.parent
    target = (base / path.lstrip("/")).resolve()
    return target / "index.html" if path.endswith("/") or target.is_dir() else target


@pytest.mark.parametrize("page", site_pages(), ids=lambda page: str(page.relative_to(SITE)))
def test_every_link_of_the_page_leads_to_a_file_of_the_site(page):
    dead = [link for link in links_of(page) if link != BROKEN_LINK
            and (target := target_file(page, link)) is not None and not target.is_file()]
    assert not dead, "%s links to missing files: %s" % (page.relative_to(SITE), dead)


@pytest.mark.parametrize("name", NOTEBOOK_PAGES)
def test_both_notebooks_have_a_committed_reference_render(name):
    page = (SITE / name).read_text(encoding="utf-8")
    assert "not rendered yet" not in page, "commit a reference run: python3 notebooks/export.py"
    assert "Traceback" not in page


def test_the_c10k_reference_run_is_committed_and_says_which_run_it_is():
    page = (SITE / "notebooks/02_c10k.html").read_text(encoding="utf-8")
    assert "full run" in page or "QUICK run" in page  # the first cell's output says which
    assert "Traceback" not in page
    slides = SITE / "notebooks/02_c10k.slides.html"
    assert slides.is_file() and 'class="reveal"' in slides.read_text(encoding="utf-8")
