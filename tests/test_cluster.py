"""`dynocc mine --address` joins a Ray cluster that is already running (a `ray start --head` on 127.0.0.1).

The head is started by the test in its own process group and torn down with it, so no other
test's Ray is touched. The driver is killed mid-run (SIGKILL, no chance to clean up) and the same
command is run again: the rows must equal those of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dynocc.factory.io.decode import write_video
from dynocc.factory.testing.synthetic import make_scene
from dynocc.factory.io.writer import read_frames

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    port = _free_port()
    log = open(tmp_path_factory.mktemp("head") / "head.log", "w")
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True,
    )
    deadline = time.time() + 90
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert head.poll() is None, "ray start --head exited early"
        time.sleep(0.5)
    else:
        pytest.fail("the Ray head did not come up")
    time.sleep(2)  # the raylet registers just after the GCS port opens
    yield f"127.0.0.1:{port}"
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    log.close()


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("videos")
    paths = []
    for seed in range(4):
        scene = make_scene(seed=seed, height=160, width=224, n_frames=20, n_static=0)
        write_video(scene.frames, root / f"clip{seed}.mp4")
        paths.append(str(root / f"clip{seed}.mp4"))
    return paths


def _mine(videos, out, *extra) -> list[str]:
    return [sys.executable, "-m", "dynocc.cli", "mine", *videos, "--out", str(out), "--quiet", *extra]


def test_mine_joins_a_running_cluster_and_resumes_after_the_driver_is_killed(ray_head, videos, tmp_path):
    reference = tmp_path / "reference"
    r = subprocess.run(_mine(videos, reference, "--engine", "local"), env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    out = tmp_path / "cluster"
    cmd = _mine(videos, out, "--address", ray_head, "--actors", "1")
    driver = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and driver.poll() is None:
        if len(list((out / "stats").glob("*.json"))) >= 1:
            break
        time.sleep(0.05)
    killed = driver.poll() is None
    if killed:
        driver.kill()  # SIGKILL: no handler runs, no cleanup
    driver.wait(30)
    time.sleep(1)

    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    if killed:
        assert "already done:" in r.stdout
    got, want = read_frames(str(out)), read_frames(str(reference))
    keys = list(zip(got["video_id"].to_pylist(), got["frame_index"].to_pylist()))
    assert len(keys) == len(set(keys)), "duplicate (video_id, frame_index)"
    assert got.sort_by([("video_id", "ascending"), ("frame_index", "ascending")]).equals(
        want.sort_by([("video_id", "ascending"), ("frame_index", "ascending")])
    )
