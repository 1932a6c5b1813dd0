"""`dynocc export` reading shards from S3 and writing its output there (moto)."""

from __future__ import annotations

from dynocc.factory.io.writer import ShardWriter, read_frames
from dynocc.factory.tools.export import export, read_diw_csv


def test_export_to_and_from_s3(mined_with_stereo, s3):
    frames = read_frames(str(mined_with_stereo))
    ShardWriter(s3.url("m"), storage_options=s3.storage_options).write_item("all", frames, [], 0.0)
    s = export(s3.url("m"), "diw-csv", s3.url("exp/pairs.csv"), storage_options=s3.storage_options)
    assert s.files == [s3.url("exp/pairs.csv")]
    got = read_diw_csv(s3.url("exp/pairs.csv"), storage_options=s3.storage_options)
    assert len(got) == s.pairs == sum(len(r["pair_ordinal"]) for r in frames.to_pylist())
    assert got[0].image.startswith(s3.url("exp/images/")) and s3.fs.exists(got[0].image)
