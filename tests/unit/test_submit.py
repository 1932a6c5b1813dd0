"""`dynocc submit`: job specs sent to a Ray cluster through the Ray Jobs API.

These tests replace the Jobs API client by a fake one (conftest's ``fake_jobs``) and check what would
be submitted (entrypoint, uploaded files, runtime environment) and the exit codes. A spec on S3 and
real jobs on a real Ray head: tests/integration/test_submit_cluster.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dynocc import cli, submit
from support import REPO, FakeJobs, free_port, write_spec


@pytest.fixture
def spec(tmp_path) -> Path:
    return write_spec(tmp_path / "spec.yaml", command="mine", inputs=["s3://b/videos/"], out="s3://b/out",
                      engine="ray", actors=2)


def test_a_mining_spec_is_submitted_alone_and_its_logs_streamed(fake_jobs, spec, monkeypatch, capsys):
    fake_jobs.logs = "mining...\nvideos ok: 3  failed: 0\n"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    rc = cli.main(["submit", str(spec), "--address", "http://head:8265", "--env", "OMP_NUM_THREADS=2"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out == fake_jobs.logs
    assert "job raysubmit_fake submitted to http://head:8265: dynocc mine --job spec.yaml" in err
    assert "SUCCEEDED" in err
    kw = fake_jobs.submitted
    assert kw["entrypoint"] == "dynocc mine --job spec.yaml"
    env = kw["runtime_env"]
    assert env["env_vars"] == {"RAY_AUTH_MODE": "disabled", "AWS_ENDPOINT_URL": "http://minio:9000",
                               "OMP_NUM_THREADS": "2"}
    assert "py_modules" not in env and "pip" not in env
    uploaded = fake_jobs.uploads[env["working_dir"]]
    assert sorted(p.name for p in uploaded.iterdir()) == ["spec.yaml"]  # the spec alone
    assert (uploaded / "spec.yaml").read_text() == spec.read_text()
    assert kw["metadata"] == {"dynocc_spec": "spec.yaml", "dynocc_command": "mine"}
    assert not Path(env["working_dir"]).exists()  # the temp folder is gone after submission


def test_a_failed_or_stopped_job_exits_1_with_its_message(fake_jobs, spec, capsys):
    fake_jobs.status, fake_jobs.message = "FAILED", "Job entrypoint command failed with exit code 3"
    fake_jobs.logs = "failed: x\n"
    assert cli.main(["submit", str(spec), "--address", "http://head:8265"]) == 1
    out, err = capsys.readouterr()
    assert out == "failed: x\n"
    assert "job raysubmit_fake FAILED: Job entrypoint command failed with exit code 3" in err
    fake_jobs.status, fake_jobs.message = "STOPPED", ""
    assert cli.main(["submit", str(spec), "--address", "http://head:8265"]) == 1
    assert "STOPPED: (no message)" in capsys.readouterr().err


def test_logs_are_polled_when_the_stream_breaks_without_repeating_lines(fake_jobs, spec, monkeypatch, capsys):
    fake_jobs.logs = "one\ntwo\nthree\n"

    async def broken_tail(job_id):
        yield "one\n"
        raise ConnectionError("websocket closed")

    monkeypatch.setattr(fake_jobs, "tail_job_logs", broken_tail)
    assert cli.main(["submit", str(spec), "--address", "http://head:8265"]) == 0
    out, err = capsys.readouterr()
    assert out == "one\ntwo\nthree\n"
    assert "log stream unavailable (ConnectionError: websocket closed); polling" in err


def test_no_wait_returns_after_submitting(fake_jobs, spec, capsys):
    fake_jobs.status = "RUNNING"
    assert cli.main(["submit", str(spec), "--address", "http://head:8265", "--no-wait",
                     "--submission-id", "mine-1", "--pip", "yt-dlp==2025.1.1", "--entrypoint-num-cpus", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "mine-1"
    assert "ray job logs --follow --address http://head:8265 mine-1" in err
    assert fake_jobs.submitted["runtime_env"]["pip"] == ["yt-dlp==2025.1.1"]
    assert fake_jobs.submitted["entrypoint_num_cpus"] == 1


def test_working_dir_ships_the_project_with_one_complete_dynocc_package(fake_jobs, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    seen = {}

    def check_import(**kw):  # while the staged copy exists: first on PYTHONPATH, it must import as dynocc
        r = subprocess.run([sys.executable, "-c", "import dynocc.factory.engine.ray_engine as m, dynocc.cli as c, "
                            "dynocc.jobspec; print(m.__file__); print(c.__file__)"],
                           capture_output=True, text=True, cwd=tempfile.gettempdir(),
                           env=dict(os.environ, PYTHONPATH=kw["runtime_env"]["working_dir"]), timeout=120)
        seen["import"] = r
        return FakeJobs.submit_job(fake_jobs, **kw)

    monkeypatch.setattr(fake_jobs, "submit_job", check_import)
    assert cli.main(["submit", "jobs/mine_urls.yaml", "--address", "http://head:8265", "--working-dir", "."]) == 0
    kw = fake_jobs.submitted
    assert kw["entrypoint"] == "dynocc mine --job jobs/mine_urls.yaml"
    env = kw["runtime_env"]
    assert "py_modules" not in env  # Ray would apply the excludes to it as well
    for pattern in (".venv/", ".git/", "**/__pycache__/"):
        assert pattern in env["excludes"], pattern
    staged = fake_jobs.uploads[env["working_dir"]]
    assert staged.name == REPO.name
    assert (staged / "jobs/mine_urls.yaml").read_text() == (REPO / "jobs/mine_urls.yaml").read_text()
    for rel in ("dynocc/__init__.py", "dynocc/cli.py", "dynocc/jobspec.py", "dynocc/factory/engine/ray_engine.py",
                "dynocc/schemas/__init__.py", "dynocc/trainer/config.py", "pyproject.toml"):
        assert (staged / rel).is_file(), rel
    for gone in ("factory", "schemas", "trainer", ".venv", ".git", "dynocc.egg-info"):
        assert not (staged / gone).exists(), gone
    assert not list(staged.rglob("__pycache__"))
    r = seen["import"]
    assert r.returncode == 0, r.stderr
    assert all(line.startswith(env["working_dir"]) for line in r.stdout.split()), r.stdout
    assert "note: " not in capsys.readouterr().err  # the shipped spec reads and writes s3:// only


def test_a_training_spec_runs_dynocc_train_with_out_and_more_args(fake_jobs, tmp_path, capsys):
    train = write_spec(tmp_path / "train_small.yaml", optim={"steps": 5, "batch_size": 2}, scale={"workers": 1})
    assert cli.main(["submit", str(train), "--address", "http://head:8265", "--out", "s3://b/runs/1",
                     "--args", "--resume", "--workers", "2"]) == 0
    assert fake_jobs.submitted["entrypoint"] == "dynocc train --config train_small.yaml --out s3://b/runs/1 --resume --workers 2"
    assert fake_jobs.submitted["metadata"]["dynocc_command"] == "train"
    # the shipped training specs are recognised as such
    for path in sorted((REPO / "jobs").glob("train_*.yaml")):
        assert submit.validate_spec(str(path)) == "train", path.name
    # dynocc train needs --out: refused here, before any cluster time is spent
    fake_jobs.submitted = {}
    assert cli.main(["submit", str(train), "--address", "http://head:8265"]) == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: --out" in err and "dynocc submit ... --out URL" in err
    assert cli.main(["submit", str(train), "--address", "http://head:8265", "--out", "o", "--args", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    bad = write_spec(tmp_path / "train_bad.yaml", optim={"stepz": 5})
    assert cli.main(["submit", str(bad), "--address", "http://head:8265", "--out", "o"]) == 2
    assert "optim.stepz: unknown setting" in capsys.readouterr().err
    assert fake_jobs.submitted == {}


def test_out_overrides_a_mining_specs_out(fake_jobs, spec):
    assert cli.main(["submit", str(spec), "--address", "http://head:8265", "--out", "s3://b/run2"]) == 0
    assert fake_jobs.submitted["entrypoint"] == "dynocc mine --job spec.yaml --out s3://b/run2"


@pytest.mark.parametrize("argv,message", [
    (["--address", "http://h:8265", "--working-dir", "deploy"], "is not inside --working-dir"),
    (["--address", "http://h:8265", "--env", "DYNOCC_UNSET_VAR"], "--env DYNOCC_UNSET_VAR: not set"),
    (["--address", "http://h:8265", "--env", "1BAD=x"], "expected NAME or NAME=VALUE"),
    ([], "no cluster: give --address"),
])
def test_bad_flags_exit_2_and_submit_nothing(fake_jobs, spec, monkeypatch, capsys, argv, message):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("DYNOCC_UNSET_VAR", raising=False)
    monkeypatch.chdir(REPO)
    path = "jobs/mine_urls.yaml" if "--working-dir" in argv else str(spec)
    assert cli.main(["submit", path, *argv]) == 2
    assert message in capsys.readouterr().err
    assert fake_jobs.submitted == {}


def test_bad_or_unknown_specs_exit_2(fake_jobs, tmp_path, capsys):
    other = write_spec(tmp_path / "other.yaml", steps=3)
    assert cli.main(["submit", str(other), "--address", "http://h:8265"]) == 2
    assert "cannot tell what it is for" in capsys.readouterr().err
    bad = write_spec(tmp_path / "bad.yaml", command="mine", inputs=["a"], out="o", miner={"vote": {"delta": 3}})
    assert cli.main(["submit", str(bad), "--address", "http://h:8265"]) == 2
    assert "miner.vote.delta" in capsys.readouterr().err
    assert fake_jobs.submitted == {}


def test_an_unreachable_cluster_exits_2(spec, capsys):
    port = free_port()  # a port nobody listens on
    assert cli.main(["submit", str(spec), "--address", f"http://127.0.0.1:{port}"]) == 2
    assert "cannot reach the Ray Jobs API" in capsys.readouterr().err
