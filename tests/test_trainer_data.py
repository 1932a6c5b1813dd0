"""Trainer input: augmentation moves pairs with the pixels, keep rate, online stereo pairs, padding,
weighted mixing of shard roots in Ray Data (local and S3)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from dynocc.factory.core.stereo import inverse_depth_png
from dynocc.factory.io.writer import ShardWriter
from dynocc.schemas import frame_row
from dynocc.trainer.config import DataConfig, DataSource, parse_data_arg
from dynocc.trainer.data import (
    Crop,
    DataError,
    build_train_dataset,
    crop_image,
    crop_points,
    decode_row,
    plan_items,
    random_crop,
)
from dynocc.trainer.synthetic import encode_jpeg

H, W = 120, 160


def _ramp() -> np.ndarray:
    """Grey ramp, brighter to the right: brightness stands for inverse depth (right = closer)."""
    q = np.linspace(40, 240, W, dtype=np.float32)
    return np.repeat(np.repeat(q[None, :, None], H, 0), 3, 2).astype(np.uint8)


def _ramp_row(n: int, rng, stereo: bool = False, value: int | None = None, dataset: str = "ramp") -> dict:
    img = _ramp() if value is None else np.full((H, W, 3), value, np.uint8)
    xa, xb = rng.integers(0, W, 4 * n), rng.integers(0, W, 4 * n)
    ok = np.abs(xa - xb) >= 8
    xa, xb = xa[ok][:n], xb[ok][:n]
    ya, yb = rng.integers(0, H, len(xa)), rng.integers(0, H, len(xa))
    ordinal = np.where(xa > xb, 1, -1)
    extra = {}
    if stereo:
        extra["depth_png"] = inverse_depth_png(_ramp()[..., 0].astype(np.float32), np.ones((H, W), bool),
                                               np.zeros((H, W), bool))
    return frame_row(dataset, "v", 0, encode_jpeg(img, 95), W, H, ya, xa, yb, xb, ordinal, **extra)


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
    row = _ramp_row(1000, rng)
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
    row = _ramp_row(10, rng, stereo=True)
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
        w = ShardWriter(str(tmp_path / name), rows_per_shard=1)
        w.write_item(name, [_ramp_row(5, rng) for _ in range(k)], [], 0.0)
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


# --------------------------------------------------------------------------- Ray Data


@pytest.fixture(scope="module")
def ray_local():
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    try:
        yield ray
    finally:
        ray.shutdown()


def _write_root(url: str, rows: list[dict], storage_options=None) -> None:
    w = ShardWriter(url, rows_per_shard=3, storage_options=storage_options)
    w.write_item("item", rows, [], 0.0)


def test_ray_dataset_mixes_roots_by_weight(ray_local, tmp_path):
    rng = np.random.default_rng(4)
    _write_root(str(tmp_path / "dark"), [_ramp_row(20, rng, value=20) for _ in range(6)])
    _write_root(str(tmp_path / "light"), [_ramp_row(20, rng, stereo=True, value=230) for _ in range(10)])
    cfg = DataConfig(sources=[DataSource(url=str(tmp_path / "dark"), weight=3, keep_rate=1.0),
                              DataSource(url=str(tmp_path / "light"), weight=0.5)],
                     image_size=64, stereo_pairs=50, max_pairs=64)
    rows = build_train_dataset(cfg, passes=2).take_all()
    dark = [r for r in rows if r["image"].mean() < 128]
    light = [r for r in rows if r["image"].mean() >= 128]
    assert len(dark) == 2 * 3 * 6  # weight 3, two passes
    assert 0 < len(light) < 2 * 10  # weight 0.5: each of 10 rows kept with probability 0.5 per pass
    assert rows[0]["image"].shape == (64, 64, 3) and rows[0]["image"].dtype == np.uint8
    assert rows[0]["pair_ordinal"].dtype == np.int8 and rows[0]["pair_mask"].shape == (64,)
    assert all(r["pair_mask"].sum() == 50 for r in light)


def test_ray_dataset_reads_shards_from_s3(ray_local, s3):
    rng = np.random.default_rng(5)
    url = s3.url("mined")
    _write_root(url, [_ramp_row(20, rng) for _ in range(4)], s3.storage_options)
    cfg = DataConfig(sources=[DataSource(url=url, keep_rate=1.0)], image_size=64, max_pairs=32,
                     storage_options=s3.storage_options)
    rows = build_train_dataset(cfg).take_all()
    assert len(rows) == 4  # every committed row came back through S3
    # the random crop may push every pair of a row out of the frame; the rows together keep some
    assert any(bool(r["pair_mask"].any()) for r in rows)
