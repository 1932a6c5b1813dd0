"""A threaded HTTP server on 127.0.0.1 that waits before every answer, and counts what it saw.

Stands in for a slow web host: ``benchmarks/bench_stream.py`` measures the Ray engine's fetch stage
against it (2 s per video), and ``tests/integration/test_ray_engine.py`` checks that downloads
overlap without exceeding ``fetch_concurrency``. ``state`` holds ``requests`` (count per method),
``max_in_flight`` (most requests being answered at once) and ``log`` ((received, answered)
``time.perf_counter()`` pairs). Built on the standard library's ``http.server``: serving files
from a folder needs nothing more.
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path

__all__ = ["DelayedServer"]


class _DelayedHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, state: dict, **kwargs):
        self.state = state
        super().__init__(*args, **kwargs)

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _delayed(self, serve) -> None:
        st = self.state
        with st["lock"]:
            st["requests"][self.command] = st["requests"].get(self.command, 0) + 1
            st["in_flight"] += 1
            st["max_in_flight"] = max(st["max_in_flight"], st["in_flight"])
        start = time.perf_counter()
        try:
            time.sleep(st["delay"])
            serve()
        finally:
            with st["lock"]:
                st["in_flight"] -= 1
                st["log"].append((start, time.perf_counter()))

    def do_GET(self):  # noqa: N802
        self._delayed(super().do_GET)

    def do_HEAD(self):  # noqa: N802
        self._delayed(super().do_HEAD)


class DelayedServer:
    """A threaded loopback HTTP server over ``root`` that waits ``delay`` s before each answer."""

    def __init__(self, root: Path | str, delay: float):
        self.state = {"lock": threading.Lock(), "delay": delay, "requests": {}, "in_flight": 0, "max_in_flight": 0,
                      "log": []}
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_DelayedHandler, state=self.state, directory=str(root)))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="delayed-http", daemon=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def __enter__(self) -> "DelayedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def reset_counts(self) -> None:
        with self.state["lock"]:
            self.state["requests"], self.state["max_in_flight"], self.state["log"] = {}, 0, []
