"""Parquet shard writer: deterministic names and bytes, commit markers, committed-only reads."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dynocc.factory.io import writer as writer_mod
from dynocc.factory.io.writer import (
    ShardWriter,
    committed_files,
    committed_items,
    item_hash,
    read_failures,
    read_frames,
    read_summary,
)
from dynocc.schemas import SchemaError
from support import WHEN, some_failures, some_frame_rows

def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_round_trip_and_layout(tmp_path):
    w = ShardWriter(str(tmp_path), rows_per_shard=512)
    stats = w.write_item("bikes.mp4", some_frame_rows(), some_failures(), seconds=1.25, extra_stats={"flow": "dis"})
    h = item_hash("bikes.mp4")
    assert stats.item_id == h and stats.frames == 5 and stats.pairs == 20 and stats.failures == 1
    assert stats.files == [f"frames/part-{h}-00000.parquet", f"failures/part-{h}.parquet"]
    saved = json.loads((tmp_path / "stats" / f"{h}.json").read_text())
    assert saved["item_key"] == "bikes.mp4" and saved["files"] == stats.files
    assert saved["seconds"] == 1.25 and saved["extra"] == {"flow": "dis"} and saved["schema_version"] == "1.1"

    kv = pq.read_metadata(tmp_path / stats.files[0]).metadata
    assert kv[b"dynocc.schema_version"] == b"1.1" and kv[b"dynocc.table"] == b"frames"
    assert pq.read_metadata(tmp_path / stats.files[1]).metadata[b"dynocc.table"] == b"failures"

    frames = read_frames(str(tmp_path))
    expect = some_frame_rows()
    assert frames.column("frame_index").to_pylist() == list(range(5))
    assert frames.column("image").to_pylist() == [r["image"] for r in expect]
    assert frames.column("pair_xa").to_pylist() == [r["pair_xa"].tolist() for r in expect]
    fails = read_failures(str(tmp_path)).to_pylist()
    assert len(fails) == 1 and fails[0]["error_type"] == "too_few_frames" and fails[0]["timestamp"] == WHEN
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]  # no temp files left


def test_deterministic_names_and_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    rows = some_frame_rows(indices=range(7))
    ShardWriter(str(a), rows_per_shard=3).write_item("k", rows, some_failures(), seconds=2.0)
    shuffled = [rows[i] for i in (4, 0, 6, 2, 1, 5, 3)]  # input order does not matter
    ShardWriter(str(b), rows_per_shard=3).write_item("k", shuffled, some_failures(), seconds=2.0)
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    assert fa == fb
    # writing again into the same folder changes nothing
    ShardWriter(str(a), rows_per_shard=3).write_item("k", rows, some_failures(), seconds=2.0)
    assert _files(a) == fa


def test_rows_per_shard_splitting(tmp_path):
    w = ShardWriter(str(tmp_path), rows_per_shard=2)
    stats = w.write_item("v", some_frame_rows(indices=range(5)), [], seconds=0.1)
    h = item_hash("v")
    assert stats.files == [f"frames/part-{h}-{k:05d}.parquet" for k in range(3)]
    sizes = [pq.read_metadata(tmp_path / f).num_rows for f in stats.files]
    assert sizes == [2, 2, 1]
    first = pq.read_table(tmp_path / stats.files[0]).column("frame_index").to_pylist()
    assert first == [0, 1]
    assert committed_files(str(tmp_path), "failures") == []
    assert read_failures(str(tmp_path)).num_rows == 0


def test_rewrite_with_fewer_rows_removes_stale_parts(tmp_path):
    w = ShardWriter(str(tmp_path), rows_per_shard=2)
    w.write_item("v", some_frame_rows(indices=range(5)), some_failures(), seconds=0.1)
    w.write_item("v", some_frame_rows(indices=range(2)), [], seconds=0.1)
    h = item_hash("v")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"part-{h}-00000.parquet"]
    assert not (tmp_path / "failures" / f"part-{h}.parquet").exists()
    assert read_frames(str(tmp_path)).num_rows == 2


def test_item_done_only_after_commit(tmp_path, monkeypatch):
    w = ShardWriter(str(tmp_path), rows_per_shard=2)
    assert not w.item_done("crash.mp4")

    real_put = writer_mod.StorageRoot.put

    def put_but_crash_on_commit(self, rel, data):
        if rel.startswith("stats/"):
            raise OSError("killed before commit")
        real_put(self, rel, data)

    monkeypatch.setattr(writer_mod.StorageRoot, "put", put_but_crash_on_commit)
    with pytest.raises(OSError):
        w.write_item("crash.mp4", some_frame_rows(), some_failures(), seconds=1.0)
    monkeypatch.undo()

    h = item_hash("crash.mp4")
    assert (tmp_path / "frames" / f"part-{h}-00000.parquet").exists()  # data written...
    assert not w.item_done("crash.mp4")  # ...but not committed
    assert committed_files(str(tmp_path)) == []
    assert read_frames(str(tmp_path)).num_rows == 0
    assert read_failures(str(tmp_path)).num_rows == 0

    w.write_item("crash.mp4", some_frame_rows(), some_failures(), seconds=1.0)  # the retry commits
    assert w.item_done("crash.mp4") and not w.item_done("other.mp4")
    assert read_frames(str(tmp_path)).num_rows == 5


def test_uncommitted_parts_are_ignored(tmp_path):
    w = ShardWriter(str(tmp_path))
    w.write_item("good", some_frame_rows("good"), [], seconds=0.5)
    good = tmp_path / "frames" / f"part-{item_hash('good')}-00000.parquet"
    orphan = tmp_path / "frames" / f"part-{item_hash('orphan')}-00000.parquet"
    shutil.copy(good, orphan)  # a valid data file without its stats JSON
    assert committed_files(str(tmp_path)) == [str(good)]
    frames = read_frames(str(tmp_path))
    assert frames.num_rows == 5 and set(frames.column("video_id").to_pylist()) == {"good"}
    assert [s.item_key for s in committed_items(str(tmp_path))] == ["good"]


def test_invalid_rows_raise_before_writing(tmp_path):
    w = ShardWriter(str(tmp_path))
    bad = some_frame_rows()
    bad[2]["pair_ordinal"] = np.array([1, 3, 0, 0])
    with pytest.raises(SchemaError, match="pair_ordinal"):
        w.write_item("bad", bad, [], seconds=0.0)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    assert not w.item_done("bad")


def test_many_items_finalize_and_summary(tmp_path):
    w = ShardWriter(str(tmp_path), rows_per_shard=2)
    assert read_summary(str(tmp_path)) is None
    for v in ("a", "b", "c"):
        w.write_item(f"{v}.mp4", some_frame_rows(v, range(3)), some_failures(v) if v == "b" else [], seconds=1.0)
    w.write_item("empty.mp4", [], some_failures("empty"), seconds=0.5)  # a failed item still commits
    totals = w.finalize({"job": "test"})
    assert totals["items"] == 4 and totals["frames"] == 9 and totals["pairs"] == 36
    assert totals["failures"] == 2 and totals["seconds"] == 3.5 and totals["summary"] == {"job": "test"}
    assert read_summary(str(tmp_path)) == totals
    assert json.loads((tmp_path / "_SUCCESS").read_text())["items"] == 4
    frames = read_frames(str(tmp_path))
    assert frames.num_rows == 9
    assert sorted(read_failures(str(tmp_path)).column("video_id").to_pylist()) == ["b", "empty"]


def test_memory_url_and_pickle():
    url = "memory://dynocc-writer-test/out"
    w = pickle.loads(pickle.dumps(ShardWriter(url, rows_per_shard=4)))
    w.write_item("m", some_frame_rows(indices=range(6)), some_failures(), seconds=0.2)
    assert w.item_done("m")
    files = committed_files(url)
    assert len(files) == 2 and all(f.startswith("memory://") for f in files)
    assert read_frames(url).column("frame_index").to_pylist() == list(range(6))
    assert read_failures(url).num_rows == 1
