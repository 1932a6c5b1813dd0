"""Reading dynocc tables back: check the file's schema metadata, then validate its rows."""

from __future__ import annotations

import os
from typing import Callable, Iterable

import pyarrow as pa
from dynocc.factory.io.storage import parquet_file

from .failures import validate_failures
from .frames import validate_frames
from .validate import TABLE_KINDS, SchemaError, check_metadata


VALIDATORS: dict[str, Callable[[pa.Table], pa.Table]] = {"frames": validate_frames, "failures": validate_failures}


def validate_table(table: pa.Table, table_kind: str) -> pa.Table:
    """Validate ``table`` as ``'frames'`` or ``'failures'``."""
    if table_kind not in VALIDATORS:
        raise ValueError(f"table_kind must be one of {TABLE_KINDS}, got {table_kind!r}")
    return VALIDATORS[table_kind](table)


def read_table(
    path_or_url: str | os.PathLike,
    storage_options: dict | None = None,
    table: str | None = None,
    columns: Iterable[str] | None = None,
) -> pa.Table:
    """Read one dynocc Parquet file from a local path or fsspec URL and validate it.

    Checks ``dynocc.schema_version`` and ``dynocc.table`` (which must equal
    ``table`` if given), then columns, types and values. ``columns`` limits what
    is read; it must include every required column of the table kind.
    Raises :class:`SchemaError` whose message starts with the file's URL.
    """
    url = os.fspath(path_or_url)
    pf = parquet_file(url, storage_options)
    kind = check_metadata(pf.schema_arrow.metadata, url, table)
    data = pf.read(columns=list(columns) if columns is not None else None)
    try:
        return validate_table(data, kind)
    except SchemaError as e:
        raise SchemaError(f"{url}: {e}", e.column) from e
