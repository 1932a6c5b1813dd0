"""Trainer input in Ray Data: weighted mixing of shard roots, local and on S3 (moto), on a local Ray
(conftest's ``ray_local``)."""

from __future__ import annotations

import numpy as np

from dynocc.factory.io.writer import ShardWriter
from dynocc.trainer.config import DataConfig, DataSource
from dynocc.trainer.data import build_train_dataset
from support import ramp_row


def _write_root(url: str, rows: list[dict], storage_options=None) -> None:
    w = ShardWriter(url, storage_options=storage_options)
    task = w.task("t")
    for k in range(0, len(rows), 3):  # an item per 3 rows, a shard per item: several files per root
        task.begin_item(f"item{k}")
        task.add_rows(rows[k:k + 3])
        task.end_item([], 0.0)
        task.commit()


def test_ray_dataset_mixes_roots_by_weight(ray_local, tmp_path):
    rng = np.random.default_rng(4)
    _write_root(str(tmp_path / "dark"), [ramp_row(20, rng, value=20) for _ in range(6)])
    _write_root(str(tmp_path / "light"), [ramp_row(20, rng, stereo=True, value=230) for _ in range(10)])
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
    _write_root(url, [ramp_row(20, rng) for _ in range(4)], s3.storage_options)
    cfg = DataConfig(sources=[DataSource(url=url, keep_rate=1.0)], image_size=64, max_pairs=32,
                     storage_options=s3.storage_options)
    rows = build_train_dataset(cfg).take_all()
    assert len(rows) == 4  # every committed row came back through S3
    # the random crop may push every pair of a row out of the frame; the rows together keep some
    assert any(bool(r["pair_mask"].any()) for r in rows)
