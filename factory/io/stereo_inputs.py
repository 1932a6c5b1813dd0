"""Stereo inputs for the ReDWeb branch: resolve stereo photos into work items, load (left, right).

:func:`resolve_stereo_inputs` is :func:`~.sources.resolve_inputs` for stereo photos: the same
walker (:func:`~.sources.walk_inputs`: ``@lists`` -- txt/csv/parquet, local or remote, nested --,
entries relative to their list, ``file://``, fsspec stores with ``SourceOptions.storage_options``,
de-duplication, unique ids, order by ``(video_id, input)``), with stereo hooks for paths and URLs.
Per input string:

* a file -> one ``'stereo-file'`` item, whatever its extension (loading decides what it holds):

  - side-by-side (SBS) images ``.jpg``/``.jpeg``/``.png``: both views in one image, **left
    view on the left** (parallel layout);
  - ``.jps`` (JPEG stereo) and ``.pns`` (PNG stereo): side by side, **right view on the left**
    (cross-eyed layout, as the formats define);
  - ``.mpo`` (CIPA DC-007 multi-picture object): frame 0 is the left view, frame 1 the right.
    A ``.jpg``/``.jpeg`` whose content is an MPO (two images or more, the second neither a
    thumbnail nor of another size) is loaded as an MPO; this is decided at load time;

* a ``.csv`` file with ``left`` and ``right`` columns, given as ``pairs.csv`` or ``@pairs.csv``
  (local or an URL) -> one ``'stereo-pair'`` item per row. Entries are paths or URLs; relative
  ones are relative to the csv's folder (or URL). Other columns are ignored; blank rows and rows
  whose first cell starts with ``#`` are skipped. A ``.csv`` without those columns is an
  ordinary ``@list`` of inputs (column ``input``/``path``/``url``, else the first);
* a folder -> every stereo image directly inside it (extensions :data:`STEREO_EXTENSIONS`; not
  recursive, csv files not taken: name them); none -> an ``empty_folder`` failure;
* a glob (``photos/*.jps``, ``s3://b/stereo/*/``) -> every match that is a stereo image (by
  extension) or a folder (as above); no match -> ``not_found``;
* ``http(s)://`` URLs -> a ``'stereo-file'`` item (no network at resolve time; ``.csv`` URLs
  are pair lists, downloaded); fsspec URLs (``s3://``, ``gs://``, ``memory://``, ...): a file,
  a folder or a glob as above; ``ytdl:`` and other schemes -> ``unsupported_scheme``.

Work items (:class:`~.sources.WorkItem`):

``'stereo-file'``  ``input`` = the file's absolute path or URL; ``video_id`` = its file stem.
``'stereo-pair'``  ``input`` = a JSON object ``{"left": L, "right": R}`` (:func:`pair_input`,
                   read back with :func:`split_pair_input`), L and R absolute paths or URLs --
                   JSON so that any character (``|``, ``,``) in a path or URL is safe;
                   ``video_id`` = the left image's file stem.

Both kinds are loaded (and remote files downloaded) by :func:`load_stereo_pair`, not by
:func:`~.remote.fetch`; :func:`stereo_sources` lists the files of an item and
:func:`is_remote_stereo` tells whether any of them is remote. Resolution never raises: problems
are failure dicts as in :mod:`.sources` (``not_found`` -- also for a csv row naming a missing
local file, with the pair's ``input`` --, ``empty_folder``, ``unsupported_scheme``,
``list_failed``, ``bad_list`` -- a csv row without both sides, its ``input`` is ``CSV:LINE``).

Loading: :func:`load_stereo_pair` returns ``(left_rgb, right_rgb)``, ``uint8`` ``(H, W, 3)`` of
equal size. Errors are :class:`~.decode.InputError` with ``stage='decode'`` (downloads:
``stage='download'`` and the error types of :func:`~.remote.read_bytes`: ``http_404``,
``download_failed``, ``not_found``) and ``error_type`` one of:

``not_found``      a local file is missing;
``not_an_image``   the file is not a readable image (or is truncated, for a non-MPO file);
``mono_image``     an ``.mpo`` file that holds a single image (or only a thumbnail besides);
``truncated_mpo``  an MPO whose frames cannot both be read (e.g. the file was cut short);
``size_mismatch``  a csv pair (or an ``.mpo``'s two frames) of different sizes -- never resized;
``too_small``      a view's short side is below ``min_side`` (:data:`MIN_SIDE`) pixels.

EXIF orientation is ignored on purpose: the stereo baseline is horizontal in the stored pixels.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlparse

import numpy as np

from dynocc.factory.io.decode import InputError, resize_long_side
from dynocc.factory.io.remote import SourceOptions, read_bytes
from dynocc.factory.io.storage import is_url
from dynocc.factory.io.sources import (
    FSSPEC_SCHEMES,
    Media,
    Resolved,
    WorkItem,
    list_children,
    has_magic,
    join_entry,
    store_url,
    url_stem,
    entry_suffix,
    failure,
    resolve_local_glob,
    store_call,
    walk_inputs,
)

__all__ = [
    "STEREO_EXTENSIONS",
    "CROSS_EYED_EXTENSIONS",
    "STEREO_KINDS",
    "MIN_SIDE",
    "resolve_stereo_inputs",
    "load_stereo_pair",
    "pair_input",
    "split_pair_input",
    "stereo_sources",
    "is_remote_stereo",
    "split_side_by_side",
]

STEREO_EXTENSIONS = frozenset({".jps", ".pns", ".mpo", ".jpg", ".jpeg", ".png"})
"""Files taken from folders and globs as stereo images."""

CROSS_EYED_EXTENSIONS = frozenset({".jps", ".pns"})
"""Side-by-side formats that store the right view first (cross-eyed layout)."""

STEREO_KINDS = frozenset({"stereo-file", "stereo-pair"})

MIN_SIDE = 32
"""Default smallest short side (pixels) of a view that :func:`load_stereo_pair` accepts."""

_PAIR_SUFFIXES = frozenset({".csv"})
_URL_SCHEMES = frozenset({"http", "https"}) | FSSPEC_SCHEMES


# --------------------------------------------------------------------------- pair encoding


def pair_input(left: str, right: str) -> str:
    """The ``input`` of a ``'stereo-pair'`` item: ``{"left": left, "right": right}`` as JSON."""
    return json.dumps({"left": left, "right": right}, ensure_ascii=False)


def split_pair_input(value: str) -> tuple[str, str]:
    """``(left, right)`` of a ``'stereo-pair'`` input made by :func:`pair_input`."""
    try:
        d = json.loads(value)
        left, right = d["left"], d["right"]
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"not a stereo-pair input (JSON with 'left' and 'right'): {value!r}") from e
    if not isinstance(left, str) or not isinstance(right, str):
        raise ValueError(f"not a stereo-pair input (left and right must be strings): {value!r}")
    return left, right


def stereo_sources(item: WorkItem) -> list[str]:
    """The files (paths or URLs) of a stereo item: one for ``'stereo-file'``, two for a pair."""
    if item.kind == "stereo-pair":
        return list(split_pair_input(item.input))
    if item.kind == "stereo-file":
        return [item.input]
    raise ValueError(f"not a stereo work item: kind {item.kind!r}")


def is_remote_stereo(item: WorkItem) -> bool:
    """Whether :func:`load_stereo_pair` downloads any file of this item."""
    return any(is_url(s) and not s.lower().startswith("file://") for s in stereo_sources(item))


def _stem(source: str) -> str:
    return url_stem(source) if is_url(source) else Path(source).stem


# --------------------------------------------------------------------------- resolve: local


def _is_stereo_name(name: str) -> bool:
    base = posixpath.basename(name.rstrip("/"))
    return not base.startswith(".") and posixpath.splitext(base)[1].lower() in STEREO_EXTENSIONS


def _file_item(path: Path) -> WorkItem:
    path_str = os.path.abspath(path)
    return WorkItem(path_str, Path(path_str).stem, "stereo-file")


def _local_folder(folder: Path) -> Resolved:
    items = [_file_item(c) for c in sorted(folder.iterdir(), key=lambda p: p.name)
             if c.is_file() and _is_stereo_name(c.name)]
    if not items:
        return [], [failure(str(folder), "empty_folder", f"{folder}: no stereo images inside", folder.name)]
    return items, []


def _local_glob(pattern: str) -> Resolved:
    return resolve_local_glob(pattern, _local_folder, lambda p: _file_item(p) if _is_stereo_name(p.name) else None,
                              "a stereo image or folder")


def _resolve_local(path_str: str, options: SourceOptions) -> Resolved:
    path = Path(path_str).expanduser()
    if not path.exists():
        if has_magic(path_str):
            return _local_glob(path_str)
        return [], [failure(path_str, "not_found", f"{path_str}: no such file or folder")]
    if path.is_file():
        return [_file_item(path)], []
    return _local_folder(path)


# --------------------------------------------------------------------------- resolve: URLs


def _resolve_http(url: str, options: Optional[SourceOptions] = None) -> Resolved:
    return [WorkItem(url, url_stem(url), "stereo-file")], []


def _store_folder(fs, scheme: str, path: str) -> Resolved:
    path = path.rstrip("/")
    items = [WorkItem(store_url(scheme, e["name"]), _stem(e["name"]), "stereo-file")
             for e in list_children(fs, path) if e.get("type") != "directory" and _is_stereo_name(e["name"])]
    if not items:
        url = store_url(scheme, path)
        return [], [failure(url, "empty_folder", f"{url}: no stereo images inside", posixpath.basename(path))]
    return items, []


def _store_entry(fs, scheme: str, url: str, path: str) -> Resolved:
    if has_magic(path):
        matches = fs.glob(path, detail=True)
        items, failures = [], []
        for p in sorted(matches):
            if matches[p].get("type") == "directory":
                i, f = _store_folder(fs, scheme, p)
                items += i
                failures += f
            elif _is_stereo_name(p):
                items.append(WorkItem(store_url(scheme, p), _stem(p), "stereo-file"))
        if not items and not failures:
            what = f"{len(matches)} match(es), none a stereo image or folder" if matches else "no match"
            failures.append(failure(url, "not_found", f"{url}: {what}"))
        return items, failures
    if fs.info(path).get("type") == "directory":
        return _store_folder(fs, scheme, path)
    return [WorkItem(store_url(scheme, path), _stem(path), "stereo-file")], []


def _resolve_store(url: str, options: Optional[SourceOptions] = None) -> Resolved:
    return store_call(url, options, _store_entry)


# --------------------------------------------------------------------------- resolve: csv pairs


def _pair_side(entry: str, location: str) -> str:
    """A csv cell as an absolute path or an URL (relative to the csv at ``location``)."""
    if entry.lower().startswith("file://"):
        return os.path.abspath(unquote(urlparse(entry).path))
    joined = join_entry(location, entry)
    return joined if is_url(joined) else os.path.abspath(os.path.expanduser(joined))


def _read_pairs(data: bytes, name: str, location: str, options: SourceOptions) -> Optional[Resolved]:
    """A csv with ``left`` and ``right`` columns -> ``'stereo-pair'`` items; else ``None``."""
    if posixpath.splitext(name.lower())[1] not in _PAIR_SUFFIXES:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    reader = csv.reader(io.StringIO(text))
    header: Optional[list[str]] = None
    items, failures = [], []
    for row in reader:
        if not row or not any(c.strip() for c in row) or row[0].strip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in row]
            if "left" not in header or "right" not in header:
                return None  # an ordinary list of inputs
            li, ri = header.index("left"), header.index("right")
            continue
        left = row[li].strip() if len(row) > li else ""
        right = row[ri].strip() if len(row) > ri else ""
        where = f"{location}:{reader.line_num}"
        if not left or not right:
            failures.append(failure(where, "bad_list", f"{where}: a pair needs both left and right"))
            continue
        sides = [_pair_side(left, location), _pair_side(right, location)]
        bad = [s for s in sides if is_url(s) and s.split("://", 1)[0].lower() not in _URL_SCHEMES]
        value = pair_input(*sides)
        if bad:
            failures.append(failure(value, "unsupported_scheme",
                                    f"{where}: URL scheme of {bad[0]!r} is not supported", _stem(sides[0])))
            continue
        missing = [(side, s) for side, s in zip(("left", "right"), sides) if not is_url(s) and not os.path.isfile(s)]
        if missing:
            side, s = missing[0]
            failures.append(failure(value, "not_found", f"{where}: {side} image {s} not found", _stem(sides[0])))
            continue
        items.append(WorkItem(value, _stem(sides[0]), "stereo-pair"))
    if header is None:
        return None
    return items, failures


# --------------------------------------------------------------------------- resolve: entry point


def _key(source: str) -> str:
    return source if is_url(source) else os.path.realpath(source)


def _dedup_key(item: WorkItem) -> str:
    if item.kind == "stereo-pair":
        return json.dumps([_key(s) for s in split_pair_input(item.input)])
    return _key(item.input)


STEREO_MEDIA = Media(
    local=_resolve_local,
    resolvers={"http": _resolve_http, "https": _resolve_http,
               **{scheme: _resolve_store for scheme in sorted(FSSPEC_SCHEMES)}},
    read_list=_read_pairs,
    list_suffixes=_PAIR_SUFFIXES,
    dedup_key=_dedup_key,
    ytdl=False,
    name="stereo photos",
)
"""The stereo hooks of :func:`~.sources.walk_inputs`."""


def resolve_stereo_inputs(inputs: list[str], options: "SourceOptions | dict | None" = None
                          ) -> tuple[list[WorkItem], list[dict]]:
    """Expand stereo inputs into ``(work items, failure dicts)``; never raises for bad inputs.

    See the module docstring for what each input gives. ``options`` as for
    :func:`~.sources.resolve_inputs` (fsspec ``storage_options``, remote ``@lists``); pass the
    same to :func:`load_stereo_pair`. Items are unique (real paths; a pair by both files), have
    unique ids (``<stem>-<sha1(input)[:8]>`` when stems collide) and are sorted by
    ``(video_id, input)``; failures are unique and sorted by ``(input, error_type)``.
    """
    return walk_inputs(inputs, options, STEREO_MEDIA)


# --------------------------------------------------------------------------- loading


def _read(source: str, options: SourceOptions) -> bytes:
    if source.lower().startswith("file://"):
        source = unquote(urlparse(source).path)
    if is_url(source):
        data, _ = read_bytes(source, options, stage="download")
        return data
    try:
        with open(os.path.expanduser(source), "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise InputError("not_found", f"{source}: no such file", source=source) from None
    except OSError as e:  # a folder, no permission
        raise InputError("not_an_image", f"{source}: cannot read ({type(e).__name__}: {e})", source=source) from None


def _open(data: bytes, source: str):
    from PIL import Image

    try:
        return Image.open(io.BytesIO(data))
    except Exception as e:  # noqa: BLE001 - UnidentifiedImageError, decompression bombs, bad headers
        raise InputError("not_an_image", f"{source}: not an image ({type(e).__name__}: {e})", source=source) from None


def _rgb(im) -> np.ndarray:
    """The current frame of a Pillow image as ``uint8`` RGB (16-bit gray scaled, alpha dropped)."""
    im.load()
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im).astype(np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        g = np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(g[..., None], 3, axis=2))
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _load_image(source: str, options: SourceOptions) -> np.ndarray:
    """One image (an MPO's first frame) as RGB."""
    im = _open(_read(source, options), source)
    try:
        return _rgb(im)
    except Exception as e:  # noqa: BLE001 - truncated or corrupt data
        raise InputError("not_an_image", f"{source}: cannot decode ({type(e).__name__}: {e})", source=source) from None


def _mp_type(im, frame: int) -> str:
    try:
        return str(im.mpinfo[0xB002][frame]["Attribute"]["MPType"])
    except Exception:  # noqa: BLE001 - no or odd MP entries
        return "Unknown"


def _mpo_views(im, source: str, is_mpo_file: bool) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Frames 0 and 1 of a stereo MPO; ``None`` when the image is not one (plain JPEG)."""
    if getattr(im, "format", None) != "MPO" or getattr(im, "n_frames", 1) < 2:
        return None
    if "thumbnail" in _mp_type(im, 1).lower():
        if is_mpo_file:
            raise InputError("mono_image", f"{source}: an MPO with one view (the second image is a "
                             f"{_mp_type(im, 1)})", source=source)
        return None
    try:
        first = _rgb(im)
    except Exception as e:  # noqa: BLE001
        raise InputError("truncated_mpo", f"{source}: MPO frame 0 cannot be read ({type(e).__name__}: {e})",
                         source=source) from None
    try:
        im.seek(1)
        if im.size != (first.shape[1], first.shape[0]):
            if not is_mpo_file:  # e.g. a gain map or a preview: the primary image is the photo
                im.seek(0)
                return None
            raise InputError("size_mismatch", f"{source}: MPO frames of different sizes "
                             f"({first.shape[1]}x{first.shape[0]} and {im.size[0]}x{im.size[1]})", source=source)
        second = _rgb(im)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - missing or cut frame data
        raise InputError("truncated_mpo", f"{source}: MPO frame 1 cannot be read ({type(e).__name__}: {e})",
                         source=source) from None
    return first, second


def split_side_by_side(image: np.ndarray, right_first: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(left, right)`` halves of a side-by-side image (an odd width drops the middle column);
    ``right_first``: the right view is the left half (cross-eyed layout, as in JPS)."""
    w = image.shape[1]
    half = w // 2
    a, b = image[:, :half], image[:, w - half:]
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return (b, a) if right_first else (a, b)


def _load_file(source: str, options: SourceOptions, cross_eyed: bool) -> tuple[np.ndarray, np.ndarray]:
    suffix = entry_suffix(source)
    im = _open(_read(source, options), source)
    views = _mpo_views(im, source, suffix == ".mpo")
    if views is not None:
        return views
    if suffix == ".mpo":
        raise InputError("mono_image", f"{source}: an MPO with a single image (not a stereo pair)", source=source)
    try:
        image = _rgb(im)
    except Exception as e:  # noqa: BLE001 - truncated or corrupt data
        raise InputError("not_an_image", f"{source}: cannot decode ({type(e).__name__}: {e})", source=source) from None
    if image.shape[1] < 2:
        raise InputError("too_small", f"{source}: {image.shape[1]} px wide, cannot hold two views", source=source)
    right_first = (suffix in CROSS_EYED_EXTENSIONS) != bool(cross_eyed)
    return split_side_by_side(image, right_first)


def load_stereo_pair(item: WorkItem, options: "SourceOptions | dict | None" = None, cross_eyed: bool = False,
                     max_long_side: Optional[int] = None, *, min_side: int = MIN_SIDE
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(left_rgb, right_rgb)`` of a stereo work item: ``uint8`` ``(H, W, 3)``, equal sizes.

    ``'stereo-file'``: an MPO (``.mpo``, or a ``.jpg`` whose content is one) gives its frames 0
    (left) and 1 (right); any other image is split at its middle column (an odd width drops the
    middle column): left half = left view, except for ``.jps``/``.pns`` (right view first).
    ``cross_eyed=True`` flips that choice for side-by-side files (MPO frames and csv columns
    name their views and are never swapped). ``'stereo-pair'``: both files (an MPO's first
    frame), which must have the same size (``size_mismatch``, never resized).

    Views whose short side is below ``min_side`` are ``too_small``. ``max_long_side`` then
    shrinks both views identically (``cv2.INTER_AREA``, never upscaled). Remote files (http(s),
    fsspec URLs) are read with :func:`~.remote.read_bytes` (``options``: retries, storage
    options, cookies). Errors: :class:`~.decode.InputError` (see the module docstring).
    """
    options = SourceOptions.coerce(options)
    if item.kind == "stereo-pair":
        left_src, right_src = split_pair_input(item.input)
        left = _load_image(left_src, options)
        right = _load_image(right_src, options)
        if left.shape != right.shape:
            raise InputError("size_mismatch", f"{item.input}: left is {left.shape[1]}x{left.shape[0]}, "
                             f"right is {right.shape[1]}x{right.shape[0]}", source=item.input)
    elif item.kind == "stereo-file":
        left, right = _load_file(item.input, options, cross_eyed)
    else:
        raise ValueError(f"not a stereo work item: kind {item.kind!r} (stereo kinds: {sorted(STEREO_KINDS)})")
    h, w = left.shape[:2]
    if min(h, w) < min_side:
        raise InputError("too_small", f"{item.input}: views of {w}x{h} px, short side below {min_side}",
                         source=item.input)
    if max_long_side is not None:
        left, right = resize_long_side(left, max_long_side), resize_long_side(right, max_long_side)
    return left, right
