"""The course notebooks run top to bottom, are committed clean, and export for the site.

Each notebook is executed in a fresh kernel with QUICK=1 (the short run);
a failing cell fails its test with the cell's traceback.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from servers import REPO

NOTEBOOKS = REPO / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
export = pytest.importorskip("export", reason="nbconvert/nbclient are needed for the notebooks")
from nbclient.exceptions import CellExecutionError  # noqa: E402

NAMES = ["01_http_structure", "02_c10k"]
QUICK_CELL_TIMEOUT = 150  # seconds; the whole QUICK run of 02_c10k stays under two minutes
RUN_MARK = "COURSE_NOTEBOOK_RUN"


def processes_marked(mark):
    """pid -> command line of every process whose environment carries RUN_MARK=mark.

    The kernel gets the mark, and every server it starts inherits it: this
    finds exactly the processes one notebook run left behind, whatever other
    servers run on the machine.
    """
    needle = ("%s=%s" % (RUN_MARK, mark)).encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                    found[int(entry.name)] = command.decode("utf-8", "replace")
            except OSError:
                continue
    return found


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_no_outputs(name):
    notebook = json.loads((NOTEBOOKS / (name + ".ipynb")).read_text(encoding="utf-8"))
    dirty = [index for index, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, "cells %s carry outputs: clear them before committing" % dirty


@pytest.mark.parametrize("name", NAMES)
def test_notebook_cells_have_slide_types(name):
    notebook = json.loads((NOTEBOOKS / (name + ".ipynb")).read_text(encoding="utf-8"))
    untyped = [index for index, cell in enumerate(notebook["cells"])
               if "slide_type" not in cell.get("metadata", {}).get("slideshow", {})]
    assert notebook["cells"][0]["metadata"]["slideshow"]["slide_type"] == "slide"
    assert not untyped, "cells %s have no slide type for the reveal.js export" % untyped


def cell_output(notebook, cell_id):
    """Everything one cell showed: its printed text and its HTML tables, as one string."""
    [cell] = [cell for cell in notebook.cells if cell.get("id") == cell_id]
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/html", ""))
    return "".join("".join(part) if isinstance(part, list) else part for part in parts)


def table_row(text, first_cell):
    """The cells of the HTML table row that starts with first_cell."""
    row = re.search(r"<tr><td>%s</td>(.*?)</tr>" % re.escape(first_cell), text)
    assert row, "no row for %s in:\n%s" % (first_cell, text)
    return re.findall(r"<td>(.*?)</td>", row[1])


def check_c10k_outputs(notebook):
    """Notebook 02 raises its descriptor limit, counts context switches, and shows the stall."""
    setup = cell_output(notebook, notebook.cells[1].get("id"))
    assert re.search(r"descriptors per process: soft limit \d+", setup), setup
    # Context switches per 1,000 requests, for a process, a thread and an event loop per client.
    switches = cell_output(notebook, "context-switches-table")
    per_thousand = {}
    for stem in ("08_static_fork", "10_static_threading", "13_static_epoll"):
        cells = table_row(switches, stem)
        assert int(cells[1]) > 0 and int(cells[2]) > 0, cells  # requests and switches counted
        per_thousand[stem] = float(cells[3])
    assert per_thousand["13_static_epoll"] < per_thousand["08_static_fork"], per_thousand
    # Memory per connection, times ten million, for every server that held 100 connections.
    assert "GiB for 10 M connections" in cell_output(notebook, "memory-10m-table")
    # One CPU-bound request: lesson 08 keeps serving, the event loops 11 and 13 stall.
    stall = cell_output(notebook, "cpu-stall-table")
    assert table_row(stall, "08_static_fork")[-1] == "keeps serving", stall
    stalled = ["11_static_gevent", "13_static_epoll"]
    stalled += ["14_static_asyncio"] if "<td>14_static_asyncio</td>" in stall else []
    for stem in stalled:
        assert table_row(stall, stem)[-1] == "stalled for the whole computation", stall


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom_and_leaves_no_server_behind(name):
    mark = uuid.uuid4().hex
    try:
        notebook = export.execute(name, quick=True, cell_timeout=QUICK_CELL_TIMEOUT,
                                  env={RUN_MARK: mark})
    except CellExecutionError as error:
        pytest.fail("a cell of %s failed:\n%s" % (name, error), pytrace=False)
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors
    if name == "02_c10k":
        check_c10k_outputs(notebook)
    left = processes_marked(mark)
    assert not left, "processes still running after the notebook: %s" % left


@pytest.mark.timeout(300)
def test_export_writes_an_offline_page_and_slides_with_the_plots(tmp_path):
    if shutil.which("npm") is None and not (export.OFFLINE / "node_modules").is_dir():
        pytest.skip("npm is needed once to fetch reveal.js for offline slides")
    written = export.export(["01_http_structure"], tmp_path, quick=True)
    assert sorted(path.name for path in written) == [
        "01_http_structure.html", "01_http_structure.slides.html"]
    page = (tmp_path / "01_http_structure.html").read_text(encoding="utf-8")
    slides = (tmp_path / "01_http_structure.slides.html").read_text(encoding="utf-8")
    for html in (page, slides):
        assert "data:image/png;base64," in html  # the matplotlib plot
        assert "data:image/svg+xml;base64," in html  # the request/response diagram
        assert "Traceback" not in html
        external = re.findall(r"""(?:src|href)=["'](?:https?:)?//[^"']+""", html)
        scripts = [link for link in external if re.search(r"\.(js|css|mjs)\b", link)]
        assert not scripts, "assets loaded from the network: %s" % scripts
    assert 'class="reveal"' in slides
    for asset in re.findall(r"""(?:src|href)=["'](_static/[^"']+)""", slides):
        assert (tmp_path / asset).is_file(), asset
    assert (tmp_path / "_static/reveal.js/plugin/notes/notes.js").is_file()


def test_servers_of_a_killed_kernel_are_stopped_by_the_next_kernel():
    """A kernel killed outright runs no atexit; the next one to import course_lab sweeps up."""
    killed_kernel = (
        "import os, course_lab\n"
        "server = course_lab.LessonServers().start('06_static_single')\n"
        "print(server.pid, flush=True)\n"
        "os._exit(0)  # like SIGKILL: no atexit, no final cell\n")
    run = subprocess.run([sys.executable, "-c", killed_kernel], cwd=NOTEBOOKS, capture_output=True,
                         text=True, timeout=60)
    orphan = int(run.stdout.split()[0])
    try:
        assert Path("/proc/%d" % orphan).exists(), "the server should outlive its killed kernel"
        subprocess.run([sys.executable, "-c", "import course_lab"], cwd=NOTEBOOKS, check=True,
                       timeout=60)
        state = (Path("/proc/%d/stat" % orphan).read_text().split()[2]
                 if Path("/proc/%d" % orphan).exists() else "gone")
        assert state in ("gone", "Z"), "the next kernel left the orphaned server running"
    finally:
        try:
            os.killpg(orphan, signal.SIGKILL)
        except ProcessLookupError:
            pass
