"""Failure rows, schema v1: one row per input or work item that could not be mined.

``stage`` is where it failed ('resolve', 'download', 'decode', 'mine', 'write',
...); ``error_type`` is short and machine-readable ('not_found', 'corrupt_video',
'too_few_frames', 'empty_folder', ...); ``message`` is for people.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pyarrow as pa

from .validate import SCHEMA_VERSION, SchemaError, check_non_empty, check_range, conform, schema_metadata

__all__ = ["SCHEMA_VERSION", "FAILURE_SCHEMA", "FAILURE_COLUMNS", "failure_record", "failure_row", "failures_table", "validate_failures"]


def _f(name: str, type_: pa.DataType, doc: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"description": doc})


FAILURE_SCHEMA = pa.schema(
    [
        _f("input", pa.string(), "what the user passed (path, URL, list entry)"),
        _f("video_id", pa.string(), "the work item's video id, if it got that far", nullable=True),
        _f("stage", pa.string(), "where it failed: resolve, download, decode, mine, write, ..."),
        _f("error_type", pa.string(), "short machine-readable kind: not_found, corrupt_video, too_few_frames, ..."),
        _f("message", pa.string(), "human-readable explanation"),
        _f("attempts", pa.int32(), "how many times it was tried"),
        _f("timestamp", pa.timestamp("ms", tz="UTC"), "when the failure was recorded (UTC)"),
    ],
    metadata=schema_metadata("failures"),
)
"""Arrow schema of failure rows, v1 (required columns; extras may follow)."""

FAILURE_COLUMNS = tuple(FAILURE_SCHEMA.names)


def _utc(ts: Any) -> Any:
    if ts is None:
        return _dt.datetime.now(_dt.timezone.utc)
    if isinstance(ts, str):
        try:
            ts = _dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError as e:
            raise SchemaError(f"column 'timestamp': expected an ISO 8601 time, got {ts!r}", "timestamp") from e
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    if isinstance(ts, _dt.datetime) and ts.tzinfo is None:
        return ts.replace(tzinfo=_dt.timezone.utc)  # naive times are taken as UTC
    return ts


def failure_record(input: str, stage: str, error_type: str, message: str,  # noqa: A002 - the column's name
                   video_id: str | None = None, attempts: int = 1) -> dict:
    """What failed, where and why, as a dict (the failure row's columns but the timestamp): how resolve
    and decode failures travel before they are written (:func:`failure_row` adds the time)."""
    return {"input": str(input), "video_id": video_id, "stage": stage, "error_type": error_type,
            "message": str(message), "attempts": int(attempts)}


def failure_row(
    input: str,  # noqa: A002 - the column's name
    stage: str,
    error_type: str,
    message: str,
    video_id: str | None = None,
    attempts: int = 1,
    timestamp: Any = None,
    **extra: Any,
) -> dict:
    """One failure row as a dict; ``timestamp`` defaults to now (UTC).

    ``timestamp`` may be a datetime (naive = UTC), an ISO 8601 string or POSIX seconds.
    """
    row = failure_record(input, stage, error_type, message, video_id, attempts)
    row["timestamp"] = _utc(timestamp)
    row.update(extra)
    return row


def failures_table(rows: list[dict]) -> pa.Table:
    """Build a validated failures table from row dicts (e.g. from :func:`failure_row`).

    ``video_id`` may be absent (null), ``attempts`` defaults to 1, ``timestamp`` to now.
    """
    if not rows:
        return FAILURE_SCHEMA.empty_table()
    for i, r in enumerate(rows):
        for c in ("input", "stage", "error_type", "message"):
            if c not in r:
                raise SchemaError(f"column {c!r}: missing in row {i}; got keys {sorted(r)}", c)
    names = list(FAILURE_COLUMNS)
    for r in rows:
        names.extend(k for k in r if k not in names)
    columns = {}
    for name in names:
        if name == "timestamp":
            values = [_utc(r.get("timestamp")) for r in rows]
        elif name == "attempts":
            values = [r.get("attempts", 1) for r in rows]
        else:
            values = [r.get(name) for r in rows]
        field = FAILURE_SCHEMA.field(name) if name in FAILURE_COLUMNS else None
        try:
            columns[name] = pa.array(values, type=field.type if field is not None else None)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as e:
            expected = field.type if field is not None else "one type"
            raise SchemaError(f"column {name!r}: expected {expected}, got values that do not convert ({e})", name) from e
    return validate_failures(pa.table(columns))


def validate_failures(table: pa.Table) -> pa.Table:
    """Validate a failures table and return it cast to :data:`FAILURE_SCHEMA` (+ extras).

    Raises :class:`SchemaError` naming the column on: missing column, wrong type,
    nulls in a required column, empty stage/error_type, negative attempts.
    """
    table = conform(table, FAILURE_SCHEMA)
    if table.num_rows == 0:
        return table
    check_non_empty(table, "stage")
    check_non_empty(table, "error_type")
    check_range(table, "attempts", low=0)
    return table
