"""The stereo branch on web-like pairs with true disparity: before/after table and confidence quintiles.

    .venv/bin/python benchmarks/bench_stereo.py [--out bench_out/stereo.json] [--seeds 3]

Scenes (dynocc.factory.testing.synthetic_stereo): Middlebury Motorcycle, upscaled x2 and x3, the rendered
table scene (disparities to 25% of the width), and Motorcycle with the right view JPEG-compressed
(q 70), shifted down 2 px, rotated 0.5 deg, 20% darker, and all four at once. Per scene and
configuration: EPE on valid pixels, valid fraction, sky fraction, ordered and equal accuracy (graded
counts), seconds. "flow only" is the stereo branch without this issue's additions that a config can
turn off (search_fraction=0, no exposure match, no misalignment correction, equal pairs by eq. 1 on
random pairs); the sky rule is the current one in both.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynocc.factory.config import StereoConfig  # noqa: E402
from dynocc.factory.core.stereo import stereo_depth  # noqa: E402
from dynocc.factory.core.stereo_pairs import sample_stereo_pairs  # noqa: E402
from dynocc.factory.testing.synthetic_stereo import (  # noqa: E402
    motorcycle, perturb_right_view, render_table_scene, stereo_pair_verdicts, upscale_pair)

CONFIGS = {
    "flow only": StereoConfig(search_fraction=0.0, match_exposure=False, correct_misalignment=False, equal_rule="eq1"),
    "default": StereoConfig(),
}


def scenes():
    m = motorcycle()
    yield "Motorcycle", m
    yield "Motorcycle x2", upscale_pair(m, 2)
    yield "Motorcycle x3", upscale_pair(m, 3)
    yield "table (25% of width)", render_table_scene(table_texture=8.0)
    yield "JPEG q70", perturb_right_view(m, jpeg_quality=70)
    yield "shift 2 px", perturb_right_view(m, dy=2.0)
    yield "rotate 0.5 deg", perturb_right_view(m, angle_deg=0.5)
    yield "20% darker", perturb_right_view(m, gain=0.8)
    yield "all four", perturb_right_view(m, dy=2.0, angle_deg=0.5, gain=0.8, jpeg_quality=70)


def measure(scene, config: StereoConfig, seeds: int) -> dict:
    start = time.perf_counter()
    depth = stereo_depth(scene.left, scene.right, config=config)
    seconds = time.perf_counter() - start
    out = {"ok": depth.ok, "seconds": seconds, "reject": depth.result.reject_reason}
    if not depth.ok:
        return out
    known_px = np.isfinite(scene.disparity) & depth.valid
    right, ordered, conf = [], [], []
    for seed in range(seeds):
        p = sample_stereo_pairs(depth.result.disparity, depth.valid, depth.sky, rng=seed, config=config,
                                uncertainty=depth.result.uncertainty)
        known, ok, is_ordered = stereo_pair_verdicts(p, scene.disparity)
        right.append(ok[known])
        ordered.append(is_ordered[known])
        conf.append(p.confidence[known])
    right, ordered, conf = map(np.concatenate, (right, ordered, conf))
    out.update(
        epe_valid=float(np.abs(depth.result.disparity - scene.disparity)[known_px].mean()),
        valid=float(depth.valid.mean()), sky=float(depth.sky.mean()),
        ordered=float(right[ordered].mean()), n_ordered=int(ordered.sum()),
        equal=float(right[~ordered].mean()) if (~ordered).any() else float("nan"), n_equal=int((~ordered).sum()),
        right=right, confidence=conf)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench_out/stereo.json")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    rows, pooled = [], {"right": [], "confidence": []}
    print(f"{'scene':22s} {'config':10s} {'EPE px':>7s} {'valid':>6s} {'sky':>6s} {'ordered right (n)':>20s} "
          f"{'equal right (n)':>17s} {'s':>6s}")
    for name, scene in scenes():
        for cname, cfg in CONFIGS.items():
            r = measure(scene, cfg, args.seeds)
            if not r["ok"]:
                print(f"{name:22s} {cname:10s} rejected: {r['reject']}")
                rows.append({"scene": name, "config": cname, "ok": False, "reject": r["reject"]})
                continue
            print(f"{name:22s} {cname:10s} {r['epe_valid']:7.2f} {r['valid']:6.1%} {r['sky']:6.2%} "
                  f"{r['ordered']:10.2%} ({r['n_ordered']:6d}) {r['equal']:8.1%} ({r['n_equal']:5d}) {r['seconds']:6.2f}")
            if cname == "default" and name in ("Motorcycle", "JPEG q70", "shift 2 px", "rotate 0.5 deg", "20% darker",
                                               "all four"):
                pooled["right"].append(r["right"])
                pooled["confidence"].append(r["confidence"])
            rows.append({k: v for k, v in r.items() if k not in ("right", "confidence")} | {"scene": name, "config": cname})
    right, conf = np.concatenate(pooled["right"]), np.concatenate(pooled["confidence"])
    edges = np.quantile(conf, [0.2, 0.4, 0.6, 0.8])
    bins = np.minimum(np.searchsorted(edges, conf, side="right"), 4)
    quintiles = [float(right[bins == k].mean()) for k in range(5)]
    print(f"\naccuracy per confidence quintile, Motorcycle and its flawed versions pooled ({len(conf)} pairs): "
          + ", ".join(f"{q:.1%}" for q in quintiles))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "confidence_quintiles": quintiles,
                                          "quintile_edges": edges.tolist()}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
