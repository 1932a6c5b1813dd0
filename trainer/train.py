"""``dynocc train``: the EncDecResNet on Ray Train (TorchTrainer, DDP), fed by Ray Data from shards.

The driver builds the mixed dataset (:func:`~dynocc.trainer.data.build_train_dataset`), sizes the
workers and runs :func:`train_loop` on each. Every worker reads its own stream of decoded batches
(``ray.train.get_dataset_shard``), runs forward/backward under DDP (``prepare_model``) and steps the
optimizer; rank 0 writes ``OUT/metrics.csv`` every step (and TensorBoard where available), prints a
line every ``log_every`` steps and saves checkpoints (model, optimizer, step, config) through
fsspec every ``checkpoint_every`` steps and at the end. ``resume=True`` continues from the
newest checkpoint: same step numbers, same optimizer state, the metrics curve continues.

On a multi-node cluster ``--out`` and the shard roots must be URLs every node can reach (s3://,
gs://, a shared mount): rank 0 may run on any node.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Optional

from dynocc.factory.io.storage import is_local, is_url

from .config import TrainConfig


class TrainUsageError(ValueError):
    """Settings or an output folder the run cannot start with; nothing was trained."""


# --------------------------------------------------------------------------- worker side


def _optimizer(cfg, params):
    import torch

    o = cfg.optim
    if o.optimizer == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def _batches(shard, batch_size: int, buffer: int):
    """Endless stream of full batches over repeated epochs of this worker's shard."""
    while True:
        got = False
        for batch in shard.iter_torch_batches(batch_size=batch_size, drop_last=True,
                                              local_shuffle_buffer_size=buffer or None):
            got = True
            yield batch
        if not got:
            raise RuntimeError(f"an epoch gave this worker no full batch of {batch_size}: add data or lower "
                               "--batch-size")


def _unwrap(model):
    return getattr(model, "module", model)


def train_step(model, opt, batch: dict, cfg: TrainConfig, device):
    """One optimisation step on ``batch`` (the loader's tensors): forward, ranking loss, backward,
    optimizer step. Returns the step's sums as a float64 tensor on ``device`` (loss, accuracy x
    ordered pairs, ordered, kept, equal pairs), ready for an all-reduce."""
    import torch

    from .data import to_model_input
    from .loss import ranking_loss

    b = {k: v.to(device) for k, v in batch.items()}
    z = model(to_model_input(b["image"], cfg.model.channels_last))
    loss, st = ranking_loss(z, b["pair_ya"], b["pair_xa"], b["pair_yb"], b["pair_xb"], b["pair_ordinal"],
                            b["pair_mask"], cfg.loss.keep_hard, cfg.loss.reduction)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    acc = 0.0 if math.isnan(st["accuracy"]) else st["accuracy"] * st["n_ordered"]
    return torch.tensor([loss.item(), acc, st["n_ordered"], st["n_kept"], st["n_equal"]], dtype=torch.float64,
                        device=device)


def train_loop(loop: dict) -> None:
    """Ray Train worker: ``loop`` = {config, out, steps, resume_from, storage_options, threads}."""
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist

    from .checkpoint import load_checkpoint, save_checkpoint
    from .metrics import MetricsLog
    from .model import build_model, load_backbone_weights

    cfg = TrainConfig.model_validate(loop["config"])
    out, steps, so = loop["out"], int(loop["steps"]), loop.get("storage_options")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(int(loop.get("threads", 1)))
    torch.manual_seed(cfg.run.seed)
    m = cfg.model
    model = build_model(m.backbone, m.decoder_channels, m.head_channels, m.channels_last)
    resume = loop.get("resume_from")
    if not resume and m.backbone_weights:
        report = load_backbone_weights(model.encoder, m.backbone_weights, so)
        if rank == 0:
            sys.stdout.write(f"backbone weights: {report['loaded']} tensors from {m.backbone_weights}; "
                             f"ignored {report['ignored']}\n")
    if not resume and cfg.run.init_from:
        model.load_state_dict(load_checkpoint(cfg.run.init_from, so)["model"])
    step, ckpt = 0, None
    if resume:
        ckpt = load_checkpoint(resume, so)
        model.load_state_dict(ckpt["model"])
        step = int(ckpt["step"])
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    opt = _optimizer(cfg, model.parameters())
    if ckpt is not None and ckpt.get("optimizer"):
        opt.load_state_dict(ckpt["optimizer"])
    log = MetricsLog(out, step, so) if rank == 0 else None
    batches = _batches(ray.train.get_dataset_shard("train"), cfg.optim.batch_size // world, cfg.data.shuffle_buffer)
    t0 = time.perf_counter()
    while step < steps:
        sums = train_step(model, opt, next(batches), cfg, device)
        step += 1
        if world > 1:
            dist.all_reduce(sums)
        row = {"step": step, "loss": sums[0].item() / world, "accuracy": sums[1].item() / max(sums[2].item(), 1),
               "pairs_ordered": int(sums[2]), "pairs_kept": int(sums[3]), "pairs_equal": int(sums[4]),
               "lr": opt.param_groups[0]["lr"], "elapsed_s": round(time.perf_counter() - t0, 3)}
        if log is not None:
            log.add(row)
        if step % cfg.run.log_every == 0 or step == steps:
            if rank == 0:  # sys.stdout, not print: Ray Train's print patch would show the line twice
                sys.stdout.write(f"step {step}/{steps} loss {row['loss']:.4f} acc {row['accuracy']:.3f} pairs "
                                 f"{row['pairs_ordered']}+{row['pairs_equal']} {row['elapsed_s']:.1f}s\n")
                sys.stdout.flush()
            ray.train.report({k: row[k] for k in ("step", "loss", "accuracy")})
        if step % cfg.run.checkpoint_every == 0 or step == steps:
            if rank == 0:
                save_checkpoint(out, step, _unwrap(model).state_dict(), opt.state_dict(), cfg.model_dump(),
                                cfg.run.keep_checkpoints, so)
                log.flush()
            if world > 1:
                dist.barrier()
    if log is not None:
        log.close()


# --------------------------------------------------------------------------- driver side


def _init_ray(address: Optional[str], log_to_driver: bool) -> bool:
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=log_to_driver)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                 log_to_driver=log_to_driver)
    return True


def _absolute(url: Optional[str]) -> Optional[str]:
    if url is None or is_url(url):
        return url
    return os.path.abspath(url)


def worker_resources(cfg: TrainConfig, free_cpus: float) -> dict:
    """Resources per Ray Train worker: the configured CPUs, 1 CPU beside a GPU, or on CPU the free
    CPUs less one for Ray Data's decoding, shared by the workers (0.5 each for 2 workers on 2 cores:
    2 x 1 CPU would leave Ray Data nothing and hang)."""
    s = cfg.scale
    if s.cpus_per_worker is not None:
        cpus = s.cpus_per_worker
    elif s.use_gpu:
        cpus = 1.0
    else:
        share = (free_cpus - 1.0) / s.workers
        cpus = math.floor(share) if share >= 1 else math.floor(share * 4) / 4
        if cpus <= 0:
            raise TrainUsageError(f"{s.workers} workers do not fit {free_cpus:g} free CPUs with one left for "
                                  "Ray Data; lower --workers or set scale.cpus_per_worker")
    return {"CPU": float(cpus), **({"GPU": 1.0} if s.use_gpu else {})}


def _storage(out: str, storage_options: Optional[dict]) -> dict:
    """Where Ray Train keeps its own run state (not our checkpoints): ``OUT/ray_train``."""
    if is_local(out):
        return {"storage_path": os.path.abspath(os.path.join(out.removeprefix("file://"), "ray_train"))}
    from dynocc.factory.io.storage import url_fs
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, path = url_fs(out, storage_options)
    return {"storage_path": f"{path.rstrip('/')}/ray_train", "storage_filesystem": PyFileSystem(FSSpecHandler(fs))}


def _fit_interruptibly(trainer) -> None:
    """``trainer.fit()`` in a helper thread, so that Ctrl-C reaches this (main) thread as a
    KeyboardInterrupt: Ray Train's own SIGINT handler (installed only on the main thread) exits
    with code 1 instead. The caller's ``ray.shutdown()`` then stops the workers; the newest
    complete checkpoint is where ``--resume`` continues."""
    box: dict = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            box["error"] = e

    thread = threading.Thread(target=fit, name="dynocc-train-fit", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if "error" in box:
        raise box["error"]


def train(cfg: TrainConfig, out: str, resume: bool = False, storage_options: Optional[dict] = None,
          log_to_driver: bool = True, ray_progress: bool = False) -> dict:
    """Run a training job; returns ``{"step", "loss", "checkpoint"}``. Raises :class:`TrainUsageError`."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from .checkpoint import checkpoint_step, latest_checkpoint
    from .data import build_train_dataset, epoch_rows, steps_for_epochs
    from .metrics import read_metrics

    so = storage_options if storage_options is not None else cfg.data.storage_options
    out = _absolute(out)  # Ray Train workers run in other directories
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={
        "backbone_weights": _absolute(cfg.model.backbone_weights)}), "run": cfg.run.model_copy(update={
        "init_from": _absolute(cfg.run.init_from)})})
    found = latest_checkpoint(out, so)
    if found and not resume:
        raise TrainUsageError(f"{out} already holds checkpoints: pass --resume to continue, or another --out")
    rows = epoch_rows(cfg.data)
    steps = cfg.optim.steps
    if cfg.optim.epochs is not None:
        steps = steps_for_epochs(cfg.optim.epochs, rows, cfg.optim.batch_size)
    done = checkpoint_step(found) if found else 0
    passes = math.ceil(max(steps - done, 1) * cfg.optim.batch_size / max(rows, 1)) + 1
    if found:
        sys.stderr.write(f"dynocc train: resuming from {found}\n")
    started = _init_ray(cfg.scale.address, log_to_driver)
    try:
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = ray_progress
        res = worker_resources(cfg, ray.available_resources().get("CPU", 0.0))
        trainer = TorchTrainer(
            train_loop,
            train_loop_config={"config": cfg.model_dump(), "out": out, "steps": steps, "resume_from": found,
                               "storage_options": so, "threads": max(1, int(res["CPU"]))},
            scaling_config=ScalingConfig(num_workers=cfg.scale.workers, use_gpu=cfg.scale.use_gpu,
                                         resources_per_worker=res),
            run_config=RunConfig(name=f"dynocc-train-{time.strftime('%Y%m%d-%H%M%S')}", **_storage(out, so)),
            datasets={"train": build_train_dataset(cfg.data, passes)},
        )
        _fit_interruptibly(trainer)
    finally:
        if started:
            ray.shutdown()
    rows = read_metrics(out, so)
    return {"step": rows[-1]["step"] if rows else 0, "loss": rows[-1]["loss"] if rows else math.nan,
            "checkpoint": latest_checkpoint(out, so)}
