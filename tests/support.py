"""Helpers shared by the tests in tests/unit and tests/integration (importable as ``support``:
pyproject's ``[tool.pytest.ini_options] pythonpath`` puts tests/ on the path).

``REPO``, ``SHARED``   the repository root and the ``shared/`` folder beside it (data, weights, CRDs).
``cli_env(**extra)``   the environment a ``dynocc`` subprocess runs in: this one, plus no Ray token,
                       no usage stats, unbuffered output, and no ``RAY_ADDRESS`` (a CLI test never
                       joins a cluster it did not name); ``extra`` is set on top.
``cli_cmd(*args)``     ``[python, -m, dynocc.cli, *args]`` with this interpreter.
``run_cli(*args)``     runs that command to the end and returns the ``CompletedProcess`` (text output).
``start_cli(*args)``   starts it (``Popen``, stdout and stderr piped, text) for tests that interrupt it.
``free_port()``        a TCP port on 127.0.0.1 that was free a moment ago.
``wait_for(cond)``     polls ``cond()`` until it returns something truthy (returned) or a deadline passes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, TypeVar

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

T = TypeVar("T")


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def cli_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "dynocc.cli", *map(str, args)]


def run_cli(*args, cwd=None, env: Optional[dict] = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``dynocc ARGS`` in a subprocess; ``env`` holds variables to set on top of :func:`cli_env`."""
    return subprocess.run(cli_cmd(*args), capture_output=True, text=True, cwd=cwd, env=cli_env(**(env or {})),
                          timeout=timeout)


def start_cli(*args, env: Optional[dict] = None, **popen_kwargs) -> subprocess.Popen:
    """``dynocc ARGS`` started in the background (stdout and stderr piped, text mode)."""
    return subprocess.Popen(cli_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(**(env or {})), **popen_kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05,
             alive: Optional[subprocess.Popen] = None) -> T:
    """Poll ``condition`` until it returns a truthy value and return that value.

    Fails (AssertionError naming ``what``) when ``timeout`` seconds pass first, or when the process
    ``alive`` exits before the condition holds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            value = condition()  # it may have come true just before the exit
            if value:
                return value
            raise AssertionError(f"{what}: the process exited (code {alive.returncode}) first")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)
