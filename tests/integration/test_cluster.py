"""`dynocc mine --address` joins a Ray cluster that is already running (a `ray start --head` on 127.0.0.1).

The head is started by the test in its own process group and torn down with it, so no other
test's Ray is touched. The driver is killed mid-run (SIGKILL, no chance to clean up) and the same
command is run again: the rows must equal those of an uninterrupted run.

The kill lands mid-run: each video takes about a second to mine and is its own task, and the
driver is killed as soon as the first commit record appears; the test checks that it was still
running then and that the rerun found some, but not all, videos done.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dynocc.factory.io.writer import read_frames
from support import cli_env, free_port, run_cli, start_cli, wait_for

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))
N_VIDEOS = 6


def _cpus_in_use(address: str) -> float | None:
    """CPUs held on the cluster by actors and tasks, as `ray status` reports them (None: no answer)."""
    r = subprocess.run([RAY, "status", f"--address={address}"], capture_output=True, text=True, env=cli_env(),
                       timeout=60)
    m = re.search(r"([\d.]+)/([\d.]+) CPU", r.stdout)
    return float(m.group(1)) if r.returncode == 0 and m else None


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("head") / "head.log"
    log = open(log_path, "w")
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=cli_env(), start_new_session=True,
    )
    try:
        # `ray start` says so once its raylet has registered with the GCS (output unbuffered: cli_env).
        try:
            wait_for(lambda: "Ray runtime started" in log_path.read_text(errors="replace"), timeout=90,
                     what="the Ray head", interval=0.2, alive=head)
        except AssertionError as e:
            pytest.fail(f"{e}\n{log_path.read_text(errors='replace')[-3000:]}", pytrace=False)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)
        log.close()


def _committed(out: Path) -> list[Path]:
    return list((out / "commits").glob("*.parquet")) if (out / "commits").is_dir() else []


def test_mine_joins_a_running_cluster_and_resumes_after_the_driver_is_killed(ray_head, synthetic_videos, tmp_path):
    names = [f"clip{seed}.mp4" for seed in range(N_VIDEOS)]
    videos = [str(p) for p in synthetic_videos(names, height=160, width=224, n_frames=40)]
    reference = tmp_path / "reference"
    r = run_cli("mine", *videos, "--out", reference, "--quiet", "--engine", "local")
    assert r.returncode == 0, r.stderr

    out = tmp_path / "cluster"
    cmd = ["mine", *videos, "--out", out, "--quiet", "--address", ray_head, "--actors", "2", "--items-per-task", "1"]
    driver = start_cli(*cmd)
    try:
        wait_for(lambda: _committed(out), timeout=180, what="the first committed item", alive=driver)
    except AssertionError as e:
        driver.kill()
        pytest.fail(f"{e}\n{driver.communicate(timeout=30)[1][-3000:]}", pytrace=False)
    driver.kill()  # SIGKILL: no handler runs, no cleanup
    driver.communicate(timeout=30)
    assert driver.returncode == -signal.SIGKILL  # it was still running: killed mid-job
    # The dead driver's actors are gone once the cluster holds no CPU any more.
    wait_for(lambda: _cpus_in_use(ray_head) == 0.0, timeout=120, what="the killed job's actors to go",
             interval=0.5)

    r = run_cli(*cmd)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "already done:" in r.stdout
    m = re.search(r"already done: (\d+)", r.stdout)
    assert m and 1 <= int(m.group(1)) < N_VIDEOS, r.stdout
    got, want = read_frames(str(out)), read_frames(str(reference))
    keys = list(zip(got["video_id"].to_pylist(), got["frame_index"].to_pylist()))
    assert len(keys) == len(set(keys)), "duplicate (video_id, frame_index)"
    assert got.sort_by([("video_id", "ascending"), ("frame_index", "ascending")]).equals(
        want.sort_by([("video_id", "ascending"), ("frame_index", "ascending")])
    )
