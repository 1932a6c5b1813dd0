"""The mining job on Ray Data: the same job as :func:`.job.run_mine_job`, as a streaming pipeline.

Pipeline (every arrow is a Ray Data stage; nothing but small stats rows reaches the driver)::

    inputs (@lists streamed by Ray Data's readers)                    ray_plan.entries_dataset
      -> resolve, in tasks (globs, YouTube-VOS roots, bucket listings)  ray_plan.resolved_dataset
      -> de-duplicate, unique ids, skip committed items (resume)        driver path up to
                                                                        plan_in_driver_max rows,
                                                                        else Ray Data joins
      -> fetch remote items, in tasks (fetch_concurrency downloads at once) _fetch_batch
      -> mine, in an actor pool (items_per_task items per task)         _MineActor -> job.mine_task
    driver: iter_rows() over one stats row per committed item -> progress bar and JobSummary
    driver: every planned item not committed -> a 'worker_lost' failure row; writer.finalize()

Each actor builds one item miner in ``__init__`` (the flow model is loaded once per actor) and
runs :func:`.job.mine_task` per task: rows stream into shards of ``shard_size`` MB, commit
records name the finished items (:mod:`dynocc.factory.io.writer`). The fetch stage runs ahead of
the actors, throttled by Ray Data's backpressure, and hands the downloaded bytes over through the
object store: a mining actor (a GPU actor too) never waits on the network; the mining node
stages the bytes on its disk and deletes them once mined.

Failures, from the mildest:

* a bad input, a failed download or any Python exception while mining: a failure row (the item
  miners never raise for a bad input); an exception while *writing* becomes ``stage='write'``
  failure rows. Ray never sees an exception, so one bad video never fails the dataset.
* a hard crash of the worker process (segfault in a codec, OOM kill, lost node): Ray restarts
  the actor and retries the task on it, ``max_retries`` times; the retry skips the items the
  task already committed (same task key). Each actor runs one task at a time
  (``max_tasks_in_flight_per_actor=1``). When the retries are spent, the task's block errors and
  is dropped (``DataContext.max_errored_blocks = -1``) and the rest goes on.
* afterwards the driver plans once more: every planned item that no commit record names is
  committed as a failure row with ``error_type 'worker_lost'`` (``attempts = max_retries + 1``),
  or, if the dataset as a whole failed, with the error in its message.

Actor restarts are bounded: Ray Data does not replace an actor that has died for good (measured
on Ray 2.60), so ``max_restarts`` is enough for every task to use all of its retries, and finite.

Console: Ray's INFO logs, progress bars and worker output are hidden (``ray_logs=True`` /
``dynocc mine --ray-logs`` shows them); its errors still reach stderr, one line each, prefixed
``ray:``. stdout carries only the job summary, as with the local engine.

A pool the cluster cannot hold raises :class:`.job.MineUsageError` before anything is written.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import pickle
import sys
import time
import warnings
from typing import Any, Callable, Iterator, Optional

from dynocc.factory.config import EngineConfig, MinerConfig, SourceOptions
from dynocc.factory.engine.items import ItemResult
from dynocc.factory.engine.job import (
    JobSummary,
    MineUsageError,
    account,
    chunks,
    engine_settings,
    mine_task,
    plan_keys,
    plan_rows,
    result_from_stats_row,
    StorageDownError,
    stop_if_storage_down,
    storage_errors_stop_the_job,
)
from dynocc.factory.engine.miners import item_miner_for, media_for
from dynocc.factory.engine.preflight import check_job
from dynocc.factory.engine.ray_console import quiet_ray, short_error
from dynocc.factory.engine import ray_plan
from dynocc.factory.io.decode import InputError
from dynocc.factory.io.remote import REMOTE_KINDS, download
from dynocc.factory.io.sources import WorkItem
from dynocc.factory.io.storage import is_local
from dynocc.factory.io.writer import ShardWriter, committed_items_among, forget_items
from dynocc.schemas import failure_row

__all__ = ["run_mine_job_ray", "default_actors", "DEFAULT_MAX_TASK_RETRIES"]

_ENGINE = EngineConfig()  # the engine settings' defaults (defined once, in factory/config.py)
DEFAULT_MAX_TASK_RETRIES = _ENGINE.max_retries  # a task whose worker crashes is tried 3 times in all

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the stages


def _rows_of(batch: dict) -> list[dict]:
    cols = list(batch)
    n = len(batch[cols[0]]) if cols else 0
    return [{c: (batch[c][i].item() if hasattr(batch[c][i], "item") and not isinstance(batch[c][i], (bytes, str))
                 else batch[c][i]) for c in cols} for i in range(n)]


def _fetch_row(row: dict, options: SourceOptions) -> None:
    """Download one remote item into ``row['prefetched']`` (a failed download becomes its failure)."""
    row["prefetched"] = b""
    if row["failure"] or row["kind"] not in REMOTE_KINDS:
        return
    item = WorkItem(row["input"], row["video_id"], row["kind"])
    try:
        row["prefetched"] = pickle.dumps(download(item, options), protocol=pickle.HIGHEST_PROTOCOL)
    except InputError as e:
        row["failure"] = json.dumps(e.to_failure(item.input, item.video_id), default=str)
    except Exception as e:  # noqa: BLE001 - an unexpected library error: recorded, the job goes on
        row["failure"] = json.dumps(failure_row(item.input, "download", type(e).__name__,
                                                f"{type(e).__name__}: {e}", video_id=item.video_id), default=str)


def _fetch_batch(batch: dict, source: dict, threads: int) -> dict:
    """Fetch stage: download a batch's remote items, ``threads`` at once (bytes into the rows);
    local items pass through.

    Threads, not more Ray tasks: a download is waiting on the network, and a batch is one mining
    task's items, so the task can start once the slowest of them has arrived (measured: one
    download after another made the http job 0.43x the local one, see benchmarks/bench_stream.py).
    """
    from concurrent.futures import ThreadPoolExecutor

    options = SourceOptions.coerce(source)
    rows = _rows_of(batch)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(rows)))) as pool:
        list(pool.map(lambda row: _fetch_row(row, options), rows))
    return {c: [r[c] for r in rows] for c in rows[0]} if rows else batch


class _MineActor:
    """One per pool slot: an item miner (flow model loaded once) and a shard writer; runs one
    mining task per call and yields one stats row per committed item."""

    def __init__(self, config: MinerConfig, writer: ShardWriter):
        import ray

        self.miner = item_miner_for(config)
        self.writer = writer
        self.node = ray.get_runtime_context().get_node_id()  # recorded in the commit records

    def __call__(self, batch: dict) -> Iterator[dict]:
        for row in mine_task(self.miner, self.writer, _rows_of(batch), node=self.node):
            yield {k: [v] for k, v in row.items()}


# --------------------------------------------------------------------------- Ray setup


def _init_ray(address: Optional[str], ray_logs: bool) -> bool:
    """Connect to ``address`` / ``RAY_ADDRESS``, or start a fresh local Ray; True if we started it.

    An already initialised Ray (a notebook, a test fixture, a Ray job's driver) is used as it is.
    """
    import ray

    if ray.is_initialized():
        return False
    level = logging.INFO if ray_logs else logging.WARNING
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=ray_logs, logging_level=level)
        return True
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, local cluster: no token needed
    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
             log_to_driver=ray_logs, logging_level=level)
    return True


def default_actors(cluster_cpus: float, cluster_gpus: float, cpus_per_actor: float = 1.0,
                   gpus_per_actor: float = 0.0) -> int:
    """Pool size when none is given: every CPU but one (left to the driver and Ray Data), capped
    by the GPUs when actors use GPUs; at least 1."""
    n = int(max(cluster_cpus - 1, 0) // cpus_per_actor) if cpus_per_actor > 0 else 1
    if gpus_per_actor > 0 and cluster_gpus > 0:
        n = min(n, int(cluster_gpus // gpus_per_actor))
    return max(1, n)


def _fmt(x: float) -> str:
    return f"{x:g}"


def _check_pool(actors: Optional[int], cpus_per_actor: float, gpus_per_actor: float) -> int:
    """The pool size to use; raises :class:`MineUsageError` if the cluster cannot hold it."""
    import ray

    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
    n = actors if actors is not None else default_actors(cpus, gpus, cpus_per_actor, gpus_per_actor)
    hint = "; lower --actors/--cpus-per-actor/--gpus-per-actor or use a larger cluster (--address)"
    if gpus_per_actor > 0 and gpus <= 0:
        raise MineUsageError(f"--gpus-per-actor {_fmt(gpus_per_actor)} asks for GPUs, but the Ray cluster has "
                             f"none (resources: {_fmt(cpus)} CPUs, 0 GPUs); use --gpus-per-actor 0")
    if n * cpus_per_actor > cpus + 1e-9:
        raise MineUsageError(f"an actor pool of {n} actors x {_fmt(cpus_per_actor)} CPUs needs "
                             f"{_fmt(n * cpus_per_actor)} CPUs, but the Ray cluster has {_fmt(cpus)}{hint}")
    if n * gpus_per_actor > gpus + 1e-9:
        raise MineUsageError(f"an actor pool of {n} actors x {_fmt(gpus_per_actor)} GPUs needs "
                             f"{_fmt(n * gpus_per_actor)} GPUs, but the Ray cluster has {_fmt(gpus)}{hint}")
    nodes = [nd.get("Resources", {}) for nd in ray.nodes() if nd.get("Alive")]
    if nodes:
        if cpus_per_actor > max(float(r.get("CPU", 0)) for r in nodes) + 1e-9:
            raise MineUsageError(f"one actor needs {_fmt(cpus_per_actor)} CPUs, but no Ray node has that many{hint}")
        if gpus_per_actor > max(float(r.get("GPU", 0)) for r in nodes) + 1e-9:
            raise MineUsageError(f"one actor needs {_fmt(gpus_per_actor)} GPUs, but no Ray node has that many{hint}")
    return n


def _warn_local_output_on_a_cluster(out: str) -> None:
    """Actors write the shards themselves: on several nodes a local path means several disks."""
    import ray

    if not is_local(out):
        return
    if sum(1 for nd in ray.nodes() if nd.get("Alive")) > 1:
        print(f"dynocc: warning: --out {out} is a local path, but the Ray cluster has several nodes and each "
              f"actor writes its shards on its own node; use an s3:// or gs:// URL or a shared file system",
              file=sys.stderr, flush=True)


@contextlib.contextmanager
def _errored_blocks_dropped() -> Iterator[None]:
    """``DataContext.max_errored_blocks = -1`` for the run: a block that keeps crashing its worker is
    dropped and the rest goes on (see the module doc); restored on exit."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    saved = ctx.max_errored_blocks
    saved_timeout = ctx.execution_no_progress_timeout_s
    ctx.max_errored_blocks = -1
    # A mining task reports only when it ends: a long video (or 32 short ones on a slow actor) can
    # take more than Ray 2.60's default 1800 s without output, which failed the whole dataset.
    ctx.execution_no_progress_timeout_s = -1
    try:
        yield
    finally:
        ctx.max_errored_blocks = saved
        ctx.execution_no_progress_timeout_s = saved_timeout




# --------------------------------------------------------------------------- the job


def _lost_rows(rows: list[dict], message: str, attempts: int) -> list[dict]:
    """Work rows whose items no commit names after the run: committed as 'worker_lost' failures."""
    return [{**r, "kind": "failed", "prefetched": b"", "failure": json.dumps(failure_row(
        r["input"], "mine", "worker_lost", message, video_id=r.get("video_id") or None, attempts=attempts),
        default=str)} for r in rows]


def _record_lost(batch: dict, writer: ShardWriter, message: str, attempts: int) -> dict:
    """Reconciliation task (large jobs): commit the lost items' failure rows."""
    rows = [list(mine_task(None, writer, _lost_rows(_rows_of(batch), message, attempts)))]
    flat = [r for group in rows for r in group]
    return {"item_key": [r["item_key"] for r in flat], "committed": [r["committed"] for r in flat]}


def _check_settings(settings: dict) -> None:
    """The messages a user sees for impossible engine settings (before pydantic's)."""
    actors = settings.get("actors")
    if actors is not None and actors < 1:
        raise MineUsageError(f"--actors must be at least 1, got {actors}")
    if "cpus_per_actor" in settings and not settings["cpus_per_actor"] > 0:
        raise MineUsageError(f"--cpus-per-actor must be above 0, got {_fmt(settings['cpus_per_actor'])}")
    if settings.get("gpus_per_actor", 0) < 0:
        raise MineUsageError(f"--gpus-per-actor must be 0 or more, got {_fmt(settings['gpus_per_actor'])}")
    if settings.get("max_retries", 0) < 0:
        raise MineUsageError(f"--max-retries must be 0 or more, got {settings['max_retries']}")


def run_mine_job_ray(
    inputs: list[str],
    out: str,
    config: MinerConfig,
    storage_options: Optional[dict] = None,
    progress: Optional[Callable[[ItemResult, JobSummary], None]] = None,
    on_start: Optional[Callable[[int, int], None]] = None,
    engine: Optional[EngineConfig] = None,
    max_restarts: Optional[int] = None,
    **settings,
) -> JobSummary:
    """Mine every input into ``out`` with the Ray Data pipeline above; committed items are skipped.

    ``engine`` / ``settings``: :class:`~dynocc.factory.config.EngineConfig` and field overrides
    (``actors``: pool size, default :func:`default_actors` of the cluster, capped by the items to
    mine; ``address``: a Ray cluster, default ``RAY_ADDRESS``, without either a fresh local Ray is
    started and shut down at the end, an already initialised Ray is used as is; ``max_retries``:
    retries of a task whose worker crashed; ...). ``progress(result, summary)`` once per committed
    item (``result.frame_rows`` empty: rows stay on the workers); ``on_start(items_to_mine, actors)``
    once planned. ``max_restarts``: restarts per actor (default: see the module doc).

    Raises :class:`.job.MineUsageError` (nothing written) for bad settings or a pool the cluster
    cannot hold.
    """
    _check_settings(settings)
    eng = engine_settings(engine, settings)
    if max_restarts is not None and max_restarts < -1:
        raise MineUsageError(f"max_restarts must be -1 (unlimited) or more, got {max_restarts}")
    check_job(inputs, out, storage_options)
    start = time.perf_counter()
    summary = JobSummary()
    writer = ShardWriter(out, shard_size_mb=eng.shard_size, storage_options=storage_options)
    started = _init_ray(eng.address, eng.ray_logs)
    try:
        with _errored_blocks_dropped(), quiet_ray(not eng.ray_logs), storage_errors_stop_the_job(out):
            _run(inputs, out, config, storage_options, eng, writer, summary, progress, on_start, max_restarts)
    finally:
        if started:
            import ray

            ray.shutdown()
    summary.seconds = time.perf_counter() - start
    if not eng.dry_run:
        with storage_errors_stop_the_job(out):
            writer.finalize(summary.as_dict())
    return summary


def _run(inputs, out, config, storage_options, eng: EngineConfig, writer: ShardWriter, summary: JobSummary,
         progress, on_start, max_restarts) -> None:
    pool = _check_pool(eng.actors, eng.cpus_per_actor, eng.gpus_per_actor)
    media = media_for(config)
    resolved = ray_plan.resolved_dataset(inputs, config.source, media).materialize()
    n = resolved.count()
    small = n <= eng.plan_in_driver_max
    if small:  # the driver de-duplicates and checks the commit records itself
        rows = ray_plan.finish_in_driver(resolved.take_all(), media)
        del resolved
        plan = plan_rows(rows, committed_items_among(out, storage_options, plan_keys(rows, eng.retry_failed)),
                         eng.retry_failed)
        summary.videos_skipped, summary.to_mine = plan.skipped, len(plan.rows)
        todo_rows = plan.rows
    else:  # Ray Data aggregations and joins: the plan never enters the driver
        deduped = ray_plan.dedup_dataset(resolved, n).materialize()
        del resolved
        if eng.retry_failed and not eng.dry_run:
            _forget_failed_on_ray(deduped, out, storage_options, n)
        todo = ray_plan.not_committed(deduped, out, storage_options, n).materialize()
        summary.to_mine = todo.count()
        summary.videos_skipped = deduped.count() - summary.to_mine
    if on_start:
        on_start(summary.to_mine, min(pool, summary.to_mine))
    if eng.dry_run or not summary.to_mine:
        return
    if small:
        forget_items(out, plan.forget, storage_options)
        _warn_local_output_on_a_cluster(out)
        pool = min(pool, len(todo_rows))
        remote = any(r["kind"] in REMOTE_KINDS and not r["failure"] for r in todo_rows)
        per_task = _task_size(len(todo_rows), pool, eng, remote)
        import ray

        todo = ray.data.from_items(todo_rows, override_num_blocks=math.ceil(len(todo_rows) / per_task))
    else:
        _warn_local_output_on_a_cluster(out)
        per_task, remote = eng.items_per_task, True
    if max_restarts is None:
        max_restarts = summary.to_mine * (eng.max_retries + 1)
    seen: Optional[set[str]] = set() if small else None
    reported = 0

    def report(result: ItemResult, frames: int) -> None:
        account(summary, result, frames_written=frames)
        if progress:
            progress(result, summary)

    ds = _pipeline(todo, writer, config, eng, pool, per_task, remote, max_restarts)
    dataset_error: Optional[BaseException] = None
    try:
        for row in ds.iter_rows():
            key = str(row["item_key"])
            if seen is not None:
                if key in seen:
                    continue
                seen.add(key)
            stop_if_storage_down(row)  # a task gave up on the storage: the job stops here
            reported += 1
            result, frames = result_from_stats_row(row)
            if not row["committed"]:  # the actor could not even write its failure row: the driver tries
                _commit_failures(writer, result)
            report(result, frames)
    except StorageDownError:
        raise
    except Exception as e:  # the dataset as a whole failed: the reconciliation below records the rest
        dataset_error = e
        print(f"ray: the mining dataset failed: {short_error(e)}", file=sys.stderr, flush=True)

    attempts = eng.max_retries + 1
    if dataset_error is not None:
        message = f"not mined: the Ray mining job failed ({short_error(dataset_error)})"
    else:
        message = (f"the Ray worker mining it died {attempts} time(s) (a crash, an out-of-memory kill or a "
                   f"lost node); see the Ray logs")
    if small:
        missing = [r for r in todo_rows if r["key"] not in seen]
        if not missing:
            return
        done = {s.item_key: s for s in committed_items_among(out, storage_options, {r["key"] for r in missing})}
        lost = []
        for r in missing:
            if r["key"] in done:  # committed by an attempt whose stats row never arrived
                report(*_committed_result(writer, done[r["key"]], r))
            else:
                lost.append(r)
        for rows in chunks(lost, 256):
            for row in mine_task(None, writer, _lost_rows(rows, message, attempts)):
                report(*result_from_stats_row(row))
        return
    # Large jobs: the items no commit names are found by the same anti-join, in Ray tasks -- when
    # some are missing. The mining pool goes first: its actors hold the CPUs the join needs (measured:
    # on 2 CPUs the join waited for them forever while the finished pipeline was still referenced).
    if reported >= summary.to_mine and dataset_error is None:
        return
    del ds
    gc.collect()
    lost_ds = ray_plan.not_committed(todo, out, storage_options, summary.to_mine)
    recorded = lost_ds.map_batches(_record_lost, batch_size=256,
                                   fn_kwargs={"writer": writer, "message": message, "attempts": attempts})
    lost = 0
    for row in recorded.iter_rows():
        lost += 1
        row_result = ItemResult(str(row["item_key"]), None, [], [failure_row(str(row["item_key"]), "mine",
                                                                             "worker_lost", message)])
        report(row_result, 0)
    summary.videos_ok += max(0, summary.to_mine - reported - lost)  # committed, stats row lost with its worker


def _task_size(n: int, pool: int, eng: EngineConfig, remote: bool) -> int:
    """Items per mining task for a job of ``n`` items planned in the driver: ``items_per_task``,
    fewer so that every actor gets at least two tasks, and for remote inputs at most
    ``fetch_concurrency``, so a task's downloads run in one round and the first actor starts after
    one download rather than several (large jobs keep ``items_per_task``: the start is amortised)."""
    per_task = min(eng.items_per_task, math.ceil(n / (2 * pool)))
    if remote:
        per_task = min(per_task, eng.fetch_concurrency)
    return max(1, per_task)


def _pipeline(todo, writer: ShardWriter, config, eng: EngineConfig, pool: int, per_task: int, remote: bool,
              max_restarts: int):
    from ray.data import ActorPoolStrategy

    ds = todo
    if remote:  # downloads run ahead of the actors, in their own small CPU tasks
        threads = min(per_task, eng.fetch_concurrency)  # at most fetch_concurrency downloads at once
        ds = ds.map_batches(_fetch_batch, batch_size=per_task, num_cpus=FETCH_CPUS,
                            concurrency=max(1, eng.fetch_concurrency // threads),
                            fn_kwargs={"source": config.source.model_dump(), "threads": threads})
    remote_args: dict[str, Any] = {"num_cpus": eng.cpus_per_actor, "max_restarts": max_restarts,
                                   "max_task_retries": eng.max_retries}
    if eng.gpus_per_actor > 0:
        remote_args["num_gpus"] = eng.gpus_per_actor
    with warnings.catch_warnings():
        # Ray 2.60 takes max_restarts/max_task_retries only through the deprecated
        # **ray_remote_args (named parameters for them do not exist yet; pyproject pins < 2.64).
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=Warning)
        return ds.map_batches(
            _MineActor,
            batch_size=per_task,
            compute=ActorPoolStrategy(size=pool, max_tasks_in_flight_per_actor=1),
            fn_constructor_kwargs={"config": config, "writer": writer},
            **remote_args,
        )


# A download is mostly waiting: fetch tasks reserve no CPU, and fetch_concurrency bounds how many run.
# (Measured: with 0.125 CPU each, 3 fetch tasks plus a pool of 2 one-CPU actors on 2 CPUs waited
# for each other forever: the fetch tasks held their share while their outputs waited for an actor.)
FETCH_CPUS = 0.0


def _forget_failed_on_ray(rows_ds, out: str, storage_options: Optional[dict], n: int) -> None:
    """``retry_failed`` for large jobs: the items of ``rows_ds`` committed with failures are found
    by a join against the commit records, and each record naming some of them is rewritten by one
    task (grouped by record, so no two tasks rewrite the same record)."""
    failed = ray_plan.failed_keys_dataset(out, storage_options)
    if failed is None:
        return
    keys = rows_ds.map_batches(_keys_to_recheck)
    hits = failed.join(keys, join_type="inner", num_partitions=ray_plan.partitions(n), on=("item_key",))
    done = hits.groupby("record", num_partitions=ray_plan.partitions(n)).map_groups(_forget_in_record, fn_kwargs={"out": out,
                                                                          "storage_options": storage_options})
    for _ in done.iter_rows():
        pass


def _keys_to_recheck(batch: dict) -> dict:
    """:func:`.job.plan_keys` of a batch of work rows (under retry_failed)."""
    return {"item_key": sorted(plan_keys(_rows_of(batch), retry_failed=True))}


def _forget_in_record(group: dict, out: str, storage_options: Optional[dict]) -> dict:
    from dynocc.factory.io.writer import record_stats

    rel = str(group["record"][0])
    keys = {str(k) for k in group["item_key"]}
    n = forget_items(out, [s for s in record_stats(out, rel, storage_options) if s.item_key in keys],
                     storage_options)
    return {"record": [rel], "forgotten": [n]}


def _committed_result(writer: ShardWriter, stats, row: dict) -> tuple[ItemResult, int]:
    """An item committed but whose stats row never arrived: counted from its commit record."""
    failures: list[dict] = []
    if stats.failures:
        from dynocc.schemas import read_table
        import pyarrow as pa

        for r in stats.ranges:
            if r["file"].startswith("failures/"):
                url = f"{writer.out_url.rstrip('/')}/{r['file']}"
                table: pa.Table = read_table(url, writer.storage_options or None, table="failures")
                failures += table.slice(r["start"], r["rows"]).to_pylist()
        if not failures:
            failures = [failure_row(row["input"], "mine", "unknown", "failed (details in the failures table)",
                                    video_id=row.get("video_id") or None)]
    extra = stats.extra or {}
    result = ItemResult(row["key"], row.get("video_id") or None, [], failures,
                        frames_decoded=int(extra.get("frames_decoded", 0)),
                        frames_mined=int(extra.get("frames_mined", 0)), pairs=stats.pairs, seconds=stats.seconds)
    return result, stats.frames


def _commit_failures(writer: ShardWriter, result: ItemResult) -> None:
    """Commit an item's failure rows from the driver; if the storage refuses, say so and go on
    (the item stays uncommitted, so the next run mines it again)."""
    try:
        writer.write_item(result.item_key, [], result.failures, result.seconds,
                          extra_stats={"frames_decoded": result.frames_decoded, "frames_mined": result.frames_mined,
                                       "video_id": result.video_id})
    except Exception as e:
        print(f"dynocc: could not commit the failure row of {result.item_key}: {type(e).__name__}: {e}",
              file=sys.stderr, flush=True)
