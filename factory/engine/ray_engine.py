"""The mining job on Ray Data: the same job as :func:`.job.run_mine_job`, spread over an actor pool.

Pipeline::

    driver: resolve inputs -> plan (skip committed items: resume) -> check the pool fits the cluster
    ray.data.from_items(one row per work item: input, video_id, kind; one block per item)
      .map_batches(_MineActor, batch_size=1, compute=ActorPoolStrategy(size=actors),
                   num_cpus=cpus_per_actor, num_gpus=gpus_per_actor,
                   max_restarts=..., max_task_retries=...)
    driver: iter_rows() over small stats rows -> progress bar and JobSummary -> writer.finalize()

Each actor builds one item miner (:func:`.miners.item_miner_for`: the DynOcc miner or the stereo one) in ``__init__`` (the flow model is loaded once
per actor, not per video) and one :class:`~.writer.ShardWriter`; for every item it calls
:func:`.video_items.mine_item` and writes (and commits) the item's shards itself. Frames and pairs never go
through the driver: it only receives one stats row per item (item key, video id, frame and pair
counts, failures, seconds), so a cluster mines into ``s3://`` without the driver holding data.

Failures, from the mildest:

* a bad input or any Python exception while mining: :func:`.video_items.mine_item` turns it into a failure
  row (as in the local engine); an exception while *writing* is caught per item in the actor and
  becomes a ``stage='write'`` failure row. Ray never sees an exception, so one bad video never
  fails the dataset.
* a hard crash of the worker process (segfault in a codec, OOM kill, ``os._exit``, lost node):
  Ray restarts the actor and retries the item on it, ``max_task_retries`` times. Each actor runs
  one item at a time (``max_tasks_in_flight_per_actor=1``) so a crash costs no other item a retry.
  When the retries are spent, the item's block errors; the dataset is run with
  ``DataContext.max_errored_blocks = -1`` so Ray Data drops that block and goes on with the rest.
  The driver then knows the item only by its *absence*: every item that sent no stats row and
  has no commit marker is committed by the driver as a failure row with ``error_type
  'worker_lost'`` (``attempts = max_task_retries + 1``).
* the whole dataset fails (e.g. the actors cannot even start): the same fallback records every
  item without a commit marker as ``worker_lost``, with the error in its message; items the
  actors committed before the failure are counted from their commit markers.

Actor restarts are bounded too. Measured on Ray 2.60: Ray Data does not replace an actor that has
died for good (a pool of one actor with ``max_restarts=1`` and two crashing items hangs forever),
so ``max_restarts`` defaults to ``len(items) * (max_task_retries + 1)`` -- enough for every item
of this job to use all of its retries, so item crashes alone can never empty the pool, and still
finite. An explicit smaller value is honoured (at that risk).

Console: Ray's INFO logs, progress bars and worker output are hidden (``ray_logs=True`` /
``dynocc mine --ray-logs`` shows them); its errors still reach stderr, one line each, prefixed
``ray:``. stdout carries only the job summary, as with the local engine.

A pool the cluster cannot hold (``actors * cpus_per_actor`` above the cluster's CPUs, an actor
larger than every node, or GPUs asked for where there are none) raises
:class:`.job.MineUsageError` before anything is written, instead of waiting forever for resources.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import warnings
from typing import Any, Callable, Iterator, Optional

from dynocc.schemas import failure_row, read_table
from dynocc.factory.config import EngineConfig, MinerConfig
from dynocc.factory.engine.items import ItemResult
from dynocc.factory.engine.ray_console import quiet_ray, short_error
from dynocc.factory.engine.job import (
    JobSummary,
    MineUsageError,
    account,
    forget_items,
    item_extra_stats,
    plan_mine_job,
    write_resolve_failures,
)
from dynocc.factory.engine.miners import item_miner_for, resolver_for
from dynocc.factory.io.sources import WorkItem
from dynocc.factory.io.storage import is_local
from dynocc.factory.io.writer import ItemStats, ShardWriter, committed_items

__all__ = ["run_mine_job_ray", "default_actors", "CRASH_ENV", "DEFAULT_MAX_TASK_RETRIES"]

# Test hook: an actor whose item has this video id exits the process at once (a real worker crash).
CRASH_ENV = "DYNOCC_TEST_CRASH_ON"
_ENGINE = EngineConfig()  # the engine settings' defaults (defined once, in factory/config.py)
DEFAULT_MAX_TASK_RETRIES = _ENGINE.max_retries  # an item whose worker crashes is tried 3 times in all

_FAILURE_KEYS = ("input", "video_id", "stage", "error_type", "message", "attempts")

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the actor


class _MineActor:
    """One per pool slot: a miner (flow model loaded once) and a shard writer; mines and commits
    one item per call and returns only its stats."""

    def __init__(self, config: MinerConfig, out: str, rows_per_shard: int, storage_options: dict,
                 crash_on: Optional[str] = None):
        self.worker = item_miner_for(config)
        self.writer = ShardWriter(out, rows_per_shard=rows_per_shard, storage_options=storage_options)
        self.crash_on = crash_on or os.environ.get(CRASH_ENV) or None

    def __call__(self, batch: dict) -> dict:
        rows = [self.mine_one(WorkItem(str(i), str(v), str(k)))
                for i, v, k in zip(batch["input"], batch["video_id"], batch["kind"])]
        return {key: [r[key] for r in rows] for key in _STATS_COLUMNS}

    def mine_one(self, item: WorkItem) -> dict:
        if self.crash_on is not None and item.video_id == self.crash_on:
            os._exit(1)  # test hook: a hard crash, not an exception
        result = self.worker.mine(item)
        frames = len(result.frame_rows)
        committed = True
        try:
            self.writer.write_item(item.input, result.frame_rows, result.failures, result.seconds,
                                   extra_stats=item_extra_stats(result))
        except Exception as e:  # storage or schema error: record it as the item's failure
            row = failure_row(item.input, "write", type(e).__name__, f"{type(e).__name__}: {e}",
                              video_id=item.video_id)
            result.failures.append(row)
            frames, result.pairs = 0, 0
            try:
                self.writer.write_item(item.input, [], [row], result.seconds, extra_stats=item_extra_stats(result))
            except Exception:
                committed = False  # the driver will report it (the storage is unreachable)
        return _stats_row(result, frames, committed)


_STATS_COLUMNS = ("item_key", "video_id", "frames", "frames_mined", "frames_decoded", "pairs", "failures",
                  "failures_json", "seconds", "committed")


def _stats_row(result: ItemResult, frames: int, committed: bool) -> dict:
    failures = [{k: f.get(k) for k in _FAILURE_KEYS} for f in result.failures]
    return {
        "item_key": result.item_key,
        "video_id": result.video_id or "",
        "frames": int(frames),
        "frames_mined": int(result.frames_mined),
        "frames_decoded": int(result.frames_decoded),
        "pairs": int(result.pairs),
        "failures": len(failures),
        "failures_json": json.dumps(failures),
        "seconds": float(result.seconds),
        "committed": bool(committed),
    }


def _result_from_row(row: dict) -> tuple[ItemResult, int]:
    failures = [
        failure_row(f["input"], f["stage"], f["error_type"], f["message"], video_id=f.get("video_id"),
                    attempts=f.get("attempts") or 1)
        for f in json.loads(row["failures_json"])
    ]
    result = ItemResult(str(row["item_key"]), str(row["video_id"]) or None, [], failures,
                        frames_decoded=int(row["frames_decoded"]), frames_mined=int(row["frames_mined"]),
                        pairs=int(row["pairs"]), seconds=float(row["seconds"]))
    return result, int(row["frames"])


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
    ctx.max_errored_blocks = -1
    try:
        yield
    finally:
        ctx.max_errored_blocks = saved


# --------------------------------------------------------------------------- the job


def _committed_result(writer: ShardWriter, stats: ItemStats, item: WorkItem) -> tuple[ItemResult, int]:
    """An item the actors committed but whose stats row never arrived: counted from its marker."""
    failures: list[dict] = []
    if stats.failures:
        for rel in stats.files:
            if rel.startswith("failures/"):
                url = f"{writer.out_url.rstrip('/')}/{rel}"
                failures += read_table(url, writer.storage_options or None, table="failures").to_pylist()
        if not failures:
            failures = [failure_row(item.input, "mine", "unknown", "failed (details in the failures table)",
                                    video_id=item.video_id)]
    extra = stats.extra or {}
    result = ItemResult(item.input, item.video_id, [], failures, frames_decoded=int(extra.get("frames_decoded", 0)),
                        frames_mined=int(extra.get("frames_mined", 0)), pairs=stats.pairs, seconds=stats.seconds)
    return result, stats.frames


def run_mine_job_ray(
    inputs: list[str],
    out: str,
    config: MinerConfig,
    rows_per_shard: int = _ENGINE.rows_per_shard,
    storage_options: Optional[dict] = None,
    actors: Optional[int] = _ENGINE.actors,
    cpus_per_actor: float = _ENGINE.cpus_per_actor,
    gpus_per_actor: float = _ENGINE.gpus_per_actor,
    address: Optional[str] = _ENGINE.address,
    progress: Optional[Callable[[ItemResult, JobSummary], None]] = None,
    on_start: Optional[Callable[[int, int], None]] = None,
    retry_failed: bool = _ENGINE.retry_failed,
    max_task_retries: int = DEFAULT_MAX_TASK_RETRIES,
    max_restarts: Optional[int] = None,
    ray_logs: bool = _ENGINE.ray_logs,
) -> JobSummary:
    """Mine every input into ``out`` with a Ray Data actor pool; committed items are skipped.

    ``actors``: pool size (default :func:`default_actors` of the cluster, capped by the number of
    items to mine). ``address``: a Ray cluster (default ``RAY_ADDRESS``; without either a fresh
    local Ray is started and shut down at the end; an already initialised Ray is used as is).
    ``progress(result, summary)`` is called once per item as in :func:`.job.run_mine_job`, with
    ``result.frame_rows`` empty (rows stay on the workers) and the counts filled in;
    ``on_start(items_to_mine, actors)`` once the pool is sized. ``max_task_retries``: retries of
    an item whose worker crashed; ``max_restarts``: restarts per actor (default: see the module
    doc). ``ray_logs``: show Ray's own logs and progress bars.

    Raises :class:`.job.MineUsageError` (nothing written) for bad settings or a pool the cluster
    cannot hold.
    """
    if actors is not None and actors < 1:
        raise MineUsageError(f"--actors must be at least 1, got {actors}")
    if not cpus_per_actor > 0:
        raise MineUsageError(f"--cpus-per-actor must be above 0, got {_fmt(cpus_per_actor)}")
    if gpus_per_actor < 0:
        raise MineUsageError(f"--gpus-per-actor must be 0 or more, got {_fmt(gpus_per_actor)}")
    if max_task_retries < 0:
        raise MineUsageError(f"--max-retries must be 0 or more, got {max_task_retries}")
    if max_restarts is not None and max_restarts < -1:
        raise MineUsageError(f"max_restarts must be -1 (unlimited) or more, got {max_restarts}")

    start = time.perf_counter()
    summary = JobSummary()
    writer = ShardWriter(out, rows_per_shard=rows_per_shard, storage_options=storage_options)
    plan = plan_mine_job(inputs, out, storage_options, retry_failed, config.source, resolver_for(config))
    summary.videos_skipped = plan.skipped
    todo = plan.todo
    started = False
    try:
        pool = 0
        if todo:  # nothing to mine (a finished job rerun): no Ray needed
            started = _init_ray(address, ray_logs)
            pool = min(_check_pool(actors, cpus_per_actor, gpus_per_actor), len(todo))
            _warn_local_output_on_a_cluster(out)
        # Past every check: from here on the output folder is written.
        forget_items(out, plan.forget, storage_options)
        write_resolve_failures(writer, plan.resolve_failures, summary, progress)
        if on_start:
            on_start(len(todo), pool)
        if todo:
            _mine_on_ray(todo, writer, config, summary, progress, pool, cpus_per_actor, gpus_per_actor,
                         max_task_retries, max_restarts, ray_logs)
    finally:
        if started:
            import ray

            ray.shutdown()
    summary.seconds = time.perf_counter() - start
    writer.finalize(summary.as_dict())
    return summary


def _map(ds, writer: ShardWriter, config: MinerConfig, pool: int, remote_args: dict):
    from ray.data import ActorPoolStrategy

    return ds.map_batches(
        _MineActor,
        batch_size=1,
        compute=ActorPoolStrategy(size=pool, max_tasks_in_flight_per_actor=1),
        fn_constructor_kwargs={
            "config": config,
            "out": writer.out_url,
            "rows_per_shard": writer.rows_per_shard,
            "storage_options": writer.storage_options,
            "crash_on": os.environ.get(CRASH_ENV) or None,
        },
        **remote_args,
    )


def _mine_on_ray(todo: list[WorkItem], writer: ShardWriter, config: MinerConfig, summary: JobSummary,
                 progress: Optional[Callable[[ItemResult, JobSummary], None]], pool: int, cpus_per_actor: float,
                 gpus_per_actor: float, max_task_retries: int, max_restarts: Optional[int], ray_logs: bool) -> None:
    import ray

    if max_restarts is None:
        max_restarts = len(todo) * (max_task_retries + 1)
    by_key = {it.input: it for it in todo}
    seen: set[str] = set()

    def report(result: ItemResult, frames: int) -> None:
        account(summary, result, frames_written=frames)
        if progress:
            progress(result, summary)

    remote_args: dict[str, Any] = {"num_cpus": cpus_per_actor, "max_restarts": max_restarts,
                                   "max_task_retries": max_task_retries}
    if gpus_per_actor > 0:
        remote_args["num_gpus"] = gpus_per_actor
    dataset_error: Optional[BaseException] = None
    with _errored_blocks_dropped(), quiet_ray(not ray_logs):
        ds = ray.data.from_items([{"input": it.input, "video_id": it.video_id, "kind": it.kind} for it in todo],
                                 override_num_blocks=len(todo))
        with warnings.catch_warnings():
            # Ray 2.60 takes max_restarts/max_task_retries only through the deprecated
            # **ray_remote_args (named parameters for them do not exist yet; pyproject pins < 2.64).
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=Warning)
            ds = _map(ds, writer, config, pool, remote_args)
        try:
            for row in ds.iter_rows():
                key = str(row["item_key"])
                if key in seen or key not in by_key:
                    continue
                seen.add(key)
                result, frames = _result_from_row(row)
                if not row["committed"]:  # the actor could not even write its failure row: the driver tries
                    _commit_failures(writer, result)
                report(result, frames)
        except Exception as e:  # the dataset as a whole failed: fall back to the commit markers
            dataset_error = e
            print(f"ray: the mining dataset failed: {short_error(e)}", file=sys.stderr, flush=True)

    missing = [it for it in todo if it.input not in seen]
    if not missing:
        return
    done = {s.item_key: s for s in committed_items(writer.out_url, writer.storage_options or None)}
    attempts = max_task_retries + 1
    for item in missing:
        if item.input in done:
            report(*_committed_result(writer, done[item.input], item))
            continue
        if dataset_error is not None:
            message = f"not mined: the Ray mining job failed ({short_error(dataset_error)})"
        else:
            message = (f"the Ray worker mining it died {attempts} time(s) (a crash, an out-of-memory kill or a "
                       f"lost node); see the Ray logs")
        row = failure_row(item.input, "mine", "worker_lost", message, video_id=item.video_id, attempts=attempts)
        result = ItemResult(item.input, item.video_id, [], [row])
        _commit_failures(writer, result)
        report(result, 0)


def _commit_failures(writer: ShardWriter, result: ItemResult) -> None:
    """Commit an item's failure rows from the driver; if the storage refuses, say so and go on
    (the item stays uncommitted, so the next run mines it again)."""
    try:
        writer.write_item(result.item_key, [], result.failures, result.seconds,
                          extra_stats=item_extra_stats(result))
    except Exception as e:
        print(f"dynocc: could not commit the failure row of {result.item_key}: {type(e).__name__}: {e}",
              file=sys.stderr, flush=True)
