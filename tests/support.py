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

Test data and doubles used by a unit module and its integration counterpart:

``write_spec(path, **tree)``        a job spec YAML file.
``FakeJobs``                        a fake Ray Jobs client for `dynocc submit` (the ``fake_jobs`` fixture).
``some_frame_rows()``, ``some_failures()``   small valid shard rows (test_writer).
``write_small_root(out)``          two videos, a failure and an uncommitted item of small rows (test_query).
``ramp_row(n, rng)``                a frame row of a grey ramp with n ordered pairs (test_trainer_data).
``assert_views``, ``stereo_load_error``   checks of loaded stereo pairs (test_stereo_io).
``tiny_checkpoint(out)``            a checkpoint of a tiny ResNet-18 model (test_trainer_eval).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional, TypeVar

import numpy as np
import pytest
import yaml

from dynocc.factory.testing.procs import mining_workers

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


# --------------------------------------------------------------------------- job specs and `dynocc submit`


def busy_mining_workers(root_pid: int) -> list[int]:
    """:func:`mining_workers` running a mining task right now."""
    return mining_workers(root_pid, busy=True)


def kill_a_busy_mining_worker(root_pid: int, timeout: float = 120, alive=None) -> int:
    """SIGKILL one Ray worker under ``root_pid`` as soon as one is mining (a real crash: no
    handler runs); returns its pid."""
    import signal

    pids = wait_for(lambda: busy_mining_workers(root_pid), timeout=timeout, what="a busy mining worker",
                    interval=0.02, alive=alive)
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


def write_spec(path: Path, **tree) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


class FakeJobs:
    """Stands in for ray.job_submission.JobSubmissionClient; records what was submitted, and
    copies the uploaded folders while they exist (they are temporary)."""

    def __init__(self, tmp: Path, status: str = "SUCCEEDED", logs: str = "", message: str = ""):
        self.tmp, self.status, self.logs, self.message = tmp, status, logs, message
        self.submitted: dict = {}
        self.uploads: dict[str, Path] = {}
        self.count = 0

    def submit_job(self, **kw):
        self.submitted = kw
        self.count += 1
        env = kw.get("runtime_env") or {}
        for i, folder in enumerate([env.get("working_dir"), *env.get("py_modules", [])]):
            if folder and Path(folder).is_dir() and Path(folder) != REPO:
                copy = self.tmp / f"upload{self.count}-{i}" / Path(folder).name
                shutil.copytree(folder, copy)
                self.uploads[folder] = copy
        return kw.get("submission_id") or "raysubmit_fake"

    async def tail_job_logs(self, job_id):
        for line in self.logs.splitlines(keepends=True):
            yield line

    def get_job_status(self, job_id):
        from ray.job_submission import JobStatus

        return JobStatus(self.status)

    def get_job_info(self, job_id):
        return SimpleNamespace(status=self.status, message=self.message)

    def get_job_logs(self, job_id):
        return self.logs


# --------------------------------------------------------------------------- shard rows

WHEN = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def some_frame_rows(video="bikes", indices=range(5), n_pairs=4):
    from dynocc.schemas import frame_row

    rows = []
    for i in indices:
        rng = np.random.default_rng(i)
        rows.append(
            frame_row(
                "dynocc", video, i, bytes(rng.integers(0, 256, 64, dtype=np.uint8)), 40, 30,
                rng.integers(0, 30, n_pairs), rng.integers(0, 40, n_pairs),
                rng.integers(0, 30, n_pairs), rng.integers(0, 40, n_pairs), rng.integers(-1, 2, n_pairs),
            )
        )
    return rows


def some_failures(video="bikes"):
    from dynocc.schemas import failure_row

    return [failure_row(f"{video}.mp4", "mine", "too_few_frames", "only 2 frames", video_id=video, timestamp=WHEN)]


SMALL_W, SMALL_H = 40, 30


def small_video_rows(video: str, n_frames: int, n_pairs: int, seed: int, dataset: str = "dynocc") -> list[dict]:
    """Rows of a made-up video: ``n_pairs + i`` random pairs on frame i (fake JPEG bytes, 40x30)."""
    from dynocc.schemas import frame_row

    W, H = SMALL_W, SMALL_H
    rows = []
    for i in range(n_frames):
        rng = np.random.default_rng(seed * 100 + i)
        n = n_pairs + i
        rows.append(frame_row(
            dataset, video, i, b"\xff\xd8fakejpeg" + bytes([i]), W, H,
            rng.integers(0, H, n), rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, W, n),
            rng.integers(-1, 2, n),
        ))
    return rows


def write_small_root(out: str, storage_options=None) -> dict:
    """Two committed videos, one committed failure, and one uncommitted item (no commit record);
    returns the committed rows by video id."""
    from dynocc.factory.io.writer import ShardWriter
    from dynocc.schemas import failure_row

    w = ShardWriter(out, storage_options=storage_options)
    a, b = small_video_rows("alpha", 4, 5, 1), small_video_rows("beta", 2, 7, 2)
    w.write_item("alpha.mp4", a, [], 1.0)
    w.write_item("beta.mp4", b, [], 1.0)
    fail = failure_row("broken.mp4", "decode", "not_a_video", "no video stream", video_id="broken",
                       timestamp="2024-01-02T03:04:05Z")
    w.write_item("broken.mp4", [], [fail], 0.1)
    # An item whose commit record never got written: its rows must not be seen.
    ghost = w.write_item("ghost.mp4", small_video_rows("ghost", 2, 3, 3), [], 1.0)
    w._r.fs.rm(w._r.path(ghost.commit))
    return {"alpha": a, "beta": b}


def small_root_pairs(rows_by_video: dict) -> list[tuple]:
    """The rows of the ``pairs`` view (PAIRS_COLUMNS order) that ``rows_by_video`` should give, sorted."""
    got = []
    for rows in rows_by_video.values():
        for r in rows:
            for k, pair in enumerate(zip(r["pair_ya"], r["pair_xa"], r["pair_yb"], r["pair_xb"], r["pair_ordinal"])):
                got.append((r["dataset"], r["video_id"], r["frame_index"], SMALL_W, SMALL_H, k, *map(int, pair),
                            None))  # confidence: these hand-made rows have none
    return sorted(got)


# --------------------------------------------------------------------------- stereo inputs

FAILURE_KEYS = {"input", "video_id", "stage", "error_type", "message", "attempts"}
JPEG_TOL = 6.0  # mean absolute error allowed after JPEG (quality 95); left vs right differ by ~39


def mae(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape and a.dtype == np.uint8
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def assert_views(got, want, tol: float = 0.0):
    """``got`` = (left, right) matches ``want`` within ``tol`` -- and not the swapped order."""
    (gl, gr), (wl, wr) = got, want
    assert gl.shape == gr.shape == wl.shape and gl.dtype == gr.dtype == np.uint8
    assert mae(gl, wl) <= tol and mae(gr, wr) <= tol
    assert mae(gl, wr) > 5 * max(tol, 1.0)  # the order is told apart, not just the content


def stereo_load_error(it, **kw):
    """The InputError that loading the stereo item ``it`` raises (its failure row checked)."""
    from dynocc.factory.io.decode import InputError
    from dynocc.factory.io.stereo_inputs import load_stereo_pair

    with pytest.raises(InputError) as info:
        load_stereo_pair(it, **kw)
    err = info.value
    assert set(err.to_failure(it.input, it.video_id)) == FAILURE_KEYS
    return err


# --------------------------------------------------------------------------- trainer data

RAMP_H, RAMP_W = 120, 160


def ramp_image() -> np.ndarray:
    """Grey ramp, brighter to the right: brightness stands for inverse depth (right = closer)."""
    q = np.linspace(40, 240, RAMP_W, dtype=np.float32)
    return np.repeat(np.repeat(q[None, :, None], RAMP_H, 0), 3, 2).astype(np.uint8)


def ramp_row(n: int, rng, stereo: bool = False, value: int | None = None, dataset: str = "ramp") -> dict:
    from dynocc.factory.core.stereo import inverse_depth_png
    from dynocc.schemas import frame_row
    from dynocc.trainer.synthetic import encode_jpeg

    H, W = RAMP_H, RAMP_W
    img = ramp_image() if value is None else np.full((H, W, 3), value, np.uint8)
    xa, xb = rng.integers(0, W, 4 * n), rng.integers(0, W, 4 * n)
    ok = np.abs(xa - xb) >= 8
    xa, xb = xa[ok][:n], xb[ok][:n]
    ya, yb = rng.integers(0, H, len(xa)), rng.integers(0, H, len(xa))
    ordinal = np.where(xa > xb, 1, -1)
    extra = {}
    if stereo:
        extra["depth_png"] = inverse_depth_png(ramp_image()[..., 0].astype(np.float32), np.ones((H, W), bool),
                                               np.zeros((H, W), bool))
    return frame_row(dataset, "v", 0, encode_jpeg(img, 95), W, H, ya, xa, yb, xb, ordinal, **extra)


# --------------------------------------------------------------------------- trainer checkpoints


def tiny_checkpoint(out: str, step: int = 7, **kw):
    """Save a checkpoint of a tiny ResNet-18 (decoder 8, head 4 channels) at ``step``; returns its TrainConfig."""
    from dynocc.trainer.checkpoint import save_checkpoint
    from dynocc.trainer.config import TrainConfig
    from dynocc.trainer.model import build_model

    cfg = TrainConfig.model_validate({"model": {"backbone": "resnet18", "decoder_channels": 8, "head_channels": 4},
                                      "data": {"image_size": 64}})
    model = build_model("resnet18", 8, 4)
    save_checkpoint(out, step, model.state_dict(), None, cfg.model_dump(), **kw)
    return cfg
