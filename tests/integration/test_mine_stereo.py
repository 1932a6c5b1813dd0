"""`dynocc mine-stereo` end to end: real Middlebury Motorcycle files in, schema-v1 rows out, graded on
the true disparity after reading the shard back; bad stereo inputs become failure rows."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image
from skimage.data import stereo_motorcycle

from dynocc.factory.core.stereo import decode_inverse_depth_png
from dynocc.factory.io.writer import read_failures, read_frames
from support import run_cli


@pytest.fixture(scope="module")
def stereo_files(tmp_path_factory):
    left, right, disparity = stereo_motorcycle()
    root = tmp_path_factory.mktemp("stereo")
    Image.fromarray(np.concatenate([left, right], axis=1)).save(root / "motorcycle.png")
    Image.fromarray(left).save(root / "moto_mpo.mpo", format="MPO", save_all=True,
                               append_images=[Image.fromarray(right)])
    data = (root / "moto_mpo.mpo").read_bytes()
    (root / "truncated.mpo").write_bytes(data[: int(len(data) * 0.75)])
    Image.fromarray(left).save(root / "mono.mpo", format="MPO")
    Image.fromarray(left).save(root / "big_left.png")
    Image.fromarray(right[:-8]).save(root / "small_right.png")
    (root / "pairs.csv").write_text("left,right\nbig_left.png,small_right.png\n")
    return root, disparity


def grade(table, disparity, video_id):
    row = next(r for r in table.to_pylist() if r["video_id"] == video_id)
    ya, xa, yb, xb, o = (np.array(row[k]) for k in ("pair_ya", "pair_xa", "pair_yb", "pair_xb", "pair_ordinal"))
    da, db = disparity[ya, xa], disparity[yb, xb]
    ok = np.isfinite(da) & np.isfinite(db) & (o != 0)
    truth = np.sign(da - db)  # larger disparity = closer = +1 when A is closer
    return float((truth[ok] == o[ok]).mean()), int(ok.sum()), row


def test_mine_stereo_writes_depth_and_accurate_pairs_and_records_bad_pairs(stereo_files, tmp_path):
    root, disparity = stereo_files
    out = tmp_path / "out"
    r = run_cli("mine-stereo", root / "motorcycle.png", root / "moto_mpo.mpo", root / "truncated.mpo",
                root / "mono.mpo", root / "pairs.csv", "--out", out, "--engine", "local", "--quiet")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    table = read_frames(str(out))
    assert sorted(table["video_id"].to_pylist()) == ["moto_mpo", "motorcycle"]
    assert set(table["dataset"].to_pylist()) == {"redweb"}
    for vid in ("motorcycle", "moto_mpo"):
        accuracy, n, row = grade(table, disparity, vid)
        print(f"{vid}: ordered pairs right {accuracy:.3f} of {n}")
        assert n >= 1000 and accuracy >= 0.95
        confidence = np.array(row["pair_confidence"])  # one per pair, in [0, 1] (schema v1.1)
        assert len(confidence) == len(row["pair_ordinal"]) and (confidence >= 0).all() and (confidence <= 1).all()
        inv, sky = decode_inverse_depth_png(row["depth_png"])
        assert inv.shape == disparity.shape and not sky.any()
        both = np.isfinite(inv) & np.isfinite(disparity)
        assert np.corrcoef(inv[both], disparity[both])[0, 1] > 0.95
    kinds = dict(zip(read_failures(str(out))["video_id"].to_pylist(), read_failures(str(out))["error_type"].to_pylist()))
    assert kinds == {"truncated": "truncated_mpo", "mono": "mono_image", "big_left": "size_mismatch"}


@pytest.mark.slow
def test_mine_stereo_on_ray_gives_the_rows_of_the_local_engine(stereo_files, tmp_path):
    root, _ = stereo_files
    a, b = tmp_path / "local", tmp_path / "ray"
    assert run_cli("mine-stereo", root / "motorcycle.png", "--out", a, "--engine", "local", "--quiet").returncode == 0
    r = run_cli("mine-stereo", root / "motorcycle.png", "--out", b, "--engine", "ray", "--actors", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert read_frames(str(a)).equals(read_frames(str(b)))
