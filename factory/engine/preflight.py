"""Checks before a mining job writes anything: a user's mistake is one clear line and exit code 2.

Each check raises :class:`~.job.MineUsageError` naming the problem; nothing has been written when
it does. The engines call :func:`check_job` first (``dynocc mine`` prints the message and exits 2).
Only what can be decided cheaply and for sure is checked here; a bad *input* is not a mistake of
the job as a whole -- it becomes a failure row and the job goes on with the rest.
"""

from __future__ import annotations

import os
import tempfile
from typing import Optional

from dynocc.factory.io.sources import entry_suffix
from dynocc.factory.io.storage import URL_SCHEME, is_url, options_for, url_fs

__all__ = ["MineUsageError", "check_job"]


class MineUsageError(ValueError):
    """Settings the job cannot run with (a bad ``--out``, an actor pool larger than the cluster, ...);
    nothing was mined or written. ``dynocc mine`` prints the message and exits with code 2."""

_PARQUET = (".parquet", ".pq")
_PEEK = 64 * 1024  # bytes of a list file looked at


def _local_path(location: str) -> Optional[str]:
    if location.lower().startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(location).path)
    return None if is_url(location) else os.path.abspath(os.path.expanduser(location))


def check_output(out: str, storage_options: Optional[dict]) -> None:
    """``--out`` names a folder we can create and write in, with options its filesystem takes."""
    if not str(out).strip():
        raise MineUsageError("--out is empty")
    try:
        fs, path = url_fs(out, storage_options)
    except TypeError as e:  # options the filesystem's constructor does not take
        raise MineUsageError(f"--storage-options do not apply to {_protocol(out)}:// ({e}); for several "
                             f"stores give them per protocol, e.g. {{\"s3\": {{...}}}}") from None
    except (ValueError, ImportError) as e:
        raise MineUsageError(f"--out {out}: {e}") from None
    local = _local_path(out)
    if local is None:
        return
    if os.path.isfile(local):
        raise MineUsageError(f"--out {out} is a file; give a folder (new or an earlier output)")
    existing = local
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if os.path.isfile(existing):
        raise MineUsageError(f"--out {out}: {existing} is a file, so no folder can be made under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MineUsageError(f"--out {out}: no permission to write in {existing}")
    try:  # the bits may say yes where the file system says no (read-only mounts, /proc): try it
        os.rmdir(tempfile.mkdtemp(prefix=".dynocc-write-check-", dir=existing))
    except OSError as e:
        raise MineUsageError(f"--out {out}: cannot write in {existing} ({e.strerror or e})") from None


def _protocol(url: str) -> str:
    m = URL_SCHEME.match(str(url))
    return m.group(1).lower() if m else "file"


def check_options(inputs: list[str], out: str, storage_options: Optional[dict]) -> None:
    """Per-protocol ``--storage-options`` (``{"s3": {...}}``) that name none of the job's protocols
    are a mistake: they would silently apply to nothing."""
    so = dict(storage_options or {})
    if not so:
        return
    used = {_protocol(out)} | {_protocol(str(e).lstrip("@").strip()) for e in inputs}
    if not all(isinstance(v, dict) for v in so.values()):
        if used == {"file"} and not any(str(e).strip().startswith("@") for e in inputs):  # (a list may hold URLs)
            raise MineUsageError("--storage-options do not apply to file:// paths: every input and --out are local")
        return
    if options_for(out, so) == {} and not (set(so) & used):
        raise MineUsageError(f"--storage-options are for {', '.join(sorted(so))}, but the job uses "
                             f"{', '.join(sorted(used))}")


def check_lists(inputs: list[str]) -> None:
    """A local ``@list`` given on the command line that is empty or not a text/csv/parquet list."""
    for entry in (str(e).strip() for e in inputs):
        if not entry.startswith("@"):
            continue
        path = _local_path(entry[1:].strip())
        if path is None or not os.path.isfile(path):
            continue  # remote, or missing: the resolve step records it as a failure row
        with open(path, "rb") as f:
            head = f.read(_PEEK)
        if entry_suffix(path) in _PARQUET:
            if not head.startswith(b"PAR1"):
                raise MineUsageError(f"{entry}: not a Parquet file")
            continue
        if b"\0" in head:
            raise MineUsageError(f"{entry}: a binary file, not a list (one input a line, csv or parquet)")
        try:
            text = head.decode("utf-8-sig")
        except UnicodeDecodeError:
            if len(head) < _PEEK:
                raise MineUsageError(f"{entry}: not UTF-8 text, not a list") from None
            text = head[: _PEEK - 4].decode("utf-8-sig", "ignore")
        lines = [ln.strip() for ln in text.splitlines()]
        if not any(ln and not ln.startswith("#") for ln in lines):
            raise MineUsageError(f"{entry}: the list is empty")


def check_out_not_inside_inputs(inputs: list[str], out: str) -> None:
    """A local ``--out`` inside an input folder would be read back as input by a later run."""
    out_path = _local_path(out)
    if out_path is None:
        return
    out_real = os.path.realpath(out_path)
    for entry in (str(e).strip() for e in inputs):
        if entry.startswith("@"):
            continue
        path = _local_path(entry)
        if path is None or not os.path.isdir(path):
            continue
        folder = os.path.realpath(path)
        if out_real == folder or out_real.startswith(folder.rstrip(os.sep) + os.sep):
            raise MineUsageError(f"--out {out} is inside the input folder {entry}; put the output elsewhere")


def check_job(inputs: list[str], out: str, storage_options: Optional[dict]) -> None:
    """Every check above, cheapest first."""
    if not inputs:
        raise MineUsageError("no inputs")
    check_options(inputs, out, storage_options)
    check_output(out, storage_options)
    check_out_not_inside_inputs(inputs, out)
    check_lists(inputs)
