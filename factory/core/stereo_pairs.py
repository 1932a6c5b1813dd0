"""Ordinal pairs from a dense relative inverse-depth map, ReDWeb section 3.2 (eq. 1).

ReDWeb eq. 1 labels a pair (i, j) from the ratio of their *depths* g with σ = 0.02 (the paper,
following its ref. [33]): ``+1 if g_i/g_j > 1+σ``, ``−1 if g_j/g_i > 1+σ``, else 0 — where the
paper's +1 means i is *further*. Our schema v1 uses the opposite sign (+1 = A closer), and our maps
hold inverse depth q = 1/g (:mod:`dynocc.factory.core.stereo`), so the same rule reads, for A = i, B = j:

* ``q_A > (1+σ)·q_B``  (g_B/g_A > 1+σ, A closer)  -> **+1**
* ``q_B > (1+σ)·q_A``  (g_A/g_B > 1+σ, B closer)  -> **−1**
* otherwise                                      -> 0

written as products so that q = 0 needs no division: sky pixels have q = 0 (infinitely far), so any
valid pixel with q > 0 is closer than the sky, and two sky pixels are equal. Negative q (a noisy
d < 0) is clipped to 0. Conversion to the paper's sign happens only at the edge
(:func:`to_redweb_ordinal`), never in the schema.

Two kinds of pairs (the paper draws 3K random pairs per image online during training; we store
``random_pairs + edge_pairs`` = 1,000 + 1,000 per image by default):

* **random**: A and B uniform over the usable pixels (valid or sky), A != B;
* **edge**: pairs across strong inverse-depth gradients. Invalid pixels (occlusions, smeared flow
  at depth edges — the left-right check removes exactly those) are filled with the nearest usable
  value, the filled map (normalised by its p99) is smoothed (Gaussian σ = ``edge_smoothing``) and an
  edge pixel c is one with |∇| > ``edge_threshold`` per px that is a local maximum of |∇| along
  ∇ (non-maximum suppression: c sits mid-step). From c, along ±∇/|∇|, walk to the first
  usable pixel within ``edge_search`` px, then a further uniform 0..``edge_offset`` px; both ends
  must be usable. The end on the +∇ side is A (it should be the closer), and half of the pairs are
  stored swapped so that the ordinals are balanced; the label always comes from eq. 1.

Invalid pixels are never used. If fewer pairs can be drawn (a small usable area, few edges), fewer
are returned.
"""

from __future__ import annotations

from typing import Optional, Union

import cv2
import numpy as np

from dynocc.factory.config import StereoConfig
from dynocc.factory.core.pairs import PairSet
from dynocc.factory.core.sampling import nearest_fill, sample

_ROUNDS = 4  # edge-pair draws: up to this many rounds of candidates ...
_OVERSAMPLE = 3  # ... each this many times the pairs still missing (ours: ~60% of candidates give a pair)


def ordinal_from_inverse_depth(q_a: np.ndarray, q_b: np.ndarray, sigma: float = 0.02) -> np.ndarray:
    """ReDWeb eq. 1 on inverse depth, in schema-v1 sign: +1 A closer, −1 B closer, 0 equal (int8)."""
    q_a = np.maximum(np.asarray(q_a, np.float64), 0.0)
    q_b = np.maximum(np.asarray(q_b, np.float64), 0.0)
    out = np.zeros(np.broadcast(q_a, q_b).shape, np.int8)
    out[q_a > (1.0 + sigma) * q_b] = 1
    out[q_b > (1.0 + sigma) * q_a] = -1
    return out


def to_redweb_ordinal(ordinal: np.ndarray) -> np.ndarray:
    """Schema v1 (+1 = A closer) -> ReDWeb's eq. 1 sign (+1 = A further). Its own inverse."""
    return (-np.asarray(ordinal)).astype(np.int8)


def _prepare(inv_depth, valid, sky):
    inv = np.asarray(inv_depth, np.float32)
    valid = np.asarray(valid, bool) & np.isfinite(inv)
    sky = np.zeros_like(valid) if sky is None else np.asarray(sky, bool)
    if inv.shape != valid.shape or inv.shape != sky.shape:
        raise ValueError(f"inv_depth {inv.shape}, valid {valid.shape}, sky {sky.shape} differ")
    q = np.where(valid & ~sky, np.maximum(np.nan_to_num(inv, nan=0.0), 0.0), 0.0).astype(np.float32)
    return q, valid | sky


def edge_field(q: np.ndarray, usable: np.ndarray, smoothing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient (gx, gy, per px) and magnitude of the inverse depth, gap-filled with the nearest
    usable value, divided by its p99 over usable pixels, smoothed with a Gaussian of σ = ``smoothing``
    px, 3x3 Sobel / 8 (ours; the paper samples random pairs only)."""
    scale = float(np.percentile(q[usable], 99)) if usable.any() else 0.0
    if scale <= 0:
        scale = float(q.max()) if q.max() > 0 else 1.0
    f = nearest_fill(q / scale, usable).astype(np.float32)
    if smoothing > 0:
        f = cv2.GaussianBlur(f, (0, 0), smoothing)
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return gx, gy, np.sqrt(gx * gx + gy * gy)


def edge_pixels(gx, gy, mag, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the ridge of |∇| above ``threshold``: no smaller than its two neighbours 1 px
    along ±∇ (non-maximum suppression), so that an edge pixel sits in the middle of the step and
    the two walks of :func:`_edge_pairs` end on opposite sides of it."""
    ys, xs = np.nonzero(mag > threshold)
    if len(ys) == 0:
        return ys, xs
    g = mag[ys, xs]
    ux, uy = gx[ys, xs] / g, gy[ys, xs] / g
    fx, fy = xs.astype(np.float32), ys.astype(np.float32)
    ahead = sample(mag, fx + ux, fy + uy)
    behind = sample(mag, fx - ux, fy - uy)
    ridge = (g >= ahead) & (g >= behind)
    return ys[ridge], xs[ridge]


def _random_pairs(usable: np.ndarray, n: int, rng: np.random.Generator):
    ys, xs = np.nonzero(usable)
    if n <= 0 or len(ys) < 2:
        return (np.zeros(0, np.int64),) * 4
    i = rng.integers(0, len(ys), n)
    j = rng.integers(0, len(ys) - 1, n)
    j = j + (j >= i)  # uniform over the others: A != B
    return ys[i], xs[i], ys[j], xs[j]


def _edge_pairs(q, usable, n, rng, cfg: StereoConfig):
    empty = (np.zeros(0, np.int64),) * 4
    if n <= 0 or usable.sum() < 2:
        return empty
    h, w = q.shape
    gx, gy, mag = edge_field(q, usable, cfg.edge_smoothing)
    cy, cx = edge_pixels(gx, gy, mag, cfg.edge_threshold)
    if len(cy) == 0:
        return empty
    steps = np.arange(1, cfg.edge_search + 1, dtype=np.float32)
    got: list[tuple[np.ndarray, ...]] = []
    have = 0
    for _ in range(_ROUNDS):
        m = _OVERSAMPLE * (n - have)
        k = rng.integers(0, len(cy), m)
        y0, x0 = cy[k].astype(np.float32), cx[k].astype(np.float32)
        g = mag[cy[k], cx[k]]
        ux, uy = gx[cy[k], cx[k]] / g, gy[cy[k], cx[k]] / g
        ends = []
        for sign in (1.0, -1.0):
            px = np.rint(x0[:, None] + sign * steps[None] * ux[:, None]).astype(np.int64)
            py = np.rint(y0[:, None] + sign * steps[None] * uy[:, None]).astype(np.int64)
            inside = (px >= 0) & (py >= 0) & (px < w) & (py < h)
            hit = inside & usable[np.clip(py, 0, h - 1), np.clip(px, 0, w - 1)]
            t = steps[hit.argmax(axis=1)] + rng.uniform(0.0, cfg.edge_offset, m).astype(np.float32)
            x = np.rint(x0 + sign * t * ux).astype(np.int64)
            y = np.rint(y0 + sign * t * uy).astype(np.int64)
            ok = hit.any(axis=1) & (x >= 0) & (y >= 0) & (x < w) & (y < h)
            ok[ok] &= usable[y[ok], x[ok]]
            ends.append((y, x, ok))
        (ya, xa, oka), (yb, xb, okb) = ends
        keep = np.nonzero(oka & okb & ((ya != yb) | (xa != xb)))[0][: n - have]
        got.append((ya[keep], xa[keep], yb[keep], xb[keep]))
        have += len(keep)
        if have >= n:
            break
    ya, xa, yb, xb = (np.concatenate(c) for c in zip(*got))
    swap = rng.random(len(ya)) < 0.5  # balance: half stored as (farther side, closer side)
    return (np.where(swap, yb, ya), np.where(swap, xb, xa), np.where(swap, ya, yb), np.where(swap, xa, xb))


def _near_pairs(q, usable, n, rng, cfg: StereoConfig):
    """Candidate equal pairs: A uniform over usable non-sky pixels, B ``equal_min_distance`` to
    ``equal_max_distance`` px away in a random direction, B and the midpoint usable (no occlusion gap,
    i.e. no depth edge the left-right check removed, between them)."""
    h, w = q.shape
    ys, xs = np.nonzero(usable)
    if n <= 0 or len(ys) < 2:
        return (np.zeros(0, np.int64),) * 4
    m = 3 * n
    i = rng.integers(0, len(ys), m)
    r = rng.uniform(cfg.equal_min_distance, cfg.equal_max_distance, m)
    phi = rng.uniform(0.0, 2.0 * np.pi, m)
    ya, xa = ys[i], xs[i]
    yb = np.rint(ya + r * np.sin(phi)).astype(np.int64)
    xb = np.rint(xa + r * np.cos(phi)).astype(np.int64)
    ym = np.rint(ya + 0.5 * r * np.sin(phi)).astype(np.int64)
    xm = np.rint(xa + 0.5 * r * np.cos(phi)).astype(np.int64)
    ok = (xb >= 0) & (yb >= 0) & (xb < w) & (yb < h) & ((xb != xa) | (yb != ya))
    ok[ok] &= usable[yb[ok], xb[ok]] & usable[ym[ok], xm[ok]]
    keep = np.nonzero(ok)[0]
    return ya[keep], xa[keep], yb[keep], xb[keep]


def stereo_pair_confidence(q_a, q_b, u_a, u_b, ordinal, sigma: float, sky_a=None, sky_b=None,
                           ordered_scale: float = 1.0) -> np.ndarray:
    """Confidence in [0, 1] of stereo pairs (ours; the same ``pair_confidence`` column as the video miner).

    ``q``: inverse depth (disparity) at the two ends, ``u``: its uncertainty there, same units
    (:func:`dynocc.factory.core.stereo.disparity_uncertainty`). The evidence is how far the estimate lies
    from eq. 1's decision boundary in units of the combined uncertainty u_a + u_b:

    * ordered pairs: ``z = (|q_a − q_b| − σ·min(q_a, q_b)) / (u_a + u_b)``;
    * equal pairs: ``z = (σ·min(q_a, q_b) − |q_a − q_b|) / (u_a + u_b)``;

    confidence ``1 − exp(−z / k)`` (0 at the boundary), k = 1 for equal pairs and ``ordered_scale``
    for ordered ones (their gaps are tens of px against an uncertainty below 1 px). Sky is certain where it is (q = 0, u = 0): a pair
    of two sky pixels is equal with confidence 1."""
    q_a = np.maximum(np.asarray(q_a, np.float64), 0.0)
    q_b = np.maximum(np.asarray(q_b, np.float64), 0.0)
    u = np.maximum(np.asarray(u_a, np.float64) + np.asarray(u_b, np.float64), 1e-6)
    gap = np.abs(q_a - q_b)
    bound = sigma * np.minimum(q_a, q_b)
    ordered = np.asarray(ordinal) != 0
    z = np.where(ordered, (gap - bound) / ordered_scale, bound - gap) / u
    conf = 1.0 - np.exp(-np.maximum(z, 0.0))
    if sky_a is not None and sky_b is not None:
        conf = np.where(np.asarray(sky_a) & np.asarray(sky_b), 1.0, conf)
    return conf.astype(np.float32)


RANDOM, EDGE, NEAR = 0, 1, 2  # kinds of pair (see sample_stereo_pairs)

# ReDWeb's online sampling as the paper does it (every drawn pair labelled by eq. 1, exactly the
# requested counts): what the trainer draws from stored maps, and what evaluation draws from a true map.
PAPER_SAMPLING = StereoConfig(equal_rule="eq1")


def sample_stereo_pairs(
    inv_depth: np.ndarray,
    valid: np.ndarray,
    sky: Optional[np.ndarray] = None,
    n_random: Optional[int] = None,
    n_edge: Optional[int] = None,
    sigma: Optional[float] = None,
    *,
    rng: Union[np.random.Generator, int],
    config: Optional[StereoConfig] = None,
    uncertainty: Optional[np.ndarray] = None,
    return_kinds: bool = False,
):
    """Random, depth-edge and near-equal pairs of one image, labelled with ReDWeb eq. 1 in schema-v1 sign.

    ``inv_depth``: relative inverse depth (larger = closer; disparity or the decoded PNG; NaN ok
    where not valid); ``valid``: usable non-sky pixels; ``sky``: infinitely far pixels (q = 0, usable
    even where not valid). ``n_random``, ``n_edge``, ``sigma`` default to ``config.random_pairs``
    (1,000), ``config.edge_pairs`` (1,000) and ``config.sigma`` (eq. 1, paper: 0.02); ``config``
    also gives the edge parameters (``edge_*``) and the equal-pair rule (``equal_*``). ``rng``: a
    Generator or a seed (same rng, same pairs). ``uncertainty``: per-pixel uncertainty of
    ``inv_depth`` in its units; given, the pairs carry :func:`stereo_pair_confidence`.

    Equal pairs (``config.equal_rule``): ``"near"`` (default, ours) keeps a random or edge pair that
    eq. 1 calls equal only when both ends are sky, and draws ``config.equal_pairs`` equal pairs of
    points 2-5 px apart on one surface instead (:func:`_near_pairs`, kept when eq. 1 on the estimate
    calls them equal). Why: two far-apart points are within σ = 2% of each other's depth by
    coincidence, and the flow's disparity error (0.7 px on Motorcycle, where most disparities are
    15-60 px, i.e. 1-5%) is as large as σ, so such calls were a coin toss (72% right); two points a
    few px apart on one surface differ by far less than σ. ``"eq1"``: the paper's rule, every pair
    labelled by eq. 1 as drawn. The order is random, edge, near pairs; with ``return_kinds`` also
    returns an int8 array of their kinds (:data:`RANDOM`, :data:`EDGE`, :data:`NEAR`).
    """
    cfg = config or StereoConfig()
    n_random = cfg.random_pairs if n_random is None else n_random
    n_edge = cfg.edge_pairs if n_edge is None else n_edge
    sigma = cfg.sigma if sigma is None else sigma
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    q, usable = _prepare(inv_depth, valid, sky)
    is_sky = np.zeros_like(usable) if sky is None else np.asarray(sky, bool)
    if max(q.shape) > np.iinfo(np.int16).max:
        raise ValueError(f"image {q.shape} too large for int16 pair coordinates")
    parts = [(_random_pairs(usable, n_random, rng), RANDOM), (_edge_pairs(q, usable, n_edge, rng, cfg), EDGE)]
    if cfg.equal_rule == "near":
        parts.append((_near_pairs(q, usable & ~is_sky, cfg.equal_pairs, rng, cfg), NEAR))
    ya, xa, yb, xb = (np.concatenate([p[0][k] for p in parts]) for k in range(4))
    kinds = np.concatenate([np.full(len(pts[0]), kind, np.int8) for pts, kind in parts])
    ordinal = ordinal_from_inverse_depth(q[ya, xa], q[yb, xb], sigma)
    if cfg.equal_rule == "near":
        both_sky = is_sky[ya, xa] & is_sky[yb, xb]
        keep = np.where(kinds == NEAR, ordinal == 0, (ordinal != 0) | both_sky)
        near = np.nonzero(keep & (kinds == NEAR))[0][cfg.equal_pairs:]  # at most equal_pairs of them
        keep[near] = False
        ya, xa, yb, xb, ordinal, kinds = (a[keep] for a in (ya, xa, yb, xb, ordinal, kinds))
    confidence = None
    if uncertainty is not None:
        u = np.where(is_sky, 0.0, np.nan_to_num(np.asarray(uncertainty, np.float32), nan=0.0))
        confidence = stereo_pair_confidence(q[ya, xa], q[yb, xb], u[ya, xa], u[yb, xb], ordinal, sigma,
                                            is_sky[ya, xa], is_sky[yb, xb], cfg.confidence_ordered_scale)
    pairs = PairSet(ya.astype(np.int16), xa.astype(np.int16), yb.astype(np.int16), xb.astype(np.int16), ordinal,
                    confidence)
    if return_kinds:
        return pairs, kinds
    return pairs
