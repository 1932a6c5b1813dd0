"""Stereo pairs with true disparity, to grade the stereo branch (ReDWeb section 3.1) as the web has it.

Middlebury *Motorcycle* (``skimage.data.stereo_motorcycle``, quarter size, disparities up to 60 px)
is a clean, rectified, well-exposed pair. Web stereo photos (3D cameras, phone stereo, frames of
3D films) have close subjects with disparities of 100+ px, big textureless surfaces, JPEG
artefacts, small vertical misalignment and exposure differences between the views. This module
makes such pairs with the truth known exactly:

* :func:`render_table_scene`: a close, grey, almost textureless table (disparity up to
  ``max_disparity_fraction`` of the width, default 25%) in front of textured clutter and a slanted
  textured wall; rendered by inverse mapping of planar layers, so the left view's true disparity
  is exact per pixel.
* :func:`upscale_pair`: a pair and its truth resized by an integer factor (disparities scale too).
* :func:`perturb_right_view`: what a web pair does to the right view: a vertical shift, a rotation
  about the image centre, an exposure gain, and JPEG compression of both views.

Disparity convention as in :mod:`dynocc.factory.core.stereo`: ``d = x_L − x_R`` (larger = closer); the
truth is +inf where unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class StereoScene:
    left: np.ndarray  # (H, W, 3) uint8
    right: np.ndarray  # (H, W, 3) uint8
    disparity: np.ndarray  # (H, W) float32, true disparity of the left view; +inf unknown


@dataclass(frozen=True)
class _Layer:
    texture: np.ndarray  # (H, W, 3) float32, in left-view coordinates
    mask: np.ndarray  # (H, W) float32 in [0, 1], in left-view coordinates
    plane: tuple[float, float, float]  # d = a + b·x + c·y (left-view coordinates)


def _texture(rng: np.random.Generator, h: int, w: int, mean, contrast: float) -> np.ndarray:
    """Random texture summed over octaves (roughly 1/f, like natural clutter)."""
    out = np.zeros((h, w, 3), np.float32)
    for cell in (64, 24, 8, 3):
        small = rng.normal(0, 1, (h // cell + 2, w // cell + 2, 3)).astype(np.float32)
        out += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * (cell / 64.0) ** 0.5
    out = out / (out.std() + 1e-6) * contrast + np.asarray(mean, np.float32)
    return np.clip(out, 0, 255)


def _render_view(layers: list[_Layer], h: int, w: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """RGB and disparity of the view whose pixel x sees left-view point x + shift·d (0: left, 1: right)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.zeros((h, w, 3), np.float32)
    disp = np.full((h, w), np.inf, np.float32)
    for layer in layers:  # far to near
        a, b, c = layer.plane
        # x_R = x_L − d(x_L, y) with d planar: x_L = (x_R + a + c·y) / (1 − b)
        src_x = (xs + shift * (a + c * ys)) / (1.0 - shift * b) if shift else xs
        tex = cv2.remap(layer.texture, src_x, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        alpha = cv2.remap(layer.mask, src_x, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        rgb = rgb * (1 - alpha[..., None]) + tex * alpha[..., None]
        d = a + b * src_x + c * ys
        disp = np.where(alpha >= 0.5, d, disp)
    return rgb, disp


def render_table_scene(width: int = 640, height: int = 480, max_disparity_fraction: float = 0.25,
                       noise: float = 1.5, jpeg_quality: int = 90, table_texture: float = 0.0,
                       hanging_panel: bool = False, seed: int = 0) -> StereoScene:
    """A close grey table (its near edge at ``max_disparity_fraction`` × width of disparity) in front of
    textured boxes and a slanted textured wall; sensor noise of ``noise`` grey levels, JPEG;
    ``table_texture``: contrast of a faint grain on the table (0: none, a shaded grey surface);
    ``hanging_panel``: add a near, bright, textureless panel hanging from the top edge (a cabinet
    door, a lamp shade) at 90% of the largest disparity: grey-white, flat and touching the top, as
    an overcast sky is, but close."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    d_max = max_disparity_fraction * w
    layers = [
        # the wall: far, slanted (12 → 20 px across the image)
        _Layer(_texture(rng, h, w, (120, 110, 100), 40.0), np.ones((h, w), np.float32), (0.03 * w, 0.0125, 0.0)),
    ]
    # boxes of clutter standing on the back of the table, each its own depth
    for i, (x0, x1, y0, y1) in enumerate(((0.08, 0.3, 0.18, 0.5), (0.36, 0.55, 0.28, 0.52), (0.62, 0.9, 0.12, 0.5))):
        mask = np.zeros((h, w), np.float32)
        mask[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)] = 1.0
        colour = rng.uniform(60, 200, 3)
        d = (0.12 + 0.06 * i) * w
        layers.append(_Layer(_texture(rng, h, w, colour, 35.0), mask, (d, 0.0, 0.0)))
    # the table top: a plane whose disparity grows towards the viewer (bottom of the image)
    top = int(0.5 * h)
    mask = np.zeros((h, w), np.float32)
    mask[top:, int(0.04 * w):int(0.96 * w)] = 1.0
    d_top = 0.55 * d_max
    slope = (d_max - d_top) / (h - 1 - top)
    shade = np.linspace(150, 175, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    if table_texture > 0:  # a faint grain (grey levels of contrast)
        shade = shade + _texture(rng, h, w, (0, 0, 0), table_texture).mean(axis=2, keepdims=True)
    layers.append(_Layer(shade, mask, (d_top - slope * top, 0.0, slope)))
    if hanging_panel:
        mask = np.zeros((h, w), np.float32)
        mask[:int(0.3 * h), int(0.3 * w):int(0.6 * w)] = 1.0
        white = np.full((h, w, 3), 215.0, np.float32)
        layers.append(_Layer(white, mask, (0.9 * d_max, 0.0, 0.0)))
    left, disp = _render_view(layers, h, w, 0.0)
    right, _ = _render_view(layers, h, w, 1.0)
    views = []
    for img in (left, right):
        img = img + rng.normal(0, noise, img.shape).astype(np.float32)
        views.append(_jpeg(np.clip(img, 0, 255).astype(np.uint8), jpeg_quality))
    return StereoScene(views[0], views[1], disp.astype(np.float32))


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def upscale_pair(scene: StereoScene, factor: float) -> StereoScene:
    """Both views (bicubic) and the truth (nearest, disparities × factor) resized by ``factor``."""
    h, w = scene.left.shape[:2]
    size = (int(round(w * factor)), int(round(h * factor)))
    left = cv2.resize(scene.left, size, interpolation=cv2.INTER_CUBIC)
    right = cv2.resize(scene.right, size, interpolation=cv2.INTER_CUBIC)
    disp = cv2.resize(scene.disparity, size, interpolation=cv2.INTER_NEAREST) * np.float32(factor)
    return StereoScene(left, right, disp)


def perturb_right_view(scene: StereoScene, dy: float = 0.0, angle_deg: float = 0.0, gain: float = 1.0,
                       jpeg_quality: int | None = None) -> StereoScene:
    """A web pair's flaws: the right view moved down by ``dy`` px and rotated by ``angle_deg`` about
    the image centre, its exposure scaled by ``gain``; both views JPEG-compressed at
    ``jpeg_quality`` (None: not). The left view's truth does not change."""
    h, w = scene.right.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle_deg, 1.0)
    m[1, 2] += dy
    right = cv2.warpAffine(scene.right.astype(np.float32), m, (w, h), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
    right = np.clip(right * gain, 0, 255).astype(np.uint8)
    left = scene.left
    if jpeg_quality is not None:
        left, right = _jpeg(left, jpeg_quality), _jpeg(right, jpeg_quality)
    return StereoScene(left, right, scene.disparity)


def motorcycle() -> StereoScene:
    """Middlebury 2014 *Motorcycle*, quarter size, from scikit-image (true disparity, +inf unknown)."""
    from skimage.data import stereo_motorcycle

    left, right, disp = stereo_motorcycle()
    return StereoScene(left, right, disp.astype(np.float32))


def stereo_pair_verdicts(pairs, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grade pairs (a :class:`~dynocc.factory.core.pairs.PairSet`, schema v1: +1 = A closer) against a true
    disparity map (larger = closer, +inf unknown): (known, right, ordered), bool per pair; ``right`` and
    ``ordered`` only mean something where ``known``. An ordered pair is right when the true disparities
    order the same way; an equal pair when ReDWeb eq. 1 (σ = 0.02) on the truth calls them equal."""
    from dynocc.factory.core.stereo_pairs import ordinal_from_inverse_depth

    ya, xa, yb, xb = (np.asarray(a, np.int64) for a in (pairs.ya, pairs.xa, pairs.yb, pairs.xb))
    known = np.isfinite(truth[ya, xa]) & np.isfinite(truth[yb, xb])
    ta, tb = np.where(known, truth[ya, xa], 1.0), np.where(known, truth[yb, xb], 1.0)
    ordinal = np.asarray(pairs.ordinal)
    ordered = ordinal != 0
    right = np.where(ordered, np.sign(ta - tb) == ordinal, ordinal_from_inverse_depth(ta, tb) == 0)
    return known, right, ordered
