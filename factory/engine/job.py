"""A mining job: resolve inputs, decode, mine, write shards and failure rows.

This is the thin layer around the item miners (:mod:`.items`; picked by :mod:`.miners`), which never
raise for a bad input: they return frame rows and failure rows. :func:`run_mine_job` drives the items through a :class:`~.writer.ShardWriter` in this process (the
``local`` engine of ``dynocc mine``), skipping items that are already committed (so a rerun
resumes), and returns a :class:`JobSummary`. :func:`.ray_engine.run_mine_job_ray` is the same job
on Ray Data; both share :func:`plan_mine_job` (what to mine), :func:`forget_items`
(``--retry-failed``) and the summary accounting here, so they write the same rows and report the
same summary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from dynocc.factory.io.storage import url_fs

from dynocc.factory.config import MinerConfig, SourceOptions
from dynocc.factory.core.miner import MinedFrame
from dynocc.factory.engine.items import ItemResult
from dynocc.factory.engine.miners import item_miner_for, resolver_for
from dynocc.factory.io.sources import WorkItem, resolve_inputs
from dynocc.factory.io.writer import ItemStats, ShardWriter, committed_items
from dynocc.schemas import failure_row

# Exit codes of `dynocc mine` (documented in the README).
EXIT_OK = 0
EXIT_PARTIAL = 1  # some inputs failed, the rest were mined
EXIT_USAGE = 2  # bad flags or config: nothing was run
EXIT_NOTHING = 3  # every input failed


class MineUsageError(ValueError):
    """Settings the job cannot run with (e.g. an actor pool larger than the cluster); nothing was
    mined or written. ``dynocc mine`` prints the message and exits with :data:`EXIT_USAGE`."""


@dataclass
class JobSummary:
    videos_ok: int = 0
    videos_failed: int = 0
    videos_skipped: int = 0  # already committed by an earlier run
    frames: int = 0  # frames written (frames with at least one pair)
    frames_mined: int = 0  # frames the miner looked at
    pairs: int = 0
    seconds: float = 0.0
    failures: list[dict] = field(default_factory=list)

    @property
    def pairs_per_frame(self) -> float:
        return self.pairs / self.frames if self.frames else 0.0

    @property
    def exit_code(self) -> int:
        if self.videos_failed and not (self.videos_ok or self.videos_skipped):
            return EXIT_NOTHING
        return EXIT_PARTIAL if self.videos_failed else EXIT_OK

    def as_dict(self) -> dict:
        return {
            "videos_ok": self.videos_ok,
            "videos_failed": self.videos_failed,
            "videos_skipped": self.videos_skipped,
            "frames": self.frames,
            "frames_mined": self.frames_mined,
            "pairs": self.pairs,
            "pairs_per_frame": round(self.pairs_per_frame, 2),
            "seconds": round(self.seconds, 2),
        }


def resolve_key(failure: dict) -> str:
    """Item key under which a resolve failure is committed."""
    return f"resolve:{failure['input']}"


@dataclass
class MinePlan:
    """What a run has to do: every resolved item, the ones still to mine, and what to forget first."""

    items: list[WorkItem]
    resolve_failures: list[dict]
    todo: list[WorkItem]  # not committed yet (or committed with failures, under retry_failed)
    skipped: int  # committed by an earlier run: not mined again
    forget: list[ItemStats]  # committed with failures, to un-commit before mining (retry_failed)


def plan_mine_job(inputs: list[str], out: str, storage_options: Optional[dict] = None,
                  retry_failed: bool = False, source: Optional[SourceOptions] = None,
                  resolve: Callable = resolve_inputs) -> MinePlan:
    """Resolve ``inputs`` and compare with what ``out`` already holds (read only, writes nothing).

    An item is done when its commit marker exists. With ``retry_failed``, work items committed
    *with failures* are to be mined again (resolve failures are re-checked on every run anyway).
    """
    items, resolve_failures = resolve(inputs, source)
    committed = {s.item_key: s for s in committed_items(out, storage_options)}
    forget: list[ItemStats] = []
    if retry_failed:
        forget = [committed[it.input] for it in items if it.input in committed and committed[it.input].failures]
        for stats in forget:
            del committed[stats.item_key]
    todo = [it for it in items if it.input not in committed]
    return MinePlan(items, resolve_failures, todo, len(items) - len(todo), forget)


def _join(root: str, rel: str) -> str:
    return f"{root.rstrip('/')}/{rel}" if root.rstrip("/") else f"/{rel}"


def forget_items(out: str, stats: list[ItemStats], storage_options: Optional[dict] = None) -> int:
    """Un-commit items so that the next run mines them again; returns how many were forgotten.

    For each item: its commit marker (``ShardWriter.stats_path``, ``stats/<hash>.json``) is deleted
    first -- from then on readers ignore the item's files -- and then the data files the marker
    listed (its failure part and any frame parts). A crash in between leaves only unlisted files,
    which readers ignore and the item's next write replaces.
    """
    if not stats:
        return 0
    writer = ShardWriter(out, storage_options=storage_options)
    fs, root = url_fs(writer.out_url, storage_options)
    for s in stats:
        marker = _join(root, writer.stats_path(s.item_key))
        if fs.exists(marker):
            fs.rm(marker)
        for rel in s.files:
            path = _join(root, rel)
            if fs.exists(path):
                fs.rm(path)
    fs.invalidate_cache()
    return len(stats)


def account(summary: JobSummary, result: ItemResult, frames_written: Optional[int] = None) -> None:
    """Add one mined (or failed) item to the summary."""
    summary.frames += len(result.frame_rows) if frames_written is None else frames_written
    summary.frames_mined += result.frames_mined
    summary.pairs += result.pairs
    if result.ok:
        summary.videos_ok += 1
    else:
        summary.videos_failed += 1
        summary.failures.extend(result.failures)


def write_resolve_failures(writer: ShardWriter, failures: list[dict], summary: JobSummary,
                           progress: Optional[Callable[[ItemResult, JobSummary], None]] = None) -> None:
    """Commit one failure row per input that did not resolve (every run: it is cheap and current)."""
    for f in failures:
        row = failure_row(f["input"], f["stage"], f["error_type"], f["message"], video_id=f.get("video_id"))
        writer.write_item(resolve_key(f), [], [row], 0.0)
        summary.videos_failed += 1
        summary.failures.append(row)
        if progress:
            progress(ItemResult(f["input"], f.get("video_id"), [], [row]), summary)


def item_extra_stats(result: ItemResult) -> dict:
    return {"frames_decoded": result.frames_decoded, "frames_mined": result.frames_mined,
            "video_id": result.video_id}


def run_mine_job(
    inputs: list[str],
    out: str,
    config: MinerConfig,
    rows_per_shard: int = 512,
    storage_options: Optional[dict] = None,
    progress: Optional[Callable[[ItemResult, JobSummary], None]] = None,
    on_frame: Optional[Callable[[str, MinedFrame], None]] = None,
    retry_failed: bool = False,
) -> JobSummary:
    """Mine every input into ``out`` in this process; items already committed there are skipped.

    ``retry_failed``: items committed with failures are un-committed (:func:`forget_items`) and
    mined again.
    """
    start = time.perf_counter()
    summary = JobSummary()
    writer = ShardWriter(out, rows_per_shard=rows_per_shard, storage_options=storage_options)
    plan = plan_mine_job(inputs, out, storage_options, retry_failed, config.source, resolver_for(config))
    forget_items(out, plan.forget, storage_options)
    write_resolve_failures(writer, plan.resolve_failures, summary, progress)
    summary.videos_skipped = plan.skipped
    worker = item_miner_for(config)
    for item in plan.todo:
        hook = (lambda mined, vid=item.video_id: on_frame(vid, mined)) if on_frame else None
        result = worker.mine(item, on_frame=hook)
        writer.write_item(item.input, result.frame_rows, result.failures, result.seconds,
                          extra_stats=item_extra_stats(result))
        account(summary, result)
        if progress:
            progress(result, summary)
    summary.seconds = time.perf_counter() - start
    writer.finalize(summary.as_dict())
    return summary
