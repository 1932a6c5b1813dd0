"""Ray Train's overhead: the project's training path against a plain PyTorch loop, same model and data.

    RAY_AUTH_MODE=disabled .venv/bin/python benchmarks/bench_train_overhead.py [--quick]
        [--out bench_out/train_overhead.json] [--steps 200] [--warmup 20] [--rounds 1]
        [--backbone resnet18] [--image-size 96] [--batch-size 8] [--keep-data DIR] [--quiet-ray]

A benchmark, not a test: it asserts nothing about time. Target (issue): the Ray Train path's
steady-state throughput >= 0.9x the plain loop's.

Input data, made with the project's own tools as tests/integration/test_trainer.py makes it: 12
synthetic dynamic scenes (120x160, 12 frames) mined by the DynOcc miner in-process
(``run_mine_job``, what ``dynocc mine --engine local`` runs) and 24 other scenes written as
stereo-style rows with their true inverse depth (``trainer.synthetic.stereo_rows``, pairs sampled
online), mixed ``mined:2``, ``truth:4``. Settings: the integration test's small configuration
(ResNet-18, 96 px crops, decoder 64 / head 32 channels, 300 pairs, Adam, lr 1e-3, batch 8), 1
worker, on CPU.

In one process, run back to back: plain, then ``--rounds`` times (Ray Train, plain). The ratio
divides the Ray run's steady-state steps/s by the mean of the plain runs around it.

(a) plain loop: the trainer's own pieces (``build_model``, the trainer's ``_optimizer``,
``to_model_input``, ``ranking_loss``, the same per-step stats with their ``.item()`` calls, the
same ``torch.manual_seed`` and torch thread count as the Ray worker gets: ``worker_resources`` on
this machine's CPUs) fed by a ``torch.utils.data.DataLoader`` with one worker process that runs the
trainer's own decoding (``plan_items`` + ``read_and_decode``: same shards, weights, crops, pair
sampling, padding) and a 64-row local shuffle buffer, like Ray Data's one spare CPU and the
worker's ``local_shuffle_buffer_size``. What it does not do: metrics.csv/TensorBoard rows
(``MetricsLog``), ``ray.train.report`` every ``log_every`` steps, the console line, checkpoints.

(b) Ray Train: ``dynocc.trainer.train.train`` itself (TorchTrainer, 1 worker, Ray Data input),
unchanged. Ray is started first with the trainer's own ``_init_ray`` and timed apart (``train``
then leaves it running; the benchmark shuts it down, timed too). Steady-state step times come from
the trainer's own per-step ``elapsed_s`` (metrics.csv: seconds from the loop's start to the end of
each step, data wait included). To place the loop's start on the clock (setup time) the benchmark
hands ``train`` a wrapper of ``train_loop`` (by swapping the module attribute for the duration of the
call) that, inside the worker process only, timestamps each ``MetricsLog.add`` call; no trainer file
is changed and the loop runs as it does under ``dynocc train``.

Per run: setup (start to the first step's start), the first step (Ray: includes the wait for Ray
Data's first batch), steady state = steps after ``--warmup`` (steps/s, samples/s, median step), and
the share of the steady state's wall time the loop's thread was on a CPU: below 0.8 other processes
had the machine and the table says so (figures and their noise: benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.pop("RAY_ADDRESS", None)  # a local run: the figures are about this machine

import torch  # noqa: E402

from dynocc.trainer.config import TrainConfig  # noqa: E402

BUSY_SHARE = 0.8  # a loop thread on CPU less of its wall time than this: the machine was busy

SMALL = {  # tests/integration/test_trainer.py: SMALL + its command-line flags (2 workers there, 1 here)
    "model": {"backbone": "resnet18", "decoder_channels": 64, "head_channels": 32},
    "data": {"image_size": 96, "stereo_pairs": 300, "max_pairs": 300, "keep_rate": 0.25},
    "optim": {"optimizer": "adam", "lr": 1e-3, "batch_size": 8},
    "run": {"log_every": 10, "checkpoint_every": 500, "keep_checkpoints": 1},
    "scale": {"workers": 1},
}


# --------------------------------------------------------------------------- input data


def make_data(root: Path) -> dict:
    """Mined shards of 12 synthetic clips and stereo-style truth rows of 24 scenes (test_trainer.py)."""
    from dynocc.factory.config import MinerConfig
    from dynocc.factory.engine.job import run_mine_job
    from dynocc.factory.io.decode import write_frame_folder
    from dynocc.factory.io.writer import ShardWriter
    from dynocc.factory.testing.synthetic import make_scene
    from dynocc.trainer.synthetic import stereo_rows

    start = time.perf_counter()
    inputs = []
    for s in range(12):
        scene = make_scene(seed=100 + s, height=120, width=160, n_frames=12, n_static=0)
        write_frame_folder(scene.frames, root / "clips" / f"clip{s}")
        inputs.append(str(root / "clips" / f"clip{s}"))
    summary = run_mine_job(inputs, str(root / "mined"), MinerConfig())
    rng = np.random.default_rng(0)
    writer = ShardWriter(str(root / "truth"))
    truth_rows = 0
    for s in range(24):
        scene = make_scene(seed=200 + s, height=120, width=160, n_frames=12, n_static=0)
        rows = stereo_rows(scene, (1, 6, 11), f"truth-{s}", rng)
        truth_rows += len(rows)
        writer.write_item(f"truth-{s}", rows, [], 0.0)
    return {"mined": str(root / "mined"), "truth": str(root / "truth"), "mined_videos": summary.videos_ok,
            "mined_frames": summary.frames, "mined_pairs": summary.pairs, "truth_rows": truth_rows,
            "seconds": round(time.perf_counter() - start, 2)}


# --------------------------------------------------------------------------- (a) plain PyTorch


class _DecodedStream(torch.utils.data.IterableDataset):
    """Endless full batches: the trainer's work items and decoding, a local shuffle buffer."""

    def __init__(self, items: list[dict], data_cfg: dict, batch_size: int, buffer: int):
        self.items, self.data_cfg, self.batch_size, self.buffer = items, data_cfg, batch_size, buffer

    def _rows(self):
        from dynocc.trainer.data import read_and_decode

        while True:
            for it in self.items:
                one = {k: [v] for k, v in it.items()}  # one work item, as map_batches(batch_size=1) passes it
                for chunk in read_and_decode(one, self.data_cfg):
                    for i in range(len(chunk["image"])):
                        yield {k: v[i] for k, v in chunk.items()}

    def __iter__(self):
        rng = np.random.default_rng()
        buf: list[dict] = []
        for row in self._rows():
            buf.append(row)
            while len(buf) >= max(self.buffer, self.batch_size):
                pick = []
                for _ in range(self.batch_size):
                    j = int(rng.integers(len(buf)))
                    buf[j], buf[-1] = buf[-1], buf[j]
                    pick.append(buf.pop())
                yield {k: np.stack([r[k] for r in pick]) for k in pick[0]}


def run_plain(cfg: TrainConfig, steps: int, threads: int, passes: int) -> dict:
    from dynocc.trainer.data import plan_items
    from dynocc.trainer.model import build_model
    from dynocc.trainer.train import _optimizer, train_step

    t_start = time.perf_counter()
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.run.seed)
    m = cfg.model
    model = build_model(m.backbone, m.decoder_channels, m.head_channels, m.channels_last)
    opt = _optimizer(cfg, model.parameters())
    stream = _DecodedStream(plan_items(cfg.data, passes), cfg.data.model_dump(), cfg.optim.batch_size,
                            cfg.data.shuffle_buffer)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=1, prefetch_factor=2)
    batches = iter(loader)
    device = torch.device("cpu")
    ends, losses, cpu_thread, cpu_process = [], [], [], []
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        sums = train_step(model, opt, next(batches), cfg, device)  # the trainer's own step
        losses.append(sums[0].item())
        ends.append(time.perf_counter() - t0)
        cpu_thread.append(time.thread_time())
        cpu_process.append(time.process_time())
    del batches, loader  # stops the loader's worker process
    return {"kind": "plain", "setup_s": t0 - t_start, "total_s": time.perf_counter() - t_start, "elapsed_s": ends,
            "cpu_thread_s": cpu_thread, "cpu_process_s": cpu_process, "loss_first10": _mean(losses[:10]),
            "loss_last10": _mean(losses[-10:]), "threads": threads}


# --------------------------------------------------------------------------- (b) Ray Train


def _timed_train_loop(loop: dict) -> None:
    """Runs in the Ray Train worker: ``train_loop`` as it is, plus wall-clock stamps of each
    ``MetricsLog.add`` (called once per step right after the step's ``elapsed_s`` is taken) and the
    CPU time of the loop's thread and of the worker process at that point."""
    import json as _json
    import os as _os
    import time as _time

    from dynocc.trainer import metrics as _metrics
    from dynocc.trainer import train as _train

    marks = {"worker_start": _time.time(), "adds": []}
    original = _metrics.MetricsLog.add

    def add(self, row):
        marks["adds"].append([_time.time(), row["elapsed_s"], _time.thread_time(), _time.process_time()])
        return original(self, row)

    _metrics.MetricsLog.add = add
    try:
        _train.train_loop(loop)  # the worker's own import of the module: the unpatched train_loop
    finally:
        _metrics.MetricsLog.add = original
        marks["worker_end"] = _time.time()
        with open(_os.path.join(loop["out"], "bench_marks.json"), "w") as f:
            _json.dump(marks, f)


def run_ray(cfg: TrainConfig, out: str, log_to_driver: bool) -> dict:
    import ray

    import dynocc.trainer.train as T
    from dynocc.trainer.metrics import read_metrics

    t = time.perf_counter()
    started = T._init_ray(None, log_to_driver)
    ray_start = time.perf_counter() - t
    if not started:
        raise RuntimeError("Ray was already running in this process")
    try:
        original = T.train_loop
        T.train_loop = _timed_train_loop
        try:
            wall_call = time.time()
            t = time.perf_counter()
            result = T.train(cfg, out, log_to_driver=log_to_driver)
            train_s = time.perf_counter() - t
            wall_return = time.time()
        finally:
            T.train_loop = original
    finally:
        t = time.perf_counter()
        ray.shutdown()
        shutdown = time.perf_counter() - t
    rows = read_metrics(out)
    marks = json.loads(Path(out, "bench_marks.json").read_text())
    loop_start = marks["adds"][0][0] - marks["adds"][0][1]  # wall clock of train_loop's t0
    last_end = marks["adds"][-1][0]
    return {"kind": "ray", "ray_start_s": ray_start, "train_call_s": train_s, "ray_shutdown_s": shutdown,
            "total_s": ray_start + train_s + shutdown,
            "setup_s": loop_start - wall_call,
            "setup_to_worker_s": marks["worker_start"] - wall_call,
            "setup_in_worker_s": loop_start - marks["worker_start"],
            "teardown_s": wall_return - last_end,
            "elapsed_s": [r["elapsed_s"] for r in rows], "steps_done": result["step"],
            "cpu_thread_s": [a[2] for a in marks["adds"]], "cpu_process_s": [a[3] for a in marks["adds"]],
            "loss_first10": _mean([r["loss"] for r in rows[:10]]),
            "loss_last10": _mean([r["loss"] for r in rows[-10:]])}


# --------------------------------------------------------------------------- figures


def _mean(xs):
    return sum(xs) / len(xs) if xs else math.nan


def steady(run: dict, warmup: int, batch: int) -> dict:
    """Figures of one run; steady state = the steps after the first ``warmup`` (``warmup`` >= 1)."""
    e, w = run["elapsed_s"], warmup
    n = len(e)
    per_step = [b - a for a, b in zip(e[w - 1:], e[w:])]
    span = e[-1] - e[w - 1]
    sps = (n - w) / span

    def per_step_ms(key):
        c = run[key]
        return 1000 * (c[-1] - c[w - 1]) / (n - w)

    cpu = per_step_ms("cpu_thread_s")
    return {"steps": n, "warmup_steps": w, "first_step_s": e[0], "warmup_s": e[w - 1], "steady_s": span,
            "steps_per_s": sps, "samples_per_s": sps * batch,
            "median_step_ms": 1000 * statistics.median(per_step),
            "p90_step_ms": 1000 * sorted(per_step)[int(0.9 * (len(per_step) - 1))],
            "loop_cpu_ms_per_step": cpu, "process_cpu_ms_per_step": per_step_ms("cpu_process_s"),
            "loop_cpu_share": cpu / 1000 * sps}


def summarize(runs: list[dict], warmup: int, batch: int) -> dict:
    for r in runs:
        r.update(steady(r, warmup, batch))
    plain = [r for r in runs if r["kind"] == "plain"]
    ray_runs = [r for r in runs if r["kind"] == "ray"]
    rounds = []
    for i, r in enumerate(runs):
        if r["kind"] != "ray":
            continue
        around = [runs[i - 1], runs[i + 1]] if i + 1 < len(runs) else [runs[i - 1]]
        p_sps = _mean([p["steps_per_s"] for p in around])
        p_med = _mean([p["median_step_ms"] for p in around])
        rounds.append({"ray_steps_per_s": r["steps_per_s"], "plain_steps_per_s": p_sps,
                       "ratio": r["steps_per_s"] / p_sps, "median_step_ratio": p_med / r["median_step_ms"]})
    return {
        "plain_steps_per_s": _mean([p["steps_per_s"] for p in plain]),
        "plain_samples_per_s": _mean([p["samples_per_s"] for p in plain]),
        "ray_steps_per_s": _mean([r["steps_per_s"] for r in ray_runs]),
        "ray_samples_per_s": _mean([r["samples_per_s"] for r in ray_runs]),
        "ratio": _mean([x["ratio"] for x in rounds]),
        "ratios": [x["ratio"] for x in rounds],
        "median_step_ratio": _mean([x["median_step_ratio"] for x in rounds]),
        "ray_start_s": _mean([r["ray_start_s"] for r in ray_runs]),
        "ray_setup_s": _mean([r["setup_s"] for r in ray_runs]),
        "ray_first_step_s": _mean([r["first_step_s"] for r in ray_runs]),
        "ray_teardown_s": _mean([r["teardown_s"] for r in ray_runs]),
        "ray_shutdown_s": _mean([r["ray_shutdown_s"] for r in ray_runs]),
        "plain_setup_s": _mean([p["setup_s"] for p in plain]),
        "plain_loop_cpu_ms_per_step": _mean([p["loop_cpu_ms_per_step"] for p in plain]),
        "ray_loop_cpu_ms_per_step": _mean([r["loop_cpu_ms_per_step"] for r in ray_runs]),
        "plain_total_s": _mean([p["total_s"] for p in plain]),
        "ray_total_s": _mean([r["total_s"] for r in ray_runs]),
        "min_loop_cpu_share": min(r["loop_cpu_share"] for r in runs),
        "target_ratio": 0.9,
        "rounds": rounds,
    }


def table(runs: list[dict], s: dict, batch: int) -> str:
    lines = ["| run | setup s | first step s | steady steps/s | samples/s | median step ms | p90 ms | "
             "loop CPU ms/step | loop CPU share |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(runs):
        lines.append(f"| {i + 1}. {r['kind']} | {r['setup_s']:.2f} | {r['first_step_s']:.2f} | "
                     f"{r['steps_per_s']:.3f} | {r['samples_per_s']:.2f} | {r['median_step_ms']:.0f} | "
                     f"{r['p90_step_ms']:.0f} | {r['loop_cpu_ms_per_step']:.0f} | {r['loop_cpu_share']:.2f} |")
    lines += ["", f"Ray start {s['ray_start_s']:.2f} s; trainer setup (train() call -> loop start) "
              f"{s['ray_setup_s']:.2f} s; first step {s['ray_first_step_s']:.2f} s; teardown (last step -> "
              f"train() return) {s['ray_teardown_s']:.2f} s; ray.shutdown {s['ray_shutdown_s']:.2f} s",
              f"steady state (batch {batch}): plain {s['plain_steps_per_s']:.3f} steps/s "
              f"({s['plain_samples_per_s']:.2f} samples/s), Ray Train {s['ray_steps_per_s']:.3f} steps/s "
              f"({s['ray_samples_per_s']:.2f} samples/s)",
              f"loop thread CPU per step: plain {s['plain_loop_cpu_ms_per_step']:.0f} ms, Ray Train "
              f"{s['ray_loop_cpu_ms_per_step']:.0f} ms; whole run: plain {s['plain_total_s']:.1f} s, Ray "
              f"{s['ray_total_s']:.1f} s (start + train() + shutdown)",
              f"ratio Ray/plain: {s['ratio']:.3f} (per round: {', '.join(f'{x:.3f}' for x in s['ratios'])}; "
              f"median step ratio {s['median_step_ratio']:.3f}); target >= {s['target_ratio']}"]
    if s["min_loop_cpu_share"] < BUSY_SHARE:
        lines.append(f"WARNING: a training loop had its core only {s['min_loop_cpu_share']:.0%} of the time (other "
                     "processes on this machine): the ratio says more about them than about Ray; run again")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench_out/train_overhead.json")
    ap.add_argument("--quick", action="store_true", help="40 steps, warm-up 8 (under 2 minutes on 2 cores)")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default 200; --quick 40)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="first steps left out of steady state (default 20; --quick 8)")
    ap.add_argument("--rounds", type=int, default=1, help="(Ray, plain) pairs after the first plain run")
    ap.add_argument("--backbone", default=SMALL["model"]["backbone"])
    ap.add_argument("--image-size", type=int, default=SMALL["data"]["image_size"])
    ap.add_argument("--batch-size", type=int, default=SMALL["optim"]["batch_size"])
    ap.add_argument("--keep-data", metavar="DIR", help="make (or reuse) the shards and run folders here and keep them")
    ap.add_argument("--quiet-ray", action="store_true", help="log_to_driver=False (dynocc train streams worker logs)")
    args = ap.parse_args(argv)
    steps = args.steps or (40 if args.quick else 200)
    warmup = args.warmup if args.warmup is not None else (8 if args.quick else 20)
    if not 1 <= warmup < steps - 1:
        ap.error("--warmup must be at least 1 and leave at least 2 steps")

    import dynocc.trainer.train as T
    from dynocc.trainer.data import epoch_rows

    started = time.perf_counter()
    load0 = os.getloadavg()
    root = Path(args.keep_data) if args.keep_data else Path(tempfile.mkdtemp(prefix="bench_train_overhead_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        if (root / "mined").exists() and (root / "truth").exists():
            data = {"mined": str(root / "mined"), "truth": str(root / "truth"), "reused": True}
        else:
            data = make_data(root)
        spec = json.loads(json.dumps(SMALL))
        spec["model"]["backbone"] = args.backbone
        spec["data"]["image_size"] = args.image_size
        spec["data"]["sources"] = [{"url": data["mined"], "weight": 2.0}, {"url": data["truth"], "weight": 4.0}]
        spec["optim"]["batch_size"] = args.batch_size
        spec["optim"]["steps"] = steps
        cfg = TrainConfig.model_validate(spec)
        threads = max(1, int(T.worker_resources(cfg, float(os.cpu_count() or 1))["CPU"]))
        rows = epoch_rows(cfg.data)
        passes = math.ceil(steps * cfg.optim.batch_size / max(rows, 1)) + 1  # as train() sizes Ray Data
        print(f"data: {data}; {rows:g} rows per epoch; {steps} steps, warm-up {warmup}, batch "
              f"{cfg.optim.batch_size}, {args.backbone} {args.image_size}px, torch threads {threads}", flush=True)

        runs = []
        order = ["plain"] + ["ray", "plain"] * args.rounds
        for i, kind in enumerate(order):
            print(f"run {i + 1}/{len(order)}: {kind} ...", flush=True)
            if kind == "plain":
                runs.append(run_plain(cfg, steps, threads, passes))
            else:
                out = root / f"ray_run{i}"
                shutil.rmtree(out, ignore_errors=True)
                runs.append(run_ray(cfg, str(out), not args.quiet_ray))
            runs[-1]["loadavg_after"] = os.getloadavg()
            print(f"  {kind}: {len(runs[-1]['elapsed_s'])} steps, loop {runs[-1]['elapsed_s'][-1]:.1f} s, "
                  f"setup {runs[-1]['setup_s']:.1f} s", flush=True)
        summary = summarize(runs, warmup, cfg.optim.batch_size)
    finally:
        if not args.keep_data:
            shutil.rmtree(root, ignore_errors=True)

    import ray

    report = {
        "benchmark": "train_overhead", "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "ray": ray.__version__, "loadavg_start": load0,
                    "loadavg_end": os.getloadavg()},
        "settings": {"steps": steps, "warmup": warmup, "rounds": args.rounds, "quick": args.quick,
                     "torch_threads": threads, "workers": 1, "passes": passes, "rows_per_epoch": rows,
                     "config": cfg.model_dump(exclude={"data": {"sources"}})},
        "data": data, "summary": summary,
        "runs": [{k: v for k, v in r.items()} for r in runs],
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print()
    print(table(runs, summary, cfg.optim.batch_size))
    print(f"\nload average {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}; wall {report['wall_s']} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
