"""Real footage with true depth: load it, compute its true flow, grade mined pairs and stages against it.

``shared/realdata/`` (see its README) holds camera sequences with per-pixel depth (uint16 PNG, mm
along the optical axis, 0 = unknown, 65535 = farther than 65.534 m), intrinsics ``K.txt`` and
camera-to-world poses ``poses.txt`` (OpenCV axes, metres). This module:

* :func:`load_sequence` reads one folder (images and depth lazily, per frame);
* :func:`true_flow` reprojects every pixel's 3-D point of frame i into frame j: the exact optical
  flow of a static scene, and the depth the point has in frame j; :func:`true_occlusion` marks the
  pixels of i hidden (or out of view) in j by comparing that depth with frame j's own depth;
* :func:`grade_pairs` grades pairs the way the realdata README asks: a point's depth is the median
  of the valid depths in a (2r+1)² window; the point is ungradable where that window straddles a
  depth edge (80th/20th percentile ratio ≥ ``edge_ratio``) or holds too few valid depths; an
  ordered pair is graded where the two depths differ by ≥ ``ordered_min_ratio`` (3%), an equal
  pair is right where they differ by < ``equal_max_ratio`` (5%);
* stage graders: true depth edges, flow end-point error near them, boundary distance to them, and
  the accuracy of the per-pixel foreground side.

Pure NumPy/OpenCV; no Ray, no I/O beyond reading the folder.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

FAR_CODE = 65535  # depth PNG value for "farther than 65.534 m"
FAR_DEPTH = 1000.0  # metres given to far pixels: farther than anything measured


@dataclass(frozen=True)
class RealSequence:
    """One realdata folder: frame names in time order, intrinsics, camera-to-world poses."""

    root: Path
    names: tuple[str, ...]
    K: np.ndarray  # (3, 3) float64
    poses: np.ndarray  # (N, 4, 4) float64, camera-to-world

    @property
    def name(self) -> str:
        return self.root.name

    def __len__(self) -> int:
        return len(self.names)

    def image(self, i: int) -> np.ndarray:
        """RGB uint8 (H, W, 3) of frame i."""
        bgr = cv2.imread(str(self.root / "frames" / f"{self.names[i]}.jpg"), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(self.root / "frames" / f"{self.names[i]}.jpg")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def depth(self, i: int) -> np.ndarray:
        """float32 (H, W) depth along the optical axis in metres; NaN = unknown, FAR_DEPTH = far."""
        raw = cv2.imread(str(self.root / "depth" / f"{self.names[i]}.png"), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise FileNotFoundError(self.root / "depth" / f"{self.names[i]}.png")
        d = raw.astype(np.float32) / 1000.0
        d[raw == 0] = np.nan
        d[raw == FAR_CODE] = FAR_DEPTH
        return d

    def images(self, indices=None) -> list[np.ndarray]:
        return [self.image(i) for i in (range(len(self)) if indices is None else indices)]


def load_sequence(root: str | Path) -> RealSequence:
    """Read ``K.txt`` and ``poses.txt`` of a realdata folder (frames and depth are read per frame)."""
    root = Path(root)
    K = np.loadtxt(root / "K.txt", dtype=np.float64).reshape(3, 3)
    names, poses = [], []
    for line in (root / "poses.txt").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        names.append(parts[0])
        poses.append(np.array([float(v) for v in parts[1:17]], np.float64).reshape(4, 4))
    order = np.argsort(names)
    names = [names[k] for k in order]
    have = {p.stem for p in (root / "frames").glob("*.jpg")}
    keep = [k for k, n in enumerate(names) if n in have]
    return RealSequence(root, tuple(names[k] for k in keep), K, np.stack([poses[order[k]] for k in keep]))


# ---------------------------------------------------------------------------------------------
# True flow and occlusion of a static scene


def fill_depth(depth: np.ndarray) -> np.ndarray:
    """Unknown (NaN) depths replaced by the nearest valid one (for a dense true flow)."""
    bad = ~np.isfinite(depth)
    if not bad.any():
        return depth
    if bad.all():
        raise ValueError("no valid depth")
    _, labels = cv2.distanceTransformWithLabels(bad.astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(~bad)
    table = np.zeros(labels.max() + 1, np.float32)
    table[labels[ys, xs]] = depth[ys, xs]
    return table[labels]


def reproject(depth: np.ndarray, K: np.ndarray, pose_i: np.ndarray, pose_j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel's 3-D point of frame i seen from camera j: (flow (H, W, 2) float32, depth in j (H, W))."""
    h, w = depth.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    Kinv = np.linalg.inv(K)
    rays = np.stack([xs, ys, np.ones_like(xs)], -1) @ Kinv.T  # z = 1
    pts = rays * depth[..., None].astype(np.float64)
    rel = np.linalg.inv(pose_j) @ pose_i  # camera i -> camera j
    pj = pts @ rel[:3, :3].T + rel[:3, 3]
    z = pj[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = pj @ K.T
        u = uv[..., 0] / uv[..., 2]
        v = uv[..., 1] / uv[..., 2]
    flow = np.stack([u - xs, v - ys], -1).astype(np.float32)
    flow[~(z > 1e-6)] = np.nan
    return flow, z.astype(np.float32)


def true_flow(seq: RealSequence, i: int, j: int, depth_i: Optional[np.ndarray] = None, fill: bool = False) -> np.ndarray:
    """True optical flow F(i→j), (H, W, 2) float32; NaN where frame i's depth is unknown (unless ``fill``)."""
    d = seq.depth(i) if depth_i is None else depth_i
    if fill:
        d = fill_depth(d)
    return reproject(d, seq.K, seq.poses[i], seq.poses[j])[0]


def true_occlusion(seq: RealSequence, i: int, j: int, depth_i=None, depth_j=None, tolerance: float = 0.03) -> np.ndarray:
    """bool (H, W): pixels of frame i that are hidden in frame j (its depth there is more than
    ``tolerance`` behind frame j's surface) or fall outside it. Unknown depth counts as visible."""
    di = seq.depth(i) if depth_i is None else depth_i
    dj = seq.depth(j) if depth_j is None else depth_j
    flow, z = reproject(di, seq.K, seq.poses[i], seq.poses[j])
    h, w = di.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xs + flow[..., 0], ys + flow[..., 1]
    outside = (u < 0) | (v < 0) | (u > w - 1) | (v > h - 1)
    there = cv2.remap(dj, np.nan_to_num(u, nan=-1), np.nan_to_num(v, nan=-1), cv2.INTER_NEAREST,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    with np.errstate(invalid="ignore"):
        hidden = z > there * (1.0 + tolerance)
    return (outside | hidden) & np.isfinite(flow[..., 0])


# ---------------------------------------------------------------------------------------------
# Grading pairs


@dataclass(frozen=True)
class GradeRules:
    """How a pair is graded against measured depth (the realdata README's rules)."""

    window_radius: int = 2  # depth read as the median over a (2r+1)^2 window
    edge_ratio: float = 1.15  # window p80 / p20 at or above this: straddles an edge, ungradable
    min_valid_fraction: float = 0.5  # fewer valid depths in the window: ungradable
    ordered_min_ratio: float = 0.03  # ordered pairs are graded where depths differ by at least this
    equal_max_ratio: float = 0.05  # an equal pair is right where depths differ by less than this


def window_depth(depth: np.ndarray, ys, xs, rules: GradeRules = GradeRules()) -> np.ndarray:
    """Robust depth at points (ys, xs): the window median, NaN where the point is ungradable."""
    ys = np.asarray(ys, np.int64)
    xs = np.asarray(xs, np.int64)
    r = rules.window_radius
    h, w = depth.shape
    pad = np.pad(depth, r, constant_values=np.nan)
    oy, ox = np.mgrid[-r:r + 1, -r:r + 1]
    win = pad[(ys[:, None] + r + oy.ravel()[None, :]).clip(0, h + 2 * r - 1),
              (xs[:, None] + r + ox.ravel()[None, :]).clip(0, w + 2 * r - 1)]
    valid = np.isfinite(win)
    enough = valid.mean(axis=1) >= rules.min_valid_fraction
    out = np.full(len(ys), np.nan, np.float64)
    if not enough.any():
        return out
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # windows that are partly NaN
        med = np.nanmedian(win[enough], axis=1)
        p80 = np.nanpercentile(win[enough], 80, axis=1)
        p20 = np.nanpercentile(win[enough], 20, axis=1)
    flat = p80 / p20 < rules.edge_ratio
    idx = np.nonzero(enough)[0]
    out[idx[flat]] = med[flat]
    return out


@dataclass
class PairGrade:
    """Counts of one or more graded frames (add them with ``+``)."""

    ordered: int = 0  # ordered pairs mined
    ordered_graded: int = 0
    ordered_right: int = 0
    equal: int = 0
    equal_graded: int = 0
    equal_right: int = 0

    def __add__(self, other: "PairGrade") -> "PairGrade":
        return PairGrade(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple[int, ...]:
        return (self.ordered, self.ordered_graded, self.ordered_right, self.equal, self.equal_graded, self.equal_right)

    @property
    def ordered_accuracy(self) -> float:
        return self.ordered_right / self.ordered_graded if self.ordered_graded else float("nan")

    @property
    def equal_accuracy(self) -> float:
        return self.equal_right / self.equal_graded if self.equal_graded else float("nan")


def pair_truth(depth: np.ndarray, ya, xa, yb, xb, rules: GradeRules = GradeRules()):
    """Per pair: (gradable as ordered, true ordinal (+1 A closer / −1), gradable as equal, truly equal)."""
    da = window_depth(depth, ya, xa, rules)
    db = window_depth(depth, yb, xb, rules)
    both = np.isfinite(da) & np.isfinite(db)
    with np.errstate(all="ignore"):
        ratio = np.maximum(da, db) / np.minimum(da, db)
    ordered_ok = both & (ratio >= 1.0 + rules.ordered_min_ratio)
    truth = np.where(da < db, 1, -1).astype(np.int8)
    equal_true = both & (ratio < 1.0 + rules.equal_max_ratio)
    return ordered_ok, truth, both, equal_true


def grade_pairs(depth: np.ndarray, ya, xa, yb, xb, ordinal, rules: GradeRules = GradeRules()) -> PairGrade:
    """Grade one frame's pairs (schema v1: +1 = A closer) against its measured depth."""
    ordinal = np.asarray(ordinal)
    ordered_ok, truth, gradable, equal_true = pair_truth(depth, ya, xa, yb, xb, rules)
    o = ordinal != 0
    e = ~o
    return PairGrade(
        ordered=int(o.sum()),
        ordered_graded=int((o & ordered_ok).sum()),
        ordered_right=int((o & ordered_ok & (truth == ordinal)).sum()),
        equal=int(e.sum()),
        equal_graded=int((e & gradable).sum()),
        equal_right=int((e & equal_true).sum()),
    )


def pair_verdicts(depth: np.ndarray, ya, xa, yb, xb, ordinal, rules: GradeRules = GradeRules()) -> np.ndarray:
    """Per pair: +1 right, −1 wrong, 0 ungradable (for pictures)."""
    ordinal = np.asarray(ordinal)
    ordered_ok, truth, gradable, equal_true = pair_truth(depth, ya, xa, yb, xb, rules)
    o = ordinal != 0
    out = np.zeros(len(ordinal), np.int8)
    out[o & ordered_ok] = np.where(truth[o & ordered_ok] == ordinal[o & ordered_ok], 1, -1)
    out[~o & gradable] = np.where(equal_true[~o & gradable], 1, -1)
    return out


# ---------------------------------------------------------------------------------------------
# Stage graders


def depth_edges(depth: np.ndarray, min_ratio: float = 1.1) -> np.ndarray:
    """bool (H, W): pixels next to a depth discontinuity (a 4-neighbour whose depth differs by a
    ratio ≥ ``min_ratio``), on both sides of it. Unknown depth never makes an edge."""
    d = depth
    edge = np.zeros(d.shape, bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for a, b, sa, sb in (
            (d[:, 1:], d[:, :-1], (slice(None), slice(1, None)), (slice(None), slice(None, -1))),
            (d[1:, :], d[:-1, :], (slice(1, None), slice(None)), (slice(None, -1), slice(None))),
        ):
            jump = np.maximum(a, b) / np.minimum(a, b) >= min_ratio
            edge[sa] |= jump
            edge[sb] |= jump
    return edge


def distance_to(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) of every pixel to the nearest True pixel of ``mask`` (inf if none)."""
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)


def flow_epe(estimated: np.ndarray, truth: np.ndarray, where: np.ndarray) -> float:
    """Mean end-point error (px) of ``estimated`` against ``truth`` over ``where`` (and finite truth)."""
    ok = where & np.isfinite(truth[..., 0])
    if not ok.any():
        return float("nan")
    d = estimated[ok] - truth[ok]
    return float(np.sqrt((d ** 2).sum(axis=1)).mean())


def foreground_side_truth(depth: np.ndarray, ys, xs, sx, sy, reach: float = 8.0, rules: GradeRules = GradeRules()):
    """Per boundary pixel with a claimed foreground direction (sx, sy): +1 if the point ``reach`` px
    that way is truly nearer than the one ``reach`` px the other way, −1 if farther, 0 ungradable."""
    ys = np.asarray(ys, np.float32)
    xs = np.asarray(xs, np.float32)
    h, w = depth.shape
    fy = np.clip(np.rint(ys + reach * sy), 0, h - 1)
    fx = np.clip(np.rint(xs + reach * sx), 0, w - 1)
    by = np.clip(np.rint(ys - reach * sy), 0, h - 1)
    bx = np.clip(np.rint(xs - reach * sx), 0, w - 1)
    ordered_ok, truth, _, _ = pair_truth(depth, fy, fx, by, bx, rules)
    return np.where(ordered_ok, truth, 0).astype(np.int8)


# ---------------------------------------------------------------------------------------------
# Mining a sequence and grading every stage (tests and benchmarks/bench_realdata.py)


class TrueFlowBackend:
    """A flow backend that returns the true flow of a realdata sequence (holes filled with the
    nearest valid depth): the miner with perfect flow, to tell flow errors from method errors."""

    name = "true"

    def __init__(self, seq: RealSequence, frames: list[np.ndarray]):
        self.seq = seq
        self._index = {id(f): i for i, f in enumerate(frames)}
        self._depth: dict[int, np.ndarray] = {}

    def flows(self, pairs):
        out = []
        for a, b in pairs:
            i, j = self._index[id(a)], self._index[id(b)]
            if i not in self._depth:
                if len(self._depth) > 8:
                    self._depth.pop(next(iter(self._depth)))
                self._depth[i] = fill_depth(self.seq.depth(i))
            out.append(np.nan_to_num(true_flow(self.seq, i, j, self._depth[i])))
        return out


@dataclass
class SequenceReport:
    """What grading one mined sequence measured (pairs, and each stage against true depth)."""

    name: str
    frames: int = 0  # frames with both neighbours (mined, with or without pairs)
    pairs: int = 0
    grade: PairGrade = field(default_factory=PairGrade)
    boundary_pixels: int = 0
    boundary_near_edge: int = 0  # within 3 px of a true depth edge
    vote_right: int = 0  # voted boundary pixels whose foreground side is truly nearer
    vote_graded: int = 0
    flow_epe_near_edges: float = float("nan")  # mean EPE within 5 px of depth edges (visible pixels)
    flow_epe_all: float = float("nan")
    seconds: float = 0.0  # mining (when ``mined`` is a generator) and grading
    confidence: list = field(default_factory=list)  # per graded ordered pair: its pair_confidence
    correct: list = field(default_factory=list)  # ... and whether it was right

    @property
    def pairs_per_frame(self) -> float:
        return self.pairs / self.frames if self.frames else 0.0

    def as_dict(self) -> dict:
        g = self.grade
        return {
            "sequence": self.name, "frames": self.frames, "pairs": self.pairs,
            "pairs_per_frame": round(self.pairs_per_frame, 2),
            "ordered_accuracy": round(g.ordered_accuracy, 4), "ordered_graded": g.ordered_graded,
            "equal_accuracy": round(g.equal_accuracy, 4), "equal_graded": g.equal_graded,
            "boundary_px_per_frame": round(self.boundary_pixels / max(self.frames, 1), 1),
            "boundary_within_3px_of_depth_edge": round(self.boundary_near_edge / max(self.boundary_pixels, 1), 4),
            "vote_accuracy": round(self.vote_right / max(self.vote_graded, 1), 4), "vote_graded_px": self.vote_graded,
            "flow_epe_near_edges": round(self.flow_epe_near_edges, 3), "flow_epe_all": round(self.flow_epe_all, 3),
        }

    def summary(self) -> str:
        d = self.as_dict()
        return (f"{self.name}: ordered {d['ordered_accuracy']:.3f} of {d['ordered_graded']} graded, equal "
                f"{d['equal_accuracy']:.3f} of {d['equal_graded']}, {d['pairs_per_frame']:.1f} pairs per mined frame "
                f"({self.frames} frames); boundary px {d['boundary_px_per_frame']}/frame, "
                f"{d['boundary_within_3px_of_depth_edge']:.3f} within 3 px of a depth edge; vote "
                f"{d['vote_accuracy']:.3f} of {d['vote_graded_px']} px; flow EPE near edges {d['flow_epe_near_edges']}")


def grade_sequence(seq: RealSequence, mined, rules: GradeRules = GradeRules(), flow_sample_every: int = 0,
                   flow_backend=None, baseline: int = 2, edge_ratio: float = 1.05) -> SequenceReport:
    """Grade mined frames (``MinedFrame``, with maps if the stage figures are wanted) of ``seq``.

    ``flow_sample_every`` > 0 also measures the flow backend's EPE against the true flow t→t+b on
    every n-th frame (near depth edges and over all visible pixels)."""
    report = SequenceReport(seq.name)
    t0 = time.perf_counter()
    epe_near, epe_all = [], []
    for mf in mined:
        t = mf.frame_index
        depth = seq.depth(t)
        p = mf.pairs
        report.frames += 1
        report.pairs += len(p)
        report.grade = report.grade + grade_pairs(depth, p.ya, p.xa, p.yb, p.xb, p.ordinal, rules)
        if p.confidence is not None and len(p):
            verdict = pair_verdicts(depth, p.ya, p.xa, p.yb, p.xb, p.ordinal, rules)
            graded = (verdict != 0) & (p.ordinal != 0)
            report.confidence.extend(p.confidence[graded].tolist())
            report.correct.extend((verdict[graded] == 1).tolist())
        if mf.boundary is None:
            continue
        edges = depth_edges(depth, edge_ratio)
        dist = distance_to(edges)
        ys, xs = np.nonzero(mf.boundary)
        report.boundary_pixels += len(ys)
        report.boundary_near_edge += int((dist[ys, xs] <= 3).sum())
        ys, xs = np.nonzero(mf.segment_label)
        v = foreground_side_truth(depth, ys, xs, mf.foreground_dir[ys, xs, 0], mf.foreground_dir[ys, xs, 1], rules=rules)
        report.vote_right += int((v == 1).sum())
        report.vote_graded += int((v != 0).sum())
        if flow_backend is not None and flow_sample_every and t % flow_sample_every == 0 and t + baseline < len(seq):
            est = flow_backend.flows([(seq.image(t), seq.image(t + baseline))])[0]
            truth = true_flow(seq, t, t + baseline, depth)
            visible = ~true_occlusion(seq, t, t + baseline, depth)
            epe_near.append(flow_epe(est, truth, visible & (dist <= 5)))
            epe_all.append(flow_epe(est, truth, visible))
    report.seconds = time.perf_counter() - t0
    if epe_near:
        report.flow_epe_near_edges = float(np.nanmean(epe_near))
        report.flow_epe_all = float(np.nanmean(epe_all))
    return report


def accuracy_by_confidence(confidence, correct, bins: int = 5) -> list[tuple[float, float, float, int]]:
    """Ordered-pair accuracy per confidence quantile bin (quintiles by default):
    [(lowest confidence, highest confidence, accuracy, graded pairs)], from least to most confident."""
    c = np.asarray(confidence, np.float64)
    ok = np.asarray(correct, bool)
    if len(c) == 0:
        return []
    order = np.argsort(c, kind="stable")
    out = []
    for part in np.array_split(order, bins):
        if len(part):
            out.append((float(c[part].min()), float(c[part].max()), float(ok[part].mean()), int(len(part))))
    return out
