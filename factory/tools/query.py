"""SQL over mined shards with DuckDB: ``dynocc query``, and the reader behind ``show`` and ``export``.

:func:`connect` opens an in-memory DuckDB database whose views read the **committed** Parquet
files (:func:`dynocc.factory.io.writer.committed_parts`) of one or more mining outputs, at any fsspec
URL. Local files are read by DuckDB's own Parquet reader; for a remote URL (``s3://``, ``gs://``,
``memory://`` ...) the fsspec filesystem is registered with DuckDB (``register_filesystem``), so no
DuckDB extension (httpfs) is needed, and nothing is downloaded before the query runs.

Views:

``frames``    one row per frame: every column of the shards except the encoded ``image`` and
              ``depth_png`` bytes (kept with ``with_images=True``);
``pairs``     one row per pair: ``dataset, video_id, frame_index, width, height, pair_index, ya, xa,
              yb, xb, ordinal, confidence`` (the list columns unnested; ordinal +1: A closer, -1: B
              closer, 0: equal; coordinates 0-based pixels of the stored image; confidence: the
              pair's ``pair_confidence``, NULL for rows written without one);
``failures``  one row per failure row (``input, video_id, stage, error_type, message, attempts,
              timestamp``).

Files of different outputs (or of video and stereo mining) are unified by column name; a column
missing from some files reads as NULL there (``depth_png`` of video rows, for example).
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import decimal
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Iterator, Sequence

import pyarrow as pa
from dynocc.factory.io.storage import url_fs

from dynocc.schemas import FAILURE_SCHEMA, FRAME_SCHEMA

from dynocc.factory.io.storage import is_local
from dynocc.factory.io.writer import committed_parts, read_part

__all__ = [
    "QueryError",
    "IMAGE_COLUMNS",
    "PAIRS_COLUMNS",
    "connect",
    "run_query",
    "iter_batches",
    "format_table",
    "to_rows",
    "to_json",
    "to_csv",
]

IMAGE_COLUMNS = ("image", "depth_png")
"""Encoded-image columns left out of the ``frames`` view unless ``with_images=True``."""

PAIRS_COLUMNS = ("dataset", "video_id", "frame_index", "width", "height", "pair_index",
                 "ya", "xa", "yb", "xb", "ordinal", "confidence")
"""Columns of the ``pairs`` view, in order."""


class QueryError(ValueError):
    """A query that DuckDB refused (bad SQL, unknown column, ...): a one-line message."""


def _one_line(e: BaseException) -> str:
    """DuckDB's message on one line, without its 'LINE 1: ... ^' excerpt of the statement."""
    lines = []
    for line in str(e).splitlines():
        if line.strip().startswith("LINE "):
            break
        lines.append(line.strip())
    text = " ".join(" ".join(lines).split())
    return text or type(e).__name__


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _file_list(urls: Sequence[str]) -> str:
    return "[" + ", ".join(_sql_str(u) for u in urls) + "]"


class _Sources:
    """Committed files of every root: local paths, and remote paths grouped by filesystem."""

    def __init__(self, data: str | os.PathLike | Sequence[str | os.PathLike], storage_options: dict | None):
        roots = [os.fspath(data)] if isinstance(data, (str, os.PathLike)) else [os.fspath(d) for d in data]
        if not roots:
            raise ValueError("no data URL given")
        self.local: dict[str, list[str]] = {"frames": [], "failures": []}
        self.remote: dict[str, dict[int, tuple[Any, list[str]]]] = {"frames": {}, "failures": {}}
        # Files that also hold rows of an item committed twice: their committed rows, read here.
        self.sliced: dict[str, list[pa.Table]] = {"frames": [], "failures": []}
        for root in roots:
            fs, path = url_fs(root, storage_options)
            if not fs.exists(path):
                raise FileNotFoundError(f"no mining output at {root}")
            with ThreadPoolExecutor(max_workers=2) as pool:  # both listings read the commit markers
                listed = dict(zip(("frames", "failures"), pool.map(
                    lambda kind: committed_parts(root, kind, storage_options), ("frames", "failures"))))
            for kind, parts in listed.items():
                urls = [p.url for p in parts if p.ranges is None]
                self.sliced[kind] += [read_part(p, storage_options, kind) for p in parts if p.ranges is not None]
                if is_local(root):
                    self.local[kind].extend(u[len("file://"):] if u.startswith("file://") else u for u in urls)
                elif urls:
                    self.remote[kind].setdefault(id(fs), (fs, []))[1].extend(fs._strip_protocol(u) for u in urls)


def _remote_dataset(fs, paths: list[str]):
    """A pyarrow dataset over remote Parquet files, its schema unified over every file's footer
    (read in parallel: a file without an extra column, e.g. ``depth_png``, reads it as null)."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    pafs = PyFileSystem(FSSpecHandler(fs))
    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        schemas = list(pool.map(lambda p: pq.read_schema(p, filesystem=pafs), paths))
    unique = list({s.to_string(show_schema_metadata=False): s for s in schemas}.values())
    return ds.dataset(paths, schema=pa.unify_schemas(unique), format="parquet", filesystem=pafs)


def _source_view(con, src: _Sources, kind: str, empty_schema: pa.Schema) -> None:
    """``_<kind>_all``: every committed file of ``kind``, unified by column name."""
    parts = []
    if src.local[kind]:
        # DuckDB's own reader for local files (parallel, fastest).
        parts.append(f"SELECT * FROM read_parquet({_file_list(src.local[kind])}, union_by_name = true)")
    for i, (fs, paths) in enumerate(src.remote[kind].values()):
        # Remote files through a pyarrow dataset on the fsspec filesystem: DuckDB pushes its column
        # and row filters into the scan, and needs no extension (httpfs) of its own.
        name = f"_{kind}_remote_{i}"
        con.register(name, _remote_dataset(fs, paths))
        parts.append(f"SELECT * FROM {name}")
    if src.sliced[kind]:
        name = f"_{kind}_sliced"
        con.register(name, pa.concat_tables(src.sliced[kind], promote_options="default"))
        parts.append(f"SELECT * FROM {name}")
    if not parts:
        con.register(f"_{kind}_empty", empty_schema.empty_table())
        parts.append(f"SELECT * FROM _{kind}_empty")
    con.execute(f"CREATE VIEW _{kind}_all AS " + " UNION ALL BY NAME ".join(parts))


def connect(
    data: str | os.PathLike | Sequence[str | os.PathLike],
    storage_options: dict | None = None,
    with_images: bool = False,
    threads: int | None = None,
):
    """An in-memory DuckDB connection with the views ``frames``, ``pairs`` and ``failures``.

    ``data``: one mining output (``--out`` of ``dynocc mine``/``mine-stereo``) or a list of them,
    each a local path or fsspec URL. Only committed files are read. Raises FileNotFoundError if a
    root does not exist. ``threads`` caps DuckDB's threads (default: all cores).
    """
    import duckdb

    src = _Sources(data, storage_options)
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    _source_view(con, src, "frames", FRAME_SCHEMA)
    _source_view(con, src, "failures", FAILURE_SCHEMA)
    columns = [r[0] for r in con.execute("DESCRIBE _frames_all").fetchall()]
    hidden = [c for c in IMAGE_COLUMNS if c in columns and not with_images]
    exclude = f" EXCLUDE ({', '.join(hidden)})" if hidden else ""
    con.execute(f"CREATE VIEW frames AS SELECT *{exclude} FROM _frames_all")
    # ``confidence``: the pair's pair_confidence (schema 1.1); NULL for rows written without it
    # (schema 1, stereo rows).
    confidence = ("unnest(pair_confidence)" if "pair_confidence" in columns else "CAST(NULL AS FLOAT)")
    con.execute(
        "CREATE VIEW pairs AS SELECT dataset, video_id, frame_index, width, height, "
        "CAST(unnest(range(len(pair_ordinal))) AS INTEGER) AS pair_index, "
        "unnest(pair_ya) AS ya, unnest(pair_xa) AS xa, unnest(pair_yb) AS yb, unnest(pair_xb) AS xb, "
        f"unnest(pair_ordinal) AS ordinal, {confidence} AS confidence FROM _frames_all"
    )
    con.execute("CREATE VIEW failures AS SELECT * FROM _failures_all")
    return con


def _relation(con, sql: str):
    """``con.sql(sql)``: a relation to read the result from (None for a statement without one)."""
    import duckdb

    try:
        return con.sql(sql)
    except duckdb.Error as e:
        raise QueryError(_one_line(e)) from None


def _arrow_table(result) -> pa.Table:
    for name in ("to_arrow_table", "fetch_arrow_table", "arrow"):  # DuckDB 2.x, then 1.x names
        if hasattr(result, name):
            return getattr(result, name)()
    raise AttributeError("this DuckDB cannot return Arrow tables")


def _arrow_reader(result, batch_rows: int) -> pa.RecordBatchReader:
    for name in ("to_arrow_reader", "fetch_record_batch"):  # DuckDB 2.x, then 1.x names
        if hasattr(result, name):
            return getattr(result, name)(batch_rows)
    raise AttributeError("this DuckDB cannot stream Arrow batches")


def run_query(
    sql: str,
    data: str | os.PathLike | Sequence[str | os.PathLike],
    storage_options: dict | None = None,
    with_images: bool = False,
) -> pa.Table:
    """Run one SQL statement over the views of :func:`connect`; the result as an Arrow table.

    Raises :class:`QueryError` (one line) for SQL DuckDB refuses.
    """
    import duckdb

    con = connect(data, storage_options, with_images=with_images)
    try:
        rel = _relation(con, sql)
        if rel is None:  # a statement without a result
            return pa.table({})
        try:
            return _arrow_table(rel)
        except duckdb.Error as e:  # errors found while running (casts, division by zero, ...)
            raise QueryError(_one_line(e)) from None
    finally:
        con.close()


def iter_batches(con, sql: str, batch_rows: int = 64) -> Iterator[pa.RecordBatch]:
    """Stream the result of ``sql`` as Arrow record batches of at most ``batch_rows`` rows."""
    import duckdb

    rel = _relation(con, sql)
    if rel is None:
        return
    try:
        reader = _arrow_reader(rel, batch_rows)
        for batch in reader:
            if batch.num_rows:
                yield batch
    except duckdb.Error as e:
        raise QueryError(_one_line(e)) from None


# ----------------------------------------------------------------------------- output


def _plain(value: Any) -> Any:
    """A JSON-ready version of one cell (bytes as base64, times as ISO 8601)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def to_rows(table: pa.Table) -> list[dict]:
    """The rows as JSON-ready dicts (binary cells base64-encoded)."""
    return [{k: _plain(v) for k, v in row.items()} for row in table.to_pylist()]


def to_json(table: pa.Table) -> str:
    """A JSON list of row objects."""
    return json.dumps(to_rows(table), indent=1, ensure_ascii=False)


def _cell_text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))
    return str(_plain(value))


def to_csv(table: pa.Table) -> str:
    """CSV with a header line; lists as JSON, binary as base64, NULL as an empty field."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.column_names)
    for row in table.to_pylist():
        w.writerow(["" if v is None else (json.dumps(_plain(v)) if isinstance(v, (list, tuple, dict))
                                         else _plain(v)) for v in row.values()])
    return buf.getvalue()


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def format_table(table: pa.Table, max_width: int = 60) -> str:
    """An aligned text table (numbers right-aligned; cells longer than ``max_width`` cut with '…')."""
    names = table.column_names
    if not names:
        return "(no result)"
    cols = [[_cell_text(v) for v in table.column(i).to_pylist()] for i in range(len(names))]
    cols = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in col] for col in cols]
    widths = [max([len(n)] + [len(c) for c in col]) for n, col in zip(names, cols)]
    right = [_numeric(table.schema.field(i).type) for i in range(len(names))]

    def line(cells: Iterable[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    out = [line(names), line("-" * w for w in widths)]
    out.extend(line(row) for row in zip(*cols))
    n = table.num_rows
    out.append(f"({n} row{'s' if n != 1 else ''})")
    return "\n".join(out)
