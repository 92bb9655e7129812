"""Exercise 06 · directory listing

A folder without index.html is answered with 200 and an HTML page that links
every entry: names sorted, HTML-escaped in the text, percent-encoded in the
href, sub-folders with a trailing "/".
"""

import html.parser
import re
import urllib.parse

import pytest

from servers import make_docroot

LESSON = "06_static_single"
HINT = ("lessons/06_static_single.py, docstring 'Exercise'; translate_path() is where a "
        "folder without index.html becomes 403 today")

# Names chosen to break a listing that forgets to escape or to encode:
# markup, an ampersand, a quote, URL delimiters (? # %), a space, non-ASCII.
TRICKY_NAMES = ["<b>bold.txt", "a&b.txt", 'say "hi".txt', "what?.txt", "#hash.txt",
                "100% sure.txt", "with space.txt", "中文.txt"]
SUB_FOLDERS = ["docs", "more stuff"]
# Case and ASCII order agree on these names, so any sensible sort gives the same order.
ALL_ENTRIES = sorted(TRICKY_NAMES + SUB_FOLDERS)
URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")  # RFC 3986 path characters


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_docroot(tmp_path_factory.mktemp("ex06") / "root")
    listed = root / "listed"
    listed.mkdir()
    for name in TRICKY_NAMES:
        (listed / name).write_text("content of %s\n" % name, encoding="utf-8")
    for name in SUB_FOLDERS:
        (listed / name).mkdir()
        (listed / name / "inner.txt").write_text("inner\n")
    (root / "empty").mkdir()
    return root


class Links(html.parser.HTMLParser):
    """The <a href> links of a page, as (href, text) in page order."""

    def __init__(self, page):
        super().__init__(convert_charrefs=True)
        self.links, self._open = [], None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._open = [dict(attrs).get("href") or "", ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[1] += data

    def handle_endtag(self, tag):
        if tag == "a" and self._open is not None:
            self.links.append(tuple(self._open))
            self._open = None


def listing(http, server, path="/listed/"):
    response = http.request(server, path)
    assert response.status == 200, "a folder without index.html is listed with 200"
    assert response.header("Content-Type") == "text/html; charset=utf-8"
    assert response.header("Content-Length") == str(len(response.body))
    return response


def entry_links(response):
    """{entry name: (href, text)} for the links that lead to an entry of /listed/."""
    found = {}
    for href, text in Links(response.body.decode("utf-8")).links:
        name = urllib.parse.unquote(href).rstrip("/")
        if name in ALL_ENTRIES:
            found[name] = (href, text.strip())
    return found


@pytest.mark.points(2)
def test_a_folder_without_index_html_is_an_html_page_linking_every_entry(exercise, http, site):
    server = exercise.shared_server(directory=site)
    links = entry_links(listing(http, server))
    missing = [name for name in ALL_ENTRIES if name not in links]
    assert not missing, "no <a href> leads to these entries: %s" % missing


def test_a_folder_with_index_html_still_serves_it_and_an_empty_folder_lists_nothing(
        exercise, http, site):
    server = exercise.shared_server(directory=site)
    assert http.request(server, "/sub/").body == (site / "sub" / "index.html").read_bytes()
    assert entry_links(listing(http, server, "/empty/")) == {}


def test_entries_are_listed_in_sorted_order(exercise, http, site):
    server = exercise.shared_server(directory=site)
    links = entry_links(listing(http, server))
    assert list(links) == ALL_ENTRIES, "the links are not in sorted order of the names"


@pytest.mark.points(2)
def test_names_are_html_escaped_in_the_text(exercise, http, site):
    server = exercise.shared_server(directory=site)
    response = listing(http, server)
    assert b"<b>bold" not in response.body, "a file name became markup: escape it"
    links = entry_links(response)
    for name in TRICKY_NAMES:
        assert name in links and links[name][1] == name, \
            "the text of the link to %r should read %r" % (name, name)


@pytest.mark.points(2)
def test_hrefs_are_percent_encoded_and_each_link_leads_to_its_file(exercise, http, site):
    server = exercise.shared_server(directory=site)
    links = entry_links(listing(http, server))
    for name in TRICKY_NAMES:
        assert name in links, "no link to %r" % name
        href = links[name][0]
        assert URL_CHARACTERS.fullmatch(href), \
            "href %r holds characters a URL path cannot: percent-encode the name" % href
        followed = http.request(server, "/listed/" + href)  # what a browser does
        assert followed.status == 200 and \
            followed.body == (site / "listed" / name).read_bytes(), \
            "the link %r does not lead to the file %r" % (href, name)


def test_sub_folders_are_linked_with_a_trailing_slash(exercise, http, site):
    server = exercise.shared_server(directory=site)
    links = entry_links(listing(http, server))
    for name in SUB_FOLDERS:
        assert name in links, "no link to the sub-folder %r" % name
        assert links[name][0].endswith("/"), "the href of a sub-folder ends with '/'"
    followed = http.request(server, "/listed/" + links["more stuff"][0])
    assert followed.status == 200 and "inner.txt" in followed.body.decode("utf-8"), \
        "the link to a sub-folder leads to its listing"
