"""`dynocc submit`: job specs sent to a Ray cluster through the Ray Jobs API.

The fast tests replace the Jobs API client by a fake one and check what would be submitted
(entrypoint, uploaded files, runtime environment) and the exit codes. The slow test starts a real
Ray head with its dashboard / job server on 127.0.0.1 in its own process group and submits real
mining jobs to it.
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

from dynocc import cli, submit
from dynocc.factory.io.decode import write_video
from dynocc.factory.testing.synthetic import make_scene
from dynocc.factory.io.writer import read_frames
from support import REPO, cli_env, free_port, run_cli, wait_for



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


@pytest.fixture
def fake(monkeypatch, tmp_path):
    jobs = FakeJobs(tmp_path / "fake")
    monkeypatch.setattr(submit, "_client", lambda address: jobs)
    for name in submit.ENV_PASSTHROUGH:
        monkeypatch.delenv(name, raising=False)
    return jobs


@pytest.fixture
def spec(tmp_path) -> Path:
    return write_spec(tmp_path / "spec.yaml", command="mine", inputs=["s3://b/videos/"], out="s3://b/out",
                      engine="ray", actors=2)


def test_a_mining_spec_is_submitted_alone_and_its_logs_streamed(fake, spec, monkeypatch, capsys):
    fake.logs = "mining...\nvideos ok: 3  failed: 0\n"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    rc = cli.main(["submit", str(spec), "--address", "http://head:8265", "--env", "OMP_NUM_THREADS=2"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out == fake.logs
    assert "job raysubmit_fake submitted to http://head:8265: dynocc mine --job spec.yaml" in err
    assert "SUCCEEDED" in err
    kw = fake.submitted
    assert kw["entrypoint"] == "dynocc mine --job spec.yaml"
    env = kw["runtime_env"]
    assert env["env_vars"] == {"RAY_AUTH_MODE": "disabled", "AWS_ENDPOINT_URL": "http://minio:9000",
                               "OMP_NUM_THREADS": "2"}
    assert "py_modules" not in env and "pip" not in env
    uploaded = fake.uploads[env["working_dir"]]
    assert sorted(p.name for p in uploaded.iterdir()) == ["spec.yaml"]  # the spec alone
    assert (uploaded / "spec.yaml").read_text() == spec.read_text()
    assert kw["metadata"] == {"dynocc_spec": "spec.yaml", "dynocc_command": "mine"}
    assert not Path(env["working_dir"]).exists()  # the temp folder is gone after submission


def test_a_failed_or_stopped_job_exits_1_with_its_message(fake, spec, capsys):
    fake.status, fake.message, fake.logs = "FAILED", "Job entrypoint command failed with exit code 3", "failed: x\n"
    assert cli.main(["submit", str(spec), "--address", "http://head:8265"]) == 1
    out, err = capsys.readouterr()
    assert out == "failed: x\n"
    assert "job raysubmit_fake FAILED: Job entrypoint command failed with exit code 3" in err
    fake.status, fake.message = "STOPPED", ""
    assert cli.main(["submit", str(spec), "--address", "http://head:8265"]) == 1
    assert "STOPPED: (no message)" in capsys.readouterr().err


def test_logs_are_polled_when_the_stream_breaks_without_repeating_lines(fake, spec, monkeypatch, capsys):
    fake.logs = "one\ntwo\nthree\n"

    async def broken_tail(job_id):
        yield "one\n"
        raise ConnectionError("websocket closed")

    monkeypatch.setattr(fake, "tail_job_logs", broken_tail)
    assert cli.main(["submit", str(spec), "--address", "http://head:8265"]) == 0
    out, err = capsys.readouterr()
    assert out == "one\ntwo\nthree\n"
    assert "log stream unavailable (ConnectionError: websocket closed); polling" in err


def test_no_wait_returns_after_submitting(fake, spec, capsys):
    fake.status = "RUNNING"
    assert cli.main(["submit", str(spec), "--address", "http://head:8265", "--no-wait",
                     "--submission-id", "mine-1", "--pip", "yt-dlp==2025.1.1", "--entrypoint-num-cpus", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "mine-1"
    assert "ray job logs --follow --address http://head:8265 mine-1" in err
    assert fake.submitted["runtime_env"]["pip"] == ["yt-dlp==2025.1.1"]
    assert fake.submitted["entrypoint_num_cpus"] == 1


def test_working_dir_ships_the_project_with_one_complete_dynocc_package(fake, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    seen = {}

    def check_import(**kw):  # while the staged copy exists: first on PYTHONPATH, it must import as dynocc
        r = subprocess.run([sys.executable, "-c", "import dynocc.factory.engine.ray_engine as m, dynocc.cli as c, "
                            "dynocc.jobspec; print(m.__file__); print(c.__file__)"],
                           capture_output=True, text=True, cwd=tempfile.gettempdir(),
                           env=dict(os.environ, PYTHONPATH=kw["runtime_env"]["working_dir"]), timeout=120)
        seen["import"] = r
        return FakeJobs.submit_job(fake, **kw)

    monkeypatch.setattr(fake, "submit_job", check_import)
    assert cli.main(["submit", "jobs/mine_urls.yaml", "--address", "http://head:8265", "--working-dir", "."]) == 0
    kw = fake.submitted
    assert kw["entrypoint"] == "dynocc mine --job jobs/mine_urls.yaml"
    env = kw["runtime_env"]
    assert "py_modules" not in env  # Ray would apply the excludes to it as well
    for pattern in (".venv/", ".git/", "**/__pycache__/"):
        assert pattern in env["excludes"], pattern
    staged = fake.uploads[env["working_dir"]]
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


def test_a_training_spec_runs_dynocc_train_with_out_and_more_args(fake, tmp_path, capsys):
    train = write_spec(tmp_path / "train_small.yaml", optim={"steps": 5, "batch_size": 2}, scale={"workers": 1})
    assert cli.main(["submit", str(train), "--address", "http://head:8265", "--out", "s3://b/runs/1",
                     "--args", "--resume", "--workers", "2"]) == 0
    assert fake.submitted["entrypoint"] == "dynocc train --config train_small.yaml --out s3://b/runs/1 --resume --workers 2"
    assert fake.submitted["metadata"]["dynocc_command"] == "train"
    # the shipped training specs are recognised as such
    for path in sorted((REPO / "jobs").glob("train_*.yaml")):
        assert submit.validate_spec(str(path)) == "train", path.name
    # dynocc train needs --out: refused here, before any cluster time is spent
    fake.submitted = {}
    assert cli.main(["submit", str(train), "--address", "http://head:8265"]) == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: --out" in err and "dynocc submit ... --out URL" in err
    assert cli.main(["submit", str(train), "--address", "http://head:8265", "--out", "o", "--args", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    bad = write_spec(tmp_path / "train_bad.yaml", optim={"stepz": 5})
    assert cli.main(["submit", str(bad), "--address", "http://head:8265", "--out", "o"]) == 2
    assert "optim.stepz: unknown setting" in capsys.readouterr().err
    assert fake.submitted == {}


def test_out_overrides_a_mining_specs_out(fake, spec):
    assert cli.main(["submit", str(spec), "--address", "http://head:8265", "--out", "s3://b/run2"]) == 0
    assert fake.submitted["entrypoint"] == "dynocc mine --job spec.yaml --out s3://b/run2"


def test_a_spec_on_object_storage_is_read_there(fake, s3, capsys):
    url = s3.put("specs/mine.yaml", yaml.safe_dump({"command": "mine", "inputs": [s3.url("videos/")],
                                                    "out": s3.url("out"), "engine": "ray"}))
    assert cli.main(["submit", url, "--address", "http://head:8265"]) == 0
    assert fake.submitted["entrypoint"] == f"dynocc mine --job {url}"
    assert "working_dir" not in (fake.submitted["runtime_env"] or {})


@pytest.mark.parametrize("argv,message", [
    (["--address", "http://h:8265", "--working-dir", "deploy"], "is not inside --working-dir"),
    (["--address", "http://h:8265", "--env", "DYNOCC_UNSET_VAR"], "--env DYNOCC_UNSET_VAR: not set"),
    (["--address", "http://h:8265", "--env", "1BAD=x"], "expected NAME or NAME=VALUE"),
    ([], "no cluster: give --address"),
])
def test_bad_flags_exit_2_and_submit_nothing(fake, spec, monkeypatch, capsys, argv, message):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("DYNOCC_UNSET_VAR", raising=False)
    monkeypatch.chdir(REPO)
    path = "jobs/mine_urls.yaml" if "--working-dir" in argv else str(spec)
    assert cli.main(["submit", path, *argv]) == 2
    assert message in capsys.readouterr().err
    assert fake.submitted == {}


def test_bad_or_unknown_specs_exit_2(fake, tmp_path, capsys):
    other = write_spec(tmp_path / "other.yaml", steps=3)
    assert cli.main(["submit", str(other), "--address", "http://h:8265"]) == 2
    assert "cannot tell what it is for" in capsys.readouterr().err
    bad = write_spec(tmp_path / "bad.yaml", command="mine", inputs=["a"], out="o", miner={"vote": {"delta": 3}})
    assert cli.main(["submit", str(bad), "--address", "http://h:8265"]) == 2
    assert "miner.vote.delta" in capsys.readouterr().err
    assert fake.submitted == {}


def test_an_unreachable_cluster_exits_2(spec, capsys):
    port = free_port()  # a port nobody listens on
    assert cli.main(["submit", str(spec), "--address", f"http://127.0.0.1:{port}"]) == 2
    assert "cannot reach the Ray Jobs API" in capsys.readouterr().err


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
