#!/usr/bin/env python3
"""Execute the course notebooks and export them as HTML pages and reveal.js slides.

    python3 notebooks/export.py            # the full run an instructor presents (several minutes)
    QUICK=1 python3 notebooks/export.py    # the short run CI uses (about two minutes)
    python3 notebooks/export.py 01_http_structure --output /tmp/out

writes, for each notebook NAME:

    html/notebooks/NAME.html         the executed notebook, plots included
    html/notebooks/NAME.slides.html  the same as reveal.js slides (each cell's slide
                                     type: slide / subslide / fragment / skip; cells
                                     tagged hide-input show only their output)
    html/notebooks/_static/          reveal.js, require.js and jQuery, so the
                                     slides work offline

so that every lesson server serves them at http://127.0.0.1:7890/notebooks/NAME.html.
The committed .ipynb files stay without outputs: the executed copies are only
rendered, never written back.

The offline assets come from the npm registry (packages reveal.js, requirejs,
jquery, pinned below), installed once into notebooks/.offline/ (git-ignored).
Without npm, ``--cdn`` renders slides that load them from unpkg instead.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter, SlidesExporter
from nbconvert.preprocessors import TagRemovePreprocessor

NOTEBOOKS = Path(__file__).resolve().parent
REPO = NOTEBOOKS.parent
OUTPUT = REPO / "html" / "notebooks"
TEMPLATES = NOTEBOOKS / "templates"
OFFLINE = NOTEBOOKS / ".offline"  # npm's install folder, git-ignored
NPM_PACKAGES = ["reveal.js@4.6.1", "requirejs@2.3.7", "jquery@3.7.1"]
ALL = ["01_http_structure", "02_c10k"]
CELL_TIMEOUT = 900  # seconds; the full C10K run has cells that load servers for minutes


def execute(name, quick, cell_timeout=CELL_TIMEOUT, env=None):
    """Run a notebook top to bottom in a fresh kernel; return the executed copy.

    A failing cell raises nbclient's CellExecutionError.  QUICK (and any
    variables in env) reach the kernel, and the servers it starts, through
    its environment.
    """
    notebook = nbformat.read(NOTEBOOKS / (name + ".ipynb"), as_version=4)
    client = NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=dict(os.environ, **(env or {}), QUICK="1" if quick else "0"))
    return notebook


def offline_assets(output):
    """Copy reveal.js, require.js and jQuery next to the slides; return their URLs."""
    modules = OFFLINE / "node_modules"
    if not all((modules / package.rsplit("@", 1)[0]).is_dir() for package in NPM_PACKAGES):
        npm = shutil.which("npm")
        if not npm:
            raise SystemExit("npm is needed once to fetch reveal.js for offline slides "
                             "(apt-get install npm), or run with --cdn.")
        subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                        str(OFFLINE), *NPM_PACKAGES], check=True, stdout=subprocess.DEVNULL)
    static = output / "_static"
    reveal = static / "reveal.js"
    if static.exists():
        shutil.rmtree(static)
    for part in ["dist/reveal.css", "dist/reset.css", "dist/reveal.js", "dist/theme/white.css",
                 "dist/theme/fonts/source-sans-pro", "plugin/notes/notes.js"]:
        source, target = modules / "reveal.js" / part, reveal / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    shutil.copy2(modules / "requirejs" / "require.js", static / "require.js")
    shutil.copy2(modules / "jquery" / "dist" / "jquery.min.js", static / "jquery.min.js")
    # Relative URLs: the slides work from file:// and from any lesson server.
    return {"reveal_url_prefix": "_static/reveal.js", "require_js_url": "_static/require.js",
            "jquery_url": "_static/jquery.min.js",
            "reveal_theme": "white"}  # nbconvert's default, "simple", fetches web fonts


def export(names, output, quick, cdn=False):
    output.mkdir(parents=True, exist_ok=True)
    slide_urls = {} if cdn else offline_assets(output)
    page = HTMLExporter(extra_template_basedirs=[str(TEMPLATES)], template_name="course_html")
    # reveal_scroll: a long code cell scrolls inside its slide instead of running off it.
    slides = SlidesExporter(extra_template_basedirs=[str(TEMPLATES)], reveal_scroll=True,
                            template_name="reveal" if cdn else "course_slides", **slide_urls)
    # Cells tagged hide-input (plotting, tables, plumbing) show only their output on a slide;
    # the HTML page keeps their code.
    slides.register_preprocessor(
        TagRemovePreprocessor(remove_input_tags={"hide-input"}, enabled=True), enabled=True)
    written = []
    for name in names:
        started = time.monotonic()
        notebook = execute(name, quick)
        resources = {"metadata": {"name": name}}
        for exporter, suffix in ((page, ".html"), (slides, ".slides.html")):
            body, _ = exporter.from_notebook_node(notebook, resources=resources)
            target = output / (name + suffix)
            target.write_text(body, encoding="utf-8")
            written.append(target)
        print("%s: executed and exported in %.0f s" % (name, time.monotonic() - started))
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", default=ALL, metavar="NAME",
                        help="notebooks to export (default: %s)" % " ".join(ALL))
    parser.add_argument("--output", type=Path, default=OUTPUT,
                        help="folder for the HTML (default: html/notebooks)")
    parser.add_argument("--quick", action="store_true",
                        help="the short CI run (also QUICK=1 in the environment)")
    parser.add_argument("--cdn", action="store_true",
                        help="slides load reveal.js from a CDN (no npm needed, not offline)")
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("QUICK", "").strip().lower() not in ("", "0", "no", "false")
    for path in export(args.names, args.output, quick, args.cdn):
        print("wrote", path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
