"""Parquet shard writer: deterministic file names, one commit marker per work item.

Layout under ``out_url`` (any fsspec URL: local path, ``s3://``, ``gs://``, ``memory://``)::

    frames/part-<h>-00000.parquet    frame rows of item <h>, rows_per_shard rows per file
    failures/part-<h>.parquet        failure rows of item <h>
    stats/<h>.json                   the item's stats and file list -- its commit marker
    _SUCCESS                         JSON totals, written by finalize() last

``<h>`` is ``sha1(item_key)[:16]``. Data files are written first, the stats JSON
last; an item whose stats JSON is missing is not committed, and readers
(:func:`committed_files`, :func:`read_frames`, :func:`read_failures`) ignore its
files. On local disks each file is written to a hidden temporary name and renamed;
on object stores, where an upload only appears once complete, it is written in place.
Same input, same bytes: rows are sorted by frame_index and nothing time-dependent
is written by the writer itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dynocc.factory.io.storage import StorageRoot

from dynocc.schemas import (
    FAILURE_SCHEMA,
    FRAME_SCHEMA,
    SCHEMA_VERSION,
    failures_table,
    frames_table,
    read_table,
    validate_failures,
    validate_frames,
)

__all__ = [
    "ItemStats",
    "ShardWriter",
    "item_hash",
    "committed_items",
    "committed_files",
    "read_frames",
    "read_failures",
    "read_summary",
]

FRAMES_DIR = "frames"
FAILURES_DIR = "failures"
STATS_DIR = "stats"
SUCCESS_FILE = "_SUCCESS"



def item_hash(item_key: str) -> str:
    """Stable 16-hex-digit id of a work item: ``sha1(item_key)[:16]``."""
    return hashlib.sha1(item_key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ItemStats:
    """What :meth:`ShardWriter.write_item` wrote for one work item (the stats JSON)."""

    item_key: str
    item_id: str
    frames: int
    pairs: int
    failures: int
    seconds: float
    files: list[str] = field(default_factory=list)  # relative to out_url, data files only
    extra: dict = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ItemStats":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@lru_cache(maxsize=64)
def _leaf_paths(schema: pa.Schema) -> dict[str, tuple[str, ...]]:
    """Parquet leaf column paths of each top-level column (for per-column options)."""
    buf = io.BytesIO()
    pq.write_table(schema.empty_table(), buf)
    pschema = pq.read_metadata(io.BytesIO(buf.getvalue())).schema
    leaves: dict[str, list[str]] = {}
    for i in range(len(pschema)):
        path = pschema.column(i).path
        leaves.setdefault(path.split(".", 1)[0], []).append(path)
    return {k: tuple(v) for k, v in leaves.items()}


def _parquet_bytes(table: pa.Table) -> bytes:
    """Encode a table: zstd and statistics except on binary columns (JPEG/PNG bytes)."""
    leaves = _leaf_paths(table.schema)
    binary = {f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)}
    compression, plain = {}, []
    for name, paths in leaves.items():
        for p in paths:
            compression[p] = "NONE" if name in binary else "ZSTD"
            if name not in binary:
                plain.append(p)
    buf = io.BytesIO()
    pq.write_table(
        table,
        buf,
        compression=compression,
        use_dictionary=plain,
        write_statistics=plain,
        row_group_size=max(table.num_rows, 1),
    )
    return buf.getvalue()


def _as_frames(rows: Any) -> pa.Table:
    if isinstance(rows, (pa.Table, pa.RecordBatch)):
        return validate_frames(rows)
    return frames_table(list(rows or []))


def _as_failures(rows: Any) -> pa.Table:
    if isinstance(rows, (pa.Table, pa.RecordBatch)):
        return validate_failures(rows)
    return failures_table(list(rows or []))


class ShardWriter:
    """Writes work items (one video or stereo pair each) as Parquet shards under ``out_url``.

    Safe to pickle (e.g. into Ray actors): the filesystem is re-opened lazily.
    """

    def __init__(self, out_url: str, rows_per_shard: int = 512, storage_options: dict | None = None):
        if rows_per_shard < 1:
            raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
        self.out_url = os.fspath(out_url)
        self.rows_per_shard = int(rows_per_shard)
        self.storage_options = dict(storage_options or {})
        self._root: StorageRoot | None = None

    def __getstate__(self) -> dict:
        return {"out_url": self.out_url, "rows_per_shard": self.rows_per_shard, "storage_options": self.storage_options}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._root = None

    def __repr__(self) -> str:
        return f"ShardWriter({self.out_url!r}, rows_per_shard={self.rows_per_shard})"

    @property
    def _r(self) -> StorageRoot:
        if self._root is None:
            self._root = StorageRoot(self.out_url, self.storage_options)
        return self._root

    @staticmethod
    def item_id(item_key: str) -> str:
        """The stable hash used in an item's file names."""
        return item_hash(item_key)

    def stats_path(self, item_key: str) -> str:
        """Relative path of the item's commit marker."""
        return f"{STATS_DIR}/{item_hash(item_key)}.json"

    def item_done(self, item_key: str) -> bool:
        """True if the item's commit marker (stats JSON) exists."""
        return self._r.exists(self.stats_path(item_key))

    def write_item(
        self,
        item_key: str,
        frame_rows: list[dict] | pa.Table,
        failures: list[dict] | pa.Table,
        seconds: float,
        extra_stats: dict | None = None,
    ) -> ItemStats:
        """Validate and write one item's frames and failures, then commit it.

        Frames are sorted by (frame_index, video_id, dataset) and split into files
        of ``rows_per_shard`` rows; rewriting an item gives the same names and bytes.
        Raises :class:`dynocc.schemas.SchemaError` before writing anything if a
        table is invalid.
        """
        frames = _as_frames(frame_rows)
        fails = _as_failures(failures)
        h = item_hash(item_key)
        if frames.num_rows:
            order = pc.sort_indices(
                frames,
                sort_keys=[("frame_index", "ascending"), ("video_id", "ascending"), ("dataset", "ascending")],
            )
            frames = frames.take(order)
        pairs = int(pc.sum(pc.list_value_length(frames.column("pair_ordinal"))).as_py() or 0) if frames.num_rows else 0

        files: list[str] = []
        for k, start in enumerate(range(0, frames.num_rows, self.rows_per_shard)):
            rel = f"{FRAMES_DIR}/part-{h}-{k:05d}.parquet"
            self._r.put(rel, _parquet_bytes(frames.slice(start, self.rows_per_shard)))
            files.append(rel)
        if fails.num_rows:
            rel = f"{FAILURES_DIR}/part-{h}.parquet"
            self._r.put(rel, _parquet_bytes(fails))
            files.append(rel)
        self._remove_stale(h, files)

        stats = ItemStats(
            item_key=item_key,
            item_id=h,
            frames=frames.num_rows,
            pairs=pairs,
            failures=fails.num_rows,
            seconds=float(seconds),
            files=files,
            extra=dict(extra_stats or {}),
        )
        self._r.put(self.stats_path(item_key), _json_bytes(stats.to_dict()))  # the commit, last
        return stats

    def _remove_stale(self, h: str, files: list[str]) -> None:
        """Delete this item's data files left by an earlier, different attempt."""
        keep = set(files)
        stale = [
            rel
            for pattern in (f"{FRAMES_DIR}/part-{h}-*.parquet", f"{FAILURES_DIR}/part-{h}.parquet")
            for rel in self._r.glob(pattern)
            if rel not in keep
        ]
        for rel in stale:
            self._r.fs.rm(self._r.path(rel))

    def finalize(self, summary: dict | None = None) -> dict:
        """Write ``_SUCCESS`` (JSON totals over all committed items plus ``summary``) last; return it."""
        items = committed_items(self.out_url, self.storage_options)
        totals = {
            "schema_version": SCHEMA_VERSION,
            "items": len(items),
            "frames": sum(s.frames for s in items),
            "pairs": sum(s.pairs for s in items),
            "failures": sum(s.failures for s in items),
            "seconds": sum(s.seconds for s in items),
            "summary": dict(summary or {}),
        }
        self._r.put(SUCCESS_FILE, _json_bytes(totals))
        return totals


def _json_bytes(obj: dict) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode("utf-8")


def committed_items(out_url: str, storage_options: dict | None = None) -> list[ItemStats]:
    """Stats of every committed item under ``out_url``, sorted by item id."""
    root = StorageRoot(out_url, storage_options)
    rels = root.glob(f"{STATS_DIR}/*.json")
    blobs = root.cat(rels)
    return [ItemStats.from_dict(json.loads(blobs[r])) for r in rels if r in blobs]


def committed_files(out_url: str, kind: str = "frames", storage_options: dict | None = None) -> list[str]:
    """Data files of committed items only, as URLs (plain paths for a local ``out_url``), sorted.

    ``kind`` is ``'frames'`` or ``'failures'``.
    """
    if kind not in (FRAMES_DIR, FAILURES_DIR):
        raise ValueError(f"kind must be 'frames' or 'failures', got {kind!r}")
    root = StorageRoot(out_url, storage_options)
    rels = sorted({f for s in committed_items(out_url, storage_options) for f in s.files if f.startswith(kind + "/")})
    return [root.to_url(r) for r in rels]


def _read_all(urls: list[str], kind: str, schema: pa.Schema, storage_options: dict | None) -> pa.Table:
    if not urls:
        return schema.empty_table()
    with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
        tables = list(pool.map(lambda u: read_table(u, storage_options, table=kind), urls))
    return pa.concat_tables(tables, promote_options="default")


def read_frames(out_url: str, storage_options: dict | None = None) -> pa.Table:
    """All frame rows of committed items, validated (empty table if none)."""
    return _read_all(committed_files(out_url, "frames", storage_options), "frames", FRAME_SCHEMA, storage_options)


def read_failures(out_url: str, storage_options: dict | None = None) -> pa.Table:
    """All failure rows of committed items, validated (empty table if none)."""
    return _read_all(
        committed_files(out_url, "failures", storage_options), "failures", FAILURE_SCHEMA, storage_options
    )


def read_summary(out_url: str, storage_options: dict | None = None) -> dict | None:
    """The ``_SUCCESS`` JSON written by :meth:`ShardWriter.finalize`, or None if absent."""
    root = StorageRoot(out_url, storage_options)
    if not root.exists(SUCCESS_FILE):
        return None
    return json.loads(root.fs.cat_file(root.path(SUCCESS_FILE)))
