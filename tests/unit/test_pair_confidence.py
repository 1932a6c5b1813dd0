"""``pair_confidence`` (frame schema 1.1): written by the miner, validated, readable beside schema-1
files, exposed by ``dynocc query``, drawn by ``dynocc show --colour-by confidence``, and filtered by
``dynocc train --min-confidence``. Its calibration on real footage is in tests/test_realdata.py."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynocc.factory.tools.overlay import confidence_rgb, draw_pairs, verdict_rgb
from dynocc.factory.tools.query import connect
from dynocc.schemas import SchemaError, frame_row, frames_table, read_table
from dynocc.schemas.validate import READABLE_VERSIONS, SCHEMA_VERSION
from dynocc.trainer.data import _stored_pairs

W, H = 40, 30


def _row(i: int, n: int = 5, confidence=True) -> dict:
    rng = np.random.default_rng(i)
    extra = {"pair_confidence": rng.uniform(0, 1, n).astype(np.float32)} if confidence else {}
    return frame_row("dynocc", "clip", i, b"\xff\xd8jpeg", W, H, rng.integers(0, H, n), rng.integers(0, W, n),
                     rng.integers(0, H, n), rng.integers(0, W, n), rng.integers(-1, 2, n), **extra)


def test_schema_version_is_1_1_and_reads_version_1():
    assert SCHEMA_VERSION == "1.1" and READABLE_VERSIONS == ("1", "1.1")


def test_confidence_column_is_validated():
    table = frames_table([_row(0), _row(1, n=3)])
    assert table.schema.field("pair_confidence").type == pa.list_(pa.float32())
    bad = _row(2)
    bad["pair_confidence"] = np.array([0.5, 1.5, 0.2, 0.1, 0.3], np.float32)
    with pytest.raises(SchemaError, match=r"pair_confidence.*\[0, 1\].*1\.5"):
        frames_table([bad])
    short = _row(3)
    short["pair_confidence"] = short["pair_confidence"][:2]
    with pytest.raises(SchemaError, match="pair_confidence.*expected 5 values"):
        frames_table([short])
    mixed = frames_table([_row(4), _row(5, confidence=False)])  # a row without confidence: null there
    assert mixed.column("pair_confidence").null_count == 1
    assert "pair_confidence" not in frames_table([_row(6, confidence=False)]).column_names


def test_version_1_files_without_confidence_still_read(tmp_path):
    old = frames_table([_row(0, confidence=False)])
    md = {b"dynocc.schema_version": b"1", b"dynocc.table": b"frames"}
    pq.write_table(old.replace_schema_metadata(md), tmp_path / "v1.parquet")
    back = read_table(str(tmp_path / "v1.parquet"))
    assert back.num_rows == 1 and "pair_confidence" not in back.column_names


def test_mined_rows_carry_confidence_and_query_exposes_it(mined_clip, tmp_path):
    con = connect(str(mined_clip))
    try:
        n, lo, hi, nulls = con.execute(
            "SELECT count(*), min(confidence), max(confidence), count(*) - count(confidence) FROM pairs").fetchone()
    finally:
        con.close()
    assert n > 0 and nulls == 0 and 0.0 <= lo < hi <= 1.0, (n, lo, hi, nulls)

    # Shards without the column beside it (rows written without confidence): NULL there.
    from dynocc.factory.io.writer import ShardWriter

    root2 = tmp_path / "old"
    row = _row(0, confidence=False)
    row["video_id"] = "clip-old"
    ShardWriter(str(root2)).write_item("old-input", [row], [], 0.1)
    con = connect([str(mined_clip), str(root2)])
    try:
        old_nulls, new_nulls = con.execute(
            "SELECT count(*) FILTER (WHERE video_id = 'clip-old' AND confidence IS NULL), "
            "count(*) FILTER (WHERE video_id <> 'clip-old' AND confidence IS NULL) FROM pairs").fetchone()
    finally:
        con.close()
    assert old_nulls == 5 and new_nulls == 0


def test_min_confidence_drops_unsure_stored_pairs():
    from dynocc.trainer.data import random_crop

    row = _row(0, n=200)
    row["pair_confidence"] = np.linspace(0, 1, 200).astype(np.float32)
    row["pair_ya"] = np.full(200, 10)
    row["pair_yb"] = np.full(200, 12)
    row["pair_xa"] = np.arange(200) % W
    row["pair_xb"] = (np.arange(200) + 3) % W
    c = random_crop(H, W, 20, np.random.default_rng(0), (1.0, 1.0), False)
    rng = np.random.default_rng(0)
    every = _stored_pairs(row, c, 1.0, rng)[4]
    sure = _stored_pairs(row, c, 1.0, rng, min_confidence=0.5)[4]
    assert 0 < len(sure) < len(every), (len(sure), len(every))
    assert len(sure) <= 0.55 * len(every)


def test_overlay_lines_by_confidence_and_verdict():
    img = np.full((60, 80, 3), 128, np.uint8)
    ya, xa, yb, xb = np.array([10, 40]), np.array([10, 10]), np.array([10, 40]), np.array([60, 60])
    colours = confidence_rgb([0.0, 1.0])
    assert tuple(colours[0]) != tuple(colours[1])
    assert tuple(confidence_rgb([np.nan])[0]) == (120, 120, 120)
    pic = draw_pairs(img, ya, xa, yb, xb, [1, -1], line_rgb=colours, legend=False)
    for row, colour in ((20, colours[0]), (80, colours[1])):  # upscaled x2
        assert (np.abs(pic[row, 60:100].astype(int) - colour.astype(int)).sum(axis=1) < 30).any()
    v = verdict_rgb([1, -1, 0])
    assert len({tuple(c) for c in v.tolist()}) == 3
