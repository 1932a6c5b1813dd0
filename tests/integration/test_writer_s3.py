"""The Parquet shard writer on S3 (a moto server, conftest's ``s3``): committed-only reads, the summary, and
storage options flat or per protocol (as the sources take them)."""

from __future__ import annotations

from dynocc.factory.io.writer import (
    ShardWriter,
    committed_files,
    committed_items,
    read_failures,
    read_frames,
    read_summary,
)
import pyarrow.parquet as pq

from support import some_failures, some_frame_rows


def test_s3_via_moto(s3):
    """On the shared moto S3 server (conftest), a fresh bucket, the AWS variables set for this test."""
    opts = {**s3.storage_options, "skip_instance_cache": True}
    url = s3.url("run1")
    w = ShardWriter(url, storage_options=opts, rows_per_group=2)
    stats = w.write_item("s3.mp4", some_frame_rows(indices=range(3)), some_failures(), seconds=0.3)
    assert [s.item_key for s in committed_items(url, opts)] == ["s3.mp4"]
    files = committed_files(url, storage_options=opts)
    assert files == [f"{url}/{rel}" for rel in stats.files if rel.startswith("frames/")]
    assert pq.ParquetFile(s3.fs.open(files[0])).metadata.num_row_groups == 2  # streamed in row groups
    assert read_frames(url, opts).column("frame_index").to_pylist() == [0, 1, 2]
    assert read_failures(url, opts).num_rows == 1
    assert w.finalize({})["frames"] == 3
    assert read_summary(url, opts)["items"] == 1


def test_an_open_shard_is_invisible_on_s3_until_its_commit(s3):
    """A shard is a multipart upload, published when closed; the commit record comes after it."""
    opts = {**s3.storage_options, "skip_instance_cache": True}
    url = s3.url("open")
    task = ShardWriter(url, storage_options=opts, rows_per_group=1).task("t")
    task.begin_item("a.mp4", "a")
    task.add_rows(some_frame_rows("a", range(3)))  # written, but the shard is still open
    s3.fs.invalidate_cache()
    assert not s3.fs.exists(f"{url}/frames") or s3.fs.ls(f"{url}/frames") == []
    assert read_frames(url, opts).num_rows == 0
    task.end_item([], 1.0)
    assert [s.item_key for s in task.close()] == ["a.mp4"]
    assert read_frames(url, opts).num_rows == 3


def test_the_shard_writer_takes_per_protocol_options_as_the_sources_do(s3, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # only the options lead to the bucket
    out = s3.url("mined")
    per_protocol = {"s3": s3.storage_options}
    ShardWriter(out, storage_options=per_protocol).write_item("x.mp4", [], [], 0.0)
    assert [s.item_key for s in committed_items(out, per_protocol)] == ["x.mp4"]
    assert [s.item_key for s in committed_items(out, s3.storage_options)] == ["x.mp4"]  # flat, the same
