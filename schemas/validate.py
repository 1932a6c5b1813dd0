"""Schema version, :class:`SchemaError`, type coercion and validation on read.

Every table dynocc writes carries two keys in its Arrow schema metadata, which
Parquet stores in the file's key-value metadata:

* ``dynocc.schema_version`` — :data:`SCHEMA_VERSION` (written; :data:`READABLE_VERSIONS` are read);
* ``dynocc.table`` — ``'frames'`` or ``'failures'``.

:func:`~dynocc.schemas.read.read_table` refuses files whose version or table kind is missing or
wrong, and validates columns, types and values before returning the table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SCHEMA_VERSION = "1.1"
# Versions this code reads. 1.1 added the optional frame column ``pair_confidence`` (additive:
# files written as version 1 read unchanged, without that column).
READABLE_VERSIONS = ("1", "1.1")
VERSION_KEY = "dynocc.schema_version"
TABLE_KEY = "dynocc.table"
TABLE_KINDS = ("frames", "failures")


class SchemaError(ValueError):
    """A table does not match its dynocc schema.

    The message names the offending column (or metadata key) and says what was
    expected and what was found; ``column`` holds that name.
    """

    def __init__(self, message: str, column: str | None = None):
        super().__init__(message)
        self.column = column


def schema_metadata(table_kind: str) -> dict[bytes, bytes]:
    """Schema-level metadata for a table of kind ``table_kind``."""
    return {VERSION_KEY.encode(): SCHEMA_VERSION.encode(), TABLE_KEY.encode(): table_kind.encode()}


# ----------------------------------------------------------------------------- coercion


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t)


def _is_binary(t: pa.DataType) -> bool:
    return (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or getattr(pa.types, "is_binary_view", lambda _: False)(t)
    )


def _is_list(t: pa.DataType) -> bool:
    return (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or getattr(pa.types, "is_list_view", lambda _: False)(t)
        or getattr(pa.types, "is_large_list_view", lambda _: False)(t)
    )


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _compatible(got: pa.DataType, expected: pa.DataType) -> bool:
    """Whether ``got`` may be cast to ``expected`` (the cast itself checks losslessness)."""
    if pa.types.is_null(got):
        return True
    if pa.types.is_dictionary(got):
        return _compatible(got.value_type, expected)
    if pa.types.is_integer(expected):
        return _is_number(got)
    if _is_string(expected):
        return _is_string(got)
    if _is_binary(expected):
        return _is_binary(got)
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(got) or _is_string(got)
    if _is_list(expected):
        return _is_list(got) and (_is_number(got.value_type) or pa.types.is_null(got.value_type))
    return False


def _cast_column(col: pa.ChunkedArray, field: pa.Field) -> pa.ChunkedArray:
    """Cast ``col`` to ``field.type`` if compatible and lossless, else raise SchemaError."""
    got, expected = col.type, field.type
    if got == expected:
        return col
    if not _compatible(got, expected):
        raise SchemaError(f"column {field.name!r}: expected type {expected}, got {got}", field.name)
    try:
        if pa.types.is_dictionary(got):
            col = col.cast(got.value_type)
            got = col.type
        if pa.types.is_timestamp(expected) and pa.types.is_timestamp(got):
            if got.tz is None:  # naive timestamps are taken as UTC
                col = col.cast(pa.timestamp(got.unit, tz="UTC"))
            return col.cast(expected, safe=False)  # sub-millisecond digits are dropped
        if pa.types.is_timestamp(expected) and _is_string(got):
            try:
                return col.cast(expected)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                naive = col.cast(pa.timestamp(expected.unit))  # ISO strings without a zone: UTC
                return naive.cast(expected)
        return col.cast(expected, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise SchemaError(
            f"column {field.name!r}: expected type {expected}, got {got} with values that do not "
            f"convert losslessly ({e})",
            field.name,
        ) from e


def _first_true(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def conform(table: Any, schema: pa.Schema) -> pa.Table:
    """Return ``table`` with ``schema``'s columns first (cast, non-null checked), extras after.

    Extra columns are kept unchanged in their order. The result carries ``schema``'s
    metadata (version and table kind). Raises :class:`SchemaError`.
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"expected a pyarrow.Table, got {type(table).__name__}")
    names = table.column_names
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SchemaError(f"column {dup[0]!r}: expected once, got {names.count(dup[0])} columns of that name", dup[0])
    arrays, fields = [], []
    for field in schema:
        if field.name not in names:
            raise SchemaError(
                f"column {field.name!r}: missing (expected type {field.type}); got columns {names}", field.name
            )
        col = _cast_column(table.column(field.name), field)
        if not field.nullable and col.null_count:
            row = _first_true(col.is_null().to_numpy(zero_copy_only=False))
            raise SchemaError(
                f"column {field.name!r}: expected no nulls, got {col.null_count} null(s) (first at row {row})",
                field.name,
            )
        arrays.append(col)
        fields.append(field)
    for name in names:
        if schema.get_field_index(name) < 0:
            arrays.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=schema.metadata))


# ----------------------------------------------------------------------------- value checks


def check_range(table: pa.Table, name: str, low: int | None = None, high: int | None = None) -> None:
    """Raise SchemaError if a non-null integer column has values outside [low, high]."""
    values = table.column(name).to_numpy()
    bad = np.zeros(len(values), dtype=bool)
    if low is not None:
        bad |= values < low
    if high is not None:
        bad |= values > high
    if bad.any():
        row = _first_true(bad)
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise SchemaError(
            f"column {name!r}: expected values in [{lo}, {hi}], got {values[row]} at row {row}", name
        )


def check_non_empty(table: pa.Table, name: str) -> None:
    """Raise SchemaError if a string/binary column holds an empty value."""
    col = table.column(name)
    lengths = (pc.binary_length(col) if _is_binary(col.type) else pc.utf8_length(col)).to_numpy()
    bad = lengths == 0
    if bad.any():
        raise SchemaError(f"column {name!r}: expected a non-empty value, got an empty one at row {_first_true(bad)}", name)


def list_values(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(flattened values, per-row lengths) of a non-null list column, as NumPy arrays."""
    col = table.column(name)
    flat = pc.list_flatten(col)
    if flat.null_count:
        raise SchemaError(f"column {name!r}: expected no null list elements, got {flat.null_count}", name)
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False).astype(np.int64)
    return flat.to_numpy(), lengths


def row_of_element(lengths: np.ndarray, element: int) -> int:
    """Row index holding flattened list element ``element``."""
    return int(np.searchsorted(np.cumsum(lengths), element, side="right"))


# ----------------------------------------------------------------------------- reading


def check_metadata(metadata: dict | None, where: str, table: str | None = None) -> str:
    """Check version and kind in schema metadata; return the table kind."""
    md = {bytes(k).decode(errors="replace"): bytes(v).decode(errors="replace") for k, v in (metadata or {}).items()}
    version = md.get(VERSION_KEY)
    if version not in READABLE_VERSIONS:
        got = "none (not written by dynocc?)" if version is None else repr(version)
        want = " or ".join(repr(v) for v in READABLE_VERSIONS)
        raise SchemaError(f"{where}: metadata {VERSION_KEY!r}: expected {want}, got {got}", VERSION_KEY)
    kind = md.get(TABLE_KEY)
    expected = (table,) if table else TABLE_KINDS
    if kind not in expected:
        want = " or ".join(repr(k) for k in expected)
        raise SchemaError(f"{where}: metadata {TABLE_KEY!r}: expected {want}, got {kind!r}", TABLE_KEY)
    return kind
