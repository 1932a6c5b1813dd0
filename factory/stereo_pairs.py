"""Ordinal pairs from a dense relative inverse-depth map, ReDWeb section 3.2 (eq. 1).

ReDWeb eq. 1 labels a pair (i, j) from the ratio of their *depths* g with σ = 0.02 (the paper,
following its ref. [33]): ``+1 if g_i/g_j > 1+σ``, ``−1 if g_j/g_i > 1+σ``, else 0 — where the
paper's +1 means i is *further*. Our schema v1 uses the opposite sign (+1 = A closer), and our maps
hold inverse depth q = 1/g (:mod:`dynocc.factory.stereo`), so the same rule reads, for A = i, B = j:

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

from .config import StereoConfig
from .pairs import PairSet
from .sampling import nearest_fill, sample

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
    return_kinds: bool = False,
):
    """Random and depth-edge pairs of one image, labelled with ReDWeb eq. 1 in schema-v1 sign.

    ``inv_depth``: relative inverse depth (larger = closer; disparity or the decoded PNG; NaN ok
    where not valid); ``valid``: usable non-sky pixels; ``sky``: infinitely far pixels (q = 0, usable
    even where not valid). ``n_random``, ``n_edge``, ``sigma`` default to ``config.random_pairs``
    (1,000), ``config.edge_pairs`` (1,000) and ``config.sigma`` (eq. 1, paper: 0.02); ``config``
    also gives the edge parameters (``edge_*``). ``rng``: a Generator or a seed (same rng, same
    pairs). The random pairs come first, then the edge pairs. With ``return_kinds`` also returns a
    bool array, True for edge pairs.
    """
    cfg = config or StereoConfig()
    n_random = cfg.random_pairs if n_random is None else n_random
    n_edge = cfg.edge_pairs if n_edge is None else n_edge
    sigma = cfg.sigma if sigma is None else sigma
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    q, usable = _prepare(inv_depth, valid, sky)
    if max(q.shape) > np.iinfo(np.int16).max:
        raise ValueError(f"image {q.shape} too large for int16 pair coordinates")
    r = _random_pairs(usable, n_random, rng)
    e = _edge_pairs(q, usable, n_edge, rng, cfg)
    ya, xa, yb, xb = (np.concatenate([a, b]) for a, b in zip(r, e))
    ordinal = ordinal_from_inverse_depth(q[ya, xa], q[yb, xb], sigma)
    pairs = PairSet(ya.astype(np.int16), xa.astype(np.int16), yb.astype(np.int16), xb.astype(np.int16), ordinal)
    if return_kinds:
        kinds = np.concatenate([np.zeros(len(r[0]), bool), np.ones(len(e[0]), bool)])
        return pairs, kinds
    return pairs
