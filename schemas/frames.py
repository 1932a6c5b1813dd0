"""Frame rows, schema v1.1: one row per mined frame with its relative-depth pairs.

Pair coordinates are 0-based pixels (y = row, x = column) of the stored image,
whose size is ``width`` x ``height``. ``pair_ordinal[i]`` is +1 if point A is
closer to the camera than point B, -1 if B is closer, 0 if about the same depth
(ReDWeb and DIW use other conventions: convert at the edges, never here).
Extra columns (e.g. ``depth_png`` of stereo rows) may follow the required ones.

Optional columns, validated when present (version 1.1 added the first; files of version 1 have
none and read unchanged):

* ``pair_confidence`` list<float32>, one value in [0, 1] per pair: how sure the miner is of the
  pair (:func:`dynocc.factory.core.pairs.pair_confidence`); higher is more often right. A null cell
  means the row has none (e.g. stereo rows read together with video rows).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from .validate import (
    SCHEMA_VERSION,
    SchemaError,
    check_non_empty,
    check_range,
    conform,
    list_values,
    row_of_element,
    schema_metadata,
)

__all__ = [
    "SCHEMA_VERSION",
    "FRAME_SCHEMA",
    "FRAME_COLUMNS",
    "PAIR_COLUMNS",
    "CONFIDENCE_COLUMN",
    "frame_row",
    "frames_table",
    "validate_frames",
]


def _f(name: str, type_: pa.DataType, doc: str) -> pa.Field:
    return pa.field(name, type_, nullable=False, metadata={"description": doc})


FRAME_SCHEMA = pa.schema(
    [
        _f("dataset", pa.string(), "label of the source collection, e.g. 'dynocc', 'redweb'"),
        _f("video_id", pa.string(), "file stem, frame-folder name, or web-video extractor id"),
        _f("frame_index", pa.int32(), "0-based index of the frame in the decoded source sequence (0 for stereo)"),
        _f("width", pa.int32(), "width of the stored image in pixels"),
        _f("height", pa.int32(), "height of the stored image in pixels"),
        _f("image", pa.binary(), "the frame, encoded (JPEG)"),
        _f("pair_ya", pa.list_(pa.int16()), "0-based row of point A, in [0, height)"),
        _f("pair_xa", pa.list_(pa.int16()), "0-based column of point A, in [0, width)"),
        _f("pair_yb", pa.list_(pa.int16()), "0-based row of point B, in [0, height)"),
        _f("pair_xb", pa.list_(pa.int16()), "0-based column of point B, in [0, width)"),
        _f(
            "pair_ordinal",
            pa.list_(pa.int8()),
            "+1: A is closer to the camera than B; -1: B is closer; 0: about the same depth",
        ),
    ],
    metadata=schema_metadata("frames"),
)
"""Arrow schema of frame rows, v1 (required columns; extras may follow)."""

FRAME_COLUMNS = tuple(FRAME_SCHEMA.names)
PAIR_COLUMNS = ("pair_ya", "pair_xa", "pair_yb", "pair_xb", "pair_ordinal")
CONFIDENCE_COLUMN = "pair_confidence"
CONFIDENCE_TYPE = pa.list_(pa.float32())


def frame_row(
    dataset: str,
    video_id: str,
    frame_index: int,
    image_jpeg: bytes,
    width: int,
    height: int,
    ya: Sequence[int],
    xa: Sequence[int],
    yb: Sequence[int],
    xb: Sequence[int],
    ordinal: Sequence[int],
    **extra: Any,
) -> dict:
    """One frame row as a dict (pair arrays kept as NumPy); extra keyword columns are kept.

    ``image_jpeg`` may be bytes or the uint8 array from ``cv2.imencode``. Values
    are checked when the rows become a table (:func:`frames_table`).
    """
    if isinstance(image_jpeg, np.ndarray):
        image_jpeg = image_jpeg.tobytes()
    row = {
        "dataset": dataset,
        "video_id": video_id,
        "frame_index": int(frame_index),
        "width": int(width),
        "height": int(height),
        "image": bytes(image_jpeg),
        "pair_ya": np.asarray(ya).ravel(),
        "pair_xa": np.asarray(xa).ravel(),
        "pair_yb": np.asarray(yb).ravel(),
        "pair_xb": np.asarray(xb).ravel(),
        "pair_ordinal": np.asarray(ordinal).ravel(),
    }
    row.update(extra)
    return row


def _list_column(rows: list[dict], name: str) -> pa.Array:
    parts = [np.asarray(r[name]).ravel() for r in rows]
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    nonempty = [p for p in parts if len(p)]
    values = np.concatenate(nonempty) if nonempty else np.zeros(0, dtype=np.int64)
    if values.dtype == object:
        values = pa.array(values.tolist())
    else:
        values = pa.array(values)
    if offsets[-1] < 2**31:
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)
    return pa.LargeListArray.from_arrays(pa.array(offsets), values)


def _required(rows: list[dict], columns: Sequence[str]) -> None:
    for i, r in enumerate(rows):
        for c in columns:
            if c not in r:
                raise SchemaError(f"column {c!r}: missing in row {i}; got keys {sorted(r)}", c)


def frames_table(rows: list[dict]) -> pa.Table:
    """Build a validated frames table from row dicts (e.g. from :func:`frame_row`)."""
    if not rows:
        return FRAME_SCHEMA.empty_table()
    _required(rows, FRAME_COLUMNS)
    columns: dict[str, Any] = {}
    for name in FRAME_COLUMNS:
        if name in PAIR_COLUMNS:
            columns[name] = _list_column(rows, name)
        else:
            try:
                columns[name] = pa.array([r[name] for r in rows])
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
                raise SchemaError(f"column {name!r}: expected {FRAME_SCHEMA.field(name).type}, got {e}", name) from e
    if any(r.get(CONFIDENCE_COLUMN) is not None for r in rows):
        columns[CONFIDENCE_COLUMN] = pa.array(
            [None if r.get(CONFIDENCE_COLUMN) is None else np.asarray(r[CONFIDENCE_COLUMN], np.float32)
             for r in rows], type=CONFIDENCE_TYPE)
    for r in rows:
        for k in r:
            if k not in columns and k != CONFIDENCE_COLUMN:  # (None in every row: no column)
                columns[k] = None
    for k, v in columns.items():
        if v is None:
            columns[k] = pa.array([r.get(k) for r in rows])
    return validate_frames(pa.table(columns))


def validate_frames(table: pa.Table) -> pa.Table:
    """Validate a frames table and return it cast to :data:`FRAME_SCHEMA` (+ extras).

    Compatible types are cast when lossless (int64 -> int32, list<int64> ->
    list<int16>, large_string -> string, ...). Raises :class:`SchemaError` naming
    the column on: missing column, wrong type, nulls, empty dataset/video_id/image,
    negative frame_index, non-positive width/height, pair lists of unequal length
    within a row, ordinals outside {-1, 0, 1}, coordinates outside the image.
    """
    table = conform(table, FRAME_SCHEMA)
    if table.num_rows == 0:
        return table
    for name in ("dataset", "video_id", "image"):
        check_non_empty(table, name)
    check_range(table, "frame_index", low=0)
    check_range(table, "width", low=1)
    check_range(table, "height", low=1)

    flat: dict[str, np.ndarray] = {}
    lengths = None
    for name in PAIR_COLUMNS:
        values, lens = list_values(table, name)
        if lengths is None:
            lengths = lens
        elif not np.array_equal(lens, lengths):
            row = _first_mismatch(lens, lengths)
            raise SchemaError(
                f"column {name!r}: expected {lengths[row]} pairs like 'pair_ya' in row {row}, got {lens[row]}",
                name,
            )
        flat[name] = values

    ordinal = flat["pair_ordinal"]
    bad = (ordinal < -1) | (ordinal > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SchemaError(
            f"column 'pair_ordinal': expected values in {{-1, 0, 1}}, got {ordinal[i]} "
            f"(row {row_of_element(lengths, i)})",
            "pair_ordinal",
        )

    if CONFIDENCE_COLUMN in table.column_names:
        table = _check_confidence(table, lengths)

    for name, bound_col in (("pair_ya", "height"), ("pair_yb", "height"), ("pair_xa", "width"), ("pair_xb", "width")):
        values = flat[name]
        bound = np.repeat(table.column(bound_col).to_numpy(), lengths)
        bad = (values < 0) | (values >= bound)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            row = row_of_element(lengths, i)
            raise SchemaError(
                f"column {name!r}: expected coordinates in [0, {bound_col}={bound[i]}), got {values[i]} (row {row})",
                name,
            )
    return table


def _check_confidence(table: pa.Table, lengths: np.ndarray) -> pa.Table:
    """``pair_confidence``: list<float32>, one value in [0, 1] per pair, or a null cell (the row has
    none); cast when lossless."""
    name = CONFIDENCE_COLUMN
    col = table.column(name)
    if not pa.types.is_list(col.type) and not pa.types.is_large_list(col.type):
        raise SchemaError(f"column {name!r}: expected {CONFIDENCE_TYPE}, got {col.type}", name)
    try:
        col = col.cast(CONFIDENCE_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise SchemaError(f"column {name!r}: expected {CONFIDENCE_TYPE}, got {col.type} ({e})", name) from e
    table = table.set_column(table.column_names.index(name), pa.field(name, CONFIDENCE_TYPE), col)
    present = ~col.is_null().to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(present)  # table row of each non-null cell
    values, lens = list_values(table.filter(pa.array(present)), name)
    lengths = lengths[present]
    if not np.array_equal(lens, lengths):
        k = _first_mismatch(lens, lengths)
        raise SchemaError(
            f"column {name!r}: expected {lengths[k]} values like 'pair_ya' in row {rows[k]}, got {lens[k]}", name)
    bad = ~((values >= 0) & (values <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SchemaError(
            f"column {name!r}: expected values in [0, 1], got {values[i]} (row {rows[row_of_element(lengths, i)]})", name)
    return table


def _first_mismatch(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.flatnonzero(a != b)[0])
