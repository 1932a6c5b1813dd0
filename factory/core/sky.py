"""Sky detection for the stereo branch, ReDWeb section 3.1 ("Data postprocessing", Figure 3).

The paper: flow is unreliable in textureless regions, above all the sky, so the sky is segmented
with RefineNet (its ref. [40]) trained on ADE20K (ref. [41]), its boundary refined with a fully
connected CRF (ref. [42]), and the sky is set to infinity. **No such weights are available here**
(nothing may be downloaded at run time), so the default is a heuristic, and the detector is
pluggable: anything satisfying :class:`SkyDetector` can replace it (e.g. a segmentation network
with ADE20K's "sky" class), and ``StereoConfig.sky_detector = "none"`` turns sky detection off.

"Set to infinity" in our terms: inverse depth 0, the farthest possible — value 1 of the stored
PNG (:func:`dynocc.factory.core.stereo.inverse_depth_png`), farther than any valid pixel in pairs
(:func:`dynocc.factory.core.stereo_pairs.sample_stereo_pairs`).

:class:`HeuristicSkyDetector` marks a pixel as sky when all four cues agree (thresholds are the
``sky_*`` fields of :class:`~dynocc.factory.config.StereoConfig`, all ours):

1. **colour** (HSV of the left image, H in degrees, S and V in [0, 1]): blue — H within
   ``sky_hue_range`` (190-250°), S >= ``sky_min_blue_saturation`` (0.12), V >=
   ``sky_min_blue_value`` (0.2, so dusk skies pass) — or grey-white (overcast) — S <=
   ``sky_max_grey_saturation`` (0.12), V >= ``sky_min_grey_value`` (0.6, bright);
2. **texture**: the mean Sobel gradient magnitude of the grey image (0-255, after a 3x3 Sobel
   divided by 8, i.e. grey levels per px) over a ``sky_window`` (9) box is below
   ``sky_max_texture`` (2.5);
3. **flow evidence** (failed flow is *not* evidence: "unknown is not sky"): a pixel whose flow is
   consistent (left-right check) with a disparity above the larger of ``sky_max_disparity_px``
   (1 px) and ``sky_max_disparity_fraction`` (0.1) × the p95 of valid disparity is measured *near*
   and is never sky. A pixel consistent and below that is measured *far*: positive evidence;
4. **position and evidence per region**: after a closing of radius ``sky_close_radius`` (2 px), the
   8-connected regions of colour ∧ texture ∧ not-near that touch the top row and cover at least
   ``sky_min_area_fraction`` (0.5%) of the image — separately for the blue and the grey-white class,
   so that a white wall whose top rows lost their flow under a blue sky does not join the sky.
   A region is sky when at least ``sky_min_far_share`` (25%) of it is measured far; a *blue* region
   with no such evidence (a clean, flawless sky gives the flow nothing to match) is sky when at most
   ``sky_max_near_rim`` (50%) of the same-coloured pixels around it are measured near. Blue is
   evidence of its own; grey-white is not (white walls, tables, boards and panels are grey-white,
   textureless and often touch the top of indoor photos): a grey-white region needs the far share.
   Measured: a near white panel hanging from the top (rendered, 90% of the largest disparity) and
   Motorcycle's white board under a misaligned, darker, JPEG right view were marked sky before
   (all of the panel; 1% of the image, which made 26% of the pairs wrong); neither is now. Finally
   each region regrows ``sky_window // 2`` px into pixels of its colour not measured near
   (texture ignored), since the texture window straddling the horizon misses the sky's last rows.

5. **guard** (:func:`guard_sky`, used by :func:`dynocc.factory.core.stereo.stereo_depth`): valid pixels
   within ``sky_guard`` (4) px of the sky become unknown — flow smears across the horizon both ways.

Dark skies (night), skies seen only through foliage, and sky not touching the top border are
missed; measured recall and false positives are in ``tests/unit/test_stereo.py``.
"""

from __future__ import annotations

from typing import Optional, Protocol

import cv2
import numpy as np

from dynocc.factory.config import StereoConfig


class SkyDetector(Protocol):
    """Sky mask of the left image: ``(left_rgb uint8 (H, W, 3), disparity float32 (H, W),
    valid bool (H, W)) -> bool (H, W)``."""

    def __call__(self, left_rgb: np.ndarray, disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
        ...


class NoSky:
    """``sky_detector: "none"``: never any sky."""

    name = "none"

    def __call__(self, left_rgb: np.ndarray, disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return np.zeros(left_rgb.shape[:2], bool)


class HeuristicSkyDetector:
    """Colour + texture + flow evidence + top-connected regions (module docstring)."""

    name = "heuristic"

    def __init__(self, config: Optional[StereoConfig] = None):
        self.config = config or StereoConfig()

    def colours(self, left_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Blue pixels and bright grey-white pixels (cue 1)."""
        c = self.config
        hsv = cv2.cvtColor(left_rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
        h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        lo, hi = c.sky_hue_range
        blue = (h >= lo) & (h <= hi) & (s >= c.sky_min_blue_saturation) & (v >= c.sky_min_blue_value)
        grey = (s <= c.sky_max_grey_saturation) & (v >= c.sky_min_grey_value)
        return blue, grey

    def texture(self, left_rgb: np.ndarray) -> np.ndarray:
        """Mean gradient magnitude (grey levels / px) over a ``sky_window`` box (cue 2 compares it)."""
        grey = cv2.cvtColor(left_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        k = self.config.sky_window
        return cv2.blur(np.sqrt(gx * gx + gy * gy), (k, k))

    def far_limit(self, disparity: np.ndarray, valid: np.ndarray) -> float:
        """Disparity at or below which a consistent pixel counts as far (cue 3), px."""
        c = self.config
        limit = c.sky_max_disparity_px
        if valid.any():
            limit = max(limit, c.sky_max_disparity_fraction * float(np.percentile(disparity[valid], 95)))
        return limit

    def _top_components(self, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cue 4: labels of the closed, 8-connected regions of ``cand`` and the ids of those that touch
        the top row and are large enough."""
        c = self.config
        if c.sky_close_radius > 0:
            r = c.sky_close_radius
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            cand = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_CLOSE, k).astype(bool)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
        top = np.unique(labels[0][labels[0] > 0])
        return labels, top[stats[top, cv2.CC_STAT_AREA] >= c.sky_min_area_fraction * cand.size]

    def __call__(self, left_rgb: np.ndarray, disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
        c = self.config
        if left_rgb.ndim == 2:
            left_rgb = np.repeat(left_rgb[:, :, None], 3, axis=2)
        disparity = np.asarray(disparity, np.float32)
        valid = np.asarray(valid, bool)
        limit = self.far_limit(disparity, valid)
        far = valid & (disparity <= limit)  # positive flow evidence: consistent and far
        near = valid & (disparity > limit)  # contradicting evidence
        smooth = self.texture(left_rgb) < c.sky_max_texture
        blue, grey = self.colours(left_rgb)
        ring = np.ones((2 * c.sky_window - 1,) * 2, np.uint8)
        sky = np.zeros(valid.shape, bool)
        for colour, colour_suffices in ((blue, True), (grey, False)):
            # Each colour class must reach the top by itself: a white wall under a blue sky is not sky.
            labels, ids = self._top_components(colour & smooth & ~near)
            region = np.zeros(valid.shape, bool)
            for i in ids:
                part = labels == i
                if far[part].mean() >= c.sky_min_far_share:
                    region |= part  # small but consistent disparity over enough of it
                elif colour_suffices:
                    # Blue, smooth, on top: sky unless the same colour around it is measured near.
                    rim = cv2.dilate(part.astype(np.uint8), ring).astype(bool) & ~part & colour
                    if not rim.any() or near[rim].mean() <= c.sky_max_near_rim:
                        region |= part
            # The texture window straddles the horizon: regrow its half-width into same-coloured
            # pixels that the flow does not place near (geodesic dilation, 1 px per step).
            allowed = colour & ~near
            k = np.ones((3, 3), np.uint8)
            for _ in range(c.sky_window // 2):
                region = cv2.dilate(region.astype(np.uint8), k).astype(bool) & allowed
            sky |= region
        return sky


def guard_sky(valid: np.ndarray, sky: np.ndarray, guard: int) -> np.ndarray:
    """``valid`` without the sky and without pixels within ``guard`` px of it (a disc): flow smears
    across the horizon both ways, so its rim is unknown rather than wrong (``StereoConfig.sky_guard``)."""
    valid = np.asarray(valid, bool) & ~sky
    if guard > 0 and sky.any():
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * guard + 1, 2 * guard + 1))
        valid &= ~cv2.dilate(sky.astype(np.uint8), k).astype(bool)
    return valid


def make_sky_detector(config: Optional[StereoConfig] = None) -> SkyDetector:
    """The detector named by ``config.sky_detector`` ("heuristic" or "none")."""
    config = config or StereoConfig()
    if config.sky_detector == "heuristic":
        return HeuristicSkyDetector(config)
    if config.sky_detector == "none":
        return NoSky()
    raise ValueError(f"unknown sky detector {config.sky_detector!r}")
