"""The stereo branch: dense relative inverse depth from a web stereo photo, ReDWeb section 3.1.

ReDWeb (Xian et al., CVPR 2018, ``shared/papers/redweb-paper.md``) section 3.1, "Data
preprocessing": web stereo photos are often not rectified, so instead of stereo matching the paper
runs optical flow (FlowNet 2.0, its ref. [9]) from the left to the right image and "regard[s] the
horizontal component of the correspondence map as disparity d". "Data postprocessing": maps of
pairs that are not side-by-side stereo (anaglyph, left-center-right, ...) were excluded *by hand*,
the disparity was "unified" so that one grey direction always means closer, sky was segmented
(RefineNet on ADE20K + CRF) and set to infinity, and borders were cropped.

What this module does instead of the manual steps (every threshold is a :class:`StereoConfig`
field, marked paper/ours there):

* flow both ways in one batched call, ``flow_backend.flows([(L, R), (R, L)])`` (default backend:
  OpenCV DIS medium, :class:`~dynocc.factory.flow.DISFlow`);
* disparity ``d = -F_lr.x`` (float32, px): for a parallel rig a point at depth Z appears in the
  right image at ``x_R = x_L - f·B/Z``, so the left->right flow is ``dx = -f·B/Z < 0`` and
  ``d = f·B/Z`` is proportional to inverse depth: **larger = closer** (our unified sign);
* left-right (forward-backward) consistency: a pixel is consistent when
  ``|F_lr(p) + F_rl(p + F_lr(p))| <= consistency_tolerance`` (F_rl read bilinearly; a match
  outside the right image is inconsistent); the consistent mask is eroded by ``erode_radius``;
  ``valid`` = the eroded mask. This replaces the paper's hand inspection, and removes occluded
  pixels and most of the flow's smearing across depth edges (measured in ``tests/test_stereo.py``);
* rejection with a reason code (``StereoResult.reject_reason``), checked in this order:
  ``too_few_consistent_pixels`` (valid fraction < ``min_consistent_fraction``),
  ``too_much_vertical_flow`` (median |F_lr.y| over valid > ``max_vertical_flow``),
  ``disparity_range_too_small`` (p(100-q) − p(q) of valid d < ``min_disparity_range``, q =
  ``range_percentile``), ``negative_disparity`` (more than ``max_negative_fraction`` of valid d below
  ``-negative_tolerance``: swapped, i.e. cross-eyed, views). Left and right of different sizes raise
  :class:`StereoPairError` with reason ``size_mismatch`` before any flow is computed.

The stored map (:func:`inverse_depth_png`) is a 16-bit PNG:

==========  ================================================================
value       meaning
==========  ================================================================
0           unknown (invalid pixel, not sky)
1           sky: infinitely far (inverse depth 0)
2 .. 65535  ``v = 2 + round(65533 · max(d, 0) / d_max)``, d_max = the largest valid,
            non-sky disparity of this image: relative inverse depth, larger = closer,
            proportional to d (so the ratio rule of ReDWeb eq. 1 holds on it); value 2
            is inverse depth 0 (at infinity, but not sky: d <= 0, a parallel rig has none)
==========  ================================================================

:func:`stereo_depth` runs it all for one pair: disparity, sky (:mod:`dynocc.factory.sky`, set to
infinity), valid pixels within ``sky_guard`` px of the sky made unknown, and the PNG.

:func:`decode_inverse_depth_png` gives back ``inv = (v - 2) / 65533`` in [0, 1] (NaN where v = 0,
0 where v = 1) and the sky mask. Quantisation: one step is 1/65533 of d_max, i.e. a relative error
below 0.08% for any d above 1% of d_max — far below eq. 1's 2%.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from .config import StereoConfig
from .flow import FlowBackend, make_flow_backend
from .sky import SkyDetector, guard_sky, make_sky_detector

PNG_UNKNOWN = 0
PNG_SKY = 1
PNG_MIN = 2
PNG_MAX = 65535
PNG_STEPS = PNG_MAX - PNG_MIN  # 65533

REJECT_REASONS = (
    "size_mismatch",
    "too_few_consistent_pixels",
    "too_much_vertical_flow",
    "disparity_range_too_small",
    "negative_disparity",
)


class StereoPairError(ValueError):
    """A pair that cannot even be given to the flow (e.g. ``reason == "size_mismatch"``)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class StereoResult:
    """Disparity of the left image (float32 px, larger = closer), its valid mask, and why the pair
    was rejected (``None`` = usable). Disparity and mask are filled in even for rejected pairs."""

    disparity: np.ndarray  # (H, W) float32, d = -F_lr.x
    valid: np.ndarray  # (H, W) bool: consistent, eroded
    diagnostics: dict[str, float] = field(default_factory=dict)
    reject_reason: Optional[str] = None
    reject_detail: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.reject_reason is None


def _check_pair(left_rgb: np.ndarray, right_rgb: np.ndarray) -> None:
    if left_rgb.shape != right_rgb.shape:
        raise StereoPairError(
            "size_mismatch", f"left is {left_rgb.shape[:2]} (H, W), right is {right_rgb.shape[:2]}"
        )
    if left_rgb.ndim not in (2, 3) or min(left_rgb.shape[:2]) < 8:
        raise StereoPairError("size_mismatch", f"not an image of at least 8x8 px: shape {left_rgb.shape}")


def forward_backward_error(flow_lr: np.ndarray, flow_rl: np.ndarray) -> np.ndarray:
    """``|F_lr(p) + F_rl(p + F_lr(p))|`` per left pixel (px); +inf where p + F_lr(p) leaves the image."""
    h, w = flow_lr.shape[:2]
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx = xx + flow_lr[..., 0]
    my = yy + flow_lr[..., 1]
    back = cv2.remap(flow_rl, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = np.sqrt(((flow_lr + back) ** 2).sum(axis=2))
    outside = (mx < 0) | (my < 0) | (mx > w - 1) | (my > h - 1)
    err[outside] = np.inf
    return err


def consistency_mask(flow_lr: np.ndarray, flow_rl: np.ndarray, tolerance: float, erode_radius: int) -> np.ndarray:
    """Left-right consistent pixels (forward-backward error <= ``tolerance`` px), eroded by a
    (2r+1)² square, r = ``erode_radius``."""
    mask = forward_backward_error(flow_lr, flow_rl) <= tolerance
    if erode_radius > 0 and mask.any():
        k = np.ones((2 * erode_radius + 1, 2 * erode_radius + 1), np.uint8)
        mask = cv2.erode(mask.astype(np.uint8), k, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    return mask


def disparity_from_flow(
    left_rgb: np.ndarray,
    right_rgb: np.ndarray,
    flow_backend: Optional[FlowBackend] = None,
    config: Optional[StereoConfig] = None,
) -> StereoResult:
    """Disparity of the left image from flow, ReDWeb section 3.1 (see the module docstring).

    ``flow_backend``: anything with ``flows(pairs)``; ``None`` builds ``config.flow`` (DIS medium).
    Raises :class:`StereoPairError` (``size_mismatch``) before the flow for images of different
    sizes; any other unusable pair comes back with ``reject_reason`` set.
    """
    config = config or StereoConfig()
    _check_pair(left_rgb, right_rgb)
    backend = flow_backend if flow_backend is not None else make_flow_backend(config.flow)
    flow_lr, flow_rl = backend.flows([(left_rgb, right_rgb), (right_rgb, left_rgb)])
    flow_lr = np.asarray(flow_lr, np.float32)
    flow_rl = np.asarray(flow_rl, np.float32)

    disparity = np.ascontiguousarray(-flow_lr[..., 0])  # larger = closer
    fb_err = forward_backward_error(flow_lr, flow_rl)
    consistent = fb_err <= config.consistency_tolerance
    valid = consistency_mask(flow_lr, flow_rl, config.consistency_tolerance, config.erode_radius)

    n = valid.sum()
    diag: dict[str, float] = {
        "consistent_fraction": float(consistent.mean()),
        "valid_fraction": float(valid.mean()),
        "median_fb_error": float(np.median(np.where(np.isfinite(fb_err), fb_err, 1e6))),
    }
    if n:
        d = disparity[valid]
        q = config.range_percentile
        lo, hi = np.percentile(d, [q, 100 - q])
        diag.update(
            median_abs_vertical_flow=float(np.median(np.abs(flow_lr[..., 1][valid]))),
            median_disparity=float(np.median(d)),
            disparity_low=float(lo),
            disparity_high=float(hi),
            disparity_range=float(hi - lo),
            negative_fraction=float((d < -config.negative_tolerance).mean()),
        )
    else:
        nan = float("nan")
        diag.update(median_abs_vertical_flow=nan, median_disparity=nan, disparity_low=nan, disparity_high=nan,
                    disparity_range=nan, negative_fraction=nan)

    reason = detail = None
    if n == 0 or diag["valid_fraction"] < config.min_consistent_fraction:
        reason = "too_few_consistent_pixels"
        detail = f"valid fraction {diag['valid_fraction']:.3f} < {config.min_consistent_fraction}"
    elif diag["median_abs_vertical_flow"] > config.max_vertical_flow:
        reason = "too_much_vertical_flow"
        detail = f"median |dy| {diag['median_abs_vertical_flow']:.2f} px > {config.max_vertical_flow} px"
    elif diag["disparity_range"] < config.min_disparity_range:
        reason = "disparity_range_too_small"
        detail = (f"p{100 - config.range_percentile:g} - p{config.range_percentile:g} disparity "
                  f"{diag['disparity_range']:.2f} px < {config.min_disparity_range} px")
    elif diag["negative_fraction"] > config.max_negative_fraction:
        reason = "negative_disparity"
        detail = (f"{diag['negative_fraction']:.2f} of valid pixels have d < -{config.negative_tolerance} px "
                  f"(> {config.max_negative_fraction}): left and right swapped?")
    return StereoResult(disparity, valid, diag, reason, detail)


def encode_inverse_depth(disparity: np.ndarray, valid: np.ndarray, sky: Optional[np.ndarray] = None) -> np.ndarray:
    """The uint16 map of :func:`inverse_depth_png` (mapping in the module docstring).

    Sky wins over valid; non-sky invalid pixels are 0; ``d`` is clipped at 0 (value 2)."""
    disparity = np.asarray(disparity, np.float32)
    valid = np.asarray(valid, bool) & np.isfinite(disparity)
    sky = np.zeros_like(valid) if sky is None else np.asarray(sky, bool)
    out = np.zeros(disparity.shape, np.uint16)
    use = valid & ~sky
    if use.any():
        d = np.maximum(disparity[use], 0.0)
        d_max = float(d.max())
        scaled = d / d_max if d_max > 0 else np.zeros_like(d)
        out[use] = (PNG_MIN + np.rint(scaled * PNG_STEPS)).astype(np.uint16)
    out[sky] = PNG_SKY
    return out


def inverse_depth_png(disparity: np.ndarray, valid: np.ndarray, sky: Optional[np.ndarray] = None) -> bytes:
    """16-bit greyscale PNG of relative inverse depth: 0 unknown, 1 sky, 2..65535 ∝ disparity
    (larger = closer), normalised by this image's largest valid non-sky disparity (module docstring)."""
    ok, buf = cv2.imencode(".png", encode_inverse_depth(disparity, valid, sky))
    if not ok:
        raise RuntimeError("cv2.imencode failed for the inverse-depth PNG")
    return buf.tobytes()


def decode_inverse_depth(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint16 map -> (inverse depth float32 in [0, 1], NaN unknown, 0 sky; sky mask)."""
    values = np.asarray(values)
    inv = (values.astype(np.float32) - PNG_MIN) / PNG_STEPS
    sky = values == PNG_SKY
    inv[sky] = 0.0
    inv[values == PNG_UNKNOWN] = np.nan
    return inv, sky


def decode_inverse_depth_png(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`inverse_depth_png`: (inv_depth float32, NaN = unknown, 0 = sky; sky mask)."""
    values = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if values is None or values.dtype != np.uint16 or values.ndim != 2:
        raise ValueError("not a 16-bit single-channel inverse-depth PNG")
    return decode_inverse_depth(values)


@dataclass(frozen=True)
class StereoDepth:
    """One stereo pair end to end: the flow result, the sky, the final valid mask and the PNG."""

    result: StereoResult
    sky: np.ndarray  # (H, W) bool, infinitely far
    valid: np.ndarray  # (H, W) bool: result.valid minus the sky and its guard band
    png: Optional[bytes]  # inverse_depth_png(disparity, valid, sky); None for a rejected pair

    @property
    def ok(self) -> bool:
        return self.result.ok


def stereo_depth(
    left_rgb: np.ndarray,
    right_rgb: np.ndarray,
    flow_backend: Optional[FlowBackend] = None,
    config: Optional[StereoConfig] = None,
    sky_detector: Optional[SkyDetector] = None,
) -> StereoDepth:
    """ReDWeb section 3.1 for one pair: :func:`disparity_from_flow`; for a usable pair, the sky
    (``sky_detector``, default from ``config.sky_detector``) set to infinity, valid pixels within
    ``config.sky_guard`` px of it set unknown (:func:`~dynocc.factory.sky.guard_sky`), and the
    16-bit PNG (:func:`inverse_depth_png`). A rejected pair gives no sky and no PNG."""
    config = config or StereoConfig()
    result = disparity_from_flow(left_rgb, right_rgb, flow_backend, config)
    if not result.ok:
        return StereoDepth(result, np.zeros_like(result.valid), result.valid, None)
    detector = sky_detector if sky_detector is not None else make_sky_detector(config)
    sky = np.asarray(detector(left_rgb, result.disparity, result.valid), bool)
    valid = guard_sky(result.valid, sky, config.sky_guard)
    return StereoDepth(result, sky, valid, inverse_depth_png(result.disparity, valid, sky))
