"""``dynocc export``: the mined pairs in layouts that existing relative-depth training code reads.

Frames are read from the ``frames`` view of :mod:`dynocc.factory.tools.query` (committed files only,
any fsspec URL), optionally filtered by a SQL predicate (``where``) and cut to ``limit`` frames.
Every frame's image is written once, as the JPEG bytes stored in the shards, under the name
:func:`frame_key` (no dots, so it also serves as a WebDataset key). Formats:

``diw-csv``     The DIW layout (Chen et al., NIPS 2016): per pair two lines, the image path, then
                ``yA,xA,yB,xB,REL,W,H`` -- **1-indexed** row/column of A and B, ``REL`` ``'>'`` when
                A is FURTHER than B, ``'<'`` when A is closer, ``'='`` about the same depth (DIW has
                no equal pairs; we write them with ``'='``), ``W,H`` the image size. DIW has one pair
                per image line, so a frame with n pairs gives n image lines (the same path).
                ``out`` ending in ``.csv`` is the CSV file; otherwise it is a folder that gets
                ``diw.csv``. Images go to ``images/<key>.jpg`` beside the CSV; the image lines are
                ``./images/<key>.jpg``, relative to the CSV's folder. :func:`read_diw_csv` is the
                reference reader.

``youtube3d``   A JSON Lines layout in the manner of YouTube3D (one record per image with all its
                pairs), in the same conventions as DIW: ``out`` ending in ``.jsonl`` is the file,
                otherwise a folder that gets ``annotations.jsonl``; images as for ``diw-csv``. Each
                line is one JSON object::

                    {"image": "./images/<key>.jpg", "width": W, "height": H,
                     "dataset": ..., "video_id": ..., "frame_index": ...,
                     "pairs": [[yA, xA, yB, xB, "REL"], ...]}

                with 1-indexed coordinates and ``REL`` as in ``diw-csv``.

``webdataset``  Tar shards ``out/shard-000000.tar``, ... of ``shard_size`` samples, each sample
                ``<key>.jpg`` (the frame), ``<key>.json`` and, for stereo rows, ``<key>.depth.png``
                (the 16-bit inverse-depth PNG, :func:`dynocc.factory.core.stereo.decode_inverse_depth_png`).
                The JSON keeps frame schema v1's conventions (0-based coordinates, ordinal +1: A
                closer, -1: B closer, 0: equal)::

                    {"dataset": ..., "video_id": ..., "frame_index": ..., "width": W, "height": H,
                     "ya": [...], "xa": [...], "yb": [...], "xb": [...], "ordinal": [...]}

                Tar members carry no time stamps or owners: the same input gives the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import Iterator

import webdataset

from dynocc.factory.io.storage import StorageRoot, is_url, url_fs
from dynocc.factory.tools.query import connect, iter_batches

__all__ = [
    "FORMATS",
    "ExportSummary",
    "DIWPair",
    "frame_key",
    "select_sql",
    "relation_from_ordinal",
    "ordinal_from_relation",
    "export",
    "read_diw_csv",
    "diw_pair_line",
]

FORMATS = ("diw-csv", "youtube3d", "webdataset")
DEFAULT_SHARD_SIZE = 1000

_REL_FROM_ORDINAL = {1: "<", -1: ">", 0: "="}  # schema v1 (+1: A closer) -> DIW ('>': A further)
_ORDINAL_FROM_REL = {v: k for k, v in _REL_FROM_ORDINAL.items()}


def relation_from_ordinal(ordinal: int) -> str:
    """Schema-v1 ordinal (+1 A closer, -1 B closer, 0 equal) -> DIW relation ('<', '>', '=')."""
    return _REL_FROM_ORDINAL[int(ordinal)]


def ordinal_from_relation(rel: str) -> int:
    """DIW relation ('>': A further than B, '<': A closer, '=': equal) -> schema-v1 ordinal."""
    try:
        return _ORDINAL_FROM_REL[rel.strip()]
    except KeyError:
        raise ValueError(f"DIW relation must be '>', '<' or '=', got {rel!r}") from None


def frame_key(dataset: str, video_id: str, frame_index: int) -> str:
    """A file-name-safe, dot-free, unique key of one frame: ``<video slug>-<hash8>-<frame:06d>``."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", str(video_id)).strip("-")[:48] or "frame"
    h = hashlib.sha1(f"{dataset}\0{video_id}".encode("utf-8")).hexdigest()[:8]
    return f"{slug}-{h}-{int(frame_index):06d}"


def select_sql(where: str | None = None, limit: int | None = None, order: bool = False) -> str:
    """``SELECT * FROM frames`` with an optional predicate, order (dataset, video_id, frame_index) and limit."""
    sql = "SELECT * FROM frames"
    if where and where.strip():
        sql += f" WHERE ({where})"
    if order:
        sql += " ORDER BY dataset, video_id, frame_index"
    if limit is not None:
        if int(limit) < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        sql += f" LIMIT {int(limit)}"
    return sql


@dataclass
class ExportSummary:
    format: str
    out: str  # the CSV / JSONL file, or the shard folder
    frames: int = 0
    pairs: int = 0
    files: list[str] = field(default_factory=list)  # annotation files / tar shards written


@dataclass(frozen=True)
class DIWPair:
    """One pair of a DIW CSV, in frame schema v1's conventions (0-based; ordinal +1: A closer)."""

    image: str  # the image line, resolved against the image root (the CSV's folder by default)
    ya: int
    xa: int
    yb: int
    xb: int
    ordinal: int
    relation: str  # as written: '>' A further, '<' A closer, '=' equal
    width: int
    height: int


def _rows(data, storage_options, where, limit) -> Iterator[dict]:
    con = connect(data, storage_options, with_images=True)
    try:
        for batch in iter_batches(con, select_sql(where, limit), batch_rows=64):
            yield from batch.to_pylist()
    finally:
        con.close()


def _split_file(target: StorageRoot, suffixes: tuple[str, ...], default_name: str) -> tuple[str, str]:
    """(folder, annotation file path) for ``out``: a file when it ends in ``suffixes``, else a folder."""
    if target.root.lower().endswith(suffixes):
        folder = posixpath.dirname(target.root) or "/"
        return folder, target.root
    return target.root, target.path(default_name)


def _pairs_1_indexed(row: dict) -> list[list]:
    return [[int(ya) + 1, int(xa) + 1, int(yb) + 1, int(xb) + 1, relation_from_ordinal(o)]
            for ya, xa, yb, xb, o in zip(row["pair_ya"], row["pair_xa"], row["pair_yb"], row["pair_xb"],
                                         row["pair_ordinal"])]


def _export_images_and_lines(rows, target: StorageRoot, folder: str, file_path: str, summary: ExportSummary,
                             lines_of) -> None:
    """Shared by diw-csv and youtube3d: images under ``folder/images``, text lines into ``file_path``."""
    target.fs.makedirs(posixpath.join(folder, "images"), exist_ok=True)
    with target.fs.open(file_path, "w", encoding="utf-8", newline="") as f:
        for row in rows:
            key = frame_key(row["dataset"], row["video_id"], row["frame_index"])
            rel = f"./images/{key}.jpg"
            target.put_path(posixpath.join(folder, "images", f"{key}.jpg"), row["image"])
            f.write(lines_of(rel, row))
            summary.frames += 1
            summary.pairs += len(row["pair_ordinal"])
    summary.files.append(target.url_of(file_path))


def _diw_lines(rel: str, row: dict) -> str:
    w, h = int(row["width"]), int(row["height"])
    pairs = zip(row["pair_ya"], row["pair_xa"], row["pair_yb"], row["pair_xb"], row["pair_ordinal"])
    return "".join(f"{rel}\n{diw_pair_line(ya, xa, yb, xb, o, w, h)}\n" for ya, xa, yb, xb, o in pairs)


def _youtube3d_line(rel: str, row: dict) -> str:
    record = {
        "image": rel,
        "width": int(row["width"]),
        "height": int(row["height"]),
        "dataset": row["dataset"],
        "video_id": row["video_id"],
        "frame_index": int(row["frame_index"]),
        "pairs": _pairs_1_indexed(row),
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _export_webdataset(rows, target: StorageRoot, summary: ExportSummary, shard_size: int) -> None:
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    target.fs.makedirs(target.root, exist_ok=True)
    shard, in_shard, f, tar = 0, 0, None, None

    def close() -> None:
        if tar is not None:
            tar.close()
            f.close()

    try:
        for row in rows:
            if tar is None or in_shard >= shard_size:
                close()
                path = target.path(f"shard-{shard:06d}.tar")
                f = target.fs.open(path, "wb")
                # webdataset's own writer; fixed owner and mtime: the same rows give the same bytes
                tar = webdataset.TarWriter(f, user="", group="", mode=0o644, mtime=0, encoder=False)
                summary.files.append(target.url_of(path))
                shard, in_shard = shard + 1, 0
            key = frame_key(row["dataset"], row["video_id"], row["frame_index"])
            meta = {
                "dataset": row["dataset"],
                "video_id": row["video_id"],
                "frame_index": int(row["frame_index"]),
                "width": int(row["width"]),
                "height": int(row["height"]),
                "ya": [int(v) for v in row["pair_ya"]],
                "xa": [int(v) for v in row["pair_xa"]],
                "yb": [int(v) for v in row["pair_yb"]],
                "xb": [int(v) for v in row["pair_xb"]],
                "ordinal": [int(v) for v in row["pair_ordinal"]],
            }
            sample = {"__key__": key, "jpg": row["image"],
                      "json": json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode()}
            if row.get("depth_png"):
                sample["depth.png"] = row["depth_png"]
            tar.write(sample)
            in_shard += 1
            summary.frames += 1
            summary.pairs += len(meta["ordinal"])
    finally:
        close()


def export(
    data,
    fmt: str,
    out: str,
    where: str | None = None,
    limit: int | None = None,
    storage_options: dict | None = None,
    out_storage_options: dict | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> ExportSummary:
    """Export the selected frames of ``data`` (mining output(s), any fsspec URL) as ``fmt`` to ``out``.

    ``where``: SQL predicate on the ``frames`` view; ``limit``: at most this many frames.
    ``out_storage_options`` default to ``storage_options``. See the module docstring for the layouts.
    Raises :class:`~dynocc.factory.tools.query.QueryError` for a bad predicate, ValueError for a bad format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    target = StorageRoot(out, out_storage_options if out_storage_options is not None else storage_options)
    rows = _rows(data, storage_options, where, limit)
    if fmt == "webdataset":
        summary = ExportSummary(fmt, target.url_of(target.root))
        _export_webdataset(rows, target, summary, shard_size)
        return summary
    if fmt == "diw-csv":
        folder, file_path = _split_file(target, (".csv",), "diw.csv")
        lines_of = _diw_lines
    else:
        folder, file_path = _split_file(target, (".jsonl",), "annotations.jsonl")
        lines_of = _youtube3d_line
    summary = ExportSummary(fmt, target.url_of(file_path))
    _export_images_and_lines(rows, target, folder, file_path, summary, lines_of)
    return summary


# ----------------------------------------------------------------------------- reader


def resolve_diw_image(image_line: str, root: str) -> str:
    """An image line of a DIW CSV as a path or URL: absolute ones as they are, others under ``root``."""
    if is_url(image_line) or image_line.startswith("/"):
        return image_line
    if is_url(root):
        scheme, rest = root.split("://", 1)
        return f"{scheme}://" + posixpath.normpath(posixpath.join(rest, image_line))
    return os.path.normpath(os.path.join(root, image_line))


def diw_pair_line(ya: int, xa: int, yb: int, xb: int, ordinal: int, width: int, height: int) -> str:
    """The pair line ``yA,xA,yB,xB,REL,W,H`` (no newline) of a pair in schema v1's conventions
    (0-based coordinates, ordinal +1 when A is closer)."""
    return (f"{int(ya) + 1},{int(xa) + 1},{int(yb) + 1},{int(xb) + 1},{relation_from_ordinal(ordinal)},"
            f"{int(width)},{int(height)}")


def _is_header(line: str) -> bool:
    """A column-name line such as ``image,yA,xA,yB,xB,relation,width,height``."""
    names = {f.strip().lower() for f in line.split(",")}
    return {"ya", "xa", "yb", "xb"} <= names


def read_diw_csv(path: str | os.PathLike, storage_options: dict | None = None,
                 image_root: str | None = None) -> list[DIWPair]:
    """Read a DIW-format CSV (``dynocc export --format diw-csv`` or DIW's own ``DIW_test.csv``).

    The file alternates an image line and a pair line ``yA,xA,yB,xB,REL,W,H`` (1-indexed;
    ``'>'``: A further than B, ``'<'``: A closer, ``'='``: equal). Returns one :class:`DIWPair` per
    pair, converted to frame schema v1's conventions: 0-based coordinates and ordinal +1 when A is
    closer, -1 when B is closer, 0 equal. Relative image lines are resolved against ``image_root``
    (default: the CSV's folder). Blank lines and a first line of column names (one naming yA, xA, yB
    and xB) are skipped; a malformed pair line raises ValueError naming its line number.
    """
    url = os.fspath(path)
    fs, fs_path = url_fs(url, storage_options)
    if image_root is None:
        parent = posixpath.dirname(fs_path) if is_url(url) else os.path.dirname(os.path.abspath(url))
        image_root = fs.unstrip_protocol(parent) if is_url(url) else parent
    with fs.open(fs_path, "r", encoding="utf-8", newline="") as f:
        lines = [(i + 1, line.strip()) for i, line in enumerate(f.read().splitlines())]
    lines = [(n, line) for n, line in lines if line]
    if lines and _is_header(lines[0][1]):
        lines = lines[1:]
    if len(lines) % 2:
        raise ValueError(f"{url}: line {lines[-1][0]}: an image line without its pair line")
    pairs = []
    for (_, image_line), (n, spec) in zip(lines[0::2], lines[1::2]):
        image = next(csv.reader([image_line]))[0].strip()  # the path is the first field, as DIW's loaders read it
        fields = next(csv.reader([spec]))
        if len(fields) != 7:
            raise ValueError(f"{url}: line {n}: expected yA,xA,yB,xB,REL,W,H, got {spec!r}")
        try:
            ya, xa, yb, xb = (int(float(v)) - 1 for v in fields[:4])
            w, h = int(float(fields[5])), int(float(fields[6]))
            ordinal = ordinal_from_relation(fields[4])
        except ValueError as e:
            raise ValueError(f"{url}: line {n}: {e}") from None
        pairs.append(DIWPair(resolve_diw_image(image, image_root), ya, xa, yb, xb, ordinal, fields[4].strip(), w, h))
    return pairs
