"""A real two-node Ray cluster on this machine, mining into S3 (moto), one node lost mid-job.

The module starts a head (`ray start --head --block`, 3 CPUs, its dashboard / job server on
127.0.0.1 for `dynocc submit`) and each test adds a second node (`ray start --block --address ...`,
2 CPUs, its own ``second_node`` resource, temp dir and ports). Every process runs in its own
process group, every port is a free one, and all of it is killed at the end: no other Ray on the
machine is touched (never `ray stop`).

Both tests mine 10 synthetic videos (about a second each) with two 2-CPU actors and one video per
task: one actor fits on each node (the head keeps a CPU for Ray Data's small tasks). Once both
nodes have committed a video and the second node's actor is mining another one, the second node's
raylet is SIGKILLed: its actor, its workers and the node are lost. Then:

* the job ends by itself (exit code 0, or 1 when it recorded failures), without a traceback;
* both nodes mined: the commit records name the head and the second node;
* every video is committed: with its frames, or as a ``worker_lost`` failure row (no other failure);
* a rerun with ``--retry-failed`` on the cluster that is left (the head alone) mines only the lost
  videos, and the rows equal those of an uninterrupted run (the local engine) exactly, with no
  duplicate (video_id, frame_index).

`test_mine_...` runs `dynocc mine --address`; `test_submit_...` submits the same job as a job spec
with `dynocc submit` (the job's driver runs on the head).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from dynocc.factory.config import MinerConfig
from dynocc.factory.engine.job import run_mine_job
from dynocc.factory.io.writer import committed_items, read_failures, read_frames
from ray_cluster import Cluster, Node, ray_cluster, ray_env
from support import busy_mining_workers, cli_cmd, run_cli, wait_for, write_spec

pytestmark = pytest.mark.slow

N_VIDEOS = 10
JOB_TIMEOUT = 300  # seconds a mining job (or a submitted one) may take, kill and recovery included


@pytest.fixture(scope="module")
def cluster():
    """The head: 3 CPUs, dashboard / job server on 127.0.0.1; killed (and all it started) at the end."""
    with ray_cluster(3) as c:
        yield c


@pytest.fixture
def second_node(cluster):
    node = cluster.add_second_node()
    yield node
    node.stop()


# --------------------------------------------------------------------------- videos and the expected rows


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("video_id", "ascending"), ("frame_index", "ascending")])


@pytest.fixture(scope="module")
def videos(synthetic_videos, tmp_path_factory):
    """10 videos of about a second of mining each, and (a future of) the rows of an uninterrupted
    run: the local engine, mining in a thread while the cluster starts."""
    paths = [str(p) for p in synthetic_videos([f"clip{k}.mp4" for k in range(N_VIDEOS)], height=160, width=224,
                                              n_frames=40)]
    reference = tmp_path_factory.mktemp("reference") / "mined"

    def mine_reference() -> pa.Table:
        summary = run_mine_job(paths, str(reference), MinerConfig())  # the CLI's defaults
        assert summary.videos_ok == N_VIDEOS
        rows = _sorted(read_frames(str(reference)))
        assert set(rows["video_id"].to_pylist()) == {f"clip{k}" for k in range(N_VIDEOS)}
        return rows

    with ThreadPoolExecutor(1) as pool:
        yield paths, pool.submit(mine_reference)


# --------------------------------------------------------------------------- the check


@dataclass
class Run:
    proc: subprocess.Popen
    out_path: Path
    err_path: Path

    def text(self) -> str:
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")


def _start(args: list, tmp: Path, name: str) -> Run:
    out_path, err_path = tmp / f"{name}.out", tmp / f"{name}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cli_cmd(*args), stdout=out, stderr=err, text=True, env=ray_env())
    return Run(proc, out_path, err_path)


def _finish(run: Run, cluster: Cluster, what: str) -> int:
    try:
        return run.proc.wait(timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        diagnostics = cluster.diagnostics()
        run.proc.kill()
        run.proc.wait(30)
        pytest.fail(f"{what} did not end within {JOB_TIMEOUT} s after the raylet was killed\n{run.text()[-4000:]}\n"
                    f"{diagnostics}", pytrace=False)


def _mining_nodes(out: str, storage_options: dict) -> set[str]:
    return {str((s.extra or {}).get("node") or "") for s in committed_items(out, storage_options)} - {""}


def _kill_second_node_mid_job(run: Run, node: Node, out: str, storage_options: dict) -> int:
    """SIGKILL the second node's raylet once both nodes have committed a video and its actor is
    mining another one; returns the number of videos committed then."""
    def both_nodes_mined_and_second_busy():
        if not busy_mining_workers(node.proc.pid):
            return None
        if len(_mining_nodes(out, storage_options)) < 2:
            return None
        return len(committed_items(out, storage_options))

    try:
        committed = wait_for(both_nodes_mined_and_second_busy, timeout=240, what="both nodes mining",
                             interval=0.2, alive=run.proc)
    except AssertionError as e:
        run.proc.kill()
        run.proc.wait(30)
        pytest.fail(f"{e}\n{run.text()[-4000:]}", pytrace=False)
    node.remember_descendants()
    raylet = node.raylet()
    assert raylet is not None, "the second node's raylet"
    os.kill(raylet, signal.SIGKILL)
    assert run.proc.poll() is None, "the job had ended before the kill"
    return committed


def _check_after_the_kill(rc: int, text: str, out: str, storage_options: dict, videos: list[str],
                          nodes: set[str]) -> list[str]:
    """The interrupted run's outcome; returns the video ids recorded as worker_lost."""
    assert "Traceback" not in text, text[-4000:]
    assert _mining_nodes(out, storage_options) == nodes  # both nodes mined (the head and the second node)
    frames = read_frames(out, storage_options)
    failures = read_failures(out, storage_options)
    assert set(failures["error_type"].to_pylist()) <= {"worker_lost"}, failures.to_pylist()
    lost = sorted(failures["video_id"].to_pylist())
    mined = set(frames["video_id"].to_pylist())
    assert not mined & set(lost)
    assert mined | set(lost) == {Path(v).stem for v in videos}  # every video committed or worker_lost
    assert len(committed_items(out, storage_options)) == N_VIDEOS
    assert rc == (1 if lost else 0), text[-4000:]
    return lost


def _check_rerun(rc: int, text: str, lost: list[str], out: str, storage_options: dict, reference: pa.Table) -> None:
    assert rc == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    assert f"videos ok: {len(lost)}  failed: 0  already done: {N_VIDEOS - len(lost)}" in text, text[-4000:]
    assert read_failures(out, storage_options).num_rows == 0
    got = read_frames(out, storage_options)
    keys = list(zip(got["video_id"].to_pylist(), got["frame_index"].to_pylist()))
    assert len(keys) == len(set(keys)), "duplicate (video_id, frame_index)"
    assert _sorted(got).equals(reference)


def _wait_dead(cluster: Cluster, node: Node) -> None:
    """The cluster has noticed the lost node (so a rerun plans for the head alone)."""
    wait_for(lambda: any(n["node_id"] == node.node_id and n.get("state") == "DEAD" for n in cluster.nodes()),
             timeout=120, what="the lost node marked DEAD", interval=1.0)


# --------------------------------------------------------------------------- the tests


def _lose_a_node_and_rerun(what: str, cluster: Cluster, node: Node, videos, out: str, opts: dict, tmp_path: Path,
                           args: list, rerun_args: list) -> tuple[int, str]:
    """Run ``dynocc ARGS``, kill the second node mid-job, check the outcome, rerun with ``RERUN_ARGS``
    (on the head alone) and check its rows; returns the first run's exit code and output."""
    paths, reference = videos
    nodes = {cluster.head_id(), node.node_id}
    t0 = time.monotonic()
    run = _start(args, tmp_path, what.split()[-1])
    at_kill = _kill_second_node_mid_job(run, node, out, opts)
    t_kill = time.monotonic()
    rc = _finish(run, cluster, what)
    t_end = time.monotonic()
    text = run.text()
    lost = _check_after_the_kill(rc, text, out, opts, paths, nodes)
    _wait_dead(cluster, node)
    t_dead = time.monotonic()
    r = run_cli(*rerun_args, timeout=JOB_TIMEOUT)
    _check_rerun(r.returncode, r.stdout + r.stderr, lost, out, opts, reference.result(timeout=JOB_TIMEOUT))
    print(f"\n{what}: {at_kill} of {N_VIDEOS} videos committed when the second node's raylet was killed "
          f"({t_kill - t0:.0f} s in); the job went on for {t_end - t_kill:.0f} s: {N_VIDEOS - len(lost)} committed, "
          f"{len(lost)} worker_lost {lost}, exit code {rc}; node DEAD {t_dead - t_end:.0f} s later; "
          f"rerun {time.monotonic() - t_dead:.0f} s")
    return rc, text + r.stdout + r.stderr


def test_mine_on_two_nodes_survives_losing_a_node(videos, cluster, second_node, s3, tmp_path):
    out, opts = s3.url("mined"), s3.storage_options
    cmd = ["mine", *videos[0], "--out", out, "--quiet", "--address", cluster.gcs, "--cpus-per-actor", "2",
           "--items-per-task", "1", "--storage-options", json.dumps(opts)]
    # the rerun: one 2-CPU actor is all the head (3 CPUs) holds
    _lose_a_node_and_rerun("dynocc mine", cluster, second_node, videos, out, opts, tmp_path,
                           [*cmd, "--actors", "2"], [*cmd, "--actors", "1", "--retry-failed"])


def test_submit_on_two_nodes_survives_losing_a_node(videos, cluster, second_node, s3, tmp_path):
    out, opts = s3.url("submitted"), s3.storage_options
    spec = write_spec(tmp_path / "mine_two_nodes.yaml", command="mine", inputs=videos[0], out=out, engine="ray",
                      actors=2, cpus_per_actor=2, items_per_task=1, storage_options=opts)
    submit = ["submit", spec, "--address", cluster.dashboard, "--args", "--quiet"]
    rc, text = _lose_a_node_and_rerun("dynocc submit", cluster, second_node, videos, out, opts, tmp_path,
                                      submit, [*submit, "--retry-failed", "--actors", "1"])
    first, rerun = re.findall(r"dynocc submit: job \S+ (SUCCEEDED|FAILED)", text)
    assert (first, rerun) == ("SUCCEEDED" if rc == 0 else "FAILED", "SUCCEEDED"), text[-4000:]
