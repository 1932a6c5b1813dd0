"""`dynocc submit` against real services: a job spec read from S3 (moto; the Jobs API client still the
fake one), and real mining jobs submitted to a real Ray head with its dashboard / job server on
127.0.0.1, started in its own process group. The fast tests with the fake client: tests/unit/test_submit.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from dynocc import cli
from dynocc.factory.io.decode import write_video
from dynocc.factory.io.writer import read_frames
from dynocc.factory.testing.synthetic import make_scene
from ray_cluster import ray_cluster, ray_env
from support import run_cli, write_spec


def test_a_spec_on_object_storage_is_read_there(fake_jobs, s3, capsys):
    url = s3.put("specs/mine.yaml", yaml.safe_dump({"command": "mine", "inputs": [s3.url("videos/")],
                                                    "out": s3.url("out"), "engine": "ray"}))
    assert cli.main(["submit", url, "--address", "http://head:8265"]) == 0
    assert fake_jobs.submitted["entrypoint"] == f"dynocc mine --job {url}"
    assert "working_dir" not in (fake_jobs.submitted["runtime_env"] or {})


# --------------------------------------------------------------------------- a real Ray head


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head (2 CPUs) whose job server answers on 127.0.0.1 (tests/ray_cluster.py); ``path``:
    the PATH the job server needs (`ray`, `dynocc` of this venv)."""
    with ray_cluster(2) as c:
        yield SimpleNamespace(address=c.dashboard, path={"PATH": ray_env()["PATH"]})


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
