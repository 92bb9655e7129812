"""Every server lesson serves the course site to a real browser (headless Chromium).

Students open these servers in a browser, which behaves like none of our
socket tests: it opens up to six connections at once, keeps idle ones for
minutes, fetches the favicon on its own and percent-encodes non-ASCII paths.
Each lesson (and its solution) must get the whole site to it: every
subresource with the right type, the Chinese page in Chinese glyphs, the
404 page for the broken link, connections reused where the lesson keeps
them alive, and no load that hangs -- the single-task lesson included.
The lessons' own pages (html/lessons/) load with no console error, and
every link on them answers 200.

Page-load times (Navigation Timing, load event end) are printed at the end
of the module and written to page-load-times.txt in pytest's temp folder.
"""

import html
import html.parser
import urllib.parse

import pytest

from browser import (DISTINCT_HAN_GLYPHS, STEP_TIMEOUT_MS, NetworkLog, assert_screenshot_not_blank,
                     navigation_timing)
from browser import chromium  # noqa: F401 -- a fixture
from course_site import (BROKEN_LINK, CHINESE_PAGE, FOLDER, HOME, LESSON_PAGES,
                         expected_media_types, media_type, site_file)
from course_site import site_server  # noqa: F401 -- a fixture

pytestmark = pytest.mark.timeout(90)  # per test: a hung load fails its test, not the run

TABS_AT_ONCE = 4


class SubresourceFinder(html.parser.HTMLParser):
    """Same-origin stylesheets, scripts, images and icons a page links."""

    def __init__(self):
        super().__init__()
        self.paths = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        rel = (attrs.get("rel") or "").lower().split()
        url = None
        if tag == "link" and ({"stylesheet", "icon"} & set(rel)):
            url = attrs.get("href")
        elif tag in ("script", "img"):
            url = attrs.get("src")
        if url and not urllib.parse.urlsplit(url).scheme and url not in self.paths:
            self.paths.append(urllib.parse.urljoin("/", url))


def subresources(page_path):
    finder = SubresourceFinder()
    finder.feed(site_file(page_path).decode("utf-8"))
    paths = finder.paths
    if "/favicon.ico" not in paths:
        paths.append("/favicon.ico")  # asked for by the browser itself
    return paths


HOME_SUBRESOURCES = subresources(HOME)


def test_the_home_page_links_stylesheet_script_images_and_favicon():
    kinds = {path.rsplit(".", 1)[-1] for path in HOME_SUBRESOURCES}
    assert {"css", "js", "ico"} <= kinds and kinds & {"png", "svg"}, HOME_SUBRESOURCES


# -- Per lesson ------------------------------------------------------------------

LOAD_TIMES = {}  # lesson id -> {"load": ms, "reload": ms, "tabs": ms}


@pytest.fixture(scope="module", autouse=True)
def report_load_times(request, tmp_path_factory):
    yield
    if not any(LOAD_TIMES.values()):  # only tests that time no load of the home page ran
        return
    lines = ["page-load time of the course home in headless Chromium (Navigation Timing, ms):",
             "%-32s %8s %8s %14s" % ("server", "load", "reload", "%d tabs (max)" % TABS_AT_ONCE)]
    for name, times in LOAD_TIMES.items():
        if not times:
            continue
        lines.append("%-32s %8s %8s %14s" % (name, *("%.0f" % times[key] if key in times else "-"
                                                     for key in ("load", "reload", "tabs"))))
    (tmp_path_factory.getbasetemp() / "page-load-times.txt").write_text("\n".join(lines) + "\n")
    # Shown in every run, not only for failures: these are numbers to report.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture and reporter:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)


class Visit:
    """A fresh browser profile looking at one server."""

    def __init__(self, browser, server, folder):
        self.server = server
        self.folder = folder
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.context.set_default_timeout(STEP_TIMEOUT_MS)
        self.page = self.context.new_page()
        self.network = NetworkLog(self.context, self.page)
        self.times = LOAD_TIMES.setdefault(server.name, {})

    def url(self, path):
        return self.server.url + path

    def open(self, path):
        response = self.page.goto(self.url(path), wait_until="load", timeout=STEP_TIMEOUT_MS)
        assert response is not None, "no response for %s" % path
        return response

    def screenshot(self, name):
        path = self.folder / ("%s-%s.png" % (self.server.name, name))
        self.page.screenshot(path=str(path), timeout=STEP_TIMEOUT_MS)
        assert_screenshot_not_blank(path)
        return path

    def wait_for_served_by_panel(self):
        return wait_for_served_by_panel(self.page)


def wait_for_served_by_panel(page):
    """app.js fills #served-by from a HEAD request once the page has loaded."""
    page.wait_for_function("() => { const t = document.querySelector('#served-by dt');"
                           "        return t && t.textContent === 'Status'; }",
                           timeout=STEP_TIMEOUT_MS)
    return page.inner_text("#served-by")


@pytest.fixture
def visit(chromium, site_server, tmp_path):  # noqa: F811 -- fixtures by name
    visit = Visit(chromium, site_server, tmp_path)
    yield visit
    visit.context.close()


def assert_served_as_on_disk(exchange):
    assert exchange.status == 200, exchange
    assert media_type(exchange.header("content-type")) in expected_media_types(exchange.path), \
        exchange
    if exchange.header("content-encoding") is None:  # gzip (solution 11) changes the length
        assert exchange.header("content-length") in (None, str(len(site_file(exchange.path)))), \
            exchange


def test_home_loads_with_every_subresource_200_and_the_right_type(visit):
    response = visit.open(HOME)
    assert response.status == 200
    visit.network.wait_until_loaded([HOME, *HOME_SUBRESOURCES])
    for path in [HOME, *HOME_SUBRESOURCES]:
        exchange = visit.network.last(path)
        assert exchange.error is None, exchange
        assert_served_as_on_disk(exchange)

    page = visit.page
    assert page.evaluate("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"), \
        "an image did not decode"
    assert page.evaluate("() => document.styleSheets.length > 0 && "
                         "document.styleSheets[0].cssRules.length > 0"), "style.css not applied"
    panel = visit.wait_for_served_by_panel()  # app.js ran and its HEAD request came back
    assert "200" in panel and (visit.network.last(HOME).header("server") or "?") in panel, panel
    # Chromium cancels the unread body of a fetch() response, with any server
    # (http.server too), so app.js's HEAD shows as canceled after its 200.
    failed = [e for e in visit.network.since() if e.error and not (
        e.method == "HEAD" and e.canceled and e.status == 200)]
    assert not failed, failed

    timing = navigation_timing(page)
    visit.times["load"] = timing["loadEventEnd"] - timing["startTime"]
    visit.screenshot("home")


def test_chinese_page_renders_its_text_in_chinese_glyphs(visit):
    visit.open(HOME)
    with visit.page.expect_navigation(timeout=STEP_TIMEOUT_MS):
        visit.page.click("header a[href='%s']" % CHINESE_PAGE)
    page = visit.page
    assert urllib.parse.unquote(page.url).endswith("/中文.html")
    exchange = visit.network.last(CHINESE_PAGE)
    assert_served_as_on_disk(exchange)
    assert page.evaluate("() => document.characterSet") == "UTF-8"

    source = site_file(CHINESE_PAGE).decode("utf-8")
    heading = page.inner_text("h1")
    assert heading and heading in source, "h1 %r is not the file's text" % heading
    assert page.title() and page.title() in html.unescape(source)
    body_text = page.inner_text("main")
    glyphs = page.evaluate(DISTINCT_HAN_GLYPHS, ["main", body_text])
    assert glyphs["characters"] >= 10, glyphs
    assert glyphs["pictures"] == glyphs["characters"], (
        "%(characters)d Chinese characters drew only %(pictures)d distinct glyphs: no CJK font? "
        "(apt-get install fonts-wqy-zenhei)" % glyphs)
    visit.screenshot("chinese")


def test_broken_link_on_the_home_page_shows_the_404_page(visit):
    visit.open(HOME)
    with visit.page.expect_navigation(timeout=STEP_TIMEOUT_MS) as navigation:
        visit.page.click("a[href='%s']" % BROKEN_LINK)
    response = navigation.value
    assert response.status == 404
    assert media_type(response.headers.get("content-type")) == "text/html"
    assert "404" in visit.page.inner_text("h1")
    assert "404" in visit.page.title()
    visit.screenshot("404")
    # The error page leads back home.
    assert visit.page.locator("a[href='/']").count(), "the 404 page has no link to the home page"
    with visit.page.expect_navigation(timeout=STEP_TIMEOUT_MS) as navigation:
        visit.page.click("a[href='/']")
    assert navigation.value.status == 200


def test_folder_typed_without_slash_is_redirected_to_its_index(visit):
    folder = FOLDER.rstrip("/")
    response = visit.open(folder)
    assert response.status == 200
    assert visit.page.url == visit.url(FOLDER)
    assert visit.network.last(folder).status == 301
    assert_served_as_on_disk(visit.network.last(FOLDER))


def test_reload_reuses_a_connection_exactly_when_the_lesson_keeps_them_alive(visit):
    visit.open(HOME)
    visit.network.wait_until_loaded([HOME, *HOME_SUBRESOURCES])
    visit.wait_for_served_by_panel()
    before = visit.network.mark()
    visit.page.reload(wait_until="load", timeout=STEP_TIMEOUT_MS)
    timing = navigation_timing(visit.page)
    visit.times["reload"] = timing["loadEventEnd"] - timing["startTime"]
    visit.network.wait_until_loaded([HOME], mark=before)
    visit.wait_for_served_by_panel()

    on_wire = [e for e in visit.network.since() if e.status is not None and not e.from_cache]
    earlier = {e.connection_id for e in on_wire if visit.network.exchanges.index(e) < before}
    after = [e for e in on_wire if visit.network.exchanges.index(e) >= before]
    assert after, "the reload sent nothing to the server"
    home = visit.network.last(HOME, mark=before)
    if visit.server.keeps_alive:
        assert not visit.server.says_close, "a keep-alive lesson must not answer Connection: close"
        reused = [e for e in after if e.connection_id in earlier]
        assert reused, "no response of the reload came on a connection opened before it: %s" % after
    else:
        assert home.header("connection") == "close", home
        ids = [e.connection_id for e in on_wire]
        assert len(ids) == len(set(ids)), "a connection carried two responses: %s" % on_wire


def test_several_tabs_loading_at_once_all_finish(visit):
    """A browser opens several connections at once; even one-at-a-time servers get through."""
    pages = [visit.page] + [visit.context.new_page() for _ in range(TABS_AT_ONCE - 1)]
    for page in pages:  # start every load before waiting for any
        page.evaluate("url => { location.href = url; }", visit.url(HOME))
    slowest = 0
    for page in pages:
        page.wait_for_url(visit.url(HOME), wait_until="load", timeout=STEP_TIMEOUT_MS)
        timing = navigation_timing(page)
        slowest = max(slowest, timing["loadEventEnd"] - timing["startTime"])
        assert page.evaluate("() => [...document.images].every(i => i.complete && "
                             "i.naturalWidth > 0)"), "an image did not load in a tab"
    for page in pages:  # each tab's app.js then sends its HEAD, all at about the same time
        assert "200" in wait_for_served_by_panel(page)
    visit.times["tabs"] = slowest


def test_lesson_pages_load_with_no_console_error_and_every_link_answers(visit):
    """The page of every server lesson, and their index, as a student clicks through them."""
    errors = []
    visit.page.on("console", lambda message: errors.append((visit.page.url, message.text))
                  if message.type == "error" else None)
    visit.page.on("pageerror", lambda error: errors.append((visit.page.url, str(error))))
    links = set()
    for path in LESSON_PAGES:
        response = visit.open(path)
        assert response.status == 200, path
        assert_served_as_on_disk(visit.network.last(path))
        assert visit.page.title() and "404" not in visit.page.title(), path
        assert visit.page.evaluate("() => document.styleSheets.length > 0 && "
                                   "document.styleSheets[0].cssRules.length > 0"), path
        hrefs = visit.page.evaluate(
            "() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        links.update(href.split("#")[0] for href in hrefs
                     if href.startswith(visit.server.url + "/"))
    assert not errors, errors
    assert len(links) > len(LESSON_PAGES), links  # the pages link one another, home, models...
    # Every same-site link those pages carry, fetched by the browser itself, one at a time.
    answers = visit.page.evaluate("""async urls => {
        const answers = [];
        for (const url of urls) {
            const response = await fetch(url, {cache: "no-store"});
            await response.arrayBuffer();
            answers.push([url, response.status]);
        }
        return answers;
    }""", sorted(links))
    broken = [(url, status) for url, status in answers if status != 200]
    assert not broken, broken
    visit.screenshot("lesson-pages")
