"""Relative depth pair extraction, DynOcc sections 3.3-3.4.

Labels in, pairs out. For each boundary pixel p of a kept segment, with s the unit vector
pointing into the foreground:

* background point p_b = p − r_b·s, r_b random in [min_distance, 30] (paper: within 30 px),
  accepted only if it shares the background side's flow ("same-flow acceptance", resampled up
  to ``tries`` times, paper);
* foreground point p_f = p + r_f·s, r_f random in [min_distance, 7] (paper: within 7 px),
  accepted only if it shares the foreground side's flow;
* one ordered pair (p, p_b) with p closer, one equal pair (p, p_f) (paper).

Ours, because DIS spreads the occluder's motion 3-8 px into the background so that p itself is
often on the background side: p is replaced by an *anchor* ``anchor_offset``-7 px into the
foreground (within the paper's 7 px), the side motions are read ``side_flow_offset`` px out
(beyond the bleed), and every point must pass a photometric side test (:func:`side_test`): its
patch (a 5-pixel cross), moved by its own side's motion, must match the nearby frame clearly
better than when moved by the other side's. The point ``point_margin`` px nearer the boundary
must pass too. A foreground point (anchor, p_f) must pass in both nearby frames; a background
point in at least one (near the edge it may be hidden in the other). Boundary pixels whose two
sides move alike (``min_motion_difference``) give no pairs.

Cost: each search draws its tries in three rounds (1, 3, the rest) over all points at once, and
the background and foreground points are only searched for boundary pixels that got an anchor.

Output convention (schema v1): ordinal +1 = A closer than B. Half of the ordered pairs are
stored as (p_b, p, −1) so that the ordinals are balanced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from dynocc.factory.config import PairConfig, VoteConfig
from dynocc.factory.core.sampling import inside, sample
from dynocc.factory.core.vote import BoundaryPixels

_PATCH = np.array([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)], np.float32)


@dataclass(frozen=True)
class PairSet:
    """Pairs of one frame in schema-v1 terms (+1: A closer)."""

    ya: np.ndarray  # int16
    xa: np.ndarray
    yb: np.ndarray
    xb: np.ndarray
    ordinal: np.ndarray  # int8
    confidence: Optional[np.ndarray] = None  # float32 in [0, 1] per pair (see pair_confidence), or None

    def __len__(self) -> int:
        return len(self.ordinal)

    @staticmethod
    def empty() -> "PairSet":
        z = np.zeros(0, np.int16)
        return PairSet(z, z, z, z, np.zeros(0, np.int8), np.zeros(0, np.float32))


def pair_confidence(vote_margin: np.ndarray, motion_difference: np.ndarray, photometric_ratio: np.ndarray,
                    flow_deviation: np.ndarray, config: VoteConfig, flow_tolerance: float) -> np.ndarray:
    """Confidence of a pair in [0, 1] from evidence the miner already has (ours; no learned weights):

    * the segment's vote margin m in [0, 1] (:func:`dynocc.factory.core.vote.vote_with_margin`): how far
      past δ the weaker of the two nearby frames' eq.-4 scores is;
    * the motion difference d between the two sides, px (the larger over the nearby frames): an
      edge whose sides move alike is decided by flow noise; ``1 − exp(−d / motion_scale)``;
    * the photometric ratio r of the closer point (its patch error under its own side's motion
      over that under the other side's, the worse over the nearby frames): ``1 − r``;
    * how far the closer point's own flow is from its side's motion, e px (the worse over the nearby
      frames; at most the same-flow tolerance τ, or it would not be a pair): ``exp(−e / τ)``. A point
      on a thin structure, or beside a misplaced edge, moves unlike the side it was given (measured
      on the realdata sequences: without this factor the surest fifth of TartanAir's pairs was the
      least often right, 77%; with it 98%, and 98% on HoloLens).

    The product of ``0.5 + 0.5 m`` and the three other terms: each factor is 1 for overwhelming
    evidence and small for evidence at the edge of what the miner accepts."""
    m = 0.5 + 0.5 * np.clip(vote_margin, 0.0, 1.0)
    d = 1.0 - np.exp(-np.maximum(motion_difference, 0.0) / config.confidence_motion_scale)
    r = 1.0 - np.clip(photometric_ratio, 0.0, 1.0)
    f = np.exp(-np.maximum(flow_deviation, 0.0) / flow_tolerance)
    return np.clip(m * d * r * f, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class FrameContext:
    """Frame t as grey float32, its two neighbours, and the flows to them."""

    gray: np.ndarray
    neighbours: tuple[np.ndarray, ...]  # grey float32 frames t−b, t+b
    flows: tuple[np.ndarray, ...]  # F from t to each neighbour


def patch_error(ctx: FrameContext, which: int, x: np.ndarray, y: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """Mean absolute grey difference of the patch at (x, y) in t and at (x, y) + motion in neighbour ``which``."""
    px = x[:, None] + _PATCH[None, :, 0]
    py = y[:, None] + _PATCH[None, :, 1]
    here = sample(ctx.gray, px, py)
    there = sample(ctx.neighbours[which], px + motion[:, 0:1], py + motion[:, 1:2])
    return np.abs(here - there).mean(axis=1)


def side_test(ctx: FrameContext, x, y, own: list[np.ndarray], other: list[np.ndarray], vote: VoteConfig) -> np.ndarray:
    """Photometric side test in each nearby frame k: the patch at each point moves with ``own[k]``
    (mean error at most ``photometric_max_error``) and clearly not with ``other[k]`` (error below
    ``photometric_margin`` times the other's).

    ``x``, ``y``: (n,) or (n, m) points, ``m`` points sharing the motions (n, 2) of their row.
    Returns (n, K) or (n, m, K) bool.
    """
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    flat = x.ndim == 1
    if flat:
        x, y = x[:, None], y[:, None]
    n, m = x.shape
    p = len(_PATCH)
    px = (x[:, :, None] + _PATCH[None, None, :, 0]).reshape(n, m * p)
    py = (y[:, :, None] + _PATCH[None, None, :, 1]).reshape(n, m * p)
    here = sample(ctx.gray, px, py)
    here2 = np.concatenate([here, here])
    out = np.empty((n, m, len(ctx.neighbours)), bool)
    limit = vote.photometric_max_error * p
    for k, nb in enumerate(ctx.neighbours):
        qx = np.concatenate([px + own[k][:, 0:1], px + other[k][:, 0:1]])
        qy = np.concatenate([py + own[k][:, 1:2], py + other[k][:, 1:2]])
        err = np.abs(here2 - sample(nb, qx, qy)).reshape(2 * n, m, p).sum(axis=2)
        e_own, e_other = err[:n], err[n:]
        out[:, :, k] = (e_own <= limit) & (e_own < vote.photometric_margin * e_other)
    return out[:, 0] if flat else out


def matches_motion(ctx, which, x, y, own, other, vote: VoteConfig) -> np.ndarray:
    """Photometric side test in one nearby frame: the point moves with ``own`` and clearly not with ``other``."""
    e_own = patch_error(ctx, which, x, y, own)
    e_other = patch_error(ctx, which, x, y, other)
    return (e_own <= vote.photometric_max_error) & (e_own < vote.photometric_margin * e_other)


def flow_deviation_sq(ctx: FrameContext, x, y, motions: list[np.ndarray]) -> np.ndarray:
    """Per point: the largest squared distance, over the nearby frames, between the flow at (x, y)
    and the side's motion there, px²."""
    worst = np.zeros(len(x), np.float32)
    for flow, motion in zip(ctx.flows, motions):
        d = sample(flow, x, y) - motion
        worst = np.maximum(worst, d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
    return worst


def same_flow(ctx: FrameContext, x, y, motions: list[np.ndarray], tol: float) -> np.ndarray:
    """The paper's acceptance test: the flow at (x, y) equals the side's motion in every neighbour."""
    return flow_deviation_sq(ctx, x, y, motions) <= tol * tol


def _search(ctx, x0, y0, sx, sy, lo, hi, tries, rng, test) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random offsets in [lo, hi] along (sx, sy) until ``test`` passes, at most ``tries`` per point;
    returns x, y, found. Vectorised over points, and over tries in a few rounds (1, 3, the rest):
    a point takes its first passing offset, as if they were drawn one by one."""
    n = len(x0)
    bx, by, found = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, bool)
    rounds = [k for k in (1, 3, tries - 4) if k > 0] if tries > 4 else [1] * tries
    for k in rounds:
        todo = np.nonzero(~found)[0]
        if len(todo) == 0:
            break
        r = rng.uniform(lo, hi, (len(todo), k)).astype(np.float32)
        cx = np.rint(x0[todo, None] + r * sx[todo, None])
        cy = np.rint(y0[todo, None] + r * sy[todo, None])
        ok = test(np.repeat(todo, k), cx.ravel(), cy.ravel()).reshape(len(todo), k)
        hit = ok.any(axis=1)
        first = ok.argmax(axis=1)[hit]
        j = todo[hit]
        bx[j], by[j], found[j] = cx[hit, first], cy[hit, first], True
    return bx, by, found


def extract_pairs(
    pixels: BoundaryPixels,
    segment_label: np.ndarray,
    ctx: FrameContext,
    pair_cfg: PairConfig,
    vote_cfg: VoteConfig,
    rng: np.random.Generator,
    segment_margin: Optional[np.ndarray] = None,
) -> PairSet:
    """Ordered and equal pairs for the boundary pixels of segments with a foreground side;
    ``segment_margin`` (per segment, :func:`dynocc.factory.core.vote.vote_with_margin`) enters each pair's
    confidence (:func:`pair_confidence`; 1 when not given)."""
    side = segment_label[pixels.segment].astype(np.float32) if len(pixels) else np.zeros(0, np.float32)
    keep = np.nonzero(side != 0)[0]
    if pair_cfg.max_pairs_per_frame and len(keep) > pair_cfg.max_pairs_per_frame:
        keep = np.sort(rng.choice(keep, pair_cfg.max_pairs_per_frame, replace=False))
    if len(keep) == 0:
        return PairSet.empty()
    h, w = ctx.gray.shape
    x = pixels.xs[keep].astype(np.float32)
    y = pixels.ys[keep].astype(np.float32)
    sx = pixels.normal_x[keep] * side[keep]  # into the foreground
    sy = pixels.normal_y[keep] * side[keep]
    margin = (np.ones(len(keep), np.float32) if segment_margin is None
              else np.asarray(segment_margin, np.float32)[pixels.segment[keep]])

    # Side motions, read beyond the bleed of the flow across the edge.
    R = vote_cfg.side_flow_offset
    fg = [sample(f, x + R * sx, y + R * sy) for f in ctx.flows]
    bg = [sample(f, x - R * sx, y - R * sy) for f in ctx.flows]
    diff = np.max([np.sum((a - b) ** 2, axis=1) for a, b in zip(fg, bg)], axis=0)
    separable = np.nonzero(diff >= vote_cfg.min_motion_difference ** 2)[0]
    x, y, sx, sy = x[separable], y[separable], sx[separable], sy[separable]
    motion = np.sqrt(diff[separable])
    margin = margin[separable]
    fg = [f[separable] for f in fg]
    bg = [b[separable] for b in bg]

    # A point passes when it, and the point ``point_margin`` px nearer the boundary, move with its side.
    m = pair_cfg.point_margin

    def side_ok(idx, cx, cy, toward, own, other, everywhere):
        ok = inside(cx, cy, w, h, 2) & same_flow(ctx, cx, cy, [o[idx] for o in own], pair_cfg.same_flow_tolerance)
        i = np.nonzero(ok)[0]
        if len(i) == 0:
            return ok
        j = idx[i]
        qx = np.stack([cx[i], cx[i] - m * toward[0][j]], axis=1)
        qy = np.stack([cy[i], cy[i] - m * toward[1][j]], axis=1)
        passed = side_test(ctx, qx, qy, [o[j] for o in own], [o[j] for o in other], vote_cfg)  # (n, 2, K)
        passed = passed.all(axis=2) if everywhere else passed.any(axis=2)
        ok[i] = passed.all(axis=1)
        return ok

    def foreground_ok(idx, cx, cy):  # in every nearby frame: the foreground is never hidden
        return side_ok(idx, cx, cy, (sx, sy), fg, bg, True)

    def background_ok(idx, cx, cy):  # in at least one: near the edge it may be hidden in the other
        return side_ok(idx, cx, cy, (-sx, -sy), bg, fg, False)

    a = pair_cfg.anchor_offset
    a_hi = max(a, pair_cfg.foreground_max_distance)
    ax, ay, a_ok = _search(ctx, x, y, sx, sy, a, a_hi, pair_cfg.tries, rng, foreground_ok)
    sel = np.nonzero(a_ok)[0]
    ax, ay = ax[sel], ay[sel]
    x, y, sx, sy = x[sel], y[sel], sx[sel], sy[sel]
    motion, margin = motion[sel], margin[sel]
    fg = [f[sel] for f in fg]
    bg = [b[sel] for b in bg]
    bx, by, b_ok = _search(ctx, x, y, -sx, -sy, pair_cfg.min_distance, pair_cfg.background_max_distance,
                           pair_cfg.tries, rng, background_ok)
    fx, fy, f_ok = _search(ctx, x, y, sx, sy, pair_cfg.min_distance, pair_cfg.foreground_max_distance,
                           pair_cfg.tries, rng, foreground_ok)
    ordered = np.nonzero(b_ok)[0]
    equal = np.nonzero(f_ok & ((ax != fx) | (ay != fy)))[0]

    swap = rng.random(len(ordered)) < 0.5  # store half as (p_b, anchor, −1)
    ya = np.concatenate([np.where(swap, by[ordered], ay[ordered]), ay[equal]])
    xa = np.concatenate([np.where(swap, bx[ordered], ax[ordered]), ax[equal]])
    yb = np.concatenate([np.where(swap, ay[ordered], by[ordered]), fy[equal]])
    xb = np.concatenate([np.where(swap, ax[ordered], bx[ordered]), fx[equal]])
    ordinal = np.concatenate([np.where(swap, -1, 1), np.zeros(len(equal))]).astype(np.int8)
    # Photometric evidence of the closer point (the anchor): the worse own/other error ratio.
    ratio = np.zeros(len(ax), np.float32)
    for k in range(len(ctx.neighbours)):
        own = patch_error(ctx, k, ax, ay, fg[k])
        other = patch_error(ctx, k, ax, ay, bg[k])
        ratio = np.maximum(ratio, own / np.maximum(other, 1e-3))
    deviation = np.sqrt(flow_deviation_sq(ctx, ax, ay, fg))
    conf = pair_confidence(margin, motion, ratio, deviation, vote_cfg, pair_cfg.same_flow_tolerance)
    confidence = np.concatenate([conf[ordered], conf[equal]])
    return PairSet(ya.astype(np.int16), xa.astype(np.int16), yb.astype(np.int16), xb.astype(np.int16), ordinal,
                   confidence)
