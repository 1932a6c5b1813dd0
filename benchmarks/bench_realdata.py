"""Full figures of the miner on real footage with true depth (``../shared/realdata``).

For each sequence and each flow (the default DIS, the true flow from depth + poses, and RAFT-small
when ``--raft WEIGHTS`` is given) it mines every frame, grades the pairs as the realdata README
says, and grades the stages: flow EPE near depth edges, boundary pixels within 3 px of a true
depth edge, per-pixel vote accuracy. Prints a Markdown table and writes JSON.

    .venv/bin/python benchmarks/bench_realdata.py [--realdata ../shared/realdata] [--raft raft-small.pth]
        [--set boundary.baseline=1 ...] [--out bench_out/realdata.json] [--overlays DIR]

``--overlays DIR`` also draws, per sequence and flow, the frames with the most graded pairs: each
pair's line green where it is right against the true depth, purple where wrong, grey ungraded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dynocc.config_loader import load_config
from dynocc.factory.config import FlowConfig, MinerConfig
from dynocc.factory.core.flow import make_flow_backend
from dynocc.factory.core.miner import DynOccMiner
from dynocc.factory.tools.overlay import draw_pairs, save_png, verdict_rgb
from dynocc.factory.testing.realdata import (
    TrueFlowBackend,
    accuracy_by_confidence,
    grade_sequence,
    load_sequence,
    pair_verdicts,
)

ROOT = Path(__file__).resolve().parents[1]


def save_overlays(seq, mined_frames, folder: Path, tag: str, count: int = 3) -> None:
    """The ``count`` frames with the most graded pairs, lines coloured right / wrong."""
    scored = []
    for mf in mined_frames:
        p = mf.pairs
        v = pair_verdicts(seq.depth(mf.frame_index), p.ya, p.xa, p.yb, p.xb, p.ordinal)
        scored.append((int((v != 0).sum()), mf, v))
    folder.mkdir(parents=True, exist_ok=True)
    for n, mf, v in sorted(scored, key=lambda s: -s[0])[:count]:
        p = mf.pairs
        pic = draw_pairs(mf.image, p.ya, p.xa, p.yb, p.xb, p.ordinal, line_rgb=verdict_rgb(v))
        right, wrong = int((v > 0).sum()), int((v < 0).sum())
        path = folder / f"{seq.name}_{tag}_{mf.frame_index:05d}_{right}right_{wrong}wrong.png"
        save_png(pic, str(path))
        print(f"overlay: {path}")


def bench(seq, config: MinerConfig, flow_name: str, raft_weights=None, overlays: Path | None = None) -> dict:
    frames = seq.images()
    if flow_name == "true":
        flow = TrueFlowBackend(seq, frames)
    elif flow_name == "raft-small":
        config = config.model_copy(update={"flow": FlowConfig(backend="raft-small", weights=raft_weights)})
        flow = make_flow_backend(config.flow)
    else:
        flow = make_flow_backend(config.flow)
    # Speed: mining alone (no maps, no grading).
    miner = DynOccMiner(config, flow=flow)
    t0 = time.perf_counter()
    n = sum(1 for _ in miner.mine_video(frames, seq.name))
    mine_s = time.perf_counter() - t0
    # Quality: mining with maps, graded.
    miner = DynOccMiner(config, flow=flow)
    mined = list(miner.mine_video(frames, seq.name, keep_maps=True))
    if overlays is not None:
        save_overlays(seq, mined, overlays, flow_name)
    report = grade_sequence(seq, mined, flow_sample_every=10,
                            # its own instance: the miner's is busy in its prefetch thread
                            flow_backend=None if flow_name == "true" else make_flow_backend(config.flow),
                            baseline=config.boundary.baseline)
    out = report.as_dict()
    out.update(flow=flow_name, frames_per_second=round(n / mine_s, 2))
    out["accuracy_by_confidence"] = accuracy_by_confidence(report.confidence, report.correct)
    print(report.summary(), f"[{flow_name}, {out['frames_per_second']} frames/s]", flush=True)
    print("  ordered accuracy per confidence quintile: " + ", ".join(
        f"[{lo:.2f}, {hi:.2f}] {acc:.1%} ({n})" for lo, hi, acc, n in out["accuracy_by_confidence"]), flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realdata", default=str(ROOT.parent / "shared" / "realdata"))
    ap.add_argument("--sequences", nargs="*", default=["tartanair_hospital", "hololens_office"])
    ap.add_argument("--flows", nargs="*", default=["dis", "true"])
    ap.add_argument("--raft", default=None, help="RAFT-small weights: adds a raft-small row")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="miner config override")
    ap.add_argument("--out", default="bench_out/realdata.json")
    ap.add_argument("--overlays", default=None, metavar="DIR", help="write right/wrong overlays here")
    args = ap.parse_args(argv)
    config = load_config(MinerConfig, assignments=args.set)
    flows = list(args.flows) + (["raft-small"] if args.raft else [])
    rows = []
    for name in args.sequences:
        seq = load_sequence(Path(args.realdata) / name)
        for flow in flows:
            rows.append(bench(seq, config, flow, args.raft, Path(args.overlays) if args.overlays else None))
    print()
    print("| sequence | flow | ordered right (graded) | equal right (graded) | pairs / mined frame | boundary px near depth edge | vote right (px) | flow EPE near edges | frames/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sequence']} | {r['flow']} | {r['ordered_accuracy']:.1%} ({r['ordered_graded']}) | "
              f"{r['equal_accuracy']:.1%} ({r['equal_graded']}) | {r['pairs_per_frame']} | "
              f"{r['boundary_within_3px_of_depth_edge']:.1%} | {r['vote_accuracy']:.1%} ({r['vote_graded_px']}) | "
              f"{r['flow_epe_near_edges']} | {r['frames_per_second']} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"config": config.model_dump(mode="json"), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
