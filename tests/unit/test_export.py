"""`dynocc export` round trips (diw-csv, youtube3d, webdataset) and the README's reader example, on real mined shards
(from and to S3: tests/integration/test_export_s3.py)."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import textwrap
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from dynocc.cli import main
from dynocc.factory.tools.export import (
    export,
    frame_key,
    ordinal_from_relation,
    read_diw_csv,
    relation_from_ordinal,
)
from dynocc.factory.core.stereo import decode_inverse_depth_png, inverse_depth_png
from dynocc.factory.io.writer import ShardWriter, read_frames
from dynocc.schemas import frame_row


@pytest.fixture(scope="module")
def mined(mined_clip, tmp_path_factory):
    """The mined shards plus one stereo row (with depth_png) in the same root."""
    out = tmp_path_factory.mktemp("export_mixed") / "mined"
    shutil.copytree(mined_clip, out)
    h, w = 48, 64
    disparity = np.tile(np.linspace(1, 9, w, dtype=np.float32), (h, 1))
    rng = np.random.default_rng(1)
    n = 9
    left = cv2.imencode(".jpg", np.full((h, w, 3), 90, np.uint8))[1].tobytes()
    row = frame_row("redweb", "left image.jpg", 0, left, w, h, rng.integers(0, h, n), rng.integers(0, w, n),
                    rng.integers(0, h, n), rng.integers(0, w, n), np.array([1, -1, 0] * 3),
                    depth_png=inverse_depth_png(disparity, np.ones((h, w), bool)))
    ShardWriter(str(out)).write_item("left.jpg", [row], [], 0.1)
    return out


def _truth(out, storage_options=None) -> dict[str, dict]:
    """key -> the frame row (schema v1) as read by the project's own reader."""
    return {frame_key(r["dataset"], r["video_id"], r["frame_index"]): r
            for r in read_frames(str(out), storage_options).to_pylist()}


def _pairs(row: dict) -> list[tuple]:
    return [tuple(int(v) for v in p)
            for p in zip(row["pair_ya"], row["pair_xa"], row["pair_yb"], row["pair_xb"], row["pair_ordinal"])]


def test_relation_sign_conversion():
    # schema v1: +1 A closer; DIW: '>' A further than B
    assert relation_from_ordinal(1) == "<" and relation_from_ordinal(-1) == ">" and relation_from_ordinal(0) == "="
    for o in (1, -1, 0):
        assert ordinal_from_relation(relation_from_ordinal(o)) == o
    with pytest.raises(ValueError):
        ordinal_from_relation("?")


def test_diw_csv_round_trip(mined, tmp_path, capsys):
    truth = _truth(mined)
    out = tmp_path / "diw"
    assert main(["export", "--data", str(mined), "--format", "diw-csv", "--out", str(out)]) == 0
    assert "wrote:" in capsys.readouterr().out
    csv_path = out / "diw.csv"
    lines = csv_path.read_text().splitlines()
    n_pairs = sum(len(r["pair_ordinal"]) for r in truth.values())
    assert len(lines) == 2 * n_pairs  # DIW: one image line + one pair line per pair
    assert lines[0].startswith("./images/") and lines[0].endswith(".jpg")
    fields = lines[1].split(",")
    assert len(fields) == 7 and fields[4] in "<>="

    got = defaultdict(list)
    for p in read_diw_csv(csv_path):
        assert os.path.isabs(p.image) and Path(p.image).is_file()
        key = Path(p.image).stem
        row = truth[key]
        assert (p.width, p.height) == (row["width"], row["height"])
        assert Path(p.image).read_bytes() == row["image"]
        got[key].append((p.ya, p.xa, p.yb, p.xb, p.ordinal))
    assert {k: _pairs(r) for k, r in truth.items()} == dict(got)

    # 1-indexed coordinates and the DIW relation, checked on the raw text against the first pair
    first_key = Path(lines[0]).stem
    ya, xa, yb, xb, o = _pairs(truth[first_key])[0]
    assert lines[1] == f"{ya + 1},{xa + 1},{yb + 1},{xb + 1},{'<' if o == 1 else '>' if o == -1 else '='}," \
                       f"{truth[first_key]['width']},{truth[first_key]['height']}"


def test_diw_reader_on_a_handwritten_file(tmp_path):
    (tmp_path / "DIW_test").mkdir()
    text = "./DIW_test/a.thumb\n10,20,30,40,>,500,375\n\n./DIW_test/b.thumb\r\n1,1,2,2,<,64,48\r\n"
    (tmp_path / "DIW_test.csv").write_text(text)
    a, b = read_diw_csv(tmp_path / "DIW_test.csv")
    assert (a.ya, a.xa, a.yb, a.xb, a.ordinal, a.relation, a.width, a.height) == (9, 19, 29, 39, -1, ">", 500, 375)
    assert (b.ya, b.xa, b.ordinal) == (0, 0, 1) and b.image == str(tmp_path / "DIW_test" / "b.thumb")
    (tmp_path / "bad.csv").write_text("img.jpg\n1,2,3,4,>,5\n")
    with pytest.raises(ValueError, match="line 2"):
        read_diw_csv(tmp_path / "bad.csv")


def test_youtube3d_round_trip_with_where_and_limit(mined, tmp_path):
    truth = _truth(mined)
    out = tmp_path / "yt3d" / "train.jsonl"
    s = export(str(mined), "youtube3d", str(out), where="dataset = 'dynocc' AND frame_index >= 3", limit=2)
    assert s.frames == 2 and s.files == [str(out)]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2
    for rec in records:
        key = Path(rec["image"]).stem
        row = truth[key]
        assert row["dataset"] == "dynocc" and row["frame_index"] >= 3
        assert (out.parent / rec["image"]).read_bytes() == row["image"]
        assert (rec["width"], rec["height"], rec["video_id"], rec["frame_index"]) == (
            row["width"], row["height"], row["video_id"], row["frame_index"])
        back = [(ya - 1, xa - 1, yb - 1, xb - 1, ordinal_from_relation(r)) for ya, xa, yb, xb, r in rec["pairs"]]
        assert back == _pairs(row)
    assert s.pairs == sum(len(r["pairs"]) for r in records)


def test_webdataset_round_trip(mined, tmp_path):
    truth = _truth(mined)
    out = tmp_path / "wds"
    s = export(str(mined), "webdataset", str(out), shard_size=4)
    shards = sorted(out.glob("shard-*.tar"))
    assert [str(p) for p in shards] == s.files and len(shards) == -(-len(truth) // 4)
    samples = defaultdict(dict)
    for shard in shards:
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                key, ext = m.name.split(".", 1)  # WebDataset: the key is up to the first dot
                samples[key][ext] = tar.extractfile(m).read()
                assert m.mtime == 0
    assert set(samples) == set(truth)
    for key, sample in samples.items():
        row = truth[key]
        meta = json.loads(sample["json"])
        assert sample["jpg"] == row["image"]
        assert list(zip(meta["ya"], meta["xa"], meta["yb"], meta["xb"], meta["ordinal"])) == _pairs(row)
        assert (meta["width"], meta["height"], meta["video_id"]) == (row["width"], row["height"], row["video_id"])
        if row.get("depth_png"):
            assert sample["depth.png"] == row["depth_png"]
            inv, _ = decode_inverse_depth_png(sample["depth.png"])
            assert inv.shape == (row["height"], row["width"])
        else:
            assert "depth.png" not in sample
    # the same input gives the same bytes
    again = export(str(mined), "webdataset", str(tmp_path / "wds2"), shard_size=4)
    assert [Path(f).read_bytes() for f in again.files] == [p.read_bytes() for p in shards]


def test_export_errors(mined, tmp_path, capsys):
    assert main(["export", "--data", str(mined), "--format", "diw-csv", "--out", str(tmp_path / "x"),
                 "--where", "no_such_column = 1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dynocc export: ")
    with pytest.raises(SystemExit):
        main(["export", "--data", str(mined), "--format", "tfrecord", "--out", str(tmp_path / "y")])


# The README's "Query, inspect, export" example, run as written (OUT replaced by the mined folder).
README_EXAMPLE = """
from dynocc.factory.io.writer import committed_files

files = committed_files(OUT)   # the committed shards only (local paths, or URLs for s3://...)

import pyarrow.dataset as ds
table = ds.dataset(files, format="parquet").to_table(columns=["video_id", "frame_index", "pair_ordinal"])

import duckdb
per_video = duckdb.sql(f"SELECT video_id, count(*) AS frames, sum(len(pair_ordinal)) AS pairs "
                       f"FROM read_parquet({files}) GROUP BY video_id ORDER BY video_id").fetchall()

import polars as pl
df = pl.scan_parquet(files).select(
    "video_id", "frame_index", pl.col("pair_ordinal").list.len().alias("pairs")).collect()

from datasets import load_dataset
hf = load_dataset("parquet", data_files=files, split="train")
print(table.num_rows, per_video, df.height, hf.num_rows, hf[0]["video_id"], len(hf[0]["pair_ya"]))
"""


def test_readme_example_reads_the_shards_as_they_are(mined_clip, tmp_path, monkeypatch):
    mined = mined_clip
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    code = textwrap.dedent(README_EXAMPLE)  # polars and datasets are test dependencies: all of it runs
    scope = {"OUT": str(mined)}
    exec(compile(code, "README example", "exec"), scope)

    frames = read_frames(str(mined))
    n = frames.num_rows
    assert scope["table"].num_rows == n
    per_video = dict((v, (f, p)) for v, f, p in scope["per_video"])
    for vid in set(frames["video_id"].to_pylist()):
        rows = [r for r in frames.to_pylist() if r["video_id"] == vid]
        assert per_video[vid] == (len(rows), sum(len(r["pair_ordinal"]) for r in rows))
    assert scope["df"].height == n
    assert scope["df"]["pairs"].sum() == sum(len(o) for o in frames["pair_ordinal"].to_pylist())
    hf = scope["hf"]
    assert hf.num_rows == n
    assert set(hf.column_names) >= {"video_id", "image", "pair_ya", "pair_ordinal"}
    by_key = {(r["video_id"], r["frame_index"]): r for r in frames.to_pylist()}
    for r in hf:
        assert r["pair_ordinal"] == list(by_key[(r["video_id"], r["frame_index"])]["pair_ordinal"])
