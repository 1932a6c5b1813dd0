"""Trainer input: augmentation moves pairs with the pixels, keep rate, online stereo pairs, padding,
weighted mixing of shard roots in Ray Data (local and S3: tests/integration/test_trainer_data_ray.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dynocc.factory.io.writer import ShardWriter
from dynocc.trainer.config import DataConfig, DataSource, parse_data_arg
from dynocc.trainer.data import (
    Crop,
    DataError,
    crop_image,
    crop_points,
    decode_row,
    plan_items,
    random_crop,
)
from support import RAMP_H, RAMP_W, ramp_row

H, W = RAMP_H, RAMP_W  # the size of ramp_row's frames


def test_parse_data_arg():
    assert parse_data_arg("s3://bucket/redweb:30") == DataSource(url="s3://bucket/redweb", weight=30)
    assert parse_data_arg("/data/dynocc:0.5") == DataSource(url="/data/dynocc", weight=0.5)
    assert parse_data_arg("s3://bucket/dynocc") == DataSource(url="s3://bucket/dynocc")
    assert parse_data_arg("memory://x") == DataSource(url="memory://x")
    assert parse_data_arg("out/run") == DataSource(url="out/run", weight=1.0)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("rh, rw", [(96, 128), (180, 240), (130, 173)])
def test_points_follow_the_pixels_through_resize_crop_and_flip(flip, rh, rw):
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    coords = np.dstack([yy, xx, np.zeros_like(yy)])
    size = 96
    c = Crop(H, W, rh, rw, (rh - size) // 2, rw - size, size, flip)
    out = crop_image(coords, c, cv2.INTER_NEAREST)
    rng = np.random.default_rng(0)
    y, x = rng.integers(0, H, 500), rng.integers(0, W, 500)
    ny, nx, inside = crop_points(y, x, c)
    assert inside.sum() > 50 and (~inside).sum() > 0
    tol = max(1.0, H / rh) + 0.5
    got = out[ny[inside], nx[inside]]
    assert np.abs(got[:, 0] - y[inside]).max() <= tol
    assert np.abs(got[:, 1] - x[inside]).max() <= tol


def test_random_crops_scale_the_short_side_and_stay_inside():
    rng = np.random.default_rng(0)
    crops = [random_crop(H, W, 96, rng, (1.0, 1.5)) for _ in range(200)]
    assert all(96 <= c.rh <= 144 and abs(c.rw - W * c.rh / H) <= 1 for c in crops)  # short side x U(1, 1.5)
    assert all(0 <= c.y0 <= c.rh - 96 and 0 <= c.x0 <= c.rw - 96 for c in crops)
    assert 60 < sum(c.flip for c in crops) < 140
    assert not any(c.flip for c in (random_crop(H, W, 96, rng, flip=False) for _ in range(20)))


def _check_order(out, strict_margin=6):
    """Ordered pairs must agree with the brightness (= inverse depth) of the augmented image."""
    n = out["pair_mask"].sum()
    assert not out["pair_mask"][n:].any()
    img = out["image"][..., 0].astype(int)
    ya, xa, yb, xb, o = (out[k][:n].astype(int) for k in ("pair_ya", "pair_xa", "pair_yb", "pair_xb", "pair_ordinal"))
    diff = img[ya, xa] - img[yb, xb]
    clear = (o != 0) & (np.abs(diff) > strict_margin)
    assert clear.sum() > 0.5 * (o != 0).sum()
    assert (np.sign(diff[clear]) == o[clear]).all()
    return n


def test_stored_pairs_are_cropped_with_the_image_and_kept_at_the_keep_rate():
    rng = np.random.default_rng(1)
    row = ramp_row(1000, rng)
    cfg = DataConfig(image_size=64, max_pairs=1200, scale_range=(1.0, 1.5))
    flips, kept_all = 0, []
    for _ in range(20):
        out = decode_row(row, cfg, 1.0, rng)
        assert out["image"].shape == (64, 64, 3) and out["pair_ya"].shape == (1200,)
        kept_all.append(_check_order(out, 8))
        flips += out["image"][0, 0, 0] > out["image"][0, -1, 0]
    assert 0 < flips < 20  # both orientations happen
    assert max(kept_all) < 1000  # pairs outside the crop were dropped
    sparse = [decode_row(row, cfg, 0.1, rng)["pair_mask"].sum() for _ in range(20)]
    assert 0.05 * np.mean(kept_all) < np.mean(sparse) < 0.16 * np.mean(kept_all)  # DynOcc: 10% per step
    capped = decode_row(row, DataConfig(image_size=64, max_pairs=50), 1.0, rng)
    assert capped["pair_mask"].all() and capped["pair_ya"].shape == (50,)


def test_stereo_rows_get_pairs_sampled_online_with_the_sigma_rule():
    rng = np.random.default_rng(2)
    row = ramp_row(10, rng, stereo=True)
    cfg = DataConfig(image_size=96, stereo_pairs=400, max_pairs=500)
    for _ in range(5):
        out = decode_row(row, cfg, 0.1, rng)
        n = _check_order(out)
        assert n == 400  # the stored 10 pairs are not used; keep_rate does not apply
        o = out["pair_ordinal"][:n]
        assert (o == 1).sum() > 100 and (o == -1).sum() > 100 and (o == 0).sum() > 0


def test_plan_items_repeats_files_by_weight(tmp_path):
    rng = np.random.default_rng(3)
    for name, k in (("a", 3), ("b", 2)):
        w = ShardWriter(str(tmp_path / name), shard_size_mb=1e-6, rows_per_group=1)  # a shard per row
        w.write_item(name, [ramp_row(5, rng) for _ in range(k)], [], 0.0)
    cfg = DataConfig(sources=[DataSource(url=str(tmp_path / "a"), weight=2.5),
                              DataSource(url=str(tmp_path / "b"), keep_rate=1.0)])
    items = plan_items(cfg, passes=2, seed=0)
    assert len(items) == 2 * (3 * 3 + 2)
    a = [i for i in items if "/a/" in i["file"]]
    assert {i["row_keep"] for i in a} == {2.5 / 3} and {i["keep_rate"] for i in a} == {0.1}
    assert {i["keep_rate"] for i in items if "/b/" in i["file"]} == {1.0}
    assert items[:11] != items[11:]  # each pass has its own order
    with pytest.raises(DataError, match="no committed"):
        plan_items(DataConfig(sources=[DataSource(url=str(tmp_path / "empty"))]))
