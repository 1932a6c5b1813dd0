"""A mining job: what both engines share, and the local (one-process) engine.

Both engines run the same steps, only placed differently::

    inputs --resolve--> work items --skip committed--> [fetch] --> mining tasks --> commit records
                                                                   (mine_task)

* :func:`mine_task` is one mining task: a list of work rows (items, or inputs that failed to
  resolve) in, items streamed into shards through a :class:`~.writer.TaskWriter` and committed,
  one stats row per committed item out. The local engine calls it in this process; the Ray engine
  (:mod:`.ray_engine`) in each actor of its pool. Item miners never raise for a bad input (they
  return failure rows), so a task only raises when the storage does.
* A work row is a dict: ``key`` (the item key a commit names: the input, or ``resolve:<input>`` for
  an input that did not resolve), ``input``, ``video_id``, ``kind`` and, for a failed input,
  ``failure`` (its failure row as JSON); the fetch stage adds ``prefetched`` (the downloaded bytes).
* :class:`JobSummary`, :func:`account` and the exit codes are the job's outcome for the CLI.

:func:`run_mine_job` is the local engine: it resolves in this process (:func:`plan_mine_job`)
and runs :func:`mine_task` over chunks of ``items_per_task`` items.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

from dynocc.factory.config import EngineConfig, MinerConfig, SourceOptions
from dynocc.factory.core.miner import MinedFrame
from dynocc.factory.engine.items import ItemResult
from dynocc.factory.engine.miners import item_miner_for, resolver_for
from dynocc.factory.engine.preflight import MineUsageError, check_job
from dynocc.factory.io.sources import WorkItem, resolve_inputs
from dynocc.factory.io.storage import is_transient
from dynocc.factory.io.writer import ItemStats, ShardWriter, committed_items_among, forget_items, task_key
from dynocc.schemas import SchemaError, failure_row

__all__ = [
    "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "EXIT_NOTHING", "EXIT_STORAGE", "MineUsageError", "StorageDownError",
    "JobSummary", "MinePlan", "plan_mine_job", "plan_keys", "plan_rows", "mine_task", "account", "run_mine_job",
    "resolve_key", "work_row", "failure_work_row", "engine_settings", "stats_row", "result_from_stats_row",
    "stop_if_storage_down", "storage_errors_stop_the_job", "WRITE_ATTEMPTS", "MAX_FAILURES_KEPT",
]

# Exit codes of `dynocc mine` (documented in the README).
EXIT_OK = 0
EXIT_PARTIAL = 1  # some inputs failed, the rest were mined
EXIT_USAGE = 2  # bad flags or config: nothing was run
EXIT_NOTHING = 3  # every input failed
EXIT_STORAGE = 4  # the output storage failed for good: the job stopped (rerun to resume)

MAX_FAILURES_KEPT = 1000  # failure rows the summary keeps for display (all are counted and committed)


@dataclass
class JobSummary:
    videos_ok: int = 0
    videos_failed: int = 0
    videos_skipped: int = 0  # already committed by an earlier run
    frames: int = 0  # frames written (frames with at least one pair)
    frames_mined: int = 0  # frames the miner looked at
    pairs: int = 0
    seconds: float = 0.0
    to_mine: Optional[int] = None  # items planned (dry run and progress); None while unknown
    failures: list[dict] = field(default_factory=list)  # the first MAX_FAILURES_KEPT

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


def engine_settings(engine: Optional[EngineConfig], settings: dict) -> EngineConfig:
    """``engine`` (default: the defaults) with ``settings`` (engine field names) laid over it, validated."""
    base = (engine or EngineConfig()).model_dump()
    try:
        return EngineConfig.model_validate({**base, **settings})
    except Exception as e:  # pydantic's ValidationError: one line per bad setting
        raise MineUsageError(_one_line(e)) from None


def _one_line(e: Exception) -> str:
    errors = getattr(e, "errors", None)
    if callable(errors):
        return "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in errors())
    return str(e)


# --------------------------------------------------------------------------- work rows


def resolve_key(failure: dict) -> str:
    """Item key under which a resolve failure is committed."""
    return f"resolve:{failure['input']}"


def work_row(item: WorkItem) -> dict:
    return {"key": item.input, "input": item.input, "video_id": item.video_id, "kind": item.kind, "failure": ""}


def failure_work_row(failure: dict) -> dict:
    """A work row for an input that did not resolve: committed as its failure row."""
    return {"key": resolve_key(failure), "input": failure["input"], "video_id": failure.get("video_id") or "",
            "kind": "failed", "failure": json.dumps(failure, default=str)}


def item_extra_stats(result: ItemResult) -> dict:
    return {"frames_decoded": result.frames_decoded, "frames_mined": result.frames_mined,
            "frames_skipped": result.frames_skipped, "video_id": result.video_id, "failed": not result.ok}


# --------------------------------------------------------------------------- one mining task


def _failed_input(row: dict) -> ItemResult:
    f = json.loads(row["failure"])
    rec = failure_row(f["input"], f["stage"], f["error_type"], f["message"], video_id=f.get("video_id") or None,
                      attempts=int(f.get("attempts") or 1))
    return ItemResult(row["input"], row.get("video_id") or None, [], [rec])


WRITE_ATTEMPTS = 4  # ours: tries of the items since a task's last commit when the storage fails
_BACKOFF_S = (1.0, 4.0, 15.0)  # ours: waits before the 2nd, 3rd and 4th try (a 503 SlowDown burst lasts seconds)


class StorageDownError(RuntimeError):
    """The output storage refused every write of a task ``WRITE_ATTEMPTS`` times: the job stops
    (``dynocc mine`` exits :data:`EXIT_STORAGE`); a rerun once it is back completes the job."""


def mine_task(miner, writer: ShardWriter, rows: list[dict],
              on_frame: Optional[Callable[[str, MinedFrame], None]] = None, node: str = "",
              sleep: Callable[[float], None] = time.sleep) -> Iterator[dict]:
    """Mine and commit the work rows of one task; yield one :func:`stats_row` per committed item.

    Items an earlier attempt of this very task committed (a retry after a crash) are skipped.
    Frame rows stream into the writer as the miner makes them (memory stays bounded, whatever the
    video's length).

    Storage faults: each request is retried by the storage client (botocore/s3fs for S3, with the
    job's ``storage_options``) and each small object (failures, commit record) by
    :class:`~dynocc.factory.io.storage.StorageRoot`. A streamed shard cannot be replayed, so when a
    write still fails, the items since the last commit are dropped and mined again, after a wait,
    up to :data:`WRITE_ATTEMPTS` times in all. Then the task gives up: its remaining items are
    reported uncommitted with ``storage_down`` (the engines stop the job). A row that does not fit
    the schema (a bug, not the storage) becomes a ``stage='write'`` failure row at once.
    """
    task = writer.task(task_key(r["key"] for r in rows))
    results: dict[str, ItemResult] = {}
    fails = 0

    def committed(stats: list[ItemStats]) -> Iterator[dict]:
        for s in stats:
            yield stats_row(results.pop(s.item_key), s.frames, committed=True)

    i = 0
    while i <= len(rows):
        try:
            if i == len(rows):
                yield from committed(task.close())
                return
            row = rows[i]
            if row["key"] in task.done:
                i += 1
                continue
            result = _mine_row(miner, task, row, on_frame, node)
            results[row["key"]] = result
            done = task.end_item(result.failures, result.seconds, {**item_extra_stats(result), "node": node})
        except SchemaError as e:  # a bug in the rows: no retry helps
            task.abort_item()
            yield from _write_failed(writer, rows, results, rows[i] if i < len(rows) else None, e)
            return
        except Exception as e:  # the storage failed (after the client's own retries)
            task.abort_item()
            fails += 1
            if fails >= WRITE_ATTEMPTS:
                yield from _storage_down(rows, task, e)
                return
            sleep(_BACKOFF_S[min(fails, len(_BACKOFF_S)) - 1])
            results.clear()
            i = 0  # again from the first item no commit names
            continue
        yield from committed(done)
        i += 1


def _mine_row(miner, task, row: dict, on_frame, node: str) -> ItemResult:
    item = WorkItem(row["input"], row["video_id"], row["kind"])
    task.begin_item(row["key"], item.video_id)
    if row.get("failure"):
        result = _failed_input(row)
    else:
        hook = (lambda mined, vid=item.video_id: on_frame(vid, mined)) if on_frame else None
        prefetched = row.get("prefetched")
        result = miner.mine(item, on_frame=hook, on_row=lambda r: task.add_rows([r]),
                            prefetched=pickle.loads(prefetched) if prefetched else None)
    result.item_key = row["key"]
    return result


def _storage_down(rows: list[dict], task, e: Exception) -> Iterator[dict]:
    """The task's items no commit names, reported uncommitted: the storage is down."""
    message = f"the output storage failed {WRITE_ATTEMPTS} times: {type(e).__name__}: {e}"
    for row in rows:
        if row["key"] not in task.done:
            result = ItemResult(row["key"], row.get("video_id") or None, [],
                                [failure_row(row["input"], "write", "storage_down", message,
                                             video_id=row.get("video_id") or None, attempts=WRITE_ATTEMPTS)])
            yield stats_row(result, 0, committed=False, storage_down=True)


def _write_failed(writer: ShardWriter, rows: list[dict], results: dict[str, ItemResult], current: Optional[dict],
                  e: Exception) -> Iterator[dict]:
    """The items of a task whose writes failed: each gets a ``write`` failure row, committed on its
    own if the storage lets us (else reported uncommitted: the next run mines it again)."""
    inputs = {r["key"]: r["input"] for r in rows}
    lost = list(results.values())
    if current is not None and current["key"] not in results:
        lost.append(ItemResult(current["key"], current.get("video_id") or None, [], []))
    for result in lost:
        row = failure_row(inputs[result.item_key], "write", type(e).__name__, f"{type(e).__name__}: {e}", video_id=result.video_id)
        result.failures = [row]
        result.pairs = 0
        try:
            writer.write_item(result.item_key, [], [row], result.seconds, extra_stats=item_extra_stats(result))
            yield stats_row(result, 0, committed=True)
        except Exception:
            yield stats_row(result, 0, committed=False)


_FAILURE_KEYS = ("input", "video_id", "stage", "error_type", "message", "attempts")


def stats_row(result: ItemResult, frames: int, committed: bool, storage_down: bool = False) -> dict:
    """What a task reports per item: counts and failure rows, never frames (they are in the shards)."""
    failures = [{k: f.get(k) for k in _FAILURE_KEYS} for f in result.failures]
    return {
        "storage_down": bool(storage_down),
        "item_key": result.item_key,
        "video_id": result.video_id or "",
        "frames": int(frames),
        "frames_mined": int(result.frames_mined),
        "frames_decoded": int(result.frames_decoded),
        "pairs": int(result.pairs),
        "failures": len(failures),
        "failures_json": json.dumps(failures, default=str),
        "seconds": float(result.seconds),
        "committed": bool(committed),
    }


@contextlib.contextmanager
def storage_errors_stop_the_job(out: str) -> Iterator[None]:
    """A storage error that outlived the retries, while planning or finishing: :class:`StorageDownError`."""
    try:
        yield
    except Exception as e:
        if not is_transient(e):
            raise
        raise StorageDownError(f"stopped: cannot reach the output storage ({type(e).__name__}: {e}); Rerun the same "
                               f"command once the storage answers: committed videos are kept, the rest is mined") from None


def stop_if_storage_down(row: dict) -> None:
    """Raise :class:`StorageDownError` for a stats row of a task that gave up on the storage."""
    if row.get("storage_down"):
        message = json.loads(row["failures_json"])[0]["message"] if row["failures"] else "the storage failed"
        raise StorageDownError(f"stopped: {message}; nothing more can be committed. Rerun the same command "
                               f"once the storage answers: committed videos are kept, the rest is mined")


def result_from_stats_row(row: dict) -> tuple[ItemResult, int]:
    failures = [
        failure_row(f["input"], f["stage"], f["error_type"], f["message"], video_id=f.get("video_id"),
                    attempts=f.get("attempts") or 1)
        for f in json.loads(row["failures_json"])
    ]
    result = ItemResult(str(row["item_key"]), str(row["video_id"]) or None, [], failures,
                        frames_decoded=int(row["frames_decoded"]), frames_mined=int(row["frames_mined"]),
                        pairs=int(row["pairs"]), seconds=float(row["seconds"]))
    return result, int(row["frames"])


def account(summary: JobSummary, result: ItemResult, frames_written: Optional[int] = None) -> None:
    """Add one mined (or failed) item to the summary."""
    summary.frames += len(result.frame_rows) if frames_written is None else frames_written
    summary.frames_mined += result.frames_mined
    summary.pairs += result.pairs
    if result.ok:
        summary.videos_ok += 1
    else:
        summary.videos_failed += 1
        room = MAX_FAILURES_KEPT - len(summary.failures)
        if room > 0:
            summary.failures.extend(result.failures[:room])


# --------------------------------------------------------------------------- the local engine


@dataclass
class MinePlan:
    """What a run has to do: the work rows still to mine, and what to forget first."""

    rows: list[dict]  # work rows not committed yet (or committed with failures, under retry_failed)
    skipped: int  # committed by an earlier run: not mined again
    forget: list[ItemStats]  # committed with failures, to un-commit before mining (retry_failed)


def plan_keys(rows: list[dict], retry_failed: bool) -> set[str]:
    """The commit keys :func:`plan_rows` looks up: the rows' own, and under ``retry_failed`` the
    ``resolve:<input>`` failures of inputs that resolve now (stale: forgotten)."""
    keys = {r["key"] for r in rows}
    if retry_failed:
        keys |= {resolve_key(r) for r in rows if not r["failure"]}
    return keys


def plan_rows(rows: list[dict], committed: Iterable[ItemStats], retry_failed: bool) -> MinePlan:
    """Split resolved work rows into those to mine and those done (one shared rule for both engines'
    driver-side plans). An item is done when a commit record names it; with ``retry_failed``, items
    committed *with failures* are to be forgotten and mined again, and so are the resolve failures
    of inputs that now resolve. ``committed``: at least the items of :func:`plan_keys`."""
    keys = {r["key"] for r in rows}
    committed = list(committed)
    done = {s.item_key: s for s in committed if s.item_key in keys}
    forget = [s for s in done.values() if s.failures] if retry_failed else []
    for s in forget:
        del done[s.item_key]
    if retry_failed:
        stale = {resolve_key(r) for r in rows if not r["failure"]}
        forget += [s for s in committed if s.item_key in stale]
    todo = [r for r in rows if r["key"] not in done]
    return MinePlan(todo, len(rows) - len(todo), forget)


def plan_mine_job(inputs: list[str], out: str, storage_options: Optional[dict] = None, retry_failed: bool = False,
                  source: Optional[SourceOptions] = None, resolve: Callable = resolve_inputs) -> MinePlan:
    """Resolve ``inputs`` in this process and compare with what ``out`` holds (reads only)."""
    items, resolve_failures = resolve(inputs, source)
    rows = [work_row(it) for it in items] + [failure_work_row(f) for f in resolve_failures]
    return plan_rows(rows, committed_items_among(out, storage_options, plan_keys(rows, retry_failed)), retry_failed)


def chunks(rows: list[dict], size: int) -> Iterator[list[dict]]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def run_mine_job(
    inputs: list[str],
    out: str,
    config: MinerConfig,
    storage_options: Optional[dict] = None,
    progress: Optional[Callable[[ItemResult, JobSummary], None]] = None,
    on_frame: Optional[Callable[[str, MinedFrame], None]] = None,
    on_start: Optional[Callable[[int, int], None]] = None,
    engine: Optional[EngineConfig] = None,
    **settings,
) -> JobSummary:
    """Mine every input into ``out`` in this process; items already committed there are skipped.

    ``engine`` / ``settings``: :class:`~dynocc.factory.config.EngineConfig` (``shard_size``,
    ``items_per_task``, ``retry_failed``, ``dry_run``; the Ray settings are not used here).
    ``progress(result, summary)`` once per committed item; ``on_frame(video_id, mined)`` per mined
    frame; ``on_start(items_to_mine, 1)`` once planned.
    """
    eng = engine_settings(engine, settings)
    check_job(inputs, out, storage_options)
    start = time.perf_counter()
    summary = JobSummary()
    writer = ShardWriter(out, shard_size_mb=eng.shard_size, storage_options=storage_options)
    with storage_errors_stop_the_job(out):
        plan = plan_mine_job(inputs, out, storage_options, eng.retry_failed, config.source, resolver_for(config))
    summary.videos_skipped = plan.skipped
    summary.to_mine = len(plan.rows)
    if on_start:
        on_start(len(plan.rows), 1)
    if eng.dry_run:
        summary.seconds = time.perf_counter() - start
        return summary
    with storage_errors_stop_the_job(out):
        forget_items(out, plan.forget, storage_options)
    worker = item_miner_for(config) if any(not r["failure"] for r in plan.rows) else None
    for rows in chunks(plan.rows, eng.items_per_task):
        for row in mine_task(worker, writer, rows, on_frame=on_frame):
            stop_if_storage_down(row)
            result, frames = result_from_stats_row(row)
            account(summary, result, frames_written=frames)
            if progress:
                progress(result, summary)
    summary.seconds = time.perf_counter() - start
    with storage_errors_stop_the_job(out):
        writer.finalize(summary.as_dict())
    return summary
