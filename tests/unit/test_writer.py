"""Shards sized for object storage: commit records name whole items, readers see committed rows only."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dynocc.factory.io import writer as writer_mod
from dynocc.factory.io.writer import (
    ShardWriter,
    committed_files,
    committed_items,
    forget_items,
    read_failures,
    read_frames,
    read_summary,
    task_key,
)
from dynocc.schemas import SchemaError
from support import WHEN, some_failures, some_frame_rows


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _write_task(w: ShardWriter, key: str, items: list[tuple[str, list, list]]) -> list:
    """Stream ``items`` (item key, frame rows, failure rows) through one task; the stats it committed."""
    task = w.task(key)
    committed = []
    for item_key, rows, fails in items:
        if item_key in task.done:  # committed by an earlier attempt of this task
            continue
        task.begin_item(item_key, item_key.split(".")[0])
        for r in rows:  # one row at a time, as the miner makes them
            task.add_rows([r])
        committed += task.end_item(fails, seconds=1.0)
    return committed + task.close()


def test_round_trip_and_layout(tmp_path):
    w = ShardWriter(str(tmp_path))
    stats = w.write_item("bikes.mp4", some_frame_rows(), some_failures(), seconds=1.25, extra_stats={"flow": "dis"})
    k = task_key(["bikes.mp4"])
    assert stats.frames == 5 and stats.pairs == 20 and stats.failures == 1 and stats.seconds == 1.25
    nonce = stats.commit.rsplit("-", 1)[1].split(".")[0]  # this attempt's: attempts never share a name
    frames_file, failures_file = f"frames/{k}-00000-0000-{nonce}.parquet", f"failures/{k}-00000-{nonce}.parquet"
    assert stats.files == [failures_file, frames_file]
    assert stats.commit == f"commits/{k}-00000-{nonce}.parquet"
    record = pq.read_table(tmp_path / stats.commit).to_pylist()
    assert [r["item_key"] for r in record] == ["bikes.mp4"] and json.loads(record[0]["extra"]) == {"flow": "dis"}
    assert record[0]["ranges"] == [{"file": frames_file, "start": 0, "rows": 5},
                                   {"file": failures_file, "start": 0, "rows": 1}]
    kv = pq.read_metadata(tmp_path / frames_file).metadata
    assert kv[b"dynocc.schema_version"] == b"1.1" and kv[b"dynocc.table"] == b"frames"

    frames = read_frames(str(tmp_path))
    expect = some_frame_rows()
    assert frames.column("frame_index").to_pylist() == list(range(5))
    assert frames.column("image").to_pylist() == [r["image"] for r in expect]
    assert frames.column("pair_xa").to_pylist() == [r["pair_xa"].tolist() for r in expect]
    fails = read_failures(str(tmp_path)).to_pylist()
    assert len(fails) == 1 and fails[0]["error_type"] == "too_few_frames" and fails[0]["timestamp"] == WHEN
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]  # no temp files left


def test_same_item_same_rows_and_a_committed_item_is_left_alone(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    rows = some_frame_rows(indices=range(7))
    ShardWriter(str(a)).write_item("k", rows, some_failures(), seconds=2.0)
    shuffled = [rows[i] for i in (4, 0, 6, 2, 1, 5, 3)]  # input order does not matter
    ShardWriter(str(b)).write_item("k", shuffled, some_failures(), seconds=2.0)
    assert read_frames(str(a)).equals(read_frames(str(b)))
    before = _files(a)
    ShardWriter(str(a)).write_item("k", rows, some_failures(), seconds=2.0)  # committed already: untouched
    assert _files(a) == before


def test_an_item_committed_twice_is_read_once(tmp_path):
    """Two jobs on one output at once: each commits v1 in its own task; readers keep the first record's."""
    w = ShardWriter(str(tmp_path))
    first = _write_task(w, "a", [(f"v{i}.mp4", some_frame_rows(f"v{i}", range(3)), []) for i in (0, 1)])
    second = _write_task(w, "b", [(f"v{i}.mp4", some_frame_rows(f"v{i}", range(3)), some_failures(f"v{i}"))
                                  for i in (1, 2)])
    assert len(first) == len(second) == 2
    frames = read_frames(str(tmp_path))
    keys = sorted(zip(frames["video_id"].to_pylist(), frames["frame_index"].to_pylist()))
    assert keys == [(f"v{i}", j) for i in range(3) for j in range(3)]  # v1 once
    assert read_failures(str(tmp_path))["video_id"].to_pylist() == ["v2"]  # v1's copy with failures lost
    parts = {p.url.rsplit("/", 1)[1].split("-")[0]: p for p in writer_mod.committed_parts(str(tmp_path))}
    assert parts["a"].ranges is None and parts["b"].ranges == ((3, 3),)  # b's file: only v2's rows
    assert [s.item_key for s in committed_items(str(tmp_path))] == ["v0.mp4", "v1.mp4", "v2.mp4"]


def test_many_items_share_a_shard_and_one_commit_record(tmp_path):
    w = ShardWriter(str(tmp_path))
    items = [(f"v{i}.mp4", some_frame_rows(f"v{i}", range(3)), some_failures(f"v{i}") if i == 2 else [])
             for i in range(10)]
    stats = _write_task(w, "t", items)
    assert [s.item_key for s in stats] == [f"v{i}.mp4" for i in range(10)]
    names = sorted(re.sub(r"-[0-9a-f]{8}\.", ".", str(p.relative_to(tmp_path))) for p in tmp_path.rglob("*.parquet"))
    assert names == ["commits/t-00000.parquet", "failures/t-00000.parquet", "frames/t-00000-0000.parquet"]
    frames = read_frames(str(tmp_path))
    assert frames.num_rows == 30 and frames.column("video_id").to_pylist()[:4] == ["v0", "v0", "v0", "v1"]
    assert read_failures(str(tmp_path)).column("video_id").to_pylist() == ["v2"]
    assert [s.failures for s in committed_items(str(tmp_path))] == [0, 0, 1] + [0] * 7


def test_a_full_shard_commits_at_the_end_of_an_item_and_a_long_item_spans_shards(tmp_path):
    row_mb = writer_mod.frames_table(some_frame_rows(indices=range(1))).nbytes / 2**20
    w = ShardWriter(str(tmp_path), shard_size_mb=2.5 * row_mb, rows_per_group=1)  # 3 rows fill a shard
    task = w.task("t")
    task.begin_item("short.mp4", "short")
    task.add_rows(some_frame_rows("short", range(2)))
    assert task.end_item([], 1.0) == []  # 2 rows: the shard is not full, nothing committed yet
    task.begin_item("long.mp4", "long")
    task.add_rows(some_frame_rows("long", range(8)))  # 2 + 8 rows: shards of 3, 3, 3 and 1
    committed = task.end_item([], 1.0)
    names = sorted(re.sub(r"-[0-9a-f]{8}\.parquet", ".parquet", p.name) for p in (tmp_path / "frames").iterdir())
    assert committed == [] and names[1:] == ["t-00000-0000.parquet", "t-00000-0001.parquet", "t-00000-0002.parquet"]
    assert names[0].startswith(".t-00000-0003.parquet.tmp-")  # open: it holds the end of long.mp4
    assert not (tmp_path / "commits").exists()
    task.begin_item("next.mp4", "next")
    task.add_rows(some_frame_rows("next", range(2)))
    committed = task.end_item([], 1.0)  # the 4th shard is full at the end of an item: commit
    assert [s.item_key for s in committed] == ["short.mp4", "long.mp4", "next.mp4"]
    long = committed[1]
    assert [(re.sub(r"-[0-9a-f]{8}\.", ".", r["file"].split("/")[1]), r["start"], r["rows"]) for r in long.ranges] == [
        ("t-00000-0000.parquet", 2, 1), ("t-00000-0001.parquet", 0, 3), ("t-00000-0002.parquet", 0, 3),
        ("t-00000-0003.parquet", 0, 1)]
    assert task.close() == []
    frames = read_frames(str(tmp_path))
    by_video = list(zip(frames["video_id"].to_pylist(), frames["frame_index"].to_pylist()))
    assert [i for v, i in by_video if v == "long"] == list(range(8))
    assert frames.num_rows == 12


def test_a_dead_task_commits_nothing_since_its_last_commit_and_its_retry_completes_it(tmp_path, monkeypatch):
    row_mb = writer_mod.frames_table(some_frame_rows(indices=range(1))).nbytes / 2**20
    w = ShardWriter(str(tmp_path), shard_size_mb=1.5 * row_mb, rows_per_group=1)
    items = [(f"v{i}.mp4", some_frame_rows(f"v{i}", range(2)), []) for i in range(4)]
    task = w.task("t")
    for key, rows, _ in items[:2]:  # each item fills a shard: two commits
        task.begin_item(key)
        task.add_rows(rows)
        task.end_item([], 1.0)
    task.begin_item("v2.mp4")
    task.add_rows(items[2][1])  # ... and the worker dies here: v2's shard is never named
    assert [s.item_key for s in committed_items(str(tmp_path))] == ["v0.mp4", "v1.mp4"]
    assert sorted(read_frames(str(tmp_path)).column("video_id").to_pylist()) == ["v0"] * 2 + ["v1"] * 2

    real_put = writer_mod.StorageRoot.put

    def put_but_die_on_commit(self, rel, data):
        if rel.startswith("commits/"):
            raise OSError("killed before commit")
        real_put(self, rel, data)

    retry = w.task("t")  # the same task again (same items, same key)
    assert retry.done == {"v0.mp4", "v1.mp4"} and retry.seq == 2
    monkeypatch.setattr(writer_mod.StorageRoot, "put", put_but_die_on_commit)
    retry.begin_item("v2.mp4")
    retry.add_rows(items[2][1])
    with pytest.raises(OSError):
        retry.end_item([], 1.0)
    monkeypatch.undo()
    assert len(committed_items(str(tmp_path))) == 2  # its data files were written, not committed

    final = _write_task(w, "t", items)  # a third attempt: skips v0, v1
    assert [s.item_key for s in final] == ["v2.mp4", "v3.mp4"]
    frames = read_frames(str(tmp_path))
    keys = list(zip(frames["video_id"].to_pylist(), frames["frame_index"].to_pylist()))
    assert sorted(keys) == [(f"v{i}", j) for i in range(4) for j in range(2)]  # each row once
    named = {f for s in committed_items(str(tmp_path)) for f in s.files}
    on_disk = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet")
               if p.relative_to(tmp_path).parts[0] != "commits"}
    assert named < on_disk  # the dead attempts' files stay, named by no record: never read


def test_invalid_rows_raise_before_writing(tmp_path):
    w = ShardWriter(str(tmp_path))
    bad = some_frame_rows()
    bad[2]["pair_ordinal"] = np.array([1, 3, 0, 0])
    with pytest.raises(SchemaError, match="pair_ordinal"):
        w.write_item("bad", bad, [], seconds=0.0)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    assert committed_items(str(tmp_path)) == []


def test_a_late_attempts_rows_beat_a_worker_lost_record_and_each_item_counts_once(tmp_path):
    """The driver recorded v1 as 'worker_lost' while an attempt was still mining it; that attempt
    committed v1 with rows afterwards: readers, totals and resume take the rows, once."""
    w = ShardWriter(str(tmp_path))
    lost = [dict(some_failures("v1")[0], error_type="worker_lost", stage="mine")]
    _write_task(w, "a-lost", [("v1.mp4", [], lost)])  # first by name
    _write_task(w, "b-late", [(f"v{i}.mp4", some_frame_rows(f"v{i}", range(3)), []) for i in (0, 1)])
    _write_task(w, "c-again", [("v0.mp4", [], lost)])  # a record without rows after one with rows: loses
    items = committed_items(str(tmp_path))
    assert [(s.item_key, s.frames, s.failures) for s in items] == [("v1.mp4", 3, 0), ("v0.mp4", 3, 0)]
    frames = read_frames(str(tmp_path))
    assert sorted(zip(frames["video_id"].to_pylist(), frames["frame_index"].to_pylist())) == \
        [(f"v{i}", j) for i in (0, 1) for j in range(3)]
    assert read_failures(str(tmp_path)).num_rows == 0
    totals = w.finalize()
    assert (totals["items"], totals["frames"], totals["failures"]) == (2, 6, 0)
    forget_items(str(tmp_path), [s for s in items if s.item_key == "v1.mp4"])  # every record naming v1 goes
    assert [s.item_key for s in committed_items(str(tmp_path))] == ["v0.mp4"]
    named = {k for rec in writer_mod.commit_records(str(tmp_path))
             for k in pq.read_table(tmp_path / rec)["item_key"].to_pylist()}
    assert named == {"v0.mp4"}


def test_finalize_and_summary(tmp_path):
    w = ShardWriter(str(tmp_path))
    assert read_summary(str(tmp_path)) is None
    _write_task(w, "t", [(f"{v}.mp4", some_frame_rows(v, range(3)), some_failures(v) if v == "b" else [])
                         for v in ("a", "b", "c")])
    w.write_item("empty.mp4", [], some_failures("empty"), seconds=0.5)  # a failed item still commits
    totals = w.finalize({"job": "test"})
    assert totals["items"] == 4 and totals["frames"] == 9 and totals["pairs"] == 36
    assert totals["failures"] == 2 and totals["seconds"] == 3.5 and totals["summary"] == {"job": "test"}
    assert read_summary(str(tmp_path)) == totals
    assert sorted(read_failures(str(tmp_path)).column("video_id").to_pylist()) == ["b", "empty"]


def test_forget_rewrites_the_shared_files_without_the_forgotten_items(tmp_path):
    w = ShardWriter(str(tmp_path))
    _write_task(w, "t", [("a.mp4", some_frame_rows("a", range(3)), []),
                         ("b.mp4", some_frame_rows("b", range(2)), some_failures("b")),
                         ("c.mp4", some_frame_rows("c", range(4)), some_failures("c"))])
    failed = [s for s in committed_items(str(tmp_path)) if s.failures]
    assert forget_items(str(tmp_path), failed[:1]) == 1  # forget b only
    assert [s.item_key for s in committed_items(str(tmp_path))] == ["a.mp4", "c.mp4"]
    frames = read_frames(str(tmp_path))
    assert frames["video_id"].to_pylist() == ["a"] * 3 + ["c"] * 4
    assert read_failures(str(tmp_path))["video_id"].to_pylist() == ["c"]
    c = committed_items(str(tmp_path))[1]
    rows = pq.read_table(tmp_path / c.ranges[0]["file"]).slice(c.ranges[0]["start"], c.ranges[0]["rows"])
    assert rows["video_id"].to_pylist() == ["c"] * 4  # the ranges follow the rewrite
    on_disk = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet")
               if p.relative_to(tmp_path).parts[0] != "commits"}
    assert on_disk == {f for s in committed_items(str(tmp_path)) for f in s.files}
    forget_items(str(tmp_path), committed_items(str(tmp_path)))
    assert committed_items(str(tmp_path)) == [] and read_frames(str(tmp_path)).num_rows == 0


def test_outputs_of_the_earlier_layout_are_still_read(tmp_path):
    """One stats/<h>.json marker per item (schema 1.1 outputs): read, resumable, forgettable."""
    from dynocc.factory.io.writer import item_hash

    h = item_hash("old.mp4")
    (tmp_path / "frames").mkdir()
    (tmp_path / "stats").mkdir()
    pq.write_table(writer_mod.frames_table(some_frame_rows("old", range(3))), tmp_path / f"frames/part-{h}-00000.parquet")
    (tmp_path / "stats" / f"{h}.json").write_text(json.dumps({
        "item_key": "old.mp4", "item_id": h, "frames": 3, "pairs": 12, "failures": 0, "seconds": 1.0,
        "files": [f"frames/part-{h}-00000.parquet"], "extra": {}, "schema_version": "1.1"}))
    ShardWriter(str(tmp_path)).write_item("new.mp4", some_frame_rows("new", range(2)), [], 1.0)
    assert [s.item_key for s in committed_items(str(tmp_path))] == ["new.mp4", "old.mp4"]
    assert sorted(read_frames(str(tmp_path))["video_id"].to_pylist()) == ["new"] * 2 + ["old"] * 3
    forget_items(str(tmp_path), [s for s in committed_items(str(tmp_path)) if s.item_key == "old.mp4"])
    assert not (tmp_path / "stats" / f"{h}.json").exists() and len(committed_files(str(tmp_path))) == 1


def test_memory_url_and_pickle():
    url = "memory://dynocc-writer-test/out"
    w = pickle.loads(pickle.dumps(ShardWriter(url)))
    w.write_item("m", some_frame_rows(indices=range(6)), some_failures(), seconds=0.2)
    files = committed_files(url)
    assert len(files) == 1 and all(f.startswith("memory://") for f in files)
    assert read_frames(url).column("frame_index").to_pylist() == list(range(6))
    assert read_failures(url).num_rows == 1
