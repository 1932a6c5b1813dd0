"""`dynocc mine --job` and `dynocc mine-stereo --job` as a user runs them: a real subprocess, real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynocc.factory.io.decode import write_video
from dynocc.factory.io.writer import read_frames
from dynocc.factory.testing.synthetic import make_scene
from support import run_cli, write_spec


def test_the_cli_reports_a_bad_spec_without_a_traceback(tmp_path):
    spec = write_spec(tmp_path / "bad.yaml", command="mine", inputs=["a.mp4"], out="out", engine="ray",
                      shard_size="many", miner={"seed": "x"})
    r = run_cli("mine", "--job", spec)
    assert r.returncode == 2
    assert "shard_size" in r.stderr and "miner.seed" in r.stderr and "Traceback" not in r.stderr
    for text, message in (("- just\n- a list\n", "must hold a mapping"), ("command: [\n", "not valid YAML")):
        (tmp_path / "x.yaml").write_text(text)
        r = run_cli("mine", "--job", tmp_path / "x.yaml")
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run_cli("mine", "--job", tmp_path / "missing.yaml")
    assert r.returncode == 2 and "job spec not found" in r.stderr


# --------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    for seed in (1, 2):
        scene = make_scene(seed, height=96, width=128, n_frames=10, n_static=0)
        write_video(scene.frames, root / f"clip{seed}.mp4", crf=18)
    return root


def test_a_local_job_spec_runs_with_dynocc_mine_job(clips, tmp_path):
    out = tmp_path / "mined"
    spec = write_spec(tmp_path / "local.yaml", command="mine", inputs=[str(clips / "clip1.mp4"), str(clips / "clip2.mp4")],
                      out=str(out), engine="local", items_per_task=1, miner={"dataset": "from-spec", "seed": 3})
    r = run_cli("mine", "--job", spec, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "videos ok: 2  failed: 0" in r.stdout
    table = read_frames(str(out))
    assert set(table["video_id"].to_pylist()) == {"clip1", "clip2"}
    assert set(table["dataset"].to_pylist()) == {"from-spec"}
    assert sum(len(o) for o in table["pair_ordinal"].to_pylist()) > 0
    assert (out / "_SUCCESS").exists()
    assert len(list((out / "frames").glob("*.parquet"))) == 2  # the spec's items_per_task: 1

    # rerun: resumes (nothing left to mine); a flag overrides the spec's out
    r = run_cli("mine", "--job", spec, "--quiet")
    assert r.returncode == 0 and "already done: 2" in r.stdout, r.stdout
    r = run_cli("mine", "--job", spec, "--quiet", "--out", tmp_path / "other", str(clips / "clip1.mp4"))
    assert r.returncode == 0 and "videos ok: 1" in r.stdout, r.stderr
    assert set(read_frames(str(tmp_path / "other"))["video_id"].to_pylist()) == {"clip1"}


def test_a_local_stereo_job_spec_runs_with_dynocc_mine_stereo_job(tmp_path):
    import numpy as np
    import skimage.data as skimage_data
    from PIL import Image

    left, right, _ = skimage_data.stereo_motorcycle()
    Image.fromarray(np.concatenate([left, right], axis=1)).save(tmp_path / "moto.png")
    out = tmp_path / "stereo"
    spec = write_spec(tmp_path / "stereo.yaml", command="mine-stereo", inputs=[str(tmp_path / "moto.png")], out=str(out),
                      engine="local", miner={"max_long_side": 320,
                                                         "stereo": {"random_pairs": 50, "edge_pairs": 50, "equal_pairs": 20}})
    r = run_cli("mine-stereo", "--job", spec, "--quiet")
    assert r.returncode == 0, r.stderr
    table = read_frames(str(out))
    assert table["video_id"].to_pylist() == ["moto"]
    assert 0 < len(table["pair_ordinal"][0].as_py()) <= 120
