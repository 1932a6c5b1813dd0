"""Input resolution: turn what the user typed into a sorted list of work items.

:func:`resolve_inputs` accepts, per input string:

* a video file -> one ``'video'`` item (any file; decoding decides later whether it is a video);
* a frame folder (images directly inside) -> one ``'frames'`` item;
* a YouTube-VOS root (a folder with ``JPEGImages/``) or the ``JPEGImages`` folder itself ->
  one ``'frames'`` item per ``JPEGImages/<video>/`` subfolder; an empty one is a failure;
* any other folder -> every video file directly inside it (by extension) and every subfolder
  that directly holds images (not recursive deeper than that);
* ``@list.txt`` -> every line is an input again (blank lines and ``#`` comment lines skipped;
  relative paths are relative to the list file's folder; ``.csv`` lists use the column
  ``input``/``path``/``url`` or else the first one);
* ``scheme://...`` -> dispatched by scheme through :data:`RESOLVERS`. Only ``file://`` exists
  now; http(s), yt-dlp and fsspec resolvers are added there later. Other schemes give an
  ``unsupported_scheme`` failure.

Problems never raise: they become failure dicts with the keys ``input, video_id, stage
('resolve'), error_type, message, attempts`` (error types ``not_found``, ``empty_folder``,
``unsupported_scheme``).

Determinism: items are de-duplicated by their real path (symlinks resolved), and sorted by
``(video_id, input)``. When different paths give the same video id (``a/clip.mp4`` and
``b/clip.mp4``), *every* one of them gets ``<id>-<first 8 hex digits of sha1(input)>``, where
``input`` is the item's absolute path, so ids do not depend on the order of the inputs.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import unquote, urlparse

from .decode import VIDEO_EXTENSIONS, list_frame_files, video_id_for


@dataclass(frozen=True)
class WorkItem:
    """One source to decode: ``input`` is its absolute path, ``kind`` 'video' or 'frames'."""

    input: str
    video_id: str
    kind: str


Resolved = tuple[list[WorkItem], list[dict]]


def failure(input: str, error_type: str, message: str, video_id: Optional[str] = None,
            stage: str = "resolve", attempts: int = 1) -> dict:
    """A failure dict, as written to the failures table."""
    return {"input": input, "video_id": video_id, "stage": stage, "error_type": error_type,
            "message": message, "attempts": attempts}


# --------------------------------------------------------------------------- local paths


def _item(path: Path, kind: str) -> WorkItem:
    path_str = os.path.abspath(path)
    return WorkItem(input=path_str, video_id=video_id_for(path_str), kind=kind)


def _resolve_collection(folder: Path, strict: bool) -> Resolved:
    """Videos and frame subfolders directly inside ``folder``.

    ``strict`` (a ``JPEGImages`` folder): every subfolder is a video, an empty one a failure.
    """
    items, failures = [], []
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if list_frame_files(child):
                items.append(_item(child, "frames"))
            elif strict:
                failures.append(failure(str(child), "empty_folder", f"{child}: no images", child.name))
        elif child.is_file() and child.suffix.lower() in VIDEO_EXTENSIONS:
            items.append(_item(child, "video"))
    if not items and not failures:
        failures.append(failure(str(folder), "empty_folder",
                                f"{folder}: no videos, images or frame folders inside", folder.name))
    return items, failures


def resolve_local(path_str: str) -> Resolved:
    """Resolve one local path (file, frame folder, folder of videos, YouTube-VOS root)."""
    path = Path(path_str).expanduser()
    if not path.exists():
        return [], [failure(path_str, "not_found", f"{path_str}: no such file or folder")]
    if path.is_file():
        return [_item(path, "video")], []
    if list_frame_files(path):
        return [_item(path, "frames")], []
    if (path / "JPEGImages").is_dir():
        return _resolve_collection(path / "JPEGImages", strict=True)
    return _resolve_collection(path, strict=path.name == "JPEGImages")


def _resolve_file_url(url: str) -> Resolved:
    return resolve_local(unquote(urlparse(url).path))


# Scheme -> resolver of one URL. Later issues add "http", "https" (plain downloads and yt-dlp
# pages) and fsspec schemes ("s3", "gs", ...) here.
RESOLVERS: dict[str, Callable[[str], Resolved]] = {"file": _resolve_file_url}

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


# --------------------------------------------------------------------------- @list files


def _read_list(path: Path) -> list[str]:
    """Entries of a list file: txt (one per line, ``#`` comments) or csv."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(text.splitlines()) if r and r[0].strip()]
        header = [c.strip().lower() for c in rows[0]] if rows else []
        for name in ("input", "path", "url"):
            if name in header:
                col = header.index(name)
                return [r[col].strip() for r in rows[1:] if len(r) > col and r[col].strip()]
        return [r[0].strip() for r in rows if not r[0].strip().startswith("#")]
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _expand(entry: str, base: Optional[Path], seen_lists: set[str]) -> Resolved:
    """Resolve one input string; ``base`` is the folder of the list file it came from."""
    if entry.startswith("@"):
        list_path = Path(entry[1:]).expanduser()
        if base is not None and not list_path.is_absolute():
            list_path = base / list_path
        if not list_path.is_file():
            return [], [failure(entry, "not_found", f"{entry}: list file {list_path} not found")]
        key = os.path.realpath(list_path)
        if key in seen_lists:  # a list that includes itself
            return [], []
        seen_lists.add(key)
        items, failures = [], []
        for line in _read_list(list_path):
            i, f = _expand(line, list_path.parent, seen_lists)
            items += i
            failures += f
        return items, failures
    match = _SCHEME.match(entry)
    if match:
        scheme = match.group(1).lower()
        resolver = RESOLVERS.get(scheme)
        if resolver is None:
            return [], [failure(entry, "unsupported_scheme",
                                f"{entry}: URL scheme {scheme!r} is not supported "
                                f"(supported: {', '.join(sorted(RESOLVERS))} and local paths)")]
        return resolver(entry)
    path = Path(entry).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    return resolve_local(str(path))


# --------------------------------------------------------------------------- public entry point


def _dedup_key(item: WorkItem) -> str:
    return os.path.realpath(item.input) if _SCHEME.match(item.input) is None else item.input


def _unique_ids(items: list[WorkItem]) -> list[WorkItem]:
    """Suffix ``-<sha1(input)[:8]>`` to every id shared by different items."""
    by_id: dict[str, list[WorkItem]] = defaultdict(list)
    for item in items:
        by_id[item.video_id].append(item)
    out = []
    for vid, group in by_id.items():
        if len(group) == 1:
            out.append(group[0])
        else:
            out += [replace(it, video_id=f"{vid}-{hashlib.sha1(it.input.encode()).hexdigest()[:8]}")
                    for it in group]
    return out


def resolve_inputs(inputs: list[str]) -> tuple[list[WorkItem], list[dict]]:
    """Expand CLI inputs into ``(work items, failure dicts)``; never raises for bad inputs.

    Items are unique by real path, have unique video ids and are sorted by
    ``(video_id, input)``; failures are unique and sorted by ``(input, error_type)``.
    """
    items: list[WorkItem] = []
    failures: list[dict] = []
    seen_lists: set[str] = set()
    for entry in inputs:
        i, f = _expand(str(entry).strip(), None, seen_lists)
        items += i
        failures += f
    unique: dict[str, WorkItem] = {}
    for item in sorted(items, key=lambda it: it.input):  # the smallest path wins for aliases
        unique.setdefault(_dedup_key(item), item)
    items = sorted(_unique_ids(list(unique.values())), key=lambda it: (it.video_id, it.input))
    uniq_failures = {(f["input"], f["error_type"]): f for f in failures}
    return items, [uniq_failures[k] for k in sorted(uniq_failures)]
