"""Processes as Linux's ``/proc`` shows them: who started whom, titles, memory.

For the tests and benchmarks that find Ray's mining workers (to kill one mid-job, or to read its
peak memory): Ray names a worker's process after what it runs, ``ray::MapWorker(MapBatches(
_MineActor))`` while idle and ``...(_MineActor)).submit`` while it mines, and the workers of a
driver or a ``ray start`` node are its descendants. Read-only; Linux only. Hand-written rather
than psutil (not a dependency of the project): a few lines of ``/proc`` parsing.
"""

from __future__ import annotations

import os

__all__ = ["parents", "title", "descendants", "memory_mb", "mining_workers", "MINING_ACTOR_TITLE"]

MINING_ACTOR_TITLE = "_MineActor)"
"""Part of the process title of a Ray worker that holds the mining actor, idle or busy."""


def parents() -> dict[int, int]:
    """pid -> parent pid of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    out[int(d)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    return out


def title(pid: int) -> str:
    """The process's command line (Ray workers set it to their title); '' if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents().items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def memory_mb(pid: int | str, *fields: str) -> dict[str, float]:
    """``VmHWM`` (peak RSS), ``VmRSS``, ... of process ``pid`` (or ``'self'``) in MB; a field is
    missing when the process is gone."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in fields:
                    out[key] = int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return out


def mining_workers(root_pid: int, busy: bool = False) -> list[int]:
    """Ray workers below ``root_pid`` (the driver that started Ray, or a ``ray start``) that hold
    the mining actor; ``busy``: only those mining right now (their title ends in ``.submit``)."""
    mark = MINING_ACTOR_TITLE + ").submit" if busy else MINING_ACTOR_TITLE
    return [pid for pid in descendants(root_pid) if mark in title(pid)]
