"""The Ray engine's plan: inputs -> resolved work rows -> those not committed yet, as Ray Data datasets.

Nothing here materialises the input list in the driver:

1. :func:`entries_dataset`: the CLI's inputs as a dataset of ``(entry, base)`` rows. A top-level
   ``@list`` of videos (txt, csv, parquet; local or on a bucket) is read by Ray Data's own
   readers, block by block; every other input (a path, a glob, a YouTube-VOS root, a bucket
   prefix, a list of stereo pairs) is one row, resolved whole by one task.
2. :func:`resolved_dataset`: each entry resolved in a Ray task (:func:`~.sources.expand_entry`),
   one work row per item or per input that failed to resolve.
3. De-duplication and unique ids (:func:`~.sources.finish_resolution`'s rules):

   * up to ``plan_in_driver_max`` resolved rows the driver takes them and applies those rules
     itself (fast: no shuffle), and checks them against the commit records it streams through,
     keeping only their own keys;
   * above it, the same rules run as Ray Data aggregations and joins (:func:`dedup_dataset`):
     the smallest input per de-duplication key (``groupby().aggregate(Min)``), the number of
     items per id (``groupby().count()`` joined back) for the ``-<sha1>`` suffix, and a
     ``left_anti`` join against the item keys of the commit records (:func:`committed_keys_dataset`)
     for resume. Measured on 2 cores: each shuffle costs ~6 s whatever the size, and
     10⁶ rows take ~10 s -- why small jobs take the driver path.
"""

from __future__ import annotations

import json
import math
import os
from typing import Optional

from dynocc.factory.config import SourceOptions
from dynocc.factory.engine.job import failure_work_row, work_row
from dynocc.factory.io.sources import (
    WorkItem,
    dedup_key,
    entry_suffix,
    expand_entry,
    unique_id,
)
from dynocc.factory.io.storage import is_url, options_for, url_fs
from dynocc.factory.io.writer import LEGACY_STATS_DIR, commit_record_files

_WORK_COLUMNS = ("key", "input", "video_id", "kind", "failure")
_LIST_COLUMNS = ("input", "path", "url")
_STREAMED_LIST_SUFFIXES = (".txt", ".csv", ".parquet", ".pq")


def _pyarrow_fs(url: str, storage_options: Optional[dict]):
    """A pyarrow filesystem for an fsspec URL (Ray Data's readers take pyarrow's), and the path."""
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, path = url_fs(url, options_for(url, storage_options))
    return PyFileSystem(FSSpecHandler(fs)), path


def _list_location(entry: str) -> str:
    loc = entry[1:].strip()
    if loc.lower().startswith("file://"):
        from urllib.parse import unquote, urlparse

        loc = unquote(urlparse(loc).path)
    return loc if is_url(loc) else os.path.abspath(os.path.expanduser(loc))


def _read_list_dataset(location: str, source: SourceOptions):
    """A video ``@list`` read by Ray Data (None: not one we stream; it is resolved whole)."""
    import ray

    suffix = entry_suffix(location)
    if suffix not in _STREAMED_LIST_SUFFIXES:
        return None
    if is_url(location) and location.split("://", 1)[0].lower() in ("http", "https"):
        return None  # an http list is read whole by one task (fsspec's http has no listing for pyarrow)
    if not is_url(location) and not os.path.isfile(location):
        return None  # the resolve task reports it (not_found)
    fs, path = (None, location) if not is_url(location) else _pyarrow_fs(location, source.storage_options)
    base = location
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        schema = pq.read_schema(path, filesystem=fs) if fs is not None else pq.read_schema(path)
        lower = [n.lower() for n in schema.names]
        if not lower:
            return None
        col = schema.names[next((lower.index(c) for c in _LIST_COLUMNS if c in lower), 0)]
        ds = ray.data.read_parquet(path, filesystem=fs, columns=[col])
        return ds.map_batches(_entries_from_column, fn_kwargs={"column": col, "base": base}, batch_format="pyarrow")
    column = None
    if suffix == ".csv":  # the header names the column, as in sources._parse_list
        import csv

        opener = fs.open_input_stream(path) if fs is not None else open(path, "rb")
        with opener as f:
            first = f.read(64 * 1024).decode("utf-8-sig", "replace").splitlines()[:1]
        header = [c.strip().lower() for c in next(csv.reader(first))] if first and first[0].strip() else []
        column = next((header.index(c) for c in _LIST_COLUMNS if c in header), None)
    ds = ray.data.read_text(path, filesystem=fs, encoding="utf-8-sig")
    return ds.map_batches(_entries_from_lines, fn_kwargs={"csv_column": column, "is_csv": suffix == ".csv",
                                                          "base": base}, batch_format="pyarrow")


def _entries_from_column(table, column: str, base: str) -> dict:
    values = [str(v).strip() for v in table[column].to_pylist() if v is not None and str(v).strip()]
    return {"entry": values, "base": [base] * len(values)}


def _entries_from_lines(table, csv_column: Optional[int], is_csv: bool, base: str) -> dict:
    import csv

    out = []
    for line in table["text"].to_pylist():
        line = (line or "").strip()
        if not line:
            continue
        if is_csv:
            row = next(csv.reader([line]), [])
            if csv_column is not None:
                if len(row) > csv_column and row[csv_column].strip().lower() not in _LIST_COLUMNS:
                    out.append(row[csv_column].strip())
                continue
            line = row[0].strip() if row else ""
        if line and not line.startswith("#"):
            out.append(line)
    return {"entry": out, "base": [base] * len(out)}


def entries_dataset(inputs: list[str], source: SourceOptions, media=None):
    """The inputs as ``(entry, base)`` rows; video ``@lists`` streamed by Ray Data's readers."""
    import ray

    parts, whole = [], []
    for entry in (str(e).strip() for e in inputs):
        ds = None
        if media is None and entry.startswith("@"):
            try:
                ds = _read_list_dataset(_list_location(entry), source)
            except Exception:  # noqa: BLE001 - unreadable here: the resolve task reports why
                ds = None
        if ds is None:
            whole.append(entry)
        else:
            parts.append(ds)
    if whole:
        parts.append(ray.data.from_items([{"entry": e, "base": ""} for e in whole], override_num_blocks=len(whole)))
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def _resolve_batch(batch: dict, source: dict, media_of) -> dict:
    """Resolve task: each ``(entry, base)`` into work rows (+ ``dkey``, the de-duplication key)."""
    media = media_of
    options = SourceOptions.coerce(source)
    rows = []
    for entry, base in zip(batch["entry"], batch["base"]):
        items, failures = expand_entry(str(entry), str(base) or None, options, media)
        rows += [{**work_row(it), "dkey": dedup_key(it, media)} for it in items]
        rows += [{**failure_work_row(f), "dkey": ""} for f in failures]
    return {c: [r[c] for r in rows] for c in (*_WORK_COLUMNS, "dkey")}


def resolved_dataset(inputs: list[str], source: SourceOptions, media=None):
    """Every input resolved into work rows by Ray tasks (not de-duplicated yet)."""
    ds = entries_dataset(inputs, source, media)
    return ds.map_batches(_resolve_batch, batch_size=64, fn_kwargs={"source": source.model_dump(),
                                                                    "media_of": media})


# --------------------------------------------------------------------------- the driver path


def finish_in_driver(rows: list[dict], media=None) -> list[dict]:
    """:func:`~.sources.finish_resolution` on resolved rows (the small-job path)."""
    from dynocc.factory.io.sources import finish_resolution

    items = [WorkItem(r["input"], r["video_id"], r["kind"]) for r in rows if not r["failure"]]
    failures = [json.loads(r["failure"]) for r in rows if r["failure"]]
    items, failures = finish_resolution(items, failures, media)
    return [work_row(it) for it in items] + [failure_work_row(f) for f in failures]


# --------------------------------------------------------------------------- the streaming path


def _pack(batch: dict) -> dict:
    packed = [f"{i}\0{k}\0{v}" for i, k, v in zip(batch["input"], batch["kind"], batch["video_id"])]
    return {"dkey": list(batch["dkey"]), "packed": packed}


def _unpack(batch: dict) -> dict:
    parts = [str(p).split("\0") for p in batch["min(packed)"]]
    return {"input": [p[0] for p in parts], "kind": [p[1] for p in parts], "base_id": [p[2] for p in parts]}


def _named(batch: dict) -> dict:
    ids = [b if int(n) == 1 else unique_id(b, i) for b, n, i in zip(batch["base_id"], batch["count()"], batch["input"])]
    n = len(ids)
    return {"key": list(batch["input"]), "input": list(batch["input"]), "video_id": ids, "kind": list(batch["kind"]),
            "failure": [""] * n}


def _split(batch: dict, failed: bool) -> dict:
    keep = [i for i, f in enumerate(batch["failure"]) if bool(f) == failed]
    return {c: [batch[c][i] for i in keep] for c in batch}


def _failure_rows(batch: dict) -> dict:
    rows = [failure_work_row(json.loads(f)) for f in batch["min(failure)"]]
    return {c: [r[c] for r in rows] for c in _WORK_COLUMNS}


def partitions(n: int) -> int:
    """Hash partitions of a shuffle over ``n`` rows: ~200K rows each, at least 4. Always given
    explicitly: Ray Data's default (``default_hash_shuffle_parallelism``, 200 aggregator actors)
    asks a 2-CPU machine for 200 CPUs and waits forever."""
    return max(4, math.ceil(n / 200_000))


def dedup_dataset(resolved, n: int):
    """:func:`~.sources.finish_resolution`'s rules as Ray Data aggregations and joins (see the module doc)."""
    from ray.data.aggregate import Min

    parts = partitions(n)
    items = resolved.map_batches(_split, fn_kwargs={"failed": False})
    winners = items.map_batches(_pack).groupby("dkey", num_partitions=parts).aggregate(Min("packed")).map_batches(_unpack)
    counts = winners.groupby("base_id", num_partitions=parts).count()
    named = winners.join(counts, join_type="inner", num_partitions=parts, on=("base_id",)).map_batches(_named)
    failed = resolved.map_batches(_split, fn_kwargs={"failed": True}).map_batches(
        lambda b: {"input": list(b["input"]), "failure": list(b["failure"])})
    failures = failed.groupby("input", num_partitions=parts).aggregate(Min("failure")).map_batches(_failure_rows)
    return named.union(failures)


def _commit_reader(out: str, storage_options: Optional[dict], columns: list[str], **kw):
    """Ray Data's Parquet reader over the commit records under ``out`` (None if there are none)."""
    import ray

    records = commit_record_files(out, storage_options)
    if not records:
        return None
    if is_url(out):
        fs, _ = _pyarrow_fs(out, storage_options)
        paths = [url_fs(r, options_for(r, storage_options))[1] for r in records]
    else:
        fs, paths = None, records
    return ray.data.read_parquet(paths, filesystem=fs, columns=columns, **kw)


def failed_keys_dataset(out: str, storage_options: Optional[dict]):
    """``(item_key, record)`` of every item committed with failures (``record`` relative to ``out``);
    None if there are no commit records."""
    ds = _commit_reader(out, storage_options, ["item_key", "failures"], include_paths=True)
    if ds is None:
        return None

    def failed(batch: dict) -> dict:
        keep = [i for i, f in enumerate(batch["failures"]) if int(f) > 0]
        return {"item_key": [batch["item_key"][i] for i in keep],
                "record": ["commits/" + str(batch["path"][i]).rsplit("/", 1)[-1] for i in keep]}

    return ds.map_batches(failed)


def committed_keys_dataset(out: str, storage_options: Optional[dict]):
    """The item keys of every commit record under ``out`` (None if there are none)."""
    import ray

    from dynocc.factory.io.storage import StorageRoot

    parts = []
    reader = _commit_reader(out, storage_options, ["item_key"])
    if reader is not None:
        parts.append(reader)
    root = StorageRoot(out, storage_options)
    legacy = root.glob(f"{LEGACY_STATS_DIR}/*.json")
    if legacy:  # an output of an earlier version: one marker per item (never more than ~50K)
        keys = [json.loads(b)["item_key"] for b in root.cat(legacy).values()]
        parts.append(ray.data.from_items([{"item_key": k} for k in keys]))
    if not parts:
        return None
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def not_committed(rows_ds, out: str, storage_options: Optional[dict], n: int):
    """``rows_ds`` without the rows whose key a commit record names (a ``left_anti`` join)."""
    keys = committed_keys_dataset(out, storage_options)
    if keys is None:
        return rows_ds
    keys = keys.map_batches(lambda b: {"key": list(b["item_key"])})
    return rows_ds.join(keys, join_type="left_anti", num_partitions=partitions(n), on=("key",))
