"""Input resolution: turn what the user typed into a sorted list of work items.

:func:`resolve_inputs` accepts, per input string:

* a video file -> one ``'video'`` item (any file; decoding decides later whether it is a video);
* a frame folder (images directly inside) -> one ``'frames'`` item;
* a YouTube-VOS root (a folder with ``JPEGImages/``) or the ``JPEGImages`` folder itself ->
  one ``'frames'`` item per ``JPEGImages/<video>/`` subfolder; an empty one is a failure;
* any other folder -> every video file directly inside it (by extension) and every subfolder
  that directly holds images (not recursive deeper than that);
* a glob (``clips/*.mp4``, ``file:///data/*/``) -> every match that is a video file (by
  extension) or a folder (resolved as above); no match is a ``not_found`` failure;
* ``@list`` -> every entry is an input again. The list may itself be a URL (``@s3://b/l.txt``,
  ``@https://host/l.csv``). Formats by extension: ``.txt`` (one per line, blank lines and
  ``#`` comment lines skipped), ``.csv`` and ``.parquet`` (the column ``input``/``path``/``url``,
  else the first one). Relative entries are relative to the list's folder (or URL);
* ``http(s)://`` URLs (no network at resolve time):

  - whose path ends in a video extension (``.mp4``, ``.webm``, ... see
    :data:`~.decode.VIDEO_EXTENSIONS`; the query string is ignored) -> one ``'http'`` item,
    a direct download; video id = the file stem;
  - any other -> one ``'ytdlp'`` item, a web-video page for yt-dlp. ``ytdl:URL`` forces yt-dlp
    for any URL (also a direct ``.mp4`` one, or yt-dlp pseudo-URLs like ``ytdl:ytsearch1:...``).
    Its video id is the extractor's id when it can be told from the URL alone (YouTube, Vimeo,
    Dailymotion: ``youtu.be/X`` and ``youtube.com/watch?v=X`` are the same item ``X``), else the
    stem of the URL's last path segment; :func:`~.remote.fetch` returns the extractor's real id;

* fsspec URLs (schemes in :data:`FSSPEC_SCHEMES`: ``s3://``, ``gs://``, ``az://``,
  ``memory://``, ...), listed with ``SourceOptions.storage_options``: a file -> one ``'fsspec'``
  item; a folder -> like a local folder but with ``'fsspec'`` and ``'fsspec-frames'`` items
  (a YouTube-VOS root on a bucket gives one ``'fsspec-frames'`` item per
  ``JPEGImages/<video>/``, with a single recursive listing); globs as above;
* ``file://`` URLs -> local paths; any other scheme -> an ``unsupported_scheme`` failure.
  More schemes may be registered in :data:`RESOLVERS`.

Other media reuse this walker (``@lists``, relative entries, schemes, de-duplication, unique
ids, order) with their own per-path hooks: :func:`walk_inputs` with a :class:`Media`; see
:mod:`dynocc.factory.io.stereo_inputs` (stereo photos).

Nothing is downloaded here except ``@list`` files; remote items are fetched right before
decoding by :func:`dynocc.factory.io.remote.fetch`.

Problems never raise: they become failure dicts with the keys ``input, video_id, stage
('resolve'), error_type, message, attempts`` (error types ``not_found``, ``empty_folder``,
``unsupported_scheme``, ``list_failed`` (a store listing failed), ``bad_list`` (an unreadable
list file), and for remote lists ``http_404``/``download_failed`` with the tries made).

Determinism: items are de-duplicated by their real path (symlinks resolved; URLs as written;
yt-dlp URLs by extractor and id), and sorted by ``(video_id, input)``. When different inputs
give the same video id (``a/clip.mp4`` and ``b/clip.mp4``), *every* one of them gets
``<id>-<first 8 hex digits of sha1(input)>``, where ``input`` is the item's absolute path or
URL, so ids do not depend on the order of the inputs. An item's ``input`` resolves back to it.
"""

from __future__ import annotations

import csv
import glob as _glob
import hashlib
import inspect
import os
import posixpath
from collections import defaultdict
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import unquote, urljoin, urlparse

from dynocc.factory.io.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, InputError, list_frame_files, video_id_for
from dynocc.factory.io.remote import REMOTE_KINDS, YTDL_PREFIX, SourceOptions, filesystem, read_bytes
from dynocc.factory.io.storage import URL_SCHEME, arrow_bytes, is_url
from dynocc.schemas.failures import failure_record


@dataclass(frozen=True)
class WorkItem:
    """One source to decode. ``input`` is its absolute path or URL; ``kind`` is one of

    ``'video'`` (local file), ``'frames'`` (local frame folder), ``'http'`` (direct video URL),
    ``'ytdlp'`` (web-video page), ``'fsspec'`` (video file on a store) or ``'fsspec-frames'``
    (frame folder on a store). Remote kinds are downloaded by :func:`~.remote.fetch`.
    Stereo photos (:mod:`.stereo_io`) add ``'stereo-file'`` and ``'stereo-pair'``, loaded by
    :func:`~.stereo_io.load_stereo_pair`.
    """

    input: str
    video_id: str
    kind: str

    @property
    def remote(self) -> bool:
        """Whether :func:`~.remote.fetch` downloads this item."""
        return self.kind in REMOTE_KINDS


Resolved = tuple[list[WorkItem], list[dict]]


def failure(input: str, error_type: str, message: str, video_id: Optional[str] = None,
            stage: str = "resolve", attempts: int = 1) -> dict:
    """A resolve failure (:func:`dynocc.schemas.failures.failure_record`)."""
    return failure_record(input, stage, error_type, message, video_id, attempts)


def has_magic(path: str) -> bool:
    return _glob.has_magic(path)


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


def resolve_local_glob(pattern: str, folder: Callable[[Path], Resolved],
                       file_item: Callable[[Path], Optional[WorkItem]], what: str) -> Resolved:
    """The matches of a local glob, sorted: folders resolved by ``folder``, files made items by
    ``file_item`` (None: not an input of this kind); one ``not_found`` failure when nothing matched
    ``what`` (e.g. "a video or folder"). Shared by the video and the stereo inputs."""
    items, failures = [], []
    matches = sorted(_glob.glob(os.path.expanduser(pattern)))
    for match in matches:
        path = Path(match)
        if path.is_dir():
            i, f = folder(path)
            items += i
            failures += f
        elif path.is_file():
            item = file_item(path)
            if item is not None:
                items.append(item)
    if not items and not failures:
        found = f"{len(matches)} match(es), none {what}" if matches else "no match"
        failures.append(failure(pattern, "not_found", f"{pattern}: {found}"))
    return items, failures


def _resolve_local_glob(pattern: str) -> Resolved:
    return resolve_local_glob(pattern, lambda p: resolve_local(str(p)),
                              lambda p: _item(p, "video") if p.suffix.lower() in VIDEO_EXTENSIONS else None,
                              "a video or folder")


def resolve_local(path_str: str) -> Resolved:
    """Resolve one local path (file, frame folder, folder of videos, YouTube-VOS root, glob)."""
    path = Path(path_str).expanduser()
    if not path.exists():
        if has_magic(path_str):
            return _resolve_local_glob(path_str)
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


# --------------------------------------------------------------------------- http(s) and yt-dlp


def url_stem(url: str) -> str:
    """Stem of the last path segment of an URL (query ignored), else its host."""
    parsed = urlparse(url)
    name = posixpath.basename(unquote(parsed.path).rstrip("/"))
    return posixpath.splitext(name)[0] or parsed.netloc or hashlib.sha1(url.encode()).hexdigest()[:12]


def is_direct_video_url(url: str) -> bool:
    """An http(s) URL whose path (query ignored) ends in a video extension: downloaded as is."""
    path = unquote(urlparse(url).path)
    return posixpath.splitext(path)[1].lower() in VIDEO_EXTENSIONS


# Extractors whose id is taken from the URL at resolve time (cheap: a few regexes).
_ID_EXTRACTORS = ("Youtube", "Vimeo", "Dailymotion")


@lru_cache(maxsize=1 << 16)
def _ytdlp_temp_id(url: str) -> tuple[Optional[str], str]:
    """``(extractor key or None, id)`` of a yt-dlp URL without any network."""
    try:
        from yt_dlp.extractor import get_info_extractor

        for key in _ID_EXTRACTORS:
            ie = get_info_extractor(key)
            if ie.suitable(url):
                temp_id = ie.get_temp_id(url)
                if temp_id:
                    return key, str(temp_id)
    except Exception:  # noqa: BLE001 - an id guess must never fail resolution
        pass
    return None, url_stem(url)


def _resolve_ytdlp(url: str, forced: bool) -> Resolved:
    url = url.strip()
    if not url:
        return [], [failure(YTDL_PREFIX, "not_found", f"{YTDL_PREFIX}: no URL after the prefix")]
    is_http = url.lower().startswith(("http://", "https://"))
    # the input resolves back to the same item: keep the prefix only where it is needed
    needs_prefix = forced and (not is_http or is_direct_video_url(url))
    _, video_id = _ytdlp_temp_id(url)
    return [WorkItem(f"{YTDL_PREFIX}{url}" if needs_prefix else url, video_id, "ytdlp")], []


def _resolve_http(url: str, options: Optional[SourceOptions] = None) -> Resolved:
    if is_direct_video_url(url):
        return [WorkItem(url, url_stem(url), "http")], []
    return _resolve_ytdlp(url, forced=False)


# --------------------------------------------------------------------------- fsspec stores

FSSPEC_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory", "oss",
                            "hdfs", "webhdfs"})
"""fsspec protocols resolved as object stores (their packages must be installed, e.g. gcsfs)."""


def store_url(scheme: str, path: str) -> str:
    return f"{scheme}://{path.lstrip('/')}"


def _is_image(name: str) -> bool:
    base = posixpath.basename(name)
    return not base.startswith(".") and posixpath.splitext(base)[1].lower() in IMAGE_EXTENSIONS


def list_children(fs, path: str) -> list[dict]:
    """The entries of a store folder, sorted by name, without hidden ones and without the folder itself."""
    path = path.rstrip("/")
    out = [e for e in fs.ls(path, detail=True) if e["name"].rstrip("/") != path]
    return sorted((e for e in out if not posixpath.basename(e["name"].rstrip("/")).startswith(".")),
                  key=lambda e: e["name"])


def _store_vos(fs, scheme: str, jpeg_path: str) -> Resolved:
    """One ``fsspec-frames`` item per ``JPEGImages/<video>/`` with images (one recursive listing)."""
    jpeg_path = jpeg_path.rstrip("/")
    images: dict[str, int] = defaultdict(int)
    for p in fs.find(jpeg_path, withdirs=False, detail=False):
        parts = p[len(jpeg_path):].strip("/").split("/")
        if len(parts) >= 2 and not parts[0].startswith("."):
            images[parts[0]] += len(parts) == 2 and _is_image(parts[1])
    items, failures = [], []
    for name in sorted(images):
        url = store_url(scheme, f"{jpeg_path}/{name}")
        if images[name]:
            items.append(WorkItem(url, name, "fsspec-frames"))
        else:
            failures.append(failure(url, "empty_folder", f"{url}: no images", name))
    if not items and not failures:
        url = store_url(scheme, jpeg_path)
        failures.append(failure(url, "empty_folder", f"{url}: no video folders inside", "JPEGImages"))
    return items, failures


def _store_folder(fs, scheme: str, path: str) -> Resolved:
    """A folder on a store: a frame folder, a YouTube-VOS root, or a folder of videos/frame folders."""
    path = path.rstrip("/")
    url = store_url(scheme, path)
    name = posixpath.basename(path)
    children = list_children(fs, path)
    files = [e for e in children if e.get("type") != "directory"]
    dirs = [e for e in children if e.get("type") == "directory"]
    if any(_is_image(e["name"]) for e in files):
        return [WorkItem(url, name, "fsspec-frames")], []
    if name == "JPEGImages":
        return _store_vos(fs, scheme, path)
    jpeg = [e for e in dirs if posixpath.basename(e["name"].rstrip("/")) == "JPEGImages"]
    if jpeg:
        return _store_vos(fs, scheme, jpeg[0]["name"])
    items = []
    for e in files:
        stem, ext = posixpath.splitext(posixpath.basename(e["name"]))
        if ext.lower() in VIDEO_EXTENSIONS:
            items.append(WorkItem(store_url(scheme, e["name"]), stem, "fsspec"))
    for e in dirs:
        sub = e["name"].rstrip("/")
        if any(_is_image(c["name"]) for c in list_children(fs, sub) if c.get("type") != "directory"):
            items.append(WorkItem(store_url(scheme, sub), posixpath.basename(sub), "fsspec-frames"))
    if not items:
        return [], [failure(url, "empty_folder", f"{url}: no videos, images or frame folders inside", name)]
    return items, []


def _store_glob(fs, scheme: str, url: str, pattern: str) -> Resolved:
    matches = fs.glob(pattern, detail=True)
    items, failures = [], []
    for p in sorted(matches):
        info = matches[p]
        if info.get("type") == "directory":
            i, f = _store_folder(fs, scheme, p)
            items += i
            failures += f
        else:
            stem, ext = posixpath.splitext(posixpath.basename(p))
            if ext.lower() in VIDEO_EXTENSIONS:
                items.append(WorkItem(store_url(scheme, p), stem, "fsspec"))
    if not items and not failures:
        what = f"{len(matches)} match(es), none a video or folder" if matches else "no match"
        failures.append(failure(url, "not_found", f"{url}: {what}"))
    return items, failures


def store_call(url: str, options: Optional[SourceOptions], body: Callable[..., Resolved]) -> Resolved:
    """``body(fs, scheme, url, path)`` on the fsspec filesystem of ``url`` (cache invalidated),
    with its errors as failures: a missing protocol package -> ``unsupported_scheme``, a missing
    object -> ``not_found``, anything else (credentials, network) -> ``list_failed``."""
    scheme = url.split("://", 1)[0].lower()
    try:
        fs, path = filesystem(url, options)
    except (ImportError, ValueError) as e:  # the protocol's package is missing
        return [], [failure(url, "unsupported_scheme", f"{url}: {scheme}:// is not available here ({e})")]
    except Exception as e:  # noqa: BLE001 - bad storage options and the like
        return [], [failure(url, "list_failed", f"{url}: {type(e).__name__}: {e}")]
    try:
        fs.invalidate_cache()  # a listing cached earlier in this process may be stale
        return body(fs, scheme, url, path)
    except FileNotFoundError:
        return [], [failure(url, "not_found", f"{url}: no such object or folder")]
    except Exception as e:  # noqa: BLE001 - credentials, permissions, network: a failure row
        return [], [failure(url, "list_failed", f"{url}: {type(e).__name__}: {e}")]


def _store_entry(fs, scheme: str, url: str, path: str) -> Resolved:
    if has_magic(path):
        return _store_glob(fs, scheme, url, path)
    info = fs.info(path)
    if info.get("type") == "directory":
        return _store_folder(fs, scheme, path)
    stem = posixpath.splitext(posixpath.basename(path.rstrip("/")))[0]
    return [WorkItem(store_url(scheme, path), stem, "fsspec")], []


def _resolve_fsspec(url: str, options: Optional[SourceOptions] = None) -> Resolved:
    return store_call(url, options, _store_entry)


# Scheme -> resolver of one URL: ``resolver(url)`` or ``resolver(url, options)``.
RESOLVERS: dict[str, Callable[..., Resolved]] = {
    "file": _resolve_file_url,
    "http": _resolve_http,
    "https": _resolve_http,
    **{scheme: _resolve_fsspec for scheme in sorted(FSSPEC_SCHEMES)},
}

_SCHEME = URL_SCHEME


@lru_cache(maxsize=64)
def _takes_options(resolver: Callable) -> bool:
    try:
        params = list(inspect.signature(resolver).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(params) >= 2 or any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)


def _call_resolver(resolver: Callable, url: str, options: SourceOptions) -> Resolved:
    return resolver(url, options) if _takes_options(resolver) else resolver(url)


# --------------------------------------------------------------------------- other media


@dataclass(frozen=True)
class Media:
    """The per-path hooks of another kind of media for :func:`walk_inputs` (videos need none).

    The walker keeps what is common: ``@lists`` (local or remote, nested, each read once),
    entries relative to their list's folder or URL, dispatch by URL scheme, de-duplication,
    unique ids and the order. A media gives:

    ``local(path, options)``   resolves one local path (file, folder or glob);
    ``resolvers``              URL scheme -> ``resolver(url, options)``; other schemes are
                               ``unsupported_scheme`` failures; ``file://`` URLs go to ``local``
                               unless ``resolvers`` has ``'file'``;
    ``read_list``              optional ``read_list(data, name, location, options)``, called with
                               the bytes of every list file: return ``(items, failures)`` to take
                               the file over (a csv of stereo pairs), or ``None`` to read it as a
                               list of inputs;
    ``list_suffixes``          entries with these extensions (``{'.csv'}``) are read as list files
                               even without ``@``;
    ``dedup_key``              optional ``dedup_key(item)``: items with equal keys are one item
                               (default: the real path, or the URL as written);
    ``ytdl``                   whether ``ytdl:`` entries are resolved (as web video) or are
                               ``unsupported_scheme`` failures.
    """

    local: Callable[[str, SourceOptions], Resolved]
    resolvers: dict[str, Callable[..., Resolved]]
    read_list: Optional[Callable[[bytes, str, str, SourceOptions], Optional[Resolved]]] = None
    list_suffixes: frozenset[str] = frozenset()
    dedup_key: Optional[Callable[[WorkItem], str]] = None
    ytdl: bool = False
    name: str = "media"


def entry_suffix(entry: str) -> str:
    """Lower-case extension of a path or URL (an URL's query and fragment ignored)."""
    path = unquote(urlparse(entry).path) if _SCHEME.match(entry) else entry
    return posixpath.splitext(path.rstrip("/"))[1].lower()


# --------------------------------------------------------------------------- @list files

_LIST_COLUMNS = ("input", "path", "url")


def _parse_list(data: bytes, name: str) -> list[str]:
    """Entries of a list file by its name's extension: parquet, csv or txt."""
    suffix = posixpath.splitext(name.lower())[1]
    if suffix in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.ParquetFile(pa.BufferReader(arrow_bytes(data))).read()  # (not BytesIO: see storage.parquet_file)
        if table.num_columns == 0:
            return []
        lower = [c.lower() for c in table.column_names]
        col = next((lower.index(c) for c in _LIST_COLUMNS if c in lower), 0)
        values = table.column(col).to_pylist()
        return [str(v).strip() for v in values if v is not None and str(v).strip()]
    text = data.decode("utf-8-sig")
    if suffix == ".csv":
        rows = [r for r in csv.reader(text.splitlines()) if r and r[0].strip()]
        header = [c.strip().lower() for c in rows[0]] if rows else []
        for col_name in _LIST_COLUMNS:
            if col_name in header:
                col = header.index(col_name)
                return [r[col].strip() for r in rows[1:] if len(r) > col and r[col].strip()]
        return [r[0].strip() for r in rows if not r[0].strip().startswith("#")]
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _read_list(path: Path) -> list[str]:
    """Entries of a local list file: txt (one per line, ``#`` comments), csv or parquet."""
    return _parse_list(path.read_bytes(), path.name)


def join_entry(base: Optional[str], entry: str) -> str:
    """``entry`` relative to the list file at ``base`` (a local path or an URL)."""
    if base is None or is_url(entry) or entry.lower().startswith(YTDL_PREFIX):
        return entry
    if os.path.isabs(os.path.expanduser(entry)):
        return entry
    if is_url(base):
        if base.lower().startswith(("http://", "https://")):
            return urljoin(base, entry)
        scheme, rest = base.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(posixpath.dirname(rest), entry))}"
    return str(Path(base).parent / entry)


def _expand_list(entry: str, location: str, seen_lists: set[str], options: SourceOptions,
                 media: Optional[Media] = None) -> Resolved:
    """Read the list at ``location`` (``entry`` is what named it) and resolve its entries
    (``media``: see :class:`Media`; ``None`` for videos)."""
    if location.lower().startswith("file://"):
        location = unquote(urlparse(location).path)
    if is_url(location):
        scheme = location.split("://", 1)[0].lower()
        if scheme not in ("http", "https") and scheme not in FSSPEC_SCHEMES:
            return [], [failure(entry, "unsupported_scheme",
                                f"{entry}: list URL scheme {scheme!r} is not supported")]
        key, name = location, urlparse(location).path
        if key in seen_lists:
            return [], []
        try:
            data, _ = read_bytes(location, options, stage="resolve")
        except InputError as e:
            return [], [failure(entry, e.error_type, f"{entry}: list file: {e.message}", attempts=e.attempts)]
    else:
        list_path = Path(location).expanduser()
        if not list_path.is_file():
            return [], [failure(entry, "not_found", f"{entry}: list file {list_path} not found")]
        key, name = os.path.realpath(list_path), list_path.name
        location = str(list_path)
        if key in seen_lists:  # a list that includes itself
            return [], []
        data = list_path.read_bytes()
    seen_lists.add(key)
    if media is not None and media.read_list is not None:
        taken = media.read_list(data, name, location, options)
        if taken is not None:
            return taken
    try:
        lines = _parse_list(data, name)
    except Exception as e:  # noqa: BLE001 - bad parquet, bad encoding
        return [], [failure(entry, "bad_list", f"{entry}: cannot read the list ({type(e).__name__}: {e})")]
    items, failures = [], []
    for line in lines:
        i, f = _expand(line, location, seen_lists, options, media)
        items += i
        failures += f
    return items, failures


def _expand(entry: str, base: Optional[str], seen_lists: set[str],
            options: Optional[SourceOptions] = None, media: Optional[Media] = None) -> Resolved:
    """Resolve one input string; ``base`` is the list file (path or URL) it came from;
    ``media``: see :class:`Media` (``None``: videos)."""
    options = SourceOptions.coerce(options)
    if entry.startswith("@"):
        return _expand_list(entry, join_entry(base, entry[1:].strip()), seen_lists, options, media)
    if entry.lower().startswith(YTDL_PREFIX):
        if media is not None and not media.ytdl:
            return [], [failure(entry, "unsupported_scheme", f"{entry}: {YTDL_PREFIX} is for videos, "
                                f"not for {media.name}")]
        return _resolve_ytdlp(entry[len(YTDL_PREFIX):], forced=True)
    if media is not None and media.list_suffixes and entry_suffix(entry) in media.list_suffixes:
        return _expand_list(entry, join_entry(base, entry), seen_lists, options, media)
    entry = join_entry(base, entry)  # a relative entry of a remote list becomes an URL
    resolvers = RESOLVERS if media is None else media.resolvers
    match = _SCHEME.match(entry)
    if match:
        scheme = match.group(1).lower()
        if media is not None and scheme == "file" and "file" not in resolvers:
            return media.local(unquote(urlparse(entry).path), options)
        resolver = resolvers.get(scheme)
        if resolver is None:
            supported = sorted(set(resolvers) | ({"file"} if media is not None else set()))
            ytdl = f"{YTDL_PREFIX}URL, " if media is None or media.ytdl else ""
            return [], [failure(entry, "unsupported_scheme",
                                f"{entry}: URL scheme {scheme!r} is not supported "
                                f"(supported: {', '.join(supported)}, {ytdl}"
                                f"@lists and local paths)")]
        return _call_resolver(resolver, entry, options)
    if media is not None:
        return media.local(str(Path(entry).expanduser()), options)
    return resolve_local(str(Path(entry).expanduser()))


# --------------------------------------------------------------------------- public entry point


def _dedup_key(item: WorkItem) -> str:
    if item.kind == "ytdlp":
        url = item.input[len(YTDL_PREFIX):] if item.input.lower().startswith(YTDL_PREFIX) else item.input
        extractor, video_id = _ytdlp_temp_id(url)
        return f"ytdlp:{extractor}:{video_id}" if extractor else item.input
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
            out += [replace(it, video_id=unique_id(vid, it.input)) for it in group]
    return out


def dedup_key(item: WorkItem, media: Optional[Media] = None) -> str:
    """Items with equal keys are one item (:class:`Media`'s ``dedup_key``; videos: the real path,
    or the URL as written)."""
    key = _dedup_key if media is None or media.dedup_key is None else media.dedup_key
    return key(item)


def expand_entry(entry: str, base: Optional[str] = None, options: "SourceOptions | dict | None" = None,
                 media: Optional[Media] = None) -> Resolved:
    """Resolve one input string (``base``: the list file it came from, or None), before
    de-duplication: what a resolve task of the Ray engine runs per entry."""
    return _expand(str(entry).strip(), base or None, set(), SourceOptions.coerce(options), media)


def finish_resolution(items: list[WorkItem], failures: list[dict], media: Optional[Media] = None) -> Resolved:
    """De-duplicate (the smallest input wins among aliases), give ids shared by different items a
    ``-<sha1(input)[:8]>`` suffix, and order items by ``(video_id, input)`` and failures by
    ``(input, error_type)``, one failure per pair."""
    unique: dict[str, WorkItem] = {}
    for item in sorted(items, key=lambda it: it.input):  # the smallest path wins for aliases
        unique.setdefault(dedup_key(item, media), item)
    items = sorted(_unique_ids(list(unique.values())), key=lambda it: (it.video_id, it.input))
    uniq_failures = {(f["input"], f["error_type"]): f for f in failures}
    return items, [uniq_failures[k] for k in sorted(uniq_failures)]


def unique_id(video_id: str, input: str) -> str:
    """The id an item gets when another item has the same ``video_id``."""
    return f"{video_id}-{hashlib.sha1(input.encode()).hexdigest()[:8]}"


def walk_inputs(inputs: list[str], options: "SourceOptions | dict | None" = None,
                media: Optional[Media] = None) -> tuple[list[WorkItem], list[dict]]:
    """:func:`resolve_inputs` for any media: the same walk over ``inputs`` (``@lists``, relative
    entries, schemes), de-duplication, unique ids and order, with ``media``'s hooks for paths
    and URLs (``None``: videos, exactly :func:`resolve_inputs`)."""
    options = SourceOptions.coerce(options)
    items: list[WorkItem] = []
    failures: list[dict] = []
    seen_lists: set[str] = set()
    for entry in inputs:
        i, f = _expand(str(entry).strip(), None, seen_lists, options, media)
        items += i
        failures += f
    return finish_resolution(items, failures, media)


def resolve_inputs(inputs: list[str], options: "SourceOptions | dict | None" = None
                   ) -> tuple[list[WorkItem], list[dict]]:
    """Expand CLI inputs into ``(work items, failure dicts)``; never raises for bad inputs.

    ``options`` (:class:`~.remote.SourceOptions`, a dict of its fields, or ``None`` for the
    defaults) gives the fsspec ``storage_options`` for listing stores and reading remote
    ``@lists``; pass the same options to :func:`~.remote.fetch`. Items are unique by real path
    (or URL), have unique video ids and are sorted by ``(video_id, input)``; failures are unique
    and sorted by ``(input, error_type)``.
    """
    return walk_inputs(inputs, options)
