"""Remote sources: options, and fetching a work item to a local path right before decoding.

:func:`dynocc.factory.io.sources.resolve_inputs` stays cheap: it lists and globs, reads ``@lists``,
but never downloads a video. :func:`fetch` is the step that does, right before decoding::

    items, failures = resolve_inputs(inputs, options)
    for item in items:
        try:
            with fetch(item, options) as local:           # downloads into a temp dir ...
                frames = decode_frames(local, config)      # ... a path-like (os.fspath works)
                ...                                        # use local.video_id for web video
        except InputError as e:                            # stage 'download' or 'decode'
            rows.append(e.to_failure(item.input, item.video_id))   # attempts come with it
        # ... and the temp dir is gone here

Kinds of :class:`~dynocc.factory.io.sources.WorkItem` and what :func:`fetch` does with them:

``video``, ``frames``  local file / frame folder: passed through, nothing copied or deleted.
``http``           an http(s) URL whose path ends in a video extension: downloaded (urllib,
                   streamed to disk, ``cookies`` sent if given, ``max_bytes`` enforced).
``ytdlp``          any other http(s) URL, or one forced with the ``ytdl:`` prefix: a web-video
                   page handed to yt-dlp's Python API (``yt_dlp.YoutubeDL``). The format is
                   :func:`ytdlp_format` (``bestvideo[height<=?H]/best[height<=?H]``; ``?`` lets
                   formats of unknown height through, as the generic extractor gives for plain
                   files); a playlist gives its first entry. Metadata is extracted first
                   (``download=False``), so a video longer than ``max_duration`` is rejected
                   (``too_long``) before its download. The extractor's id comes back as
                   :attr:`Fetched.video_id`.
``fsspec``         one file on an fsspec store (``s3://``, ``gs://``, ``memory://``, ...):
                   copied with ``fs.get_file``.
``fsspec-frames``  a frame folder on a store (e.g. ``s3://b/ytvos/train/JPEGImages/<video>``):
                   its images are copied into a local folder, names kept.

Retries: every download is tried at most ``1 + retries`` times; before try ``n + 1`` it sleeps
``min(backoff_seconds * 2 ** (n - 1), max_backoff_seconds)`` (1 s, 2 s, 4 s, ... by default).
Only transient problems are retried: connection errors, time-outs, truncated bodies, HTTP 408,
425, 429 and 5xx, yt-dlp network errors. A 404, another 4xx, a missing object, a page without
video, a video that is too long or too large fail at once.

Errors are :class:`~dynocc.factory.io.decode.InputError` with ``stage='download'`` and
``attempts`` set (so :meth:`InputError.to_failure` writes the count), ``error_type`` one of:

``http_404``         the server answered 404 (message has the URL and status);
``download_failed``  any other HTTP status (``HTTP 500 Internal Server Error``), network errors,
                     store errors -- after the retries, when transient;
``ytdlp_error``      yt-dlp failed; its own error text (``ERROR: Unsupported URL: ...``) is kept
                     in the message;
``too_long``         longer than ``max_duration`` seconds (yt-dlp metadata before download;
                     otherwise the downloaded file's container duration);
``too_large``        bigger than ``max_bytes``;
``not_found``        the store has no such object;  ``empty_folder``: a remote frame folder
                     without images;  ``bad_cookies``: the cookies file cannot be read.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import re
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.client import HTTPException
from http.cookiejar import MozillaCookieJar
from typing import Any, BinaryIO, Callable, Iterator, Optional, TypeVar
from urllib.parse import unquote, urlparse

import tenacity

from dynocc.factory.config import SourceOptions
from dynocc.factory.io.decode import IMAGE_EXTENSIONS, InputError, natural_key, video_duration
from dynocc.factory.io.storage import is_local, open_url, options_for, url_fs

log = logging.getLogger(__name__)

__all__ = [
    "SourceOptions",
    "Fetched",
    "fetch",
    "read_bytes",
    "ytdlp_format",
    "ytdlp_params",
    "backoff_delay",
    "storage_options_for",
    "filesystem",
    "YTDL_PREFIX",
    "REMOTE_KINDS",
]

YTDL_PREFIX = "ytdl:"
"""Prefix that forces an URL through yt-dlp (``ytdl:https://host/clip.mp4``)."""

REMOTE_KINDS = frozenset({"http", "ytdlp", "fsspec", "fsspec-frames"})
"""Work-item kinds that :func:`fetch` downloads; ``video`` and ``frames`` are local."""



def storage_options_for(protocol: str, options: SourceOptions) -> dict:
    """The fsspec options of ``protocol`` from the source options, either convention
    (:func:`dynocc.factory.io.storage.options_for`)."""
    return options_for(f"{protocol}://", options.storage_options)


def backoff_delay(attempt: int, options: SourceOptions) -> float:
    """Seconds to sleep after failed try number ``attempt`` (1-based)."""
    return min(options.backoff_seconds * (2 ** (attempt - 1)), options.max_backoff_seconds)


# --------------------------------------------------------------------------- fetched item


@dataclass(frozen=True)
class Fetched:
    """A work item available on local disk; usable as a path (``os.fspath(fetched)``).

    ``kind`` is how to decode ``path``: ``'video'`` (a file) or ``'frames'`` (a folder).
    ``video_id`` is the item's id, or for yt-dlp items the extractor's id. ``attempts`` is the
    number of tries the download took (1 for local items). ``info`` holds a few facts
    (extractor, duration, height, bytes, files).
    """

    path: str
    video_id: str
    kind: str
    attempts: int = 1
    source: str = ""
    info: dict = field(default_factory=dict)

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path


# --------------------------------------------------------------------------- retries


class _Fail(Exception):
    """One failed try: ``retry`` tells whether another try may help."""

    def __init__(self, error_type: str, message: str, retry: bool):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.retry = retry


_sleep: Callable[[float], None] = time.sleep  # tests replace it
T = TypeVar("T")


def _retrying(op: Callable[[], T], options: SourceOptions, source: str, stage: str = "download") -> tuple[T, int]:
    """Run ``op`` until it succeeds, fails for good or the retries are spent: ``(result, tries)``.

    The loop is tenacity's: a :class:`_Fail` with ``retry`` set is tried again, at most ``1 + retries``
    times in all, sleeping :func:`backoff_delay` between tries; anything else ends it at once."""
    retryer = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, _Fail) and e.retry),
        stop=tenacity.stop_after_attempt(1 + options.retries),
        wait=lambda state: backoff_delay(state.attempt_number, options),
        sleep=lambda seconds: _sleep(seconds),  # looked up at call time: tests replace _sleep
        before_sleep=lambda state: log.info("%s: try %d failed (%s); retrying in %.2f s", source, state.attempt_number,
                                            state.outcome.exception(), state.next_action.sleep),
        reraise=True,
    )
    try:
        result = retryer(op)
    except _Fail as f:
        attempt = retryer.statistics.get("attempt_number", 1)
        tries = f" ({attempt} attempts)" if attempt > 1 else ""
        raise InputError(f.error_type, f"{f.message}{tries}", stage=stage, source=source, attempts=attempt) from None
    return result, retryer.statistics.get("attempt_number", 1)


# --------------------------------------------------------------------------- http


_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})


def _retryable_status(status: int) -> bool:
    return status in _RETRY_STATUS or status >= 500


def _load_cookie_jar(path: str, options: SourceOptions, source: str) -> MozillaCookieJar:
    jar = MozillaCookieJar()
    try:
        text = _read_small(path, options).decode("utf-8", errors="replace")
        if not text.lstrip().startswith(("# Netscape HTTP Cookie File", "# HTTP Cookie File")):
            text = "# Netscape HTTP Cookie File\n" + text
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, dir=options.temp_dir) as tmp:
            tmp.write(text)
        try:
            jar.load(tmp.name, ignore_discard=True, ignore_expires=True)
        finally:
            os.unlink(tmp.name)
        for cookie in jar:  # expiry 0 means a session cookie in cookies.txt (as yt-dlp reads it)
            if cookie.expires == 0:
                cookie.expires, cookie.discard = None, True
    except Exception as e:  # noqa: BLE001 - OSError, cookiejar.LoadError, store errors
        raise InputError("bad_cookies", f"cookies file {path}: {e}", stage="download", source=source) from e
    return jar


def _read_small(path: str, options: SourceOptions) -> bytes:
    """Bytes of a small local file or fsspec URL (cookies)."""
    if not is_local(path):
        with open_url(path, "rb", options.storage_options) as f:
            return f.read()
    if path.startswith("file://"):
        path = unquote(urlparse(path).path)
    with open(os.path.expanduser(path), "rb") as f:
        return f.read()


def _http_once(url: str, out: BinaryIO, options: SourceOptions, jar: Optional[MozillaCookieJar]) -> int:
    """One GET of ``url`` streamed into ``out`` (rewound first); returns the byte count."""
    out.seek(0)
    out.truncate()
    handlers: list = [urllib.request.HTTPCookieProcessor(jar)] if jar is not None else []
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"User-Agent": options.user_agent, "Accept": "*/*"})
    try:
        with opener.open(request, timeout=options.timeout_seconds) as resp:
            length = resp.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            if options.max_bytes is not None and expected is not None and expected > options.max_bytes:
                raise _Fail("too_large", f"{url}: {expected} bytes > max_bytes={options.max_bytes}", retry=False)
            n = 0
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                n += len(chunk)
                if options.max_bytes is not None and n > options.max_bytes:
                    raise _Fail("too_large", f"{url}: more than max_bytes={options.max_bytes} bytes", retry=False)
                out.write(chunk)
            if expected is not None and n < expected:
                raise _Fail("download_failed", f"{url}: truncated body ({n} of {expected} bytes)", retry=True)
            return n
    except urllib.error.HTTPError as e:
        status, reason = e.code, e.reason
        e.close()
        error_type = "http_404" if status == 404 else "download_failed"
        raise _Fail(error_type, f"{url}: HTTP {status} {reason}", retry=_retryable_status(status)) from None
    except urllib.error.URLError as e:
        raise _Fail("download_failed", f"{url}: {e.reason}", retry=True) from None
    except (TimeoutError, socket.timeout) as e:
        raise _Fail("download_failed", f"{url}: timed out after {options.timeout_seconds} s ({e})", retry=True) from None
    except (HTTPException, ConnectionError) as e:
        raise _Fail("download_failed", f"{url}: {type(e).__name__}: {e}", retry=True) from None
    except OSError as e:  # socket errors while reading; a full disk also lands here
        raise _Fail("download_failed", f"{url}: {type(e).__name__}: {e}", retry=True) from None


def _http_download(url: str, dest: str, options: SourceOptions, source: str, stage: str = "download") -> int:
    """Download ``url`` to the file ``dest`` with retries; returns the number of tries."""
    jar = _load_cookie_jar(options.cookies, options, source) if options.cookies else None
    with open(dest, "wb") as out:
        _, attempts = _retrying(lambda: _http_once(url, out, options, jar), options, source, stage)
    return attempts


# --------------------------------------------------------------------------- fsspec


def filesystem(url: str, options: "SourceOptions | dict | None" = None):
    """``(fs, path)`` of an fsspec URL with the options of its protocol (see
    :func:`storage_options_for`)."""
    return url_fs(url, SourceOptions.coerce(options).storage_options)


def _fs_fail(url: str, e: BaseException) -> _Fail:
    if isinstance(e, FileNotFoundError):
        return _Fail("not_found", f"{url}: no such object", retry=False)
    if isinstance(e, PermissionError):
        return _Fail("download_failed", f"{url}: access denied ({e})", retry=False)
    return _Fail("download_failed", f"{url}: {type(e).__name__}: {e}", retry=True)


def _fsspec_get_file(url: str, dest: str, options: SourceOptions) -> None:
    try:
        fs, path = filesystem(url, options)
        if options.max_bytes is not None:
            size = fs.size(path)
            if size is not None and size > options.max_bytes:
                raise _Fail("too_large", f"{url}: {size} bytes > max_bytes={options.max_bytes}", retry=False)
        fs.get_file(path, dest)
    except _Fail:
        raise
    except Exception as e:  # noqa: BLE001 - store errors of any library become failures
        raise _fs_fail(url, e) from None


def _fsspec_get_frames(url: str, dest_dir: str, options: SourceOptions) -> int:
    try:
        fs, path = filesystem(url, options)
        fs.invalidate_cache(path)
        names = [p for p in fs.ls(path, detail=False)
                 if posixpath.splitext(p)[1].lower() in IMAGE_EXTENSIONS
                 and not posixpath.basename(p).startswith(".")]
        if not names:
            raise _Fail("empty_folder", f"{url}: no images", retry=False)
        names.sort(key=lambda p: natural_key(posixpath.basename(p)))
        os.makedirs(dest_dir, exist_ok=True)
        fs.get(names, [os.path.join(dest_dir, posixpath.basename(p)) for p in names])
        return len(names)
    except _Fail:
        raise
    except Exception as e:  # noqa: BLE001
        raise _fs_fail(url, e) from None


def read_bytes(url: str, options: "SourceOptions | dict | None" = None, stage: str = "resolve") -> tuple[bytes, int]:
    """All bytes of a small remote file (an ``@list``): http(s) or fsspec URL, with retries.

    Returns ``(data, tries)``; raises :class:`InputError` (``http_404``, ``not_found``,
    ``download_failed``, ...) with ``stage``.
    """
    options = SourceOptions.coerce(options)
    if url.lower().startswith(("http://", "https://")):
        jar = _load_cookie_jar(options.cookies, options, url) if options.cookies else None
        buf = io.BytesIO()
        _, attempts = _retrying(lambda: _http_once(url, buf, options, jar), options, url, stage)
        return buf.getvalue(), attempts

    def cat() -> bytes:
        try:
            fs, path = filesystem(url, options)
            return fs.cat_file(path)
        except Exception as e:  # noqa: BLE001
            raise _fs_fail(url, e) from None

    return _retrying(cat, options, url, stage)


# --------------------------------------------------------------------------- yt-dlp


def ytdlp_format(max_height: Optional[int]) -> str:
    """yt-dlp format selector: the best video no taller than ``max_height`` (video only is
    enough: the miner never uses audio). ``<=?`` admits formats whose height is unknown."""
    if max_height is None:
        return "bestvideo/best"
    return f"bestvideo[height<=?{max_height}]/best[height<=?{max_height}]"


class _YtdlLogger:
    """Routes yt-dlp's messages to :mod:`logging` and keeps the errors."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        log.debug("yt-dlp warning: %s", msg)

    def error(self, msg: str) -> None:
        self.errors.append(_strip_ansi(msg))
        log.debug("yt-dlp error: %s", msg)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", str(text)).strip()


def ytdlp_params(options: SourceOptions, out_dir: str, cookiefile: Optional[str] = None) -> dict:
    """The ``yt_dlp.YoutubeDL`` parameters :func:`fetch` uses (downloads go into ``out_dir``).

    yt-dlp's own retries are off for whole requests (our loop retries with backoff and counts
    the tries); fragments of HLS/DASH are retried ``retries`` times inside yt-dlp.
    """
    return {
        "format": ytdlp_format(options.max_height),
        "paths": {"home": out_dir, "temp": out_dir},
        "outtmpl": {"default": "video.%(ext)s"},
        "cookiefile": cookiefile,
        "socket_timeout": options.timeout_seconds,
        "retries": 0,
        "extractor_retries": 0,
        "fragment_retries": options.retries,
        "file_access_retries": 0,
        "noplaylist": True,
        "playlist_items": "1",
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "cachedir": False,
        "overwrites": True,
        "updatetime": False,
    }


def _ytdlp_retryable(exc: BaseException) -> bool:
    """Whether another try of a failed yt-dlp call may help (network trouble) or not."""
    from yt_dlp.networking.exceptions import HTTPError as YHTTPError
    from yt_dlp.networking.exceptions import TransportError
    from yt_dlp.utils import ExtractorError, UnsupportedError

    chain: list[BaseException] = []
    todo: list[Optional[BaseException]] = [exc]
    while todo and len(chain) < 16:
        e = todo.pop()
        if e is None or any(e is c for c in chain):
            continue
        chain.append(e)
        exc_info = getattr(e, "exc_info", None)
        todo += [getattr(e, "cause", None), e.__cause__, exc_info[1] if exc_info else None]
    for e in chain:
        if isinstance(e, YHTTPError):
            return _retryable_status(e.status)
        if isinstance(e, TransportError):
            return True
        if isinstance(e, (socket.timeout, TimeoutError, ConnectionError)):
            return True
    for e in chain:
        if isinstance(e, UnsupportedError) or (isinstance(e, ExtractorError) and e.expected):
            return False
    text = str(exc).lower()
    if "requested format is not available" in text or "ffmpeg" in text or "unsupported url" in text:
        return False
    return True


def _ytdlp_once(url: str, out_dir: str, options: SourceOptions, cookiefile: Optional[str]) -> dict:
    import yt_dlp

    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    logger = _YtdlLogger()
    params = {k: v for k, v in ytdlp_params(options, out_dir, cookiefile).items() if v is not None}
    params["logger"] = logger
    try:
        with yt_dlp.YoutubeDL(params) as ydl:
            info = ydl.extract_info(url, download=False)
            entry = _first_entry(info)
            if entry is None:
                raise _Fail("ytdlp_error", f"{url}: yt-dlp found no video", retry=False)
            duration = entry.get("duration")
            if options.max_duration is not None and duration is not None and duration > options.max_duration:
                raise _Fail("too_long", f"{url}: {duration:g} s > max_duration={options.max_duration:g} s "
                            f"(rejected before download)", retry=False)
            result = ydl.process_ie_result(entry, download=True)
    except _Fail:
        raise
    except Exception as e:  # noqa: BLE001 - yt-dlp's DownloadError and anything it lets through
        text = _strip_ansi(str(e)) or (logger.errors[-1] if logger.errors else type(e).__name__)
        raise _Fail("ytdlp_error", f"{url}: yt-dlp: {text}", retry=_ytdlp_retryable(e)) from None
    path = _downloaded_path(result, out_dir)
    if path is None:
        raise _Fail("ytdlp_error", f"{url}: yt-dlp reported no downloaded file "
                    f"({'; '.join(logger.errors) or 'no error text'})", retry=False)
    return {"path": path, "id": str(result.get("id") or entry.get("id") or ""),
            "extractor": result.get("extractor_key") or result.get("extractor"),
            "duration": result.get("duration"), "height": result.get("height"),
            "format_id": result.get("format_id")}


def _first_entry(info: Optional[dict]) -> Optional[dict]:
    while info is not None and info.get("_type") in ("playlist", "multi_video"):
        entries = [e for e in (info.get("entries") or []) if e]
        info = entries[0] if entries else None
    return info


def _downloaded_path(result: dict, out_dir: str) -> Optional[str]:
    for d in result.get("requested_downloads") or []:
        p = d.get("filepath") or d.get("_filename")
        if p and os.path.isfile(p):
            return p
    files = [os.path.join(out_dir, n) for n in os.listdir(out_dir)
             if not n.endswith((".part", ".ytdl", ".txt", ".json")) and os.path.isfile(os.path.join(out_dir, n))]
    return max(files, key=os.path.getsize) if files else None


# --------------------------------------------------------------------------- fetch


def _check_duration(path: str, source: str, attempts: int, options: SourceOptions) -> Optional[float]:
    duration = video_duration(path)
    if options.max_duration is not None and duration is not None and duration > options.max_duration:
        raise InputError("too_long", f"{source}: {duration:g} s > max_duration={options.max_duration:g} s",
                         stage="download", source=source, attempts=attempts)
    return duration


def _local_name(url_path: str, default: str) -> str:
    name = posixpath.basename(unquote(url_path).rstrip("/"))
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return name[-120:] or default


def _fetch_http(item, options: SourceOptions, tmp: str) -> Fetched:
    dest = os.path.join(tmp, _local_name(urlparse(item.input).path, "video"))
    attempts = _http_download(item.input, dest, options, item.input)
    duration = _check_duration(dest, item.input, attempts, options)
    return Fetched(dest, item.video_id, "video", attempts, item.input,
                   {"bytes": os.path.getsize(dest), "duration": duration})


def _fetch_fsspec(item, options: SourceOptions, tmp: str) -> Fetched:
    dest = os.path.join(tmp, _local_name(item.input.split("://", 1)[-1], "video"))
    _, attempts = _retrying(lambda: _fsspec_get_file(item.input, dest, options), options, item.input)
    duration = _check_duration(dest, item.input, attempts, options)
    return Fetched(dest, item.video_id, "video", attempts, item.input,
                   {"bytes": os.path.getsize(dest), "duration": duration})


def _fetch_fsspec_frames(item, options: SourceOptions, tmp: str) -> Fetched:
    dest = os.path.join(tmp, _local_name(item.input.split("://", 1)[-1], "frames"))

    def get() -> int:
        shutil.rmtree(dest, ignore_errors=True)
        return _fsspec_get_frames(item.input, dest, options)

    n, attempts = _retrying(get, options, item.input)
    return Fetched(dest, item.video_id, "frames", attempts, item.input, {"files": n})


def _fetch_ytdlp(item, options: SourceOptions, tmp: str) -> Fetched:
    url = item.input[len(YTDL_PREFIX):] if item.input.lower().startswith(YTDL_PREFIX) else item.input
    cookiefile = None
    if options.cookies:  # yt-dlp rewrites its cookie file on exit: give it a private copy
        cookiefile = os.path.join(tmp, "cookies.txt")
        try:
            data = _read_small(options.cookies, options)
        except Exception as e:  # noqa: BLE001 - local or store errors alike
            raise InputError("bad_cookies", f"cookies file {options.cookies}: {e}", stage="download",
                             source=item.input) from e
        with open(cookiefile, "wb") as f:
            f.write(data)
    out_dir = os.path.join(tmp, "media")
    got, attempts = _retrying(lambda: _ytdlp_once(url, out_dir, options, cookiefile), options, item.input)
    duration = got["duration"]
    if duration is None:
        duration = _check_duration(got["path"], item.input, attempts, options)
    info = {k: v for k, v in got.items() if k not in ("path", "id")}
    info.update(bytes=os.path.getsize(got["path"]), duration=duration)
    return Fetched(got["path"], got["id"] or item.video_id, "video", attempts, item.input, info)


_FETCHERS: dict[str, Callable[[Any, SourceOptions, str], Fetched]] = {
    "http": _fetch_http,
    "ytdlp": _fetch_ytdlp,
    "fsspec": _fetch_fsspec,
    "fsspec-frames": _fetch_fsspec_frames,
}


@dataclass(frozen=True)
class Prefetched:
    """A remote item the fetch stage downloaded, as bytes: it travels to the mining actor through
    Ray's object store (so no node needs another's disk), which stages it on its own local disk
    for the decoder and deletes it once mined (:func:`fetch` with ``prefetched``).

    ``files``: ``(relative name, bytes)``, one for a video, one per image for a frame folder."""

    kind: str  # 'video' or 'frames', as Fetched.kind
    video_id: str
    attempts: int
    source: str
    info: dict
    files: tuple[tuple[str, bytes], ...]

    @property
    def nbytes(self) -> int:
        return sum(len(b) for _, b in self.files)


def download(item, options: "SourceOptions | dict | None" = None) -> Prefetched:
    """Download a remote item into memory (via a temp dir, removed before returning).

    Raises :class:`~dynocc.factory.io.decode.InputError` as :func:`fetch` does."""
    with fetch(item, options) as got:
        if got.kind == "frames":
            names = sorted(os.listdir(got.path))
            files = tuple((n, open(os.path.join(got.path, n), "rb").read()) for n in names
                          if os.path.isfile(os.path.join(got.path, n)))
        else:
            with open(got.path, "rb") as f:
                files = ((os.path.basename(got.path), f.read()),)
        return Prefetched(got.kind, got.video_id, got.attempts, got.source, dict(got.info), files)


@contextmanager
def _staged(pre: Prefetched, options: SourceOptions) -> Iterator[Fetched]:
    if options.temp_dir:
        os.makedirs(options.temp_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="dynocc-staged-", dir=options.temp_dir)
    try:
        folder = os.path.join(tmp, "frames")
        os.makedirs(folder)
        for name, data in pre.files:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
        path = folder if pre.kind == "frames" else os.path.join(folder, pre.files[0][0])
        yield Fetched(path, pre.video_id, pre.kind, pre.attempts, pre.source, dict(pre.info))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def fetch(item, options: "SourceOptions | dict | None" = None,
          prefetched: Optional[Prefetched] = None) -> Iterator[Fetched]:
    """Make ``item`` (a :class:`~dynocc.factory.io.sources.WorkItem`) available on local disk.

    Local items (``video``, ``frames``) are yielded as they are. Remote ones are downloaded
    into a fresh temp dir (under ``options.temp_dir``), which is removed when the ``with``
    block ends, whatever happens in it. Download problems raise
    :class:`~dynocc.factory.io.decode.InputError` (``stage='download'``, ``attempts`` set) on
    entering the block; see the module docstring for the error types. ``prefetched``: the item
    as :func:`download` got it (the Ray engine's fetch stage), written to a temp dir instead.
    """
    options = SourceOptions.coerce(options)
    if item.kind in ("video", "frames"):
        yield Fetched(item.input, item.video_id, item.kind, 1, item.input, {})
        return
    if prefetched is not None:  # downloaded by the fetch stage: staged on this node's disk
        with _staged(prefetched, options) as staged:
            yield staged
        return
    fetcher = _FETCHERS.get(item.kind)
    if fetcher is None:
        raise ValueError(f"unknown work-item kind {item.kind!r} (known: video, frames, {', '.join(sorted(_FETCHERS))})")
    if options.temp_dir:
        os.makedirs(options.temp_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="dynocc-fetch-", dir=options.temp_dir)
    try:
        fetched = fetcher(item, options, tmp)
        yield fetched
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
