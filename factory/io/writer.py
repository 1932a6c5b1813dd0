"""Parquet shards sized for object storage, and the commit records that say which rows count.

Layout under ``out_url`` (any fsspec URL: local path, ``s3://``, ``gs://``, ``memory://``)::

    frames/<task>-<k>-<p>.parquet   frame rows of the items commit <k> of mining task <task> completes,
                                    item after item in row groups; a file is closed once it holds
                                    ``shard_size_mb`` and the next one starts (a long video spans several)
    failures/<task>-<k>.parquet     the failure rows of those items
    commits/<task>-<k>.parquet      the commit record: one row per item it completes (counts, seconds,
                                    its files and row ranges, the node that mined it) -- written last
    _SUCCESS                        JSON totals, written by finalize() at the end of a job

``<task>`` is ``sha1`` of the work items a mining task was given (16 hex digits), ``<k>`` counts that
task's commits. A task streams its items' rows into the open shard file; when the file has grown
past the target size *at the end of an item*, the file is closed, the failures file written and the
commit record put -- so every row of a committed file belongs to an item of that same commit, and
readers read whole files. An item is committed when a commit record names it, and only then: if
the task dies, its open file and the items since its last commit are simply not named anywhere,
and the task's retry (same items, same ``<task>``) skips the items its earlier attempt committed,
continues at the next ``<k>`` and removes the dead attempt's leftovers. So a video is wholly
committed or wholly redone, never half.

The committed set is the union of the commit records: ``commits/`` holds one object per
``shard_size_mb`` of output (or per task), not one per video, so resuming a 10⁶-video job lists
thousands of objects, not millions. Outputs of earlier versions (``stats/<h>.json``, one per item)
are still read.

Files appear whole or not at all (:meth:`~.storage.StorageRoot.open_atomic`: a multipart upload on
object stores, a renamed temp file elsewhere); a shard is written in row groups of
``rows_per_group`` rows, so a writer holds one row group in memory, whatever the shard size.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import uuid
from array import array
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dynocc.factory.io.storage import StorageRoot, arrow_bytes, parquet_file
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
    "TaskWriter",
    "item_hash",
    "task_key",
    "committed_items",
    "committed_files",
    "committed_parts",
    "CommittedPart",
    "read_part",
    "commit_record_files",
    "commit_records",
    "committed_items_among",
    "record_stats",
    "read_frames",
    "read_failures",
    "read_summary",
    "forget_items",
]

FRAMES_DIR = "frames"
FAILURES_DIR = "failures"
COMMITS_DIR = "commits"
LEGACY_STATS_DIR = "stats"  # one JSON commit marker per item (outputs before schema 1.2): read only
SUCCESS_FILE = "_SUCCESS"
DEFAULT_SHARD_MB = 256.0  # ours: the size object stores and Parquet readers like (img2dataset uses ~256 MB tars)
DEFAULT_ROWS_PER_GROUP = 64  # ours: ~3 MB of 854x480 JPEG rows in memory per writer


def item_hash(item_key: str) -> str:
    """Stable 16-hex-digit id of a work item: ``sha1(item_key)[:16]``."""
    return hashlib.sha1(item_key.encode("utf-8")).hexdigest()[:16]


def task_key(item_keys: Iterable[str]) -> str:
    """Stable name of a mining task: ``sha1`` of its item keys, in order (16 hex digits)."""
    h = hashlib.sha1()
    for k in item_keys:
        h.update(k.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ItemStats:
    """One committed item, as its commit record names it."""

    item_key: str
    item_id: str
    frames: int
    pairs: int
    failures: int
    seconds: float
    files: list[str] = field(default_factory=list)  # relative to out_url: its data files
    extra: dict = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION
    ranges: list[dict] = field(default_factory=list)  # {"file", "start", "rows"}: where its rows are
    commit: str = ""  # the commit record naming it (relative); "" for an earlier version's marker

    @property
    def failed(self) -> bool:
        """Whether the item failed: its record's ``failed`` (False for an item with only damaged
        stretches skipped inside it), or for records written before that, any failure row."""
        return bool(self.extra.get("failed", self.failures > 0))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ItemStats":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


COMMIT_SCHEMA = pa.schema([
    ("item_key", pa.string()),
    ("item_id", pa.string()),
    ("video_id", pa.string()),
    ("frames", pa.int64()),
    ("pairs", pa.int64()),
    ("failures", pa.int64()),
    ("seconds", pa.float64()),
    ("files", pa.list_(pa.string())),
    ("ranges", pa.list_(pa.struct([("file", pa.string()), ("start", pa.int64()), ("rows", pa.int64())]))),
    ("extra", pa.string()),  # JSON
    ("node", pa.string()),  # where it was mined: the Ray node id (the host name outside Ray)
    ("schema_version", pa.string()),
])


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


def _parquet_options(schema: pa.Schema) -> dict:
    """zstd and statistics except on binary columns (JPEG/PNG bytes: incompressible, no useful min/max)."""
    binary = {f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)}
    compression, plain = {}, []
    for name, paths in _leaf_paths(schema).items():
        for p in paths:
            compression[p] = "NONE" if name in binary else "ZSTD"
            if name not in binary:
                plain.append(p)
    return {"compression": compression, "use_dictionary": plain, "write_statistics": plain}


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=max(table.num_rows, 1), **_parquet_options(table.schema))
    return buf.getvalue()


def _as_frames(rows: Any) -> pa.Table:
    if isinstance(rows, (pa.Table, pa.RecordBatch)):
        return validate_frames(rows)
    return frames_table(list(rows or []))


def _as_failures(rows: Any) -> pa.Table:
    if isinstance(rows, (pa.Table, pa.RecordBatch)):
        return validate_failures(rows)
    return failures_table(list(rows or []))


def _conform(table: pa.Table, schema: pa.Schema) -> Optional[pa.Table]:
    """``table`` in ``schema`` (missing optional columns as nulls), or None if it has other columns."""
    if table.schema.equals(schema):
        return table
    if not set(table.column_names) <= set(schema.names):
        return None
    try:
        cols = [table[f.name] if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in schema]
        return pa.table(cols, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _read_small(data: bytes, columns: Optional[list[str]] = None) -> pa.Table:
    """A small Parquet file held in memory (a commit record), read from Arrow-owned memory
    (:func:`~dynocc.factory.io.storage.parquet_file` says why)."""
    return pq.ParquetFile(pa.BufferReader(arrow_bytes(data))).read(columns=columns, use_threads=False)


def _count_pairs(frames: pa.Table) -> int:
    if not frames.num_rows:
        return 0
    return int(pc.sum(pc.list_value_length(frames.column("pair_ordinal"))).as_py() or 0)


class _ShardFile:
    """One frames file being streamed: a ParquetWriter over an atomic storage file."""

    def __init__(self, root: StorageRoot, rel: str, schema: pa.Schema):
        self.rel = rel
        self.schema = schema
        self._ctx = root.open_atomic(rel)
        self._f = self._ctx.__enter__()
        self._pq = pq.ParquetWriter(self._f, schema, **_parquet_options(schema))
        self.rows = 0
        self.bytes = 0

    def write(self, table: pa.Table) -> None:
        self._pq.write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows += table.num_rows
        self.bytes += table.nbytes

    def close(self) -> None:
        self._pq.close()
        self._ctx.__exit__(None, None, None)

    def abandon(self) -> None:
        try:
            self._pq.close()
        except Exception:  # noqa: BLE001 - abandoning anyway
            pass
        try:
            self._ctx.__exit__(RuntimeError, RuntimeError("abandoned"), None)
        except RuntimeError:
            pass


@dataclass
class _Pending:
    """An item written since the last commit."""

    item_key: str
    video_id: Optional[str]
    ranges: list[dict] = field(default_factory=list)
    frames: int = 0
    pairs: int = 0
    failures: Optional[pa.Table] = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


class TaskWriter:
    """Streams the items of one mining task into shards and commits them (see the module doc).

    Per item: :meth:`begin_item`, :meth:`add_rows` (any number of times, rows in frame order),
    :meth:`end_item` (its failure rows and stats). :meth:`end_item` and :meth:`close` return the
    items they committed. :attr:`done` holds the keys an earlier attempt of this task committed.
    """

    def __init__(self, root: StorageRoot, key: str, shard_bytes: int, rows_per_group: int):
        self.root, self.key = root, key
        self.nonce = uuid.uuid4().hex[:8]  # this attempt's: no two attempts ever write the same name
        self.shard_bytes, self.rows_per_group = shard_bytes, rows_per_group
        earlier = root.list_prefix(COMMITS_DIR, f"{key}-")
        self.earlier = earlier  # this task's commit records from earlier attempts
        self.done: set[str] = set()
        for rel, blob in root.cat(earlier).items():
            self.done.update(_read_small(blob, columns=["item_key"])["item_key"].to_pylist())
        self.seq = 1 + max((_commit_number(r) for r in earlier), default=-1)
        self._file: Optional[_ShardFile] = None
        self._files: list[str] = []  # closed or open files of the current commit
        self._pending: list[_Pending] = []
        self._item: Optional[_Pending] = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0

    # ---------------------------------------------------------------- items

    def begin_item(self, item_key: str, video_id: Optional[str] = None) -> None:
        if self._item is not None:
            raise RuntimeError(f"item {self._item.item_key!r} was not ended")
        self._item = _Pending(item_key, video_id)

    def add_rows(self, rows: list[dict] | pa.Table) -> None:
        """Frame rows of the current item (validated here); written in row groups."""
        table = _as_frames(rows)
        if not table.num_rows:
            return
        self._buffer.append(table)
        self._buffered += table.num_rows
        if self._buffered >= self.rows_per_group:
            self._write_buffer()

    def end_item(self, failures: list[dict] | pa.Table = (), seconds: float = 0.0,
                 extra: Optional[dict] = None) -> list[ItemStats]:
        """Finish the current item; returns the items committed now (none until the shard is full)."""
        item = self._require_item()
        self._write_buffer()
        fails = _as_failures(failures)
        item.failures = fails if fails.num_rows else None
        item.seconds, item.extra = float(seconds), dict(extra or {})
        self._pending.append(item)
        self._item = None
        if self._files and (self._file is None or self._file.bytes >= self.shard_bytes):
            return self.commit()  # the last shard is full (or was closed full inside this item)
        return []

    def abort_item(self) -> None:
        """Drop everything since the last commit (the current item and the ones pending with it):
        their rows, already streamed, stay in files no record names. Call after a write failed;
        then write those items again (:attr:`done` says which are committed)."""
        self._buffer, self._buffered, self._item = [], 0, None
        if self._file is not None:
            self._file.abandon()
            self._file = None
        self._pending, self._files = [], []

    def _require_item(self) -> _Pending:
        if self._item is None:
            raise RuntimeError("no item begun")
        return self._item

    def _write_buffer(self) -> None:
        if not self._buffer:
            return
        item = self._require_item()
        table = pa.concat_tables(self._buffer, promote_options="default") if len(self._buffer) > 1 else self._buffer[0]
        self._buffer, self._buffered = [], 0
        if self._file is not None:
            conformed = _conform(table, self._file.schema)
            if conformed is None:  # new optional columns: this file ends, the next has them
                self._close_file()
            else:
                table = conformed
        for start in range(0, table.num_rows, self.rows_per_group):
            self._write_group(item, table.slice(start, self.rows_per_group))

    def _write_group(self, item: _Pending, table: pa.Table) -> None:
        if self._file is None:
            rel = f"{FRAMES_DIR}/{self.key}-{self.seq:05d}-{len(self._files):04d}-{self.nonce}.parquet"
            self._file = _ShardFile(self.root, rel, table.schema)
            self._files.append(rel)
        f = self._file
        if item.ranges and item.ranges[-1]["file"] == f.rel:
            item.ranges[-1]["rows"] += table.num_rows
        else:
            item.ranges.append({"file": f.rel, "start": f.rows, "rows": table.num_rows})
        f.write(table)
        item.frames += table.num_rows
        item.pairs += _count_pairs(table)
        if f.bytes >= self.shard_bytes:  # a long item goes on in the next file
            self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # ---------------------------------------------------------------- commits

    def commit(self) -> list[ItemStats]:
        """Close the open shard, write the failures file and the commit record (last)."""
        if self._item is not None:
            raise RuntimeError("commit() inside an item")
        self._close_file()
        if not self._pending:
            return []
        k = f"{self.seq:05d}-{self.nonce}"
        record = f"{COMMITS_DIR}/{self.key}-{k}.parquet"
        fail_tables, start = [], 0
        for item in self._pending:
            if item.failures is not None:
                item.ranges.append({"file": f"{FAILURES_DIR}/{self.key}-{k}.parquet", "start": start,
                                    "rows": item.failures.num_rows})
                start += item.failures.num_rows
                fail_tables.append(item.failures)
        if fail_tables:
            self.root.put(f"{FAILURES_DIR}/{self.key}-{k}.parquet",
                          _parquet_bytes(pa.concat_tables(fail_tables, promote_options="default")))
        stats = [ItemStats(
            item_key=it.item_key, item_id=item_hash(it.item_key), frames=it.frames, pairs=it.pairs,
            failures=0 if it.failures is None else it.failures.num_rows, seconds=it.seconds,
            files=sorted({r["file"] for r in it.ranges}), extra=it.extra, ranges=it.ranges, commit=record)
            for it in self._pending]
        self.root.put(record, _parquet_bytes(_record_table(stats, [it.video_id for it in self._pending])))
        self.seq += 1
        self._pending, self._files = [], []
        self.done.update(s.item_key for s in stats)
        return stats

    def close(self) -> list[ItemStats]:
        """Commit what is pending (call at the end of the task)."""
        return self.commit()


_NODE = socket.gethostname()


def _commit_number(rel: str) -> int:
    """``<k>`` of ``commits/<task>-<k>-<nonce>.parquet``."""
    return int(rel.rsplit("/", 1)[-1].split("-")[1])


def _record_table(stats: list[ItemStats], video_ids: list[Optional[str]]) -> pa.Table:
    return pa.Table.from_pylist([{
        "item_key": s.item_key, "item_id": s.item_id, "video_id": vid, "frames": s.frames, "pairs": s.pairs,
        "failures": s.failures, "seconds": s.seconds, "files": s.files, "ranges": s.ranges,
        "extra": json.dumps(s.extra, sort_keys=True, default=str),
        "node": str(s.extra.get("node") or _NODE), "schema_version": s.schema_version,
    } for s, vid in zip(stats, video_ids)], schema=COMMIT_SCHEMA)


class ShardWriter:
    """Writes work items (videos, frame folders, stereo photos) as shards under ``out_url``.

    :meth:`task` gives the :class:`TaskWriter` of one mining task; :meth:`write_item` writes and
    commits one item on its own (a failure row, a small job). Safe to pickle (e.g. into Ray
    actors): the filesystem is re-opened lazily.
    """

    def __init__(self, out_url: str, shard_size_mb: float = DEFAULT_SHARD_MB, storage_options: dict | None = None,
                 rows_per_group: int = DEFAULT_ROWS_PER_GROUP):
        if not shard_size_mb > 0:
            raise ValueError(f"shard_size_mb must be above 0, got {shard_size_mb}")
        if rows_per_group < 1:
            raise ValueError(f"rows_per_group must be >= 1, got {rows_per_group}")
        self.out_url = os.fspath(out_url)
        self.shard_size_mb = float(shard_size_mb)
        self.rows_per_group = int(rows_per_group)
        self.storage_options = dict(storage_options or {})
        self._root: StorageRoot | None = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_root"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._root = None

    def __repr__(self) -> str:
        return f"ShardWriter({self.out_url!r}, shard_size_mb={self.shard_size_mb:g})"

    @property
    def _r(self) -> StorageRoot:
        if self._root is None:
            self._root = StorageRoot(self.out_url, self.storage_options)
        return self._root

    @staticmethod
    def item_id(item_key: str) -> str:
        """The stable hash of an item key."""
        return item_hash(item_key)

    def task(self, key: str) -> TaskWriter:
        return TaskWriter(self._r, key, int(self.shard_size_mb * 2**20), self.rows_per_group)

    def write_item(self, item_key: str, frame_rows: list[dict] | pa.Table, failures: list[dict] | pa.Table,
                   seconds: float, extra_stats: dict | None = None, video_id: Optional[str] = None) -> ItemStats:
        """Validate, write and commit one item as a task of its own (an item already committed is
        left as it is). Raises :class:`dynocc.schemas.SchemaError` before writing anything if a
        table is invalid."""
        frames = _as_frames(frame_rows)
        fails = _as_failures(failures)
        if frames.num_rows:
            order = pc.sort_indices(frames, sort_keys=[("frame_index", "ascending"), ("video_id", "ascending"),
                                                        ("dataset", "ascending")])
            frames = frames.take(order)
        task = self.task(task_key([item_key]))
        if item_key in task.done:
            return next(s for s in _commit_stats(self._r, task.earlier) if s.item_key == item_key)
        task.begin_item(item_key, video_id)
        task.add_rows(frames)
        return (task.end_item(fails, seconds, extra_stats) + task.close())[0]

    def finalize(self, summary: dict | None = None) -> dict:
        """Write ``_SUCCESS`` (JSON totals over all committed items plus ``summary``) last; return it.

        The totals are summed one commit record at a time; the driver holds 8 bytes per item (a hash
        of its key), so an item named by two records counts once, by :func:`_prefer`."""
        totals = {"schema_version": SCHEMA_VERSION, "items": 0, "frames": 0, "pairs": 0, "failures": 0,
                  "seconds": 0.0}

        def add(stats: ItemStats, sign: int) -> None:
            totals["items"] += sign
            for name in ("frames", "pairs", "failures", "seconds"):
                totals[name] += sign * getattr(stats, name)

        hashes = array("Q")  # 8 bytes per item: an item named by two records is found without a set of keys
        for stats in _iter_committed(self._r):
            add(stats, +1)
            hashes.append(_key_hash(stats.item_key))
        keys = np.frombuffer(hashes, dtype=np.uint64)
        keys.sort()  # in place (np.unique would hold four more arrays of N): 9 bytes per item in all
        twice = set(keys[1:][keys[1:] == keys[:-1]].tolist())
        del keys, hashes
        if twice:  # rare (two jobs at once, a late attempt): count each such item's winning record once
            named = [s for s in _iter_committed(self._r) if _key_hash(s.item_key) in twice]
            for stats in named:
                add(stats, -1)
            for stats in _winners(named).values():
                add(stats, +1)
        totals["summary"] = dict(summary or {})
        self._r.put(SUCCESS_FILE, _json_bytes(totals))
        return totals


def _json_bytes(obj: dict) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- reading


def commit_record_files(out_url: str, storage_options: dict | None = None) -> list[str]:
    """The commit records under ``out_url`` as URLs (plain paths for a local root), sorted."""
    root = StorageRoot(out_url, storage_options)
    return [root.to_url(r) for r in root.glob(f"{COMMITS_DIR}/*.parquet")]


def _stats_from_record(table: pa.Table, record: str) -> list[ItemStats]:
    out = []
    for row in table.to_pylist():
        extra = json.loads(row["extra"] or "{}")
        extra.setdefault("video_id", row["video_id"])
        extra.setdefault("node", row["node"])
        out.append(ItemStats(row["item_key"], row["item_id"], row["frames"], row["pairs"], row["failures"],
                             row["seconds"], list(row["files"] or []), extra, row["schema_version"],
                             list(row["ranges"] or []), record))
    return out


def _commit_stats(root: StorageRoot, rels: list[str], batch: int = 256) -> Iterable[ItemStats]:
    for i in range(0, len(rels), batch):
        chunk = rels[i:i + batch]
        blobs = root.cat(chunk)
        for rel in chunk:
            if rel in blobs:
                yield from _stats_from_record(_read_small(blobs[rel]), rel)


def _iter_committed(root: StorageRoot) -> Iterable[ItemStats]:
    """Every committed item, commit records in name order, then markers of earlier versions."""
    yield from _commit_stats(root, root.glob(f"{COMMITS_DIR}/*.parquet"))
    legacy = root.glob(f"{LEGACY_STATS_DIR}/*.json")
    blobs = root.cat(legacy)
    for rel in legacy:
        if rel in blobs:
            yield ItemStats.from_dict(json.loads(blobs[rel]))


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def _prefer(new: ItemStats, old: ItemStats) -> bool:
    """Of two commit records naming one item, does ``new`` (later by name) count instead of ``old``?

    The first record wins (two jobs at once committed the item twice: either copy is whole), except
    that a record with frame rows beats one without: a ``worker_lost`` row written for an item
    while a late attempt was still mining it must not hide that attempt's rows."""
    return new.frames > 0 and old.frames == 0


def _winners(records: Iterable[ItemStats], losers: Optional[list] = None) -> dict[str, ItemStats]:
    """The counting record of every item in ``records`` (see :func:`_prefer`), in first-seen order;
    the others are appended to ``losers``."""
    winners: dict[str, ItemStats] = {}
    for s in records:
        old = winners.get(s.item_key)
        if old is None:
            winners[s.item_key] = s
        elif _prefer(s, old):
            winners[s.item_key] = s  # keeps the key's first-seen place
            if losers is not None:
                losers.append(old)
        elif losers is not None:
            losers.append(s)
    return winners


def committed_items(out_url: str, storage_options: dict | None = None) -> list[ItemStats]:
    """Every committed item under ``out_url``, in commit-record order (an item named by two records
    counts once, see :func:`_prefer`)."""
    return list(_winners(_iter_committed(StorageRoot(out_url, storage_options))).values())


def committed_items_among(out_url: str, storage_options: dict | None, keys: set[str]) -> list[ItemStats]:
    """The committed items whose keys are in ``keys``: the commit records are streamed through, so
    memory follows ``keys``, not the size of the output."""
    records = _iter_committed(StorageRoot(out_url, storage_options))
    return list(_winners(s for s in records if s.item_key in keys).values())


def commit_records(out_url: str, storage_options: dict | None = None) -> list[str]:
    """The commit records under ``out_url``, relative to it, sorted."""
    return StorageRoot(out_url, storage_options).glob(f"{COMMITS_DIR}/*.parquet")


def record_stats(out_url: str, record: str, storage_options: dict | None = None) -> list[ItemStats]:
    """The items one commit record (relative name) names."""
    root = StorageRoot(out_url, storage_options)
    return _stats_from_record(_read_small(root.fs.cat_file(root.path(record))), record)


@dataclass(frozen=True)
class CommittedPart:
    """A data file holding committed rows: all of it (``ranges`` None), or only the row ranges
    ``(start, rows)`` of the items whose commit won (see :func:`committed_parts`)."""

    url: str
    ranges: Optional[tuple[tuple[int, int], ...]] = None


def committed_parts(out_url: str, kind: str = "frames", storage_options: dict | None = None) -> list[CommittedPart]:
    """The committed rows of ``kind`` (``'frames'`` or ``'failures'``) as files and row ranges, sorted.

    An item named by two commit records (two jobs on one output at once, or a task retried
    elsewhere after its stats were lost) counts once (see :func:`_prefer`). A file whose
    rows all belong to winners is read whole; a file that also holds a loser's rows is read by the
    winners' row ranges. Ordinary outputs have no losers: every part is a whole file.
    """
    if kind not in (FRAMES_DIR, FAILURES_DIR):
        raise ValueError(f"kind must be 'frames' or 'failures', got {kind!r}")
    root = StorageRoot(out_url, storage_options)
    losers: list[ItemStats] = []
    winners = _winners(_iter_committed(root), losers)
    loser_files = {r["file"] for s in losers for r in s.ranges}
    whole: set[str] = set()
    partial: dict[str, list[tuple[int, int]]] = {}
    for s in winners.values():
        files = [r["file"] for r in s.ranges] if s.ranges else list(s.files)
        for rel in files:
            if not rel.startswith(kind + "/"):
                continue
            if rel in loser_files:
                partial.setdefault(rel, []).extend((r["start"], r["rows"]) for r in s.ranges if r["file"] == rel)
            else:
                whole.add(rel)
    parts = [CommittedPart(root.to_url(rel)) for rel in whole]
    parts += [CommittedPart(root.to_url(rel), tuple(sorted(rs))) for rel, rs in partial.items()]
    return sorted(parts, key=lambda p: p.url)


def committed_files(out_url: str, kind: str = "frames", storage_options: dict | None = None) -> list[str]:
    """The data files holding committed rows, as URLs (plain paths for a local ``out_url``), sorted.

    Read them through :func:`committed_parts` / :func:`read_part`: a file may also hold rows of an
    item committed twice (whose other copy won)."""
    return [p.url for p in committed_parts(out_url, kind, storage_options)]


def read_part(part: CommittedPart, storage_options: dict | None = None, kind: str = "frames",
              columns: Optional[list[str]] = None) -> pa.Table:
    """The committed rows of one part, validated (``columns``: only these, not validated)."""
    if columns is not None:
        table = parquet_file(part.url, storage_options).read(columns=columns)
    else:
        table = read_table(part.url, storage_options, table=kind)
    if part.ranges is None:
        return table
    return pa.concat_tables([table.slice(start, rows) for start, rows in part.ranges])


def _read_all(parts: list[CommittedPart], kind: str, schema: pa.Schema, storage_options: dict | None) -> pa.Table:
    if not parts:
        return schema.empty_table()
    with ThreadPoolExecutor(max_workers=min(8, len(parts))) as pool:
        tables = list(pool.map(lambda p: read_part(p, storage_options, kind), parts))
    return pa.concat_tables(tables, promote_options="default")


def read_frames(out_url: str, storage_options: dict | None = None) -> pa.Table:
    """All frame rows of committed items, validated (empty table if none)."""
    return _read_all(committed_parts(out_url, "frames", storage_options), "frames", FRAME_SCHEMA, storage_options)


def read_failures(out_url: str, storage_options: dict | None = None) -> pa.Table:
    """All failure rows of committed items, validated (empty table if none)."""
    return _read_all(committed_parts(out_url, "failures", storage_options), "failures", FAILURE_SCHEMA,
                     storage_options)


def read_summary(out_url: str, storage_options: dict | None = None) -> dict | None:
    """The ``_SUCCESS`` JSON written by :meth:`ShardWriter.finalize`, or None if absent."""
    root = StorageRoot(out_url, storage_options)
    if not root.exists(SUCCESS_FILE):
        return None
    return json.loads(root.fs.cat_file(root.path(SUCCESS_FILE)))


# --------------------------------------------------------------------------- un-committing


def _without_ranges(root: StorageRoot, rel: str, drop: list[dict]) -> tuple[Optional[str], Callable[[int], int]]:
    """Rewrite data file ``rel`` without the row ranges ``drop`` under a new name; returns the new
    name (None if no row is left) and the map from a kept row's old index to its new one."""
    table = _read_small(root.fs.cat_file(root.path(rel)))
    dropped = sorted((r["start"], r["start"] + r["rows"]) for r in drop)
    spans, start = [], 0
    for a, b in dropped + [(table.num_rows, table.num_rows)]:
        if a > start:
            spans.append((start, a))
        start = max(start, b)

    def moved(old: int) -> int:
        return old - sum(min(b, old) - a for a, b in dropped if a < old)

    if not spans:
        return None, moved
    kept = pa.concat_tables([table.slice(a, b - a) for a, b in spans])
    data = _parquet_bytes(kept)
    stem, ext = rel.rsplit(".", 1)
    new = f"{stem.split('~')[0]}~{hashlib.sha1(data).hexdigest()[:8]}.{ext}"
    root.put(new, data)
    return new, moved


def forget_items(out_url: str, stats: list[ItemStats], storage_options: dict | None = None) -> int:
    """Un-commit items so that the next run mines them again; returns how many were forgotten.

    Per commit record naming some of them: the data files that hold their rows are rewritten
    without those rows under new names, then the record is rewritten without the items and with
    the new names (one atomic put: from here on readers see the new state), then the old files
    are deleted. A crash in between leaves only unnamed files, which readers ignore. Markers of
    earlier versions (``stats/<h>.json``) are deleted, then their files.
    """
    if not stats:
        return 0
    root = StorageRoot(out_url, storage_options)
    forget = {s.item_key for s in stats}
    # Every record naming one of them, not only the counting one: an item named twice (a late
    # attempt after a 'worker_lost' row) is mined again only once no record names it.
    records = sorted({s.commit for s in stats if s.commit}
                     | {s.commit for s in _iter_committed(root) if s.commit and s.item_key in forget})
    for record in records:
        items = _stats_from_record(_read_small(root.fs.cat_file(root.path(record))), record)
        gone = [s for s in items if s.item_key in forget]
        kept = [s for s in items if s.item_key not in forget]
        renamed: dict[str, tuple[Optional[str], Callable[[int], int]]] = {}
        for rel in sorted({r["file"] for s in gone for r in s.ranges}):
            if kept:
                renamed[rel] = _without_ranges(root, rel, [r for s in gone for r in s.ranges if r["file"] == rel])
        if kept:
            new_stats = []
            for s in kept:
                ranges = []
                for r in s.ranges:
                    if r["file"] in renamed:
                        name, moved = renamed[r["file"]]
                        ranges.append({"file": name, "start": moved(r["start"]), "rows": r["rows"]})
                    else:
                        ranges.append(dict(r))
                new_stats.append(ItemStats(**{**s.to_dict(), "ranges": ranges,
                                              "files": sorted({r["file"] for r in ranges})}))
            root.put(record, _parquet_bytes(_record_table(new_stats, [s.extra.get("video_id") for s in new_stats])))
        else:
            root.rm([record])
        root.rm(sorted({r["file"] for s in gone for r in s.ranges}))
    legacy = [s for s in stats if not s.commit]
    for s in legacy:
        root.rm([f"{LEGACY_STATS_DIR}/{s.item_id}.json"])
        root.rm(list(s.files))
    root.fs.invalidate_cache()
    return len(stats)
