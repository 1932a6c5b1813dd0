"""Ray on the console of ``dynocc mine``: Ray's INFO logs and progress bars hidden, its errors one line each.

Isolated here because part of it leans on Ray's *private* API: the raylet's error messages, which
Ray prints to stdout, are caught by replacing ``ray._private.worker.print_to_stdstream``
(:func:`private_ray_printer`). Another Ray version may not have it; then its printing is left alone
(``tests/unit/test_ray_console.py`` fails when the hook disappears, so an upgrade notices). ``--ray-logs``
turns all of this off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from typing import Iterator


def private_ray_printer():
    """The Ray module whose ``print_to_stdstream(data, ignore_prefix)`` prints what the raylet pushes to
    the driver (Ray 2.60: ``ray._private.worker``)."""
    import ray._private.worker as ray_worker

    return ray_worker


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def short_error(e: BaseException) -> str:
    """``Type: first line`` of an exception, plus its last line when that differs: a Ray error
    carries the remote traceback, whose last line names the real cause."""
    lines = [ln.strip() for ln in _ANSI.sub("", str(e)).strip().splitlines() if ln.strip()]
    text = f"{type(e).__name__}: {lines[0][:300] if lines else ''}"
    if len(lines) > 1 and lines[-1] != lines[0]:
        text += f" ... {lines[-1][:300]}"
    return text


class OneLineHandler(logging.Handler):
    """Ray Data errors on stderr as one line each, without the traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage().splitlines()[0] if record.getMessage() else ""
            if record.exc_info and record.exc_info[1] is not None:
                msg += f" ({short_error(record.exc_info[1])})"
            print(f"ray: {msg}", file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


# Known-benign lines the Ray core (C++) prints on the driver's stderr, dropped by quiet_ray.
# Ray 2.60 logs this ERROR-level line for every Ray Data actor pool, because Ray Data passes its
# DataContext to the actors as an object ref and enables actor restarts; Ray Data keeps that ref
# alive for the whole run, so the restart it warns about cannot fail here.
BENIGN_STDERR = (b"has constructor arguments in the object store and max_restarts > 0",)


@contextlib.contextmanager
def drop_stderr_lines(patterns: tuple[bytes, ...]) -> Iterator[None]:
    """Filter lines containing ``patterns`` out of file descriptor 2 (C++ logs bypass Python).

    Everything else is forwarded at once, chunk by chunk (progress bars are not held back).
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):
        yield
        return
    r, w = os.pipe()
    os.dup2(w, 2)
    os.close(w)

    def pump() -> None:
        with os.fdopen(r, "rb", buffering=0) as src:
            while True:
                chunk = src.read(65536)
                if not chunk:
                    return
                if any(p in chunk for p in patterns):
                    chunk = b"".join(line for line in chunk.splitlines(keepends=True)
                                     if not any(p in line for p in patterns))
                try:
                    os.write(saved, chunk)
                except OSError:
                    pass

    thread = threading.Thread(target=pump, name="dynocc-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump drains it and stops
        thread.join(timeout=5)
        os.close(saved)


@contextlib.contextmanager
def quiet_ray(enabled: bool) -> Iterator[None]:
    """Hide Ray's INFO logs and progress bars; print its errors on stderr as single lines.

    Ray Data's console handler is muted and replaced by :class:`OneLineHandler` at ERROR level;
    error messages the raylet pushes to the driver (worker crashes, task retries), which Ray
    prints to *stdout*, go to stderr as their first two sentences instead; one known-benign C++
    line is dropped (:data:`BENIGN_STDERR`). Everything is restored on
    exit. Ray's full logs stay in its session folder (``/tmp/ray/session_latest/logs``).
    """
    from ray.data import DataContext

    if not enabled:
        yield
        return
    ctx = DataContext.get_current()
    saved_ctx = {}
    for name, value in (("enable_progress_bars", False), ("print_on_execution_start", False),
                        ("enable_auto_log_stats", False)):
        if hasattr(ctx, name):
            saved_ctx[name] = getattr(ctx, name)
            setattr(ctx, name, value)
    data_logger = logging.getLogger("ray.data")
    muted = [(h, h.level) for h in data_logger.handlers
             if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    for h, _ in muted:
        h.setLevel(logging.CRITICAL + 1)
    one_line = OneLineHandler(level=logging.ERROR)
    data_logger.addHandler(one_line)
    patched = None
    try:
        ray_worker = private_ray_printer()
        original = ray_worker.print_to_stdstream

        def to_stderr(data: dict, ignore_prefix: bool) -> None:
            if data.get("pid") == "raylet" and not data.get("is_err"):
                for line in data.get("lines", []):
                    text = " ".join(line.split())
                    if text:  # the first two sentences: what happened and what Ray does about it
                        short = ". ".join(text.split(". ")[:2]).rstrip(".")
                        print(f"ray: {short[:240]}.", file=sys.stderr, flush=True)
                return
            original(data, ignore_prefix)

        ray_worker.print_to_stdstream = to_stderr
        patched = (ray_worker, original)
    except (ImportError, AttributeError):  # another Ray version: leave its printing alone
        pass
    try:
        with drop_stderr_lines(BENIGN_STDERR):
            yield
    finally:
        if patched:
            patched[0].print_to_stdstream = patched[1]
        data_logger.removeHandler(one_line)
        for h, level in muted:
            h.setLevel(level)
        for k, v in saved_ctx.items():
            setattr(ctx, k, v)
