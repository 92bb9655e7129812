"""Fill each lesson page's measured figures from the committed reference run.

    python3 -m tools.lesson_pages            # rewrite the marked regions in html/lessons/
    python3 -m tools.lesson_pages --check    # exit 1, naming the pages that are out of date
    python3 -m tools.lesson_pages --results /tmp/benchq/latest.json   # another run (testing)

Every server lesson lessons/NN_static_*.py has a page html/lessons/NN_static_*.html.
Between the markers

    <!-- bench:begin -->
    <!-- bench:end -->

that page holds the lesson's rows of bench/RESULTS.json (the list that
``bench.run.measure()`` returns: results[0] describes the machine, then one dict
per server), and html/lessons/index.html holds every lesson's rows. Nothing
between the markers is written by hand: a figure copied by hand goes stale the
day the benchmark is run again, and tests/test_lesson_pages.py fails when a
region differs from what this script writes.

Without bench/RESULTS.json the region says so in one line, with the command
that makes one.
"""

import argparse
import html
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LESSONS = REPO / "lessons"
PAGES = REPO / "html" / "lessons"
INDEX = PAGES / "index.html"
RESULTS = REPO / "bench" / "RESULTS.json"

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
REGION = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)

CONCURRENCY = ("10", "100", "1000")
REFERENCE = "100"  # the ratios are taken at this many connections
MISSING = "No reference run committed yet: python3 -m bench.run"


def server_lessons():
    """The stems of the server lessons (06 onwards), in course order."""
    return sorted(path.stem for path in LESSONS.glob("[0-9][0-9]_static_*.py"))


def page_path(stem):
    return PAGES / (stem + ".html")


def load_results(path=RESULTS):
    """The committed run, or None when there is none yet."""
    path = Path(path)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# -- Formatting ---------------------------------------------------------------------

def median(row, connections):
    figures = (row or {}).get("throughput", {}).get(connections)
    return figures.get("median") if figures else None


def ratio(value, reference):
    """As bench/RESULTS.md writes it: 0.68 ×, 32 ×; a dash when either is missing."""
    if not value or not reference:
        return "–"
    times = value / reference
    return "%.2f ×" % times if times < 10 else "%.0f ×" % times


def requests_per_second(row, connections):
    figures = row.get("throughput", {}).get(connections)
    if not figures or figures.get("median") is None:
        return "–"
    text = "{:,.0f}".format(figures["median"])
    errors = figures.get("socket_errors", 0) + figures.get("non_2xx", 0)
    return text + (" (%d err)" % errors if errors else "")


def hold_cells(row):
    hold = row.get("hold") or {}
    if not hold:
        return ["–", "–", "–"]
    held = "%d/%d" % (hold.get("successes", 0), hold.get("connections", 0))
    if hold.get("stopped_over_memory_budget"):
        held += " (stopped: over budget)"
    seconds = "%.1f s" % hold["wall_seconds"] if "wall_seconds" in hold else "–"
    memory = ("%.0f MB" % (hold["peak_memory_bytes"] / 1e6)
              if hold.get("peak_memory_bytes") else "–")
    return [held, seconds, memory]


def caches(row):
    return "off" if row.get("cache") is False else "on"


def anchor(rows, name, row):
    """The anchor's row of the same run, with the same cache setting if it has both."""
    candidates = [other for other in rows if other.get("name") == name and "throughput" in other]
    for other in candidates:
        if caches(other) == caches(row):
            return other
    return candidates[0] if candidates else None


HEADER = (["Lesson", "Caches"] + ["req/s c=%s" % c for c in CONCURRENCY]
          + ["× nginx c=%s" % REFERENCE, "× http.server c=%s" % REFERENCE,
             "Hold: byte-exact", "Hold time", "Peak memory"])


def table_row(row, rows, with_lesson):
    label = html.escape(row["name"])  # the Caches column says which run: no label needed
    variant = " (%s)" % row["variant"] if row.get("variant") else ""  # lesson 15's workers
    first = "<th scope=\"row\">%s</th>" % label if with_lesson else ""
    if "throughput" not in row:
        reason = row.get("failed") or row.get("skipped") or "no figures"
        return "<tr>%s<td>%s</td><td colspan=\"%d\">not measured: %s</td></tr>" % (
            first, caches(row) + html.escape(variant), len(HEADER) - 2, html.escape(str(reason)))
    cells = [caches(row) + variant]
    cells += [requests_per_second(row, c) for c in CONCURRENCY]
    value = median(row, REFERENCE)
    cells.append(ratio(value, median(anchor(rows, "nginx", row), REFERENCE)))
    cells.append(ratio(value, median(anchor(rows, "http.server", row), REFERENCE)))
    cells += hold_cells(row)
    tds = "".join("<td class=\"num\">%s</td>" % html.escape(cell) for cell in cells)
    return "<tr>%s%s</tr>" % (first, tds)


def environment_line(env):
    settings = env.get("settings", {})
    pinned = ("server on CPU %s, load on CPU %s" % (env["server_cpu"], env["load_cpu"])
              if env.get("server_cpu") is not None else "server and load not pinned")
    parts = ["python3 -m bench.run%s, %s" % (" --quick" if env.get("quick") else "",
                                             env.get("date", "?")),
             "%s, %s CPUs (%s), Python %s" % (env.get("system", "?"), env.get("cpus", "?"),
                                               env.get("cpu_model", "?"), env.get("python", "?")),
             pinned,
             "wrk median of %s × %s s; hold: %s connections" % (
                 settings.get("wrk_runs", "?"), settings.get("wrk_seconds", "?"),
                 settings.get("hold", "?"))]
    return "; ".join(html.escape(str(part)) for part in parts)


def region(results, stems):
    """The HTML between the markers for the lessons named in stems."""
    if results is None:
        body = "<p class=\"bench-missing\">%s</p>" % html.escape(MISSING)
        return "%s\n%s\n%s" % (BEGIN, body, END)
    env, rows = results[0], results[1:]
    mine = [row for stem in stems for row in rows if row.get("name") == stem]
    mine.sort(key=lambda row: (stems.index(row["name"]), row.get("variant") or "",
                               caches(row) == "off"))
    with_lesson = len(stems) > 1
    header = HEADER if with_lesson else HEADER[1:]
    lines = [BEGIN]
    if not mine:
        lines.append("<p class=\"bench-missing\">%s</p>" % html.escape(
            "Not in the committed run (bench/RESULTS.json): python3 -m bench.run"))
    else:
        lines += ["<div class=\"table-scroll\">",
                  "<table class=\"bench\">",
                  "<thead><tr>%s</tr></thead>" % "".join(
                      "<th scope=\"col\">%s</th>" % html.escape(cell) for cell in header),
                  "<tbody>"]
        lines += [table_row(row, rows, with_lesson) for row in mine]
        lines += ["</tbody>", "</table>", "</div>"]
    lines.append("<p class=\"muted bench-source\">From <code>bench/RESULTS.json</code>: %s.</p>"
                 % environment_line(env))
    lines.append(END)
    return "\n".join(lines)


# -- Pages ------------------------------------------------------------------------------

def stems_for(page):
    """Which lessons' rows a page shows: its own, or all of them on the index."""
    page = Path(page)
    return server_lessons() if page.name == "index.html" else [page.stem]


def filled(text, results, stems):
    """text with its marked region replaced; ValueError if it has not exactly one."""
    found = REGION.findall(text)
    if len(found) != 1:
        raise ValueError("%d bench regions (want exactly one)" % len(found))
    new = region(results, stems)
    return REGION.sub(lambda match: new, text)


def pages():
    return [page_path(stem) for stem in server_lessons()] + [INDEX]


def out_of_date(results):
    """[(page, problem)] for every page that is missing or differs from what we would write."""
    problems = []
    for page in pages():
        if not page.is_file():
            problems.append((page, "missing"))
            continue
        text = page.read_text(encoding="utf-8")
        try:
            if filled(text, results, stems_for(page)) != text:
                problems.append((page, "figures differ from the committed run"))
        except ValueError as error:
            problems.append((page, str(error)))
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a page is missing or out of date")
    parser.add_argument("--results", default=str(RESULTS),
                        help="the run to show (default: bench/RESULTS.json)")
    args = parser.parse_args(argv)
    results = load_results(args.results)
    if results is None:
        print("%s: not found; the pages will say: %s" % (args.results, MISSING))
    if args.check:
        problems = out_of_date(results)
        for page, problem in problems:
            print("%s: %s" % (page.relative_to(REPO), problem))
        if problems:
            print("run: python3 -m tools.lesson_pages")
        return 1 if problems else 0
    status = 0
    for page in pages():
        if not page.is_file():
            print("%s: missing" % page.relative_to(REPO))
            status = 1
            continue
        text = page.read_text(encoding="utf-8")
        try:
            new = filled(text, results, stems_for(page))
        except ValueError as error:
            print("%s: %s" % (page.relative_to(REPO), error))
            status = 1
            continue
        if new != text:
            page.write_text(new, encoding="utf-8")
            print("%s: updated" % page.relative_to(REPO))
    return status


if __name__ == "__main__":
    sys.exit(main())
