"""Depth-order estimation, DynOcc section 3.2 (eq. 4), plus the occlusion cue of its ref. [27].

Boundaries in, labels out. For each boundary pixel p with normal d, helper pixels
``p1 = p + r·d`` and ``p2 = p − r·d`` (r = 5 px, paper). Assuming side 1 is the foreground,
p moves with F[p1]: warp p by F[p1] and by F[p2] into the frame ``baseline`` away and call a
warp *aligned* when it lands within ``align_tolerance`` of that frame's boundaries. Over a
segment of c pixels, side 1 is foreground via F when ``(c1 − c2) / c > δ`` (eq. 4), side 2 when
``(c2 − c1) / c > δ``; a segment is kept only when F_prev and F_next agree (paper).

Ours, for DIS flow on real video: the occlusion cue — pixels whose forward flow is not undone
by the backward flow vanish in the other frame and lie on the background side — may veto a
segment whose alignment vote it contradicts.

Labels: +1 = side 1 (along +d) is the foreground, −1 = side 2 is, 0 = undecided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .config import VoteConfig
from .sampling import sample


@dataclass(frozen=True)
class BoundaryPixels:
    """The boundary pixels of one frame, their normal d and their segment."""

    ys: np.ndarray  # int32
    xs: np.ndarray  # int32
    normal_x: np.ndarray  # float32, unit
    normal_y: np.ndarray
    segment: np.ndarray  # int32 segment index, 0..n_segments-1
    n_segments: int

    def __len__(self) -> int:
        return len(self.ys)


@dataclass(frozen=True)
class NeighbourView:
    """What the vote needs of one nearby frame t±baseline."""

    flow: np.ndarray  # F from frame t to the neighbour, (H, W, 2)
    back_flow: Optional[np.ndarray]  # F from the neighbour back to t (occlusion cue), or None
    boundary_distance: np.ndarray  # distance to the neighbour's boundaries, (H, W)


def split_segments(boundary: np.ndarray, normal_x, normal_y, segment_length: int) -> BoundaryPixels:
    """Split a thin boundary map into segments of about c pixels.

    A segment is the part of one 8-connected boundary piece inside one c×c tile of the image:
    a vectorised stand-in for walking each curve and cutting it every c pixels.
    """
    n, labels = cv2.connectedComponents(boundary.astype(np.uint8), connectivity=8)
    ys, xs = np.nonzero(boundary)
    c = segment_length
    tiles_x = boundary.shape[1] // c + 1
    tiles_y = boundary.shape[0] // c + 1
    key = (labels[ys, xs].astype(np.int64) * tiles_y + ys // c) * tiles_x + xs // c
    _, segment = np.unique(key, return_inverse=True)
    return BoundaryPixels(
        ys.astype(np.int32),
        xs.astype(np.int32),
        normal_x[ys, xs].astype(np.float32),
        normal_y[ys, xs].astype(np.float32),
        segment.astype(np.int32).ravel(),
        int(segment.max()) + 1 if len(segment) else 0,
    )


def segment_sum(values: np.ndarray, pixels: BoundaryPixels) -> np.ndarray:
    return np.bincount(pixels.segment, weights=values.astype(np.float64), minlength=pixels.n_segments)


def alignment_vote(pixels: BoundaryPixels, view: NeighbourView, config: VoteConfig) -> np.ndarray:
    """Eq. 4 for one nearby frame: per segment +1 (side 1 foreground), −1 (side 2) or 0."""
    x, y, nx, ny, r = pixels.xs, pixels.ys, pixels.normal_x, pixels.normal_y, config.helper_offset
    f1 = sample(view.flow, x + r * nx, y + r * ny)
    f2 = sample(view.flow, x - r * nx, y - r * ny)
    d1 = sample(view.boundary_distance, x + f1[:, 0], y + f1[:, 1])
    d2 = sample(view.boundary_distance, x + f2[:, 0], y + f2[:, 1])
    c1 = segment_sum(d1 <= config.align_tolerance, pixels)
    c2 = segment_sum(d2 <= config.align_tolerance, pixels)
    c = np.maximum(np.bincount(pixels.segment, minlength=pixels.n_segments), 1)
    score = (c1 - c2) / c
    return np.where(score > config.delta, 1, np.where(-score > config.delta, -1, 0)).astype(np.int8)


def occlusion_map(flow: np.ndarray, back_flow: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels of frame t that vanish in the neighbour: F(p) + F_back(p + F(p)) is not ~0 (ref. [27])."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    back = cv2.remap(back_flow, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.linalg.norm(flow + back, axis=2) > threshold


def occlusion_vote(pixels: BoundaryPixels, occluded: np.ndarray, config: VoteConfig) -> np.ndarray:
    """Per segment: +1 if side 2 holds clearly more vanishing pixels (so side 1 is in front), −1 the reverse."""
    x, y, nx, ny = pixels.xs, pixels.ys, pixels.normal_x, pixels.normal_y
    occ = occluded.astype(np.float32)
    o1 = np.zeros(len(pixels), np.float32)
    o2 = np.zeros(len(pixels), np.float32)
    for r in (2.0, 4.0, 6.0, 8.0):
        o1 += sample(occ, x + r * nx, y + r * ny, nearest=True)
        o2 += sample(occ, x - r * nx, y - r * ny, nearest=True)
    s1, s2 = segment_sum(o1, pixels), segment_sum(o2, pixels)
    c = np.maximum(np.bincount(pixels.segment, minlength=pixels.n_segments), 1) * 4
    score = (s2 - s1) / c
    return np.where(score > config.delta / 2, 1, np.where(-score > config.delta / 2, -1, 0)).astype(np.int8)


def photometric_occlusion_vote(
    pixels: BoundaryPixels, gray: np.ndarray, neighbours, flows, config: VoteConfig
) -> np.ndarray:
    """Per segment: +1 if side 2 holds more pixels that neither side's motion explains in a nearby
    frame (they are hidden there, so side 2 is behind), −1 the reverse (ours).

    Along the normal at offsets −R…R, a pixel of t is explained in neighbour k when moving it by
    side 1's or side 2's motion (read R px out) lands on the same grey value (blurred, σ = 1).
    """
    x, y, nx, ny = pixels.xs, pixels.ys, pixels.normal_x, pixels.normal_y
    R = config.side_flow_offset
    offsets = np.arange(1.0, R, 1.0, dtype=np.float32)
    hidden1 = np.zeros(len(pixels), np.float32)
    hidden2 = np.zeros(len(pixels), np.float32)
    for nb, flow in zip(neighbours, flows):
        m1 = sample(flow, x + R * nx, y + R * ny)
        m2 = sample(flow, x - R * nx, y - R * ny)
        for sign, acc in ((1.0, hidden1), (-1.0, hidden2)):
            qx = x[:, None] + sign * offsets[None, :] * nx[:, None]
            qy = y[:, None] + sign * offsets[None, :] * ny[:, None]
            here = sample(gray, qx, qy)
            e1 = np.abs(here - sample(nb, qx + m1[:, 0:1], qy + m1[:, 1:2]))
            e2 = np.abs(here - sample(nb, qx + m2[:, 0:1], qy + m2[:, 1:2]))
            acc += (np.minimum(e1, e2) > config.photometric_max_error).sum(axis=1)
    s1, s2 = segment_sum(hidden1, pixels), segment_sum(hidden2, pixels)
    c = np.maximum(np.bincount(pixels.segment, minlength=pixels.n_segments), 1)
    score = (s2 - s1) / c
    return np.where(score > 1.0, 1, np.where(-score > 1.0, -1, 0)).astype(np.int8)


def vote_depth_order(
    pixels: BoundaryPixels, prev: NeighbourView, next_: NeighbourView, config: VoteConfig, ctx=None
) -> np.ndarray:
    """Per segment foreground side (+1 side 1, −1 side 2, 0 dropped): both alignment votes must agree
    (paper) and no occlusion vote may say the opposite (ours)."""
    if pixels.n_segments == 0:
        return np.zeros(0, np.int8)
    v_prev = alignment_vote(pixels, prev, config)
    v_next = alignment_vote(pixels, next_, config)
    label = np.where(v_prev == v_next, v_prev, 0).astype(np.int8)
    support = np.zeros(len(label), bool)
    for view in (prev, next_):
        if view.back_flow is not None:
            occ = occlusion_vote(pixels, occlusion_map(view.flow, view.back_flow, config.occlusion_threshold), config)
            label[occ == -label] = 0
            support |= occ == label
    if ctx is not None:
        photo = photometric_occlusion_vote(pixels, *ctx, config)
        label[photo == -label] = 0
        support |= photo == label
    if config.require_occlusion_support:
        label[~support] = 0
    return label
