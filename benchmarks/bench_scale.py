"""Benchmark: how the mining job scales -- throughput per engine, per-stage rates, driver memory.

Not a test: run it by hand (it takes a few minutes on 2 cores; ``--quick`` well under that).

(a) Throughput. The same synthetic clips (:func:`dynocc.factory.testing.synthetic.make_scene`, written as
    real H.264 files into a temp dir) are mined, each time into a fresh output folder, by

    * ``local``            -- :func:`dynocc.factory.engine.job.run_mine_job`, one process;
    * ``ray-cold-A``       -- :func:`dynocc.factory.engine.ray_engine.run_mine_job_ray` with A actors and no
                              Ray running: the engine starts a local Ray and shuts it down (what
                              ``dynocc mine`` does on one machine);
    * ``ray-A``            -- the same with Ray started once by ``ray.init`` before the timed runs,
                              which the engine reuses (Ray's start-up excluded; actor start-up and
                              the flow model load per actor are still inside).

    Reported: frames mined per second and the ratio to ``local``. Per-stage rates on the same
    clips, in this process: decode alone (``decode_frames``), decode + mine (``video_items.mine_item``:
    decode, flow, boundaries, votes, pairs, JPEG encoding) and the shard write
    (``ShardWriter.write_item``) of the mined rows.

(b) Driver memory. One tiny real clip (64x48, 6 frames) is hard-linked N times (hard links, so that
    every entry is a distinct real item -- symlinks would be de-duplicated by real path) and listed
    in an ``@list`` file. In a fresh subprocess per (mode, N) the RSS of the driver process is read
    after the imports and ``ray.init``, the kernel's peak mark is reset there
    (``/proc/self/clear_refs``), and the peak (``VmHWM``) is read at the end; growth = peak - RSS
    after init (falls back to ``ru_maxrss`` where /proc is missing):

    * ``plan``  -- resolve the @list, plan the job, and build the Ray Data dataset of the items
                   (what the driver holds before any mining), for every N;
    * ``ray``   -- the whole Ray job (every item mined and committed by the actors; the driver
                   receives one stats row per item), for the N that fit in the time budget.

    python benchmarks/bench_scale.py [--quick] [--out bench_out/scale.json]
                                     [--videos 12] [--sizes 100,1000,10000] [--ray-sizes 100,1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


# --------------------------------------------------------------------------- inputs


def make_clips(folder: Path, n: int, height: int, width: int, n_frames: int) -> list[str]:
    from dynocc.factory.io.decode import write_video
    from dynocc.factory.testing.synthetic import make_scene

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(n):
        path = folder / f"clip{seed:03d}.mp4"
        write_video(make_scene(seed, height=height, width=width, n_frames=n_frames, n_static=0).frames, path)
        paths.append(str(path))
    return paths


def make_list(folder: Path, n: int) -> str:
    """``@list`` file of ``n`` hard links to one tiny clip (distinct real items)."""
    folder.mkdir(parents=True, exist_ok=True)
    master = folder / "master.mp4"
    if not master.exists():
        make_clips(folder / "m", 1, 48, 64, 6)
        shutil.move(str(folder / "m" / "clip000.mp4"), master)
    items = folder / "items"
    items.mkdir(exist_ok=True)
    lines = []
    for i in range(n):
        p = items / f"t{i:06d}.mp4"
        if not p.exists():
            os.link(master, p)
        lines.append(str(p))
    lst = folder / f"list{n}.txt"
    lst.write_text("\n".join(lines) + "\n")
    return "@" + str(lst)


# --------------------------------------------------------------------------- (a) throughput


def stage_rates(clips: list[str], config, out: Path) -> dict:
    """Decode alone, decode+mine, and shard write, in this process, on the same clips."""
    from dynocc.factory.io.decode import decode_frames
    from dynocc.factory.engine.job import item_extra_stats
    from dynocc.factory.engine.video_items import mine_item
    from dynocc.factory.core.miner import DynOccMiner
    from dynocc.factory.io.sources import resolve_inputs
    from dynocc.factory.io.writer import ShardWriter

    t = time.perf_counter()
    decoded = 0
    for c in clips:
        for _ in decode_frames(c, config.decode):
            decoded += 1
    t_decode = time.perf_counter() - t

    items, _ = resolve_inputs(clips)
    miner = DynOccMiner(config)
    writer = ShardWriter(str(out))
    mined = 0
    t_mine = t_write = 0.0
    for item in items:
        t = time.perf_counter()
        r = mine_item(miner, item)
        t_mine += time.perf_counter() - t
        mined += r.frames_mined
        t = time.perf_counter()
        writer.write_item(item.input, r.frame_rows, r.failures, r.seconds, extra_stats=item_extra_stats(r))
        t_write += time.perf_counter() - t
    return {
        "frames_decoded": decoded,
        "frames_mined": mined,
        "decode_fps": decoded / t_decode,
        "decode_and_mine_fps": mined / t_mine,
        "write_fps": mined / t_write if t_write else None,
        "decode_share_of_mine": t_decode / t_mine,
        "write_share_of_item": t_write / (t_mine + t_write),
    }


def throughput(clips: list[str], tmp: Path, actor_counts: list[int]) -> dict:
    import ray

    from dynocc.factory.config import MinerConfig
    from dynocc.factory.engine.job import run_mine_job
    from dynocc.factory.engine.ray_engine import run_mine_job_ray

    config = MinerConfig()
    runs: dict[str, dict] = {}

    def record(name: str, fn) -> None:
        out = tmp / f"out-{name}"
        t = time.perf_counter()
        summary = fn(out)
        dt = time.perf_counter() - t
        if summary.videos_failed or summary.videos_ok != len(clips):
            raise RuntimeError(f"{name}: {summary.as_dict()}; first failures: "
                               f"{[(f['error_type'], f['message'][:300]) for f in summary.failures[:2]]}")
        runs[name] = {"seconds": dt, "frames_mined": summary.frames_mined, "pairs": summary.pairs,
                      "fps": summary.frames_mined / dt}
        print(f"  {name:<12} {dt:7.2f} s  {summary.frames_mined / dt:7.1f} frames/s", flush=True)

    record("local", lambda out: run_mine_job(clips, str(out), config))
    if ray.is_initialized():
        ray.shutdown()
    a_max = max(actor_counts)
    record(f"ray-cold-{a_max}",
           lambda out: run_mine_job_ray(clips, str(out), config, actors=a_max))  # starts and stops Ray
    assert not ray.is_initialized()
    t = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t
    try:
        for a in actor_counts:
            record(f"ray-{a}", lambda out, a=a: run_mine_job_ray(clips, str(out), config, actors=a))
            assert ray.is_initialized(), "the engine shut down a Ray it did not start"
    finally:
        ray.shutdown()
    stages = stage_rates(clips, config, tmp / "out-stages")
    base = runs["local"]["fps"]
    for r in runs.values():
        r["ratio_vs_local"] = r["fps"] / base
    return {"clips": len(clips), "ray_init_seconds": ray_start, "runs": runs, "stages": stages}


# --------------------------------------------------------------------------- (b) driver memory


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    """Peak RSS since the last :func:`_reset_peak` (VmHWM), else since start (``ru_maxrss``)."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def memory_child(mode: str, listarg: str, out: str) -> None:
    """Runs in a fresh subprocess; prints one JSON line."""
    import ray

    from dynocc.factory.config import MinerConfig
    from dynocc.factory.engine.job import plan_mine_job
    from dynocc.factory.engine.ray_engine import run_mine_job_ray

    config = MinerConfig()
    result: dict = {"mode": mode}
    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
    base = _status_mb("VmRSS") or _peak_mb()
    result["peak_reset"] = _reset_peak()  # else the peak of the imports and ray.init hides the growth
    t = time.perf_counter()
    if mode == "plan":
        plan = plan_mine_job([listarg], out)
        ds = ray.data.from_items([{"input": it.input, "video_id": it.video_id, "kind": it.kind}
                                  for it in plan.todo], override_num_blocks=len(plan.todo))
        result["items"] = len(plan.todo)
        result["dataset_blocks"] = ds.num_blocks() if hasattr(ds, "num_blocks") else None
    else:
        s = run_mine_job_ray([listarg], out, config, actors=1)
        assert s.videos_ok and not s.videos_failed, s.as_dict()
        result["items"] = s.videos_ok
        result["frames_mined"] = s.frames_mined
    result["seconds"] = time.perf_counter() - t
    result["peak_rss_mb"] = _peak_mb()  # before ray.shutdown
    result["rss_end_mb"] = _status_mb("VmRSS")
    ray.shutdown()
    result["rss_after_init_mb"] = base
    print("RESULT " + json.dumps(result), flush=True)


def memory(tmp: Path, sizes: list[int], ray_sizes: list[int], budget_s: float) -> list[dict]:
    rows = []
    start = time.perf_counter()
    for mode, ns in (("plan", sizes), ("ray", ray_sizes)):
        for n in ns:
            if time.perf_counter() - start > budget_s:
                print(f"  {mode} N={n}: skipped (memory budget of {budget_s:.0f} s spent)", flush=True)
                continue
            listarg = make_list(tmp / "tiny", n)
            out = tmp / f"mem-{mode}-{n}"
            cmd = [sys.executable, os.path.abspath(__file__), "--_memory-child", mode, listarg, str(out)]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(60.0, budget_s * 2))
            line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if p.returncode or line is None:
                print(f"  {mode} N={n}: failed (exit {p.returncode})\n{p.stderr[-2000:]}", flush=True)
                continue
            r = json.loads(line[len("RESULT "):])
            r["n"] = n
            r["growth_mb"] = r["peak_rss_mb"] - r["rss_after_init_mb"]
            rows.append(r)
            print(f"  {mode:<5} N={n:<6} peak {r['peak_rss_mb']:7.1f} MB  (after init {r['rss_after_init_mb']:6.1f}, "
                  f"growth {r['growth_mb']:6.1f})  {r['seconds']:6.1f} s", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    return rows


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench_out/scale.json")
    ap.add_argument("--quick", action="store_true", help="fewer clips and sizes (about a minute or two)")
    ap.add_argument("--videos", type=int, default=None, help="clips for the throughput part (default 12; quick 4)")
    ap.add_argument("--sizes", default=None, help="N for the plan memory runs (default 100,1000,10000)")
    ap.add_argument("--ray-sizes", default=None, help="N for the full Ray memory runs (default 100,1000; quick 100)")
    ap.add_argument("--memory-budget", type=float, default=None, help="seconds for part (b) (default 240; quick 90)")
    ap.add_argument("--_memory-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._memory_child:
        memory_child(*args._memory_child)
        return 0
    quick = args.quick
    n_videos = args.videos or (4 if quick else 12)
    sizes = [int(x) for x in (args.sizes or ("100,1000,10000")).split(",")]
    ray_sizes = [int(x) for x in (args.ray_sizes or ("100" if quick else "100,1000")).split(",") if x]
    budget = args.memory_budget or (90.0 if quick else 240.0)

    tmp = Path(tempfile.mkdtemp(prefix="dynocc-bench-scale-"))
    t0 = time.perf_counter()
    try:
        print(f"(a) throughput: {n_videos} clips 320x240, 24 frames", flush=True)
        clips = make_clips(tmp / "clips", n_videos, 240, 320, 24)
        thr = throughput(clips, tmp, [1, 2])
        print("(b) driver memory", flush=True)
        mem = memory(tmp, sizes, ray_sizes, budget)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    st = thr["stages"]
    print("\nthroughput (frames mined per second; ratio to the single-process miner)")
    print(f"  {'run':<12} {'seconds':>8} {'frames/s':>9} {'ratio':>6}")
    for name, r in thr["runs"].items():
        print(f"  {name:<12} {r['seconds']:8.2f} {r['fps']:9.1f} {r['ratio_vs_local']:6.2f}")
    print(f"  ray.init alone: {thr['ray_init_seconds']:.2f} s")
    print("stages (one process, same clips)")
    print(f"  decode {st['decode_fps']:.0f} frames/s; decode+mine {st['decode_and_mine_fps']:.1f} frames/s "
          f"(decode = {100 * st['decode_share_of_mine']:.0f}% of it); write {st['write_fps']:.0f} frames/s "
          f"({100 * st['write_share_of_item']:.0f}% of an item's time)")
    print("driver peak RSS (MB)")
    for r in mem:
        print(f"  {r['mode']:<5} N={r['n']:<6} peak {r['peak_rss_mb']:7.1f}  growth {r['growth_mb']:6.1f}  "
              f"{r['seconds']:6.1f} s")
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "quick": quick,
        "throughput": thr,
        "memory": mem,
        "total_seconds": time.perf_counter() - t0,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written: {args.out}  ({result['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
