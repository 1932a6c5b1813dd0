"""Frame and failure schemas: types, metadata, validation errors, read checks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynocc.schemas import (
    FAILURE_SCHEMA,
    FRAME_SCHEMA,
    SCHEMA_VERSION,
    SchemaError,
    failure_row,
    failures_table,
    frame_row,
    frames_table,
    read_table,
    validate_failures,
    validate_frames,
)


def _row(frame_index=0, n=3, width=32, height=24, **over):
    rng = np.random.default_rng(abs(frame_index))
    kw = dict(
        dataset="dynocc",
        video_id="bikes",
        frame_index=frame_index,
        image_jpeg=b"\xff\xd8fakejpeg\xff\xd9",
        width=width,
        height=height,
        ya=rng.integers(0, height, n),
        xa=rng.integers(0, width, n),
        yb=rng.integers(0, height, n),
        xb=rng.integers(0, width, n),
        ordinal=rng.integers(-1, 2, n),
    )
    kw.update(over)
    return frame_row(**kw)


def _table(n_rows=4):
    return frames_table([_row(i) for i in range(n_rows)])


def _replace(table: pa.Table, name: str, values, type_=None) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, pa.array(values, type=type_))


def _raises(table_or_fn, column: str, *words: str):
    with pytest.raises(SchemaError) as e:
        table_or_fn() if callable(table_or_fn) else validate_frames(table_or_fn)
    msg = str(e.value)
    assert repr(column) in msg, msg
    assert e.value.column == column
    for w in words:
        assert w in msg, msg
    return msg


def test_frame_schema_v1_exact():
    assert SCHEMA_VERSION == "1.1"
    expected = [
        ("dataset", pa.string()),
        ("video_id", pa.string()),
        ("frame_index", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("image", pa.binary()),
        ("pair_ya", pa.list_(pa.int16())),
        ("pair_xa", pa.list_(pa.int16())),
        ("pair_yb", pa.list_(pa.int16())),
        ("pair_xb", pa.list_(pa.int16())),
        ("pair_ordinal", pa.list_(pa.int8())),
    ]
    assert [(f.name, f.type) for f in FRAME_SCHEMA] == expected
    assert b"closer" in FRAME_SCHEMA.field("pair_ordinal").metadata[b"description"]
    assert FRAME_SCHEMA.metadata[b"dynocc.schema_version"] == b"1.1"
    assert FRAME_SCHEMA.metadata[b"dynocc.table"] == b"frames"
    assert FAILURE_SCHEMA.metadata[b"dynocc.table"] == b"failures"
    assert FAILURE_SCHEMA.field("video_id").nullable
    assert FAILURE_SCHEMA.field("timestamp").type == pa.timestamp("ms", tz="UTC")


def test_frames_round_trip_with_metadata(tmp_path):
    rows = [_row(i) for i in range(3)]
    table = frames_table(rows)
    assert table.schema.equals(FRAME_SCHEMA)
    path = tmp_path / "f.parquet"
    pq.write_table(table, path)
    kv = pq.read_metadata(path).metadata
    assert kv[b"dynocc.schema_version"] == b"1.1" and kv[b"dynocc.table"] == b"frames"
    back = read_table(str(path))
    assert back.equals(table)
    got = back.to_pylist()
    for r, g in zip(rows, got):
        assert g["image"] == r["image"]
        assert g["pair_ordinal"] == r["pair_ordinal"].tolist()
        assert g["pair_xb"] == r["pair_xb"].tolist()


def test_lossless_casts_and_extra_columns():
    t = _table(2)
    loose = pa.table(
        {
            "extra_score": pa.array([0.5, 0.7]),
            **{n: t.column(n) for n in t.column_names if n not in ("frame_index", "pair_ya", "video_id")},
            "frame_index": pa.array([5, 6], pa.int64()),
            "pair_ya": pa.array(t.column("pair_ya").to_pylist(), pa.large_list(pa.int64())),
            "video_id": pa.array(["a", "b"], pa.large_string()),
        }
    )
    out = validate_frames(loose)
    assert out.schema.names[: len(FRAME_SCHEMA)] == FRAME_SCHEMA.names
    assert out.schema.names[-1] == "extra_score"
    assert out.schema.field("frame_index").type == pa.int32()
    assert out.schema.field("pair_ya").type == pa.list_(pa.int16())
    assert out.column("pair_ya").to_pylist() == t.column("pair_ya").to_pylist()
    assert out.schema.metadata[b"dynocc.schema_version"] == b"1.1"


def test_empty_pairs_and_empty_table():
    t = frames_table([_row(0, n=0)])
    assert t.column("pair_ya").to_pylist() == [[]]
    assert frames_table([]).schema.equals(FRAME_SCHEMA)
    assert failures_table([]).schema.equals(FAILURE_SCHEMA)


def test_missing_column_named():
    msg = _raises(_table().drop_columns(["height"]), "height", "missing", "int32")
    assert "got columns" in msg
    row = _row(0)
    del row["image"]
    _raises(lambda: frames_table([row]), "image", "missing")


def test_wrong_type_named():
    t = _replace(_table(2), "frame_index", ["a", "b"])
    _raises(t, "frame_index", "expected type int32", "got string")
    t = _replace(_table(2), "image", ["x", "y"])
    _raises(t, "image", "binary", "string")


def test_lossy_cast_named():
    _raises(_replace(_table(2), "frame_index", [1, 2**40], pa.int64()), "frame_index", "int32", "losslessly")
    _raises(lambda: frames_table([_row(0, ya=[1.5, 2, 3])]), "pair_ya", "int16")
    _raises(lambda: frames_table([_row(0, width=40000, xa=[1, 2, 40000])]), "pair_xa", "int16")


def test_nulls_named():
    _raises(_replace(_table(2), "video_id", ["a", None]), "video_id", "null", "row 1")


def test_ordinal_outside_set_named():
    _raises(lambda: frames_table([_row(0), _row(1, ordinal=[1, 2, 0])]), "pair_ordinal", "{-1, 0, 1}", "got 2", "row 1")


def test_unequal_pair_lengths_named():
    msg = _raises(lambda: frames_table([_row(0), _row(1, xb=[1, 2])]), "pair_xb", "row 1")
    assert "got 2" in msg


def test_coordinates_outside_image_named():
    _raises(lambda: frames_table([_row(0, height=24, yb=[0, 24, 3])]), "pair_yb", "height=24", "got 24")
    _raises(lambda: frames_table([_row(0, width=32, xa=[-1, 0, 0])]), "pair_xa", "width=32", "got -1")


def test_negative_frame_index_and_bad_size_named():
    _raises(lambda: frames_table([_row(-1)]), "frame_index", "got -1")
    _raises(_replace(_table(1), "width", [0], pa.int32()), "width", "got 0")


def test_empty_strings_named():
    _raises(lambda: frames_table([_row(0, video_id="")]), "video_id", "empty")
    _raises(lambda: frames_table([_row(0, image_jpeg=b"")]), "image", "empty")


def test_validation_of_a_large_table():
    n = 100_000
    rng = np.random.default_rng(0)
    lens = np.full(n, 20)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lens)]).astype(np.int32))

    def lst(hi, t):
        return pa.ListArray.from_arrays(offsets, pa.array(rng.integers(0 if hi > 1 else -1, hi, lens.sum()), t))

    table = pa.table(
        {
            "dataset": pa.array(["dynocc"] * n),
            "video_id": pa.array(["v"] * n),
            "frame_index": pa.array(np.arange(n), pa.int64()),
            "width": pa.array(np.full(n, 640), pa.int32()),
            "height": pa.array(np.full(n, 480), pa.int32()),
            "image": pa.array([b"x"] * n),
            "pair_ya": lst(480, pa.int64()),
            "pair_xa": lst(640, pa.int64()),
            "pair_yb": lst(480, pa.int64()),
            "pair_xb": lst(640, pa.int64()),
            "pair_ordinal": lst(2, pa.int64()),
        }
    )
    out = validate_frames(table)
    assert out.num_rows == n


def test_failures_round_trip(tmp_path):
    when = dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.timezone.utc)
    rows = [
        failure_row("missing.mp4", "resolve", "not_found", "no such file", attempts=1, timestamp=when),
        failure_row("x.mp4", "decode", "corrupt_video", "bad header", video_id="x", attempts=3,
                    timestamp="2024-05-06T07:08:09.123Z"),
        {"input": "y", "stage": "mine", "error_type": "too_few_frames", "message": "2 < 5",
         "timestamp": dt.datetime(2024, 5, 6, 7, 8, 9, 123000)},  # naive = UTC, attempts default 1
    ]
    table = failures_table(rows)
    assert table.schema.equals(FAILURE_SCHEMA)
    path = tmp_path / "fail.parquet"
    pq.write_table(table, path)
    back = read_table(str(path), table="failures")
    got = back.to_pylist()
    assert [g["timestamp"] for g in got] == [when] * 3
    assert [g["video_id"] for g in got] == [None, "x", None]
    assert [g["attempts"] for g in got] == [1, 3, 1]
    assert got[1]["error_type"] == "corrupt_video"


def test_failures_errors_named():
    good = failures_table([failure_row("a", "decode", "corrupt_video", "m")])
    _raises(lambda: validate_failures(good.drop_columns(["stage"])), "stage", "missing")
    _raises(lambda: validate_failures(_replace(good, "attempts", [-1], pa.int32())), "attempts", "got -1")
    _raises(lambda: failures_table([failure_row("a", "decode", "", "m")]), "error_type", "empty")
    _raises(lambda: failures_table([failure_row("a", "decode", "x", "m", timestamp="yesterday")]), "timestamp")
    _raises(lambda: failures_table([{"input": "a", "stage": "s", "message": "m"}]), "error_type", "missing")


def test_read_wrong_or_missing_version_fails_clearly(tmp_path):
    table = _table(2)
    v2 = tmp_path / "v2.parquet"
    pq.write_table(table.replace_schema_metadata({"dynocc.schema_version": "2", "dynocc.table": "frames"}), v2)
    with pytest.raises(SchemaError) as e:
        read_table(str(v2))
    msg = str(e.value)
    assert "dynocc.schema_version" in msg and "expected '1' or '1.1'" in msg and "got '2'" in msg and str(v2) in msg

    none = tmp_path / "none.parquet"
    pq.write_table(table.replace_schema_metadata(None), none)
    with pytest.raises(SchemaError, match="dynocc.schema_version.*expected '1' or '1.1', got none"):
        read_table(str(none))

    with pytest.raises(SchemaError, match="dynocc.table.*expected 'failures', got 'frames'"):
        read_table(_write(tmp_path / "ok.parquet", table), table="failures")


def _write(path, table) -> str:
    pq.write_table(table, path)
    return str(path)


def test_read_validates_columns(tmp_path):
    bad = _table(2).drop_columns(["pair_ordinal"])
    p = tmp_path / "bad.parquet"
    pq.write_table(bad, p)  # metadata still says frames v1
    with pytest.raises(SchemaError) as e:
        read_table(str(p))
    assert "'pair_ordinal'" in str(e.value) and str(p) in str(e.value)
