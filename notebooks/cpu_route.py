"""Start a course server lesson with one extra, CPU-bound path: for the C10K notebook only.

    python3 notebooks/cpu_route.py lessons/13_static_epoll.py 0 --bind 127.0.0.1 ...

The lesson's file is not changed: it is imported as a module, its answer()
(the shared "http" block's) is wrapped, and its main() runs as usual.  A GET of
/cpu-burn?seconds=S spins the CPU in Python for S seconds (a stand-in for a
request whose work is computation, such as rendering a big template or
resizing an image), then answers as for /index.html.  Every other path is
answered exactly as the lesson answers it.
"""

import importlib.util
import sys
import time
import urllib.parse
from pathlib import Path


def load_lesson(path):
    spec = importlib.util.spec_from_file_location("lesson_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)  # not "__main__": the lesson's main() does not run yet
    return module


def add_cpu_route(lesson):
    plain_answer = lesson.answer

    def answer(request, keep_alive, site):
        path, _, query = request.target.partition("?")
        if path == "/cpu-burn":
            seconds = float(urllib.parse.parse_qs(query).get("seconds", ["1"])[0])
            print("cpu-burn: %.1f s starts" % seconds, file=sys.stderr, flush=True)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:  # pure Python: holds the CPU (and the GIL)
                pass
            request = lesson.Request(request.method, "/index.html", request.version,
                                     request.headers)  # a new one: a cached head stays as it was
        return plain_answer(request, keep_alive, site)

    lesson.answer = answer


if __name__ == "__main__":
    lesson = load_lesson(Path(sys.argv[1]).resolve())
    add_cpu_route(lesson)
    sys.argv[0:2] = [sys.argv[1]]
    sys.exit(lesson.main(sys.argv[1:]))
