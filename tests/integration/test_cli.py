"""`dynocc mine`, `dynocc stats` and `dynocc demo` as a user runs them: real files, a real subprocess."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from dynocc.factory.io.decode import write_frame_folder, write_video
from dynocc.factory.testing.synthetic import make_scene
from dynocc.factory.io.writer import read_failures, read_frames
from dynocc.schemas import FRAME_SCHEMA
from support import run_cli

@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    scene = make_scene(seed=3, height=120, width=160, n_frames=12, n_static=0)
    write_video(scene.frames, root / "moving.mp4", crf=18)
    write_frame_folder(make_scene(seed=4, height=120, width=160, n_frames=10, n_static=0).frames, root / "clip")
    (root / "corrupt.mp4").write_bytes(os.urandom(4096))
    (root / "notes.txt").write_text("not a video\n")
    write_video(scene.frames[:1], root / "one_frame.mp4")
    (root / "empty").mkdir()
    return {p.name: p for p in root.iterdir()}


def test_mine_writes_schema_v1_shards_and_a_summary(inputs, tmp_path):
    out = tmp_path / "out"
    r = run_cli("mine", inputs["moving.mp4"], inputs["clip"], "--out", out, "--quiet", "--engine", "local")
    assert r.returncode == 0, r.stderr
    assert "videos ok: 2  failed: 0" in r.stdout
    assert "pairs/frame" in r.stdout and "seconds" in r.stdout
    table = read_frames(str(out))
    required = table.select(list(FRAME_SCHEMA.names)).schema.remove_metadata()
    assert required.equals(FRAME_SCHEMA.remove_metadata())
    assert table.column_names == list(FRAME_SCHEMA.names) + ["pair_confidence"]  # schema 1.1
    assert set(table["video_id"].to_pylist()) == {"moving", "clip"}
    assert sum(len(o) for o in table["pair_ordinal"].to_pylist()) > 0
    assert (out / "_SUCCESS").exists()

    stats = run_cli("stats", out, "--json")
    assert stats.returncode == 0, stats.stderr
    s = json.loads(stats.stdout)
    assert s["videos_ok"] == 2 and s["videos_failed"] == 0
    assert s["frames"] == table.num_rows
    assert s["pairs"] == sum(s["ordinal_balance"].values())


def test_bad_inputs_get_one_line_and_a_failure_row_while_the_rest_is_mined(inputs, tmp_path):
    out = tmp_path / "out"
    missing = inputs["moving.mp4"].parent / "does_not_exist.mp4"
    bad = [inputs["corrupt.mp4"], inputs["notes.txt"], inputs["one_frame.mp4"], inputs["empty"], missing]
    r = run_cli("mine", inputs["moving.mp4"], *bad, "--out", out, "--quiet", "--engine", "local")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    failed_lines = [line for line in r.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed_lines) == len(bad), r.stderr
    for path in bad:
        assert sum(str(path) in line for line in failed_lines) == 1
    failures = read_failures(str(out))
    kinds = dict(zip(failures["input"].to_pylist(), failures["error_type"].to_pylist()))
    assert kinds[str(inputs["corrupt.mp4"])] == "not_a_video"
    assert kinds[str(inputs["notes.txt"])] == "not_a_video"
    assert kinds[str(inputs["one_frame.mp4"])] == "too_few_frames"
    assert kinds[str(inputs["empty"])] == "empty_folder"
    assert kinds[str(missing)] == "not_found"
    assert read_frames(str(out))["video_id"].unique().to_pylist() == ["moving"]


def test_only_bad_inputs_exit_3(inputs, tmp_path):
    r = run_cli("mine", inputs["corrupt.mp4"], "--out", tmp_path / "out", "--quiet", "--engine", "local")
    assert r.returncode == 3
    assert "Traceback" not in r.stderr and "failed:" in r.stderr


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--set", "vote.delta=2"], "vote.delta"),
        (["--set", "vote.no_such_thing=1"], "unknown setting"),
        (["--config", "/no/such/config.yaml"], "config file not found"),
        (["--max-long-side", "3"], "decode.max_long_side"),
    ],
)
def test_bad_config_exits_2_with_a_message_naming_the_setting(inputs, tmp_path, flags, words):
    r = run_cli("mine", inputs["moving.mp4"], "--out", tmp_path / "out", "--quiet", "--engine", "local", *flags)
    assert r.returncode == 2
    assert words in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_config_file_and_flags_reach_the_rows(inputs, tmp_path):
    cfg = tmp_path / "miner.yaml"
    cfg.write_text("dataset: mine-test\ndecode:\n  max_long_side: 128\n")
    out = tmp_path / "out"
    r = run_cli("mine", inputs["moving.mp4"], "--out", out, "--quiet", "--engine", "local", "--config", cfg)
    assert r.returncode == 0, r.stderr
    table = read_frames(str(out))
    assert set(table["dataset"].to_pylist()) == {"mine-test"}
    assert max(table["width"].to_pylist()) == 128


def test_the_same_input_gives_identical_rows_and_a_rerun_resumes(inputs, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("mine", inputs["moving.mp4"], "--out", a, "--quiet", "--engine", "local").returncode == 0
    assert run_cli("mine", inputs["moving.mp4"], "--out", b, "--quiet", "--engine", "local").returncode == 0
    ta, tb = read_frames(str(a)), read_frames(str(b))
    assert ta.equals(tb)
    again = run_cli("mine", inputs["moving.mp4"], "--out", a, "--quiet", "--engine", "local")
    assert again.returncode == 0 and "already done: 1" in again.stdout
    keys = list(zip(read_frames(str(a))["video_id"].to_pylist(), read_frames(str(a))["frame_index"].to_pylist()))
    assert len(keys) == len(set(keys)) == ta.num_rows


def test_help_lists_the_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("mine", "demo", "stats"):
        assert cmd in r.stdout


@pytest.mark.slow
def test_demo_mines_bikes_and_draws_overlays(tmp_path):
    r = run_cli("demo", "--out", tmp_path / "demo", "--max-frames", "48", "--quiet")
    assert r.returncode == 0, r.stderr
    pngs = sorted((tmp_path / "demo" / "overlays").glob("*.png"))
    assert pngs, r.stdout
    for p in pngs:
        assert str(p) in r.stdout
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = read_frames(str(tmp_path / "demo" / "shards"))
    assert table.num_rows > 0 and set(table["video_id"].to_pylist()) == {"bikes"}
    assert np.all(np.array(table["width"].to_pylist()) == 640)


def test_mine_from_s3_glob_and_http_into_s3_then_stats(inputs, tmp_path, s3, http_server):
    """The whole path a cluster user takes: remote inputs in, a bucket out, stats read from the bucket."""
    s3.fs.put(str(inputs["moving.mp4"]), s3.url("videos/moving.mp4"))
    s3.fs.put(str(inputs["corrupt.mp4"]), s3.url("videos/corrupt.mp4"))
    clip = make_scene(seed=5, height=120, width=160, n_frames=10, n_static=0)
    write_video(clip.frames, http_server.root / "street.mp4")
    out = s3.url("mined")
    so = json.dumps(s3.storage_options)
    r = run_cli("mine", s3.url("videos/*.mp4"), http_server.url("street.mp4"),
                http_server.url("status/404/cli-missing.mp4"), "--out", out, "--quiet", "--engine", "local",
                "--storage-options", so)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    stats = run_cli("stats", out, "--json", "--storage-options", so)
    assert stats.returncode == 0, stats.stderr
    s = json.loads(stats.stdout)
    assert (s["videos_ok"], s["videos_failed"]) == (2, 2)
    reasons = {r["error_type"] for r in s["top_failure_reasons"]}
    assert reasons == {"not_a_video", "http_404"}
    table = read_frames(out, s3.storage_options)
    assert set(table["video_id"].to_pylist()) == {"moving", "street"}
