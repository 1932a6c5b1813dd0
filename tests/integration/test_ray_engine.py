"""The Ray Data engine of `dynocc mine`: same rows as the local engine, failures, resume, crashes.

Most tests share one small local Ray (2 CPUs, conftest's ``ray_local``) and always shut it down;
the engine uses an initialised Ray as it is. The CLI tests start their own Ray in a subprocess.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from dynocc.factory.config import MinerConfig
from dynocc.factory.io.decode import write_video
from dynocc.factory.engine.job import MineUsageError, run_mine_job
from dynocc.factory.engine.ray_engine import default_actors, run_mine_job_ray
from dynocc.factory.testing.delayed_http import DelayedServer
from dynocc.factory.testing.synthetic import make_scene
from dynocc.factory.io.writer import committed_items, read_failures, read_frames
from support import kill_a_busy_mining_worker, run_cli, start_cli

CONFIG = MinerConfig()
VIDEO_IDS = ("v0", "v1", "v2")


@pytest.fixture(scope="module")
def videos(synthetic_videos, tmp_path_factory) -> dict[str, Path]:
    paths = synthetic_videos([f"{vid}.mp4" for vid in VIDEO_IDS], height=96, width=128, n_frames=10)
    root = paths[0].parent
    bad = tmp_path_factory.mktemp("bad")
    (bad / "corrupt.mp4").write_bytes(os.urandom(4096))
    return {**dict(zip(VIDEO_IDS, paths)), "dir": root, "corrupt": bad / "corrupt.mp4",
            "missing": bad / "does_not_exist.mp4"}


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("video_id", "ascending"), ("frame_index", "ascending")])


def _keys(table: pa.Table) -> list[tuple[str, int]]:
    return list(zip(table["video_id"].to_pylist(), table["frame_index"].to_pylist()))


def _mine_ray(inputs, out, **kw):
    kw.setdefault("actors", 2)
    return run_mine_job_ray([str(i) for i in inputs], str(out), CONFIG, **kw)


def test_ray_rows_equal_local_rows(videos, ray_local, tmp_path):
    inputs = [videos["dir"]]
    local = run_mine_job([str(i) for i in inputs], str(tmp_path / "local"), CONFIG)
    seen = []
    remote = _mine_ray(inputs, tmp_path / "ray", progress=lambda r, s: seen.append((r.video_id, r.pairs)))
    assert remote.exit_code == local.exit_code == 0
    assert remote.as_dict() | {"seconds": 0} == local.as_dict() | {"seconds": 0}
    a, b = _sorted(read_frames(str(tmp_path / "local"))), _sorted(read_frames(str(tmp_path / "ray")))
    assert a.num_rows > 0 and set(a["video_id"].to_pylist()) == set(VIDEO_IDS)
    assert a.equals(b)
    assert sorted(v for v, _ in seen) == sorted(VIDEO_IDS)  # one progress call per video
    assert sum(p for _, p in seen) == remote.pairs
    # The driver never held frames: each item was committed by an actor, with the same stats.
    def frames_by_item(out):
        return sorted((s.item_key, s.frames) for s in committed_items(str(out)))

    assert frames_by_item(tmp_path / "ray") == frames_by_item(tmp_path / "local")


def test_http_inputs_are_downloaded_ahead_of_the_actors_at_most_fetch_concurrency_at_once(
        videos, ray_local, tmp_path):
    """The fetch stage: remote items are downloaded in Ray tasks, overlapping (never more than
    ``fetch_concurrency`` at once), and mine to the rows of the same videos read from disk; a
    failed download is the item's failure row."""
    www = tmp_path / "www"
    www.mkdir()
    for vid in VIDEO_IDS:
        shutil.copy(videos[vid], www / f"{vid}.mp4")
    with DelayedServer(www, delay=0.5) as server:
        urls = [server.url(f"{vid}.mp4") for vid in VIDEO_IDS] + [server.url("missing.mp4")]
        fetched = _mine_ray(urls, tmp_path / "http", actors=1, fetch_concurrency=2)
    assert (fetched.videos_ok, fetched.videos_failed) == (3, 1)
    assert [(f["stage"], f["error_type"]) for f in fetched.failures] == [("download", "http_404")]
    assert server.state["max_in_flight"] == 2
    local = _mine_ray([videos[vid] for vid in VIDEO_IDS], tmp_path / "local", actors=1)
    assert local.videos_ok == 3
    a, b = _sorted(read_frames(str(tmp_path / "local"))), _sorted(read_frames(str(tmp_path / "http")))
    assert a.num_rows > 0 and a.equals(b)


def test_bad_inputs_become_failure_rows(videos, ray_local, tmp_path):
    inputs = [videos["v0"], videos["corrupt"], videos["missing"]]
    summary = _mine_ray(inputs, tmp_path / "out")
    assert summary.exit_code == 1
    assert (summary.videos_ok, summary.videos_failed) == (1, 2)
    failures = read_failures(str(tmp_path / "out"))
    kinds = dict(zip(failures["input"].to_pylist(), failures["error_type"].to_pylist()))
    assert kinds == {str(videos["corrupt"]): "not_a_video", str(videos["missing"]): "not_found"}
    assert read_frames(str(tmp_path / "out"))["video_id"].unique().to_pylist() == ["v0"]
    local = run_mine_job([str(i) for i in inputs], str(tmp_path / "local"), CONFIG)
    assert [f["error_type"] for f in local.failures] == [f["error_type"] for f in summary.failures]


def test_resume_mines_only_the_uncommitted_item(videos, ray_local, tmp_path):
    out = tmp_path / "out"
    first = _mine_ray([videos["dir"]], out, items_per_task=1)  # one commit record per video
    assert first.videos_ok == 3
    rows = _sorted(read_frames(str(out)))
    records = {s.extra["video_id"]: out / s.commit for s in committed_items(str(out))}
    before = {vid: p.stat().st_mtime_ns for vid, p in records.items()}
    records["v1"].unlink()  # as if its task had died before committing
    second = _mine_ray([videos["dir"]], out)
    assert (second.videos_ok, second.videos_skipped, second.videos_failed) == (1, 2, 0)
    assert records["v0"].stat().st_mtime_ns == before["v0"] and records["v2"].stat().st_mtime_ns == before["v2"]
    again = _sorted(read_frames(str(out)))
    assert again.equals(rows)
    assert len(set(_keys(again))) == again.num_rows
    third = _mine_ray([videos["dir"]], out)  # nothing left to mine
    assert (third.videos_ok, third.videos_skipped) == (0, 3) and third.exit_code == 0


def test_the_join_plan_gives_the_rows_and_resume_of_the_driver_plan(videos, ray_local, tmp_path):
    """Above plan_in_driver_max the plan runs as Ray Data aggregations and joins (here: always): a
    streamed @list with the same video twice and two videos of one name gives the same items, ids
    and rows as the driver's plan; a rerun skips what is committed; retry_failed re-mines failures."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = other / "v0.mp4"  # another video with the id v0: both get a -<sha1> suffix
    twin.write_bytes(videos["v1"].read_bytes())
    listing = tmp_path / "list.txt"
    lines = [str(videos["v0"]), str(videos["v0"]), str(twin), str(videos["v2"]), str(videos["corrupt"]),
             str(videos["missing"]), "# a comment", ""]
    listing.write_text("\n".join(lines) + "\n")
    driver_plan = _mine_ray([f"@{listing}"], tmp_path / "driver")
    joined = _mine_ray([f"@{listing}"], tmp_path / "joined", plan_in_driver_max=0)
    assert driver_plan.as_dict() | {"seconds": 0} == joined.as_dict() | {"seconds": 0}
    assert (joined.videos_ok, joined.videos_failed) == (3, 2)
    a, b = _sorted(read_frames(str(tmp_path / "driver"))), _sorted(read_frames(str(tmp_path / "joined")))
    assert a.equals(b) and len(set(_keys(b))) == b.num_rows
    assert sorted(set(b["video_id"].to_pylist()))[-1] == "v2" and len(set(b["video_id"].to_pylist())) == 3
    f1, f2 = read_failures(str(tmp_path / "driver")), read_failures(str(tmp_path / "joined"))
    assert sorted(f1["error_type"].to_pylist()) == sorted(f2["error_type"].to_pylist()) == ["not_a_video", "not_found"]

    dry = _mine_ray([f"@{listing}"], tmp_path / "joined", plan_in_driver_max=0, dry_run=True)
    assert (dry.to_mine, dry.videos_skipped) == (0, 5)
    again = _mine_ray([f"@{listing}"], tmp_path / "joined", plan_in_driver_max=0)
    assert (again.videos_ok, again.videos_failed, again.videos_skipped) == (0, 0, 5)
    write_video(make_scene(3, height=96, width=128, n_frames=10, n_static=0).frames, videos["missing"])
    try:  # the missing input now exists: retry_failed resolves and mines it; the corrupt one fails again
        retried = _mine_ray([f"@{listing}"], tmp_path / "joined", plan_in_driver_max=0, retry_failed=True)
    finally:
        videos["missing"].unlink()
    assert (retried.videos_ok, retried.videos_failed, retried.videos_skipped) == (1, 1, 3)
    assert "does_not_exist" in read_frames(str(tmp_path / "joined"))["video_id"].to_pylist()
    assert read_failures(str(tmp_path / "joined"))["error_type"].to_pylist() == ["not_a_video"]


@pytest.fixture(scope="module")
def slow_videos(synthetic_videos) -> Path:
    """Three videos that take about a second each to mine: a kill while one is mined lands mid-item."""
    paths = synthetic_videos([f"{vid}.mp4" for vid in VIDEO_IDS], height=160, width=224, n_frames=40)
    return paths[0].parent


@pytest.mark.slow
def test_a_killed_worker_becomes_worker_lost_and_retry_failed_mines_it_again(slow_videos, ray_local, tmp_path):
    import threading

    out = tmp_path / "out"
    got: dict = {}
    job = threading.Thread(target=lambda: got.update(summary=_mine_ray(
        [slow_videos], out, actors=1, items_per_task=1, max_retries=0)))
    job.start()
    try:
        kill_a_busy_mining_worker(os.getpid(), timeout=120)  # a real crash (SIGKILL), no hook in the product
    finally:
        job.join(300)
    crashed = got["summary"]
    assert crashed.exit_code == 1
    assert (crashed.videos_ok, crashed.videos_failed) == (2, 1)
    failures = read_failures(str(out)).to_pylist()
    assert [(f["error_type"], f["attempts"]) for f in failures] == [("worker_lost", 1)]
    lost = failures[0]["video_id"]
    assert set(read_frames(str(out))["video_id"].to_pylist()) == set(VIDEO_IDS) - {lost}

    rerun = _mine_ray([slow_videos], out)  # a plain rerun keeps the failure: it is committed
    assert (rerun.videos_ok, rerun.videos_skipped) == (0, 3)
    retried = _mine_ray([slow_videos], out, retry_failed=True)
    assert (retried.videos_ok, retried.videos_skipped, retried.videos_failed) == (1, 2, 0)
    assert read_failures(str(out)).num_rows == 0
    table = read_frames(str(out))
    assert set(table["video_id"].to_pylist()) == set(VIDEO_IDS)
    assert len(set(_keys(table))) == table.num_rows
    local = run_mine_job([str(slow_videos)], str(tmp_path / "local"), CONFIG)
    assert _sorted(table).equals(_sorted(read_frames(str(tmp_path / "local")))) and local.videos_ok == 3


def test_retry_failed_with_the_local_engine_too(videos, tmp_path):
    out = tmp_path / "out"
    bad = tmp_path / "flaky.mp4"
    bad.write_bytes(os.urandom(2048))
    assert run_mine_job([str(bad)], str(out), CONFIG).exit_code == 3
    write_video(make_scene(7, height=96, width=128, n_frames=10, n_static=0).frames, bad)  # fixed
    assert run_mine_job([str(bad)], str(out), CONFIG).videos_skipped == 1
    fixed = run_mine_job([str(bad)], str(out), CONFIG, retry_failed=True)
    assert (fixed.videos_ok, fixed.videos_failed, fixed.exit_code) == (1, 0, 0)
    assert read_failures(str(out)).num_rows == 0 and read_frames(str(out)).num_rows > 0


def test_a_mining_task_outlasting_ray_datas_no_progress_timeout_is_not_failed(videos, ray_local, tmp_path):
    """A mining task reports only when it ends (a long video runs for hours): Ray Data's
    no-progress timeout (1800 s by default) must not fail the job; the user's setting is restored."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    saved = ctx.execution_no_progress_timeout_s
    ctx.execution_no_progress_timeout_s = 0.5  # shorter than the one task mining all three videos
    try:
        summary = _mine_ray([videos["dir"]], tmp_path / "out", actors=1, items_per_task=3)
        assert ctx.execution_no_progress_timeout_s == 0.5
    finally:
        ctx.execution_no_progress_timeout_s = saved
    assert (summary.videos_ok, summary.videos_failed) == (3, 0), summary.failures


@pytest.mark.parametrize("kw, words", [
    ({"actors": 3, "cpus_per_actor": 1.0}, "needs 3 CPUs"),
    ({"actors": 1, "cpus_per_actor": 4.0}, "needs 4 CPUs"),
    ({"actors": 1, "gpus_per_actor": 1.0}, "GPUs"),
    ({"actors": 0}, "at least 1"),
])
def test_a_pool_the_cluster_cannot_hold_is_refused(videos, ray_local, tmp_path, kw, words):
    with pytest.raises(MineUsageError, match=words):
        _mine_ray([videos["v0"]], tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


def test_default_pool_size():
    assert default_actors(2, 0) == 1
    assert default_actors(1, 0) == 1
    assert default_actors(16, 0, cpus_per_actor=2) == 7
    assert default_actors(64, 4, cpus_per_actor=1, gpus_per_actor=1) == 4


# --------------------------------------------------------------------------- the CLI


@pytest.mark.slow
def test_cli_ray_engine_crash_summary_and_exit_codes(slow_videos, tmp_path):
    out = tmp_path / "out"
    driver = start_cli("mine", slow_videos, "--out", out, "--quiet", "--actors", "1",
                       "--items-per-task", "1", "--max-retries", "0")
    try:
        kill_a_busy_mining_worker(driver.pid, timeout=120, alive=driver)
    finally:
        stdout, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 1, stderr
    assert "videos ok: 2  failed: 1  already done: 0" in stdout
    assert stdout.splitlines()[0].startswith("videos ok:")  # Ray prints nothing on stdout
    assert "Traceback" not in stderr
    failed = [line for line in stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "worker_lost" in failed[0], stderr
    local = run_cli("mine", slow_videos, "--out", out, "--quiet", "--engine", "local", "--retry-failed")
    assert local.returncode == 0, local.stderr
    assert "videos ok: 1  failed: 0  already done: 2" in local.stdout


def test_cli_refuses_a_pool_too_big_and_ray_flags_with_the_local_engine(videos, tmp_path):
    r = run_cli("mine", videos["v0"], "--out", tmp_path / "out", "--quiet", "--actors", "64")
    assert r.returncode == 2
    assert "64 actors" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("mine", videos["v0"], "--out", tmp_path / "out", "--engine", "local", "--actors", "2")
    assert r.returncode == 2 and "--actors" in r.stderr
    assert not (tmp_path / "out").exists()
