"""A real browser for the tests: Debian's Chromium, headless, driven by Playwright.

Playwright cannot download its own browser build here, so it drives the
system's /usr/bin/chromium.  What the page's network stack does is read from
Chrome DevTools Protocol events (NetworkLog): unlike Playwright's page
events, they include the favicon, which the browser fetches by itself, and
they name the TCP connection that carried each response, which shows whether
a connection was reused.
"""

import os
import shutil
import time

import pytest

from course_site import unavailable

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    # No traffic of the browser's own: the tests must see only the page's.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LAUNCH_TIMEOUT_MS = 30_000
STEP_TIMEOUT_MS = 15_000  # any navigation or wait in a test; generous for 2 shared cores
POLL_MS = 50


@pytest.fixture(scope="module")
def chromium():
    """A launched browser, shared by a module; each test opens a fresh context in it.

    Playwright gives every launch a new temporary profile, and every context
    is a fresh incognito-like profile (empty cache, no cookies), so no test
    sees another's cache or idle connections.
    """
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -r requirements.txt)")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable("no Chromium at %s (apt-get install chromium)" % CHROMIUM)
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS)
    except Error as error:
        playwright.stop()
        unavailable("Chromium did not start: %s" % str(error).splitlines()[0])
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


class Exchange:
    """One request the page made, and what came back."""

    def __init__(self, request_id, method, url, resource_type):
        self.request_id = request_id
        self.method = method
        self.url = url
        self.resource_type = resource_type
        self.status = None
        self.headers = {}  # lower-case name -> value
        self.connection_id = None  # 0 when served from the browser's cache
        self.from_cache = False
        self.finished = False
        self.error = None  # net::ERR_... when loading failed
        self.canceled = False

    @property
    def path(self):
        return "/" + self.url.split("/", 3)[3] if self.url.count("/") >= 3 else self.url

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def done(self):
        return self.finished or self.error is not None

    def __repr__(self):
        return "<%s %s -> %s %s conn=%s%s>" % (
            self.method, self.path, self.status, self.header("content-type"),
            self.connection_id, " " + self.error if self.error else "")


class NetworkLog:
    """Every request of one page, from the DevTools Network domain, in order."""

    def __init__(self, context, page):
        self.page = page
        self.exchanges = []
        self._by_id = {}
        self.session = context.new_cdp_session(page)
        self.session.on("Network.requestWillBeSent", self._sent)
        self.session.on("Network.responseReceived", self._received)
        self.session.on("Network.loadingFinished", self._finished)
        self.session.on("Network.loadingFailed", self._failed)
        self.session.on("Network.requestServedFromCache", self._from_cache)
        self.session.send("Network.enable")

    def _sent(self, event):
        redirect = event.get("redirectResponse")
        if redirect and event["requestId"] in self._by_id:
            # A redirect reuses the request id: close the old exchange, start a new one.
            old = self._by_id[event["requestId"]]
            self._fill(old, redirect)
            old.finished = True
        request = event["request"]
        exchange = Exchange(event["requestId"], request["method"], request["url"],
                            event.get("type"))
        self._by_id[exchange.request_id] = exchange
        self.exchanges.append(exchange)

    @staticmethod
    def _fill(exchange, response):
        exchange.status = response["status"]
        exchange.headers = {name.lower(): value for name, value in response["headers"].items()}
        exchange.connection_id = response.get("connectionId")
        # A response from the memory cache keeps the connection id of its
        # first download; requestServedFromCache flags it.
        exchange.from_cache = exchange.from_cache or bool(
            response.get("fromDiskCache") or response.get("fromPrefetchCache")
            or not exchange.connection_id)

    def _received(self, event):
        exchange = self._by_id.get(event["requestId"])
        if exchange:
            self._fill(exchange, event["response"])

    def _from_cache(self, event):
        exchange = self._by_id.get(event["requestId"])
        if exchange:
            exchange.from_cache = True

    def _finished(self, event):
        exchange = self._by_id.get(event["requestId"])
        if exchange:
            exchange.finished = True

    def _failed(self, event):
        exchange = self._by_id.get(event["requestId"])
        if exchange:
            exchange.error = event.get("errorText", "failed")
            exchange.canceled = bool(event.get("canceled"))

    def mark(self):
        """A position in the log: exchanges after it belong to what follows."""
        return len(self.exchanges)

    def since(self, mark=0):
        return self.exchanges[mark:]

    def wait_for(self, condition, what, timeout_ms=STEP_TIMEOUT_MS):
        """Let the browser run until condition() holds; bounded by a deadline and a count."""
        deadline = time.monotonic() + timeout_ms / 1000
        for _ in range(timeout_ms // POLL_MS + 1):
            if condition():
                return
            if time.monotonic() > deadline:
                break
            self.page.wait_for_timeout(POLL_MS)  # runs Playwright's event loop meanwhile
        if not condition():
            raise AssertionError("waited %d ms for %s; requests so far: %s"
                                 % (timeout_ms, what, self.exchanges))

    def wait_until_loaded(self, paths, mark=0):
        """Wait until each path has a finished (or failed) exchange after mark."""
        def loaded():
            done = {exchange.path for exchange in self.since(mark) if exchange.done}
            return set(paths) <= done
        self.wait_for(loaded, "responses to %s" % sorted(paths))

    def last(self, path, mark=0, method="GET"):
        matches = [exchange for exchange in self.since(mark)
                   if exchange.path == path and exchange.method == method]
        assert matches, "the browser never requested %s %s: %s" % (method, path, self.exchanges)
        return matches[-1]


def navigation_timing(page):
    """This page's Navigation Timing entry, once the load event has ended."""
    page.wait_for_function(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        "        return n && n.loadEventEnd > 0; }", timeout=STEP_TIMEOUT_MS)
    return page.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")


def assert_screenshot_not_blank(png_path):
    """A blank or single-colour screenshot means nothing was drawn."""
    from PIL import Image, ImageStat  # Pillow comes with matplotlib (requirements.txt)

    with Image.open(png_path) as image:
        width, height = image.size
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=4096)  # None: more colours than that
        spread = ImageStat.Stat(rgb.convert("L")).stddev[0]
    assert width >= 320 and height >= 200, "screenshot is %dx%d" % (width, height)
    assert colours is None or len(colours) > 16, "only %d colours: blank page?" % len(colours)
    assert spread > 5, "grey levels hardly vary (stddev %.1f): blank page?" % spread


# Draws each distinct Han character of the given text on a canvas, with the
# font of the given element, and counts the distinct pictures.  A system
# without a CJK font draws every one as the same empty box (tofu), which a
# text or DOM check cannot see.
DISTINCT_HAN_GLYPHS = """([selector, text]) => {
  const han = [...new Set([...text].filter(c => /\\p{Script=Han}/u.test(c)))].slice(0, 12);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 48;
  const ctx = canvas.getContext("2d", {willReadFrequently: true});
  ctx.font = "40px " + getComputedStyle(document.querySelector(selector)).fontFamily;
  const pictures = han.map(c => {
    ctx.clearRect(0, 0, 48, 48);
    ctx.fillText(c, 2, 40);
    return ctx.getImageData(0, 0, 48, 48).data.join(",");
  });
  return {characters: han.length, pictures: new Set(pictures).size};
}"""
