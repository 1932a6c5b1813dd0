"""Synthetic dynamic scenes with true depth, to grade the DynOcc occlusion-boundary miner.

The DynOcc miner (paper section 3) finds depth edges as discontinuities of optical flow, decides
which side occludes the other by checking which side's flow carries the edge into the nearby
frames, and samples ordered point pairs around the edge. Real videos have no depth to grade that
against, so :func:`make_scene` renders a short clip whose depth is known exactly per pixel.
Each element of the scene exists to exercise, or to trap, one part of the miner:

* **Background plane** (far layer, depth 20) that **pans** by a constant subpixel translation of
  1-2.5 px/frame in a random direction: the camera moves, so "moving pixels" is not the same as
  "foreground", and the flow of the background is non-zero.
* **Foreground layers** (``n_layers``, distinct depths spread over 4-12, all nearer than the
  background), each an irregular star-shaped blob 20-40% of the image's short side, translating
  by its own constant velocity of 1.5-4 px/frame. The leading edge of a moving layer covers the
  background (a *converging* boundary, whose flow the paper calls unreliable) and its trailing
  edge uncovers it (*diverging*, reliable), so both kinds occur. Every layer's motion differs from
  the background's by >= 1.5 px/frame (else there is no flow edge to find), and layers are drawn
  far to near (painter's order), so overlapping layers add layer-on-layer depth edges.
* **One layer moves in the same direction as the background** at a speed >= 1.5 px/frame
  faster: the paper's ambiguous case (sec. 3.2), where both sides' flows carry the edge roughly
  the same way and only counting over a segment separates them.
* **Texture**: smoothed random noise summed over four octaves (roughly a 1/f spectrum, like
  natural images) with a random colour mix, contrasty enough for DIS flow to lock on everywhere.
  Each layer gets a mean colour >= 60 (RGB distance) away from the background and from the other
  layers, so photometric tests can tell the two sides of an edge apart.
* **Texture edges that are not depth edges**: hard-edged bands and rotated rectangles painted into
  the background texture, and hard-edged stripes painted into each layer's texture. They move
  with their surface, so the flow is smooth across them; the miner must not report them (the
  paper drops Canny edges for exactly this reason, sec. 3.1).
* **A static prefix**: frames ``0..n_static-1`` are identical (no camera or layer motion). With no
  motion there is no parallax and nothing to mine; the miner must return no pairs there.

Rendering: each surface is a texture larger than what it covers, placed by ``cv2.warpAffine``
(bilinear, so motion is subpixel; OpenCV quantises offsets to 1/32 px). A layer's binary shape
mask is warped the same way and thresholded at 0.5; that hard mask defines ``layer_id`` and
``depth`` exactly, and the RGB is composited with the warped (soft) mask as alpha, which only
anti-aliases the 1-px rim. Motion is constant velocity: at frame ``t`` a surface with velocity
``v`` is displaced by ``v * max(0, t - n_static + 1)`` from where it sits in frame 0, so
:func:`true_flow` gives the exact displacement between any two frames.

Ordinal convention (the project's schema): +1 means point A is closer to the camera than point B,
-1 means B is closer, 0 means about the same depth (see :func:`depth_order_truth`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

BACKGROUND_DEPTH = 20.0


@dataclass(frozen=True)
class SyntheticScene:
    frames: list[np.ndarray]  # RGB uint8 (H, W, 3)
    depth: list[np.ndarray]  # float32 (H, W), metric depth, smaller = closer to the camera
    layer_id: list[np.ndarray]  # int16 (H, W): 0 = background, k = layer k (front-most wins)
    static_frames: frozenset[int]  # t whose window t-2..t+2 has no motion at all
    moving_frames: frozenset[int]  # t whose window t-2..t+2 has background and every layer moving
    background_velocity: tuple[float, float]  # (vx, vy) px/frame of the background while moving
    layer_velocities: tuple[tuple[float, float], ...]  # (vx, vy) px/frame of layer k at index k-1
    layer_depths: tuple[float, ...]  # depth of layer k at index k-1 (ascending: layer 1 nearest)
    background_depth: float
    n_static: int  # frames 0..n_static-1 are identical; motion starts at frame n_static


def _motion_steps(t: int, n_static: int) -> int:
    """How many frames of motion have happened by frame ``t``."""
    return max(0, t - n_static + 1)


def _texture(rng: np.random.Generator, h: int, w: int, mean: np.ndarray, contrast: float = 38.0) -> np.ndarray:
    """Float32 (h, w, 3) colour texture: noise at four octaves (about 1/f), randomly colour-mixed."""
    noise = np.zeros((h, w, 3), np.float32)
    for cell in (1.5, 4.0, 11.0, 30.0):
        small = rng.standard_normal((int(h / cell) + 2, int(w / cell) + 2, 3)).astype(np.float32)
        noise += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    noise /= noise.std() + 1e-6
    # A strong shared luminance component (flow needs it) plus some independent chroma.
    mix = 0.8 * np.ones((3, 3), np.float32) / 3 + 0.35 * rng.standard_normal((3, 3)).astype(np.float32)
    return mean.astype(np.float32) + contrast * (noise @ mix.T)


def _paint_hard_edges(rng: np.random.Generator, tex: np.ndarray, count: int, size: float, band: bool) -> None:
    """Add hard-edged colour offsets (rotated rectangles or long stripes) to ``tex`` in place."""
    h, w = tex.shape[:2]
    for _ in range(count):
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        long_side = 3 * max(h, w) if band else rng.uniform(0.6, 1.4) * size
        short_side = rng.uniform(0.08, 0.2) * size if band else rng.uniform(0.4, 1.0) * size
        angle = rng.uniform(0, 180)
        box = cv2.boxPoints(((cx, cy), (long_side, short_side), angle))
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(box * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
        offset = rng.uniform(-1, 1, 3)
        offset *= rng.uniform(60, 90) / (np.linalg.norm(offset) + 1e-6)
        tex += mask[..., None].astype(np.float32) * offset.astype(np.float32)


def _blob_mask(rng: np.random.Generator, size: float, pad: int) -> np.ndarray:
    """Binary (uint8) star-shaped blob of extent about ``size`` in a square patch with ``pad`` margin."""
    n = int(math.ceil(size)) + 2 * pad
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    radius = np.ones_like(theta)
    for k in (2, 3, 4, 5):
        radius += rng.uniform(0.0, 0.5 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    radius *= 0.5 * size / radius.max()
    pts = np.stack([n / 2 + radius * np.cos(theta), n / 2 + radius * np.sin(theta)], axis=1)
    mask = np.zeros((n, n), np.uint8)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return mask


def _distinct_colour(rng: np.random.Generator, taken: list[np.ndarray], min_dist: float = 60.0) -> np.ndarray:
    for _ in range(1000):
        c = rng.uniform(50, 205, 3)
        if all(np.linalg.norm(c - o) >= min_dist for o in taken):
            return c
    return c


def _velocity(rng: np.random.Generator, bg: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """A layer velocity of 1.5-4 px/frame, >= 1.5 px/frame from the background's, >= 1 from other layers'."""
    for _ in range(1000):
        angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(1.5, 4.0)
        v = speed * np.array([math.cos(angle), math.sin(angle)])
        if np.linalg.norm(v - bg) >= 1.5 and all(np.linalg.norm(v - o) >= 1.0 for o in others):
            return v
    return v


def _warp(img: np.ndarray, tx: float, ty: float, w: int, h: int, border: int) -> np.ndarray:
    """``out[y, x] = img[y - ty, x - tx]`` (bilinear): ``img`` placed with its origin at (tx, ty)."""
    m = np.array([[1, 0, -tx], [0, 1, -ty]], np.float64)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border)


def make_scene(
    seed: int = 0, height: int = 240, width: int = 320, n_frames: int = 16, n_layers: int = 3, n_static: int = 5
) -> SyntheticScene:
    """Render a deterministic layered dynamic scene with exact per-pixel depth (see module doc).

    Layer speeds are scaled down only when a path would leave the frame, which happens for clips
    much longer than the default (about 45+ frames at 240x320).
    """
    rng = np.random.default_rng(seed)
    h, w = height, width
    short = min(h, w)
    n_moves = _motion_steps(n_frames - 1, n_static)

    # Background: pans 1-2.5 px/frame so that a same-direction layer can be 1.5+ px/frame faster.
    bg_angle = rng.uniform(0, 2 * np.pi)
    bg_v = rng.uniform(1.0, 2.5) * np.array([math.cos(bg_angle), math.sin(bg_angle)])
    margin = int(math.ceil(np.abs(bg_v).max() * n_moves)) + 4
    bg_colour = rng.uniform(60, 195, 3)
    bg_tex = _texture(rng, h + 2 * margin, w + 2 * margin, bg_colour)
    _paint_hard_edges(rng, bg_tex, 2, 0.3 * short, band=False)
    _paint_hard_edges(rng, bg_tex, 2, 0.3 * short, band=True)

    # Layers: distinct depths (layer 1 nearest), one moves along the background's direction.
    spacing = (12.0 / 4.0) ** (1.0 / max(n_layers - 1, 1))
    depths = np.geomspace(4.0, 12.0, n_layers) * np.exp(rng.uniform(-1, 1, n_layers) * math.log(spacing) / 3)
    same_dir = int(rng.integers(n_layers)) if n_layers else -1
    colours, velocities, sizes, layers = [bg_colour], [], [], []
    for k in range(n_layers):
        if k == same_dir:
            v = rng.uniform(np.linalg.norm(bg_v) + 1.5, 4.0) * bg_v / np.linalg.norm(bg_v)
        else:
            v = _velocity(rng, bg_v, velocities)
        size = rng.uniform(0.2, 0.4) * short
        sizes.append(size)
        # Keep the blob's centre >= 0.35*size inside the frame along the whole path.
        lo = 0.35 * size
        room = np.array([w, h]) - 2 * lo
        path = v * n_moves
        if np.any(np.abs(path) > room):
            v = v * float(np.min(room / np.maximum(np.abs(path), 1e-9)))
            path = v * n_moves
        velocities.append(v)
        colours.append(_distinct_colour(rng, colours))
        mask = _blob_mask(rng, size, pad=4)
        tex = _texture(rng, *mask.shape, colours[-1])
        _paint_hard_edges(rng, tex, 2, size, band=True)
        layers.append((mask, tex, lo, room, path))

    # Starting centres: layers may overlap, but no layer may hide most of another at any frame
    # (centres stay >= 0.7 * (r_i + r_j) apart); the first random candidate that does so wins.
    moves = np.arange(n_moves + 1)[:, None]
    starts = []
    for k, (mask, tex, lo, room, path) in enumerate(layers):
        low = lo + np.maximum(0, -path)
        cands = low + rng.uniform(0, 1, (64, 2)) * (room - np.abs(path))
        score = np.full(len(cands), np.inf)
        for j, c in enumerate(starts):
            gap = (cands[:, None] - c) + (velocities[k] - velocities[j]) * moves  # (64, steps, 2)
            score = np.minimum(score, np.linalg.norm(gap, axis=2).min(1) / (0.7 * (sizes[k] + sizes[j]) / 2))
        starts.append(cands[int(np.argmax(score >= 1))] if np.any(score >= 1) else cands[int(np.argmax(score))])

    frames, depth_maps, ids = [], [], []
    for t in range(n_frames):
        steps = _motion_steps(t, n_static)
        d = bg_v * steps
        img = _warp(bg_tex, d[0] - margin, d[1] - margin, w, h, cv2.BORDER_REFLECT)
        depth = np.full((h, w), BACKGROUND_DEPTH, np.float32)
        lid = np.zeros((h, w), np.int16)
        for k in reversed(range(n_layers)):  # far to near
            mask, tex, *_ = layers[k]
            origin = starts[k] + velocities[k] * steps - mask.shape[0] / 2
            alpha = _warp(mask.astype(np.float32), origin[0], origin[1], w, h, cv2.BORDER_CONSTANT)
            hard = alpha >= 0.5
            colour = _warp(tex, origin[0], origin[1], w, h, cv2.BORDER_REFLECT)
            img += alpha[..., None] * (colour - img)
            depth[hard] = depths[k]
            lid[hard] = k + 1
        frames.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
        depth_maps.append(depth)
        ids.append(lid)

    window = range(2, n_frames - 2)
    static = frozenset(t for t in window if t + 2 <= n_static - 1)
    # Every step t-2 -> t-1 -> ... -> t+2 moves when frame t-1 already moved, i.e. t-1 >= n_static.
    moving = frozenset(t for t in window if t - 1 >= n_static)
    return SyntheticScene(
        frames=frames,
        depth=depth_maps,
        layer_id=ids,
        static_frames=static,
        moving_frames=moving,
        background_velocity=(float(bg_v[0]), float(bg_v[1])),
        layer_velocities=tuple((float(v[0]), float(v[1])) for v in velocities),
        layer_depths=tuple(float(x) for x in depths),
        background_depth=BACKGROUND_DEPTH,
        n_static=n_static,
    )


def true_flow(scene: SyntheticScene, t: int, s: int) -> np.ndarray:
    """Exact displacement (H, W, 2) float32, (dx, dy), of the surface seen at each pixel of frame ``t`` into frame ``s``.

    Only meaningful where that surface is still visible in frame ``s`` (not occluded there).
    """
    steps = _motion_steps(s, scene.n_static) - _motion_steps(t, scene.n_static)
    table = np.array((scene.background_velocity,) + scene.layer_velocities, np.float32) * steps
    return table[scene.layer_id[t]]


def depth_order_truth(depth: np.ndarray, ya, xa, yb, xb) -> np.ndarray:
    """True ordinal of pairs (A, B) as int8: +1 A closer (smaller depth), -1 B closer, 0 equal.

    Equal means ``|log(depth[A] / depth[B])| < 1e-3``. Coordinates may be scalars or arrays.
    """
    da = np.asarray(depth[np.asarray(ya), np.asarray(xa)], np.float64)
    db = np.asarray(depth[np.asarray(yb), np.asarray(xb)], np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        equal = (da == db) | (np.abs(np.log(da / db)) < 1e-3)
    return np.where(equal, 0, np.where(da < db, 1, -1)).astype(np.int8)


def grade_pairs(depth: np.ndarray, ya, xa, yb, xb, ordinal) -> tuple[int, int, int, int]:
    """(ordered pairs, ordered pairs right, equal pairs, equal pairs right) against the true depth."""
    truth = depth_order_truth(depth, ya, xa, yb, xb)
    ordinal = np.asarray(ordinal)
    o = ordinal != 0
    return int(o.sum()), int((truth[o] == ordinal[o]).sum()), int((~o).sum()), int((truth[~o] == 0).sum())
