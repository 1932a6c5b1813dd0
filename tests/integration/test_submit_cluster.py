"""`dynocc submit` against real services: a job spec read from S3 (moto; the Jobs API client still the
fake one), and real mining jobs submitted to a real Ray head with its dashboard / job server on
127.0.0.1, started in its own process group. The fast tests with the fake client: tests/unit/test_submit.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from dynocc import cli
from dynocc.factory.io.decode import write_video
from dynocc.factory.io.writer import read_frames
from dynocc.factory.testing.synthetic import make_scene
from support import cli_env, free_port, run_cli, wait_for, write_spec


def test_a_spec_on_object_storage_is_read_there(fake_jobs, s3, capsys):
    url = s3.put("specs/mine.yaml", yaml.safe_dump({"command": "mine", "inputs": [s3.url("videos/")],
                                                    "out": s3.url("out"), "engine": "ray"}))
    assert cli.main(["submit", url, "--address", "http://head:8265"]) == 0
    assert fake_jobs.submitted["entrypoint"] == f"dynocc mine --job {url}"
    assert "working_dir" not in (fake_jobs.submitted["runtime_env"] or {})


# --------------------------------------------------------------------------- a real Ray head


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head --block` with the dashboard on 127.0.0.1, in its own process group and
    its own temp dir (so /tmp/ray/ray_current_cluster is not touched); killed at the end."""
    from ray._private.utils import get_dashboard_dependency_error

    missing = get_dashboard_dependency_error()
    if missing is not None:
        pytest.fail(f"the Ray dashboard / job server cannot start here: {missing} (it needs the ray[default] "
                    f"extras: pip install 'ray[default]==2.60.0')", pytrace=False)
    port, dashboard = free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayh-", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes
    venv_bin = str(Path(sys.executable).parent)
    path = {"PATH": venv_bin + os.pathsep + os.environ.get("PATH", "")}  # `ray` for the job server
    env = cli_env(**path)
    log = open(Path(temp_dir) / "head.log", "wb")
    proc = subprocess.Popen(
        [str(Path(venv_bin) / "ray"), "start", "--head", "--block", f"--port={port}", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard}", "--include-dashboard=true", "--num-cpus=2", "--disable-usage-stats",
         f"--temp-dir={temp_dir}"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        try:
            wait_for(lambda: _answers(f"{address}/api/version"), timeout=60, what="the Ray head's job server",
                     interval=0.5, alive=proc)
        except AssertionError as e:
            tail = (Path(temp_dir) / "head.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"the Ray head did not start ({e}):\n{tail}", pytrace=False)
        yield SimpleNamespace(address=address, path=path)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_submit_runs_a_mining_job_on_a_real_ray_cluster(ray_head, tmp_path):
    scene = make_scene(5, height=96, width=128, n_frames=10, n_static=0)
    write_video(scene.frames, tmp_path / "clip.mp4", crf=18)
    out = tmp_path / "mined"
    spec = write_spec(tmp_path / "local_job.yaml", command="mine", inputs=[str(tmp_path / "clip.mp4")], out=str(out),
                      engine="local", miner={"dataset": "submitted"})

    def dynocc_submit(path: Path) -> subprocess.CompletedProcess:
        return run_cli("submit", path, "--address", ray_head.address, env=ray_head.path)

    r = dynocc_submit(spec)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "videos ok: 1  failed: 0" in r.stdout  # the job's own output, streamed back
    assert "SUCCEEDED" in r.stderr
    table = read_frames(str(out))
    assert table.num_rows > 0 and set(table["dataset"].to_pylist()) == {"submitted"}
    assert (out / "_SUCCESS").exists()

    failing = write_spec(tmp_path / "failing_job.yaml", command="mine", inputs=[str(tmp_path / "missing.mp4")],
                         out=str(tmp_path / "failed"), engine="local")
    r = dynocc_submit(failing)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failed:" in r.stdout and "not_found" in r.stdout  # the miner's failure line, streamed
    assert "FAILED" in r.stderr
