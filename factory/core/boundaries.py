"""Occlusion boundary detection, DynOcc section 3.1 (eqs. 1-3).

Flow in, boundaries out. The dense steps run at the *analysis scale* (``analysis_scale``, ½ by
default: DIS medium computes its flow at ½ resolution and upsamples it, so nothing is lost):

1. ``flow_jacobian``: the spatial derivatives of a flow field (Sobel, 3x3), in px per full px.
2. ``structure_axis``: the gradient direction d of the flow at each pixel, taken as the principal
   eigenvector of the Gaussian-smoothed flow structure tensor JᵀJ (ours: it points across the
   motion edge even where the raw gradient is noisy). It is kept as the doubled angle
   (cos 2θ, sin 2θ), which needs no trigonometry; ``normal_from_axis`` turns it into d = (cos θ,
   sin θ) only at the pixels that need it.
3. ``divergence_from_axis``: eqs. 1-2, ``b = f2 - f1`` with helper pixels one pixel either side
   along d, i.e. ``b = 2 dᵀ J d = (u_x + v_y) + (u_x - v_y) cos 2θ + (u_y + v_x) sin 2θ``;
   positive where the two sides move apart (diverging, reliable), negative where they converge.
4. ``boundary_confidence``: eq. 3, ``B[p]`` of whichever of F_prev / F_next has the larger b at p
   (its d goes with it). The paper's B is ``||∇F||₁``; ours (``measure = "jump"``, default) is the
   flow's *jump* across d (``flow_jump``): a camera moving through a room gives every floor and
   wall a smooth flow gradient, which ``||∇F||₁`` reports as an edge (with the true flow of the
   realdata sequences only 9% of its boundary pixels lay within 3 px of a depth edge; with the jump
   60% on TartanAir). With ``require_reliable_sides``, a candidate also needs forward-backward
   consistent flow (``flow_reliability``) ``side_reach`` px out on both sides.
5. ``detect_boundaries``: box blur k = 31, divide by the 90th percentile, threshold 0.3 (the
   paper's values) gives the band of confident edges; inside it we keep the ridge of B
   (non-maximum suppression along d, ours: the skeleton of a 31-px band runs off the edge), and
   only where it is the largest value within ``ridge_radius`` px along d (ours: DIS smears a
   motion edge into a staircase whose lower steps lie several px inside the background), thin it
   (Zhang-Suen, the paper's ref. [12]) and drop tiny pieces.
6. Back to full resolution: each ridge pixel moves to the sub-pixel top of B along d (a parabola
   through three samples) and becomes one point per full-resolution pixel along the edge; the
   point set is thinned again, so the boundary map is 1 px thin at full resolution.

Everything after the dense maps of steps 1-4 works on the sparse candidate pixels only.
``Boundaries.distance`` (what the vote reads of a nearby frame) is an exact Euclidean distance up
to 3 px made of disc dilations, computed once per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from dynocc.factory.config import BoundaryConfig
from dynocc.factory.core.sampling import sample


# ---------------------------------------------------------------------------------------------
# Dense per-flow geometry (eqs. 1-2)


def flow_jacobian(flow: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(du/dx, du/dy, dv/dx, dv/dy) of a flow field (H, W, 2), Sobel 3x3 scaled to px/px (divided by
    ``scale`` for a flow sampled every ``scale`` px). Views into two (H, W, 2) arrays, no copies."""
    flow = np.asarray(flow, np.float32)
    gx = cv2.Sobel(flow, cv2.CV_32F, 1, 0, ksize=3, scale=0.125 / scale)
    gy = cv2.Sobel(flow, cv2.CV_32F, 0, 1, ksize=3, scale=0.125 / scale)
    return gx[..., 0], gy[..., 0], gx[..., 1], gy[..., 1]


def structure_axis(jacobian, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(cos 2θ, sin 2θ) of the principal eigenvector d = (cos θ, sin θ) of the smoothed JᵀJ."""
    return _axis_of(_tensor(jacobian), sigma)


def _axis_of(tensor: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    k = 2 * int(np.ceil(2 * sigma)) + 1  # truncated at 2 sigma
    t = cv2.GaussianBlur(tensor, (k, k), sigma)
    a = t[..., 0] - t[..., 1]
    b = 2.0 * t[..., 2]
    r = cv2.magnitude(a, b)
    r += 1e-12  # no structure at all: (0, 0), some d (such pixels never become boundaries)
    return a / r, b / r


def normal_from_axis(cos2: np.ndarray, sin2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d = (cos θ, sin θ) with θ in (-π/2, π/2] from the doubled angle."""
    c = np.clip(np.asarray(cos2, np.float32), -1.0, 1.0)
    nx = np.sqrt(0.5 * (1.0 + c))
    ny = np.sqrt(0.5 * (1.0 - c))
    ny = np.where(np.asarray(sin2) < 0, -ny, ny)
    return nx.astype(np.float32), ny.astype(np.float32)


def edge_normal(jacobian, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit gradient direction d (dense maps): principal eigenvector of the smoothed JᵀJ."""
    return normal_from_axis(*structure_axis(jacobian, sigma))


def divergence_along_normal(jacobian, normal_x: np.ndarray, normal_y: np.ndarray) -> np.ndarray:
    """Eqs. 1-2: b = F[p + d]·d − F[p − d]·d = 2 dᵀ J d (positive = diverging)."""
    ux, uy, vx, vy = jacobian
    du = ux * normal_x + uy * normal_y  # derivative of u along d
    dv = vx * normal_x + vy * normal_y
    return 2.0 * (du * normal_x + dv * normal_y)


def divergence_from_axis(jacobian, cos2: np.ndarray, sin2: np.ndarray) -> np.ndarray:
    """Eqs. 1-2 without trigonometry: 2 dᵀ J d = (u_x + v_y) + (u_x − v_y) cos 2θ + (u_y + v_x) sin 2θ."""
    ux, uy, vx, vy = jacobian
    return (ux + vy) + (ux - vy) * cos2 + (uy + vx) * sin2


@dataclass(frozen=True)
class FlowGeometry:
    """Per-pixel quantities of one flow field that eqs. 1-3 need (all float32 (H, W))."""

    gradient_l1: np.ndarray  # ||∇F||₁
    divergence: np.ndarray  # b of eq. 2
    cos2: np.ndarray  # doubled angle of the normal d
    sin2: np.ndarray
    jump: Optional[np.ndarray] = None  # flow discontinuity across d, px (see flow_jump)
    reliable: Optional[np.ndarray] = None  # bool: the flow is trusted here (see flow_reliability)

    @property
    def strength(self) -> np.ndarray:
        """What eq. 3 fuses: the jump where it was computed (``measure = "jump"``), else ||∇F||₁."""
        return self.gradient_l1 if self.jump is None else self.jump

    @property
    def normal_x(self) -> np.ndarray:
        return normal_from_axis(self.cos2, self.sin2)[0]

    @property
    def normal_y(self) -> np.ndarray:
        return normal_from_axis(self.cos2, self.sin2)[1]


def analysis_flow(flow: np.ndarray, scale: int) -> np.ndarray:
    """The flow at the analysis resolution (area-averaged; vectors stay in full-resolution px)."""
    if scale == 1:
        return np.asarray(flow, np.float32)
    h, w = flow.shape[:2]
    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    return cv2.resize(np.asarray(flow, np.float32), size, interpolation=cv2.INTER_AREA)


def _tensor(jac) -> np.ndarray:
    """(H, W, 3) float32: JᵀJ = (u_x² + v_x², u_y² + v_y², u_x u_y + v_x v_y) per pixel."""
    ux, uy, vx, vy = jac
    gx, gy = ux.base, uy.base  # the two (H, W, 2) Sobel arrays of flow_jacobian
    if (gx is None or gy is None or vx.base is not gx or vy.base is not gy or gx.shape != ux.shape + (2,)
            or gy.shape != ux.shape + (2,)):
        gx, gy = np.stack([ux, vx], -1), np.stack([uy, vy], -1)
    tensor = np.empty(ux.shape + (3,), np.float32)
    for c, p in enumerate((gx * gx, gy * gy, gx * gy)):
        np.add(p[..., 0], p[..., 1], out=tensor[..., c])
    return tensor


def flow_reliability(flow: np.ndarray, back_flow: np.ndarray, gray: np.ndarray, config: BoundaryConfig) -> np.ndarray:
    """bool map at the analysis scale: where the flow can be trusted (ours). The forward flow is
    undone by the backward flow within ``max_fb_error`` px (ref. [27]'s consistency), and the image
    has texture in every direction (the smaller eigenvalue of its smoothed structure tensor, as
    grey levels per px, at least ``min_texture``): on a textureless wall a flow method returns
    a smooth guess that is forward-backward consistent yet wrong. ``flow`` and ``back_flow`` are at
    the analysis scale (:func:`analysis_flow`), ``gray`` at full resolution."""
    s = config.analysis_scale
    f, g = flow, back_flow
    h, w = f.shape[:2]
    xs, ys = _grid(h, w)
    back = cv2.remap(g, xs + f[..., 0] / s, ys + f[..., 1] / s, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = cv2.magnitude(f[..., 0] + back[..., 0], f[..., 1] + back[..., 1])
    if config.min_texture <= 0:
        return err <= config.max_fb_error
    img = cv2.resize(np.asarray(gray, np.float32), (w, h), interpolation=cv2.INTER_AREA) if s > 1 else np.asarray(gray, np.float32)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3, scale=0.125 / s)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3, scale=0.125 / s)
    k = max(3, int(round(config.texture_window / s)) | 1)
    a = cv2.blur(gx * gx, (k, k))
    c = cv2.blur(gy * gy, (k, k))
    b = cv2.blur(gx * gy, (k, k))
    lam_min = 0.5 * (a + c) - np.sqrt(0.25 * (a - c) ** 2 + b * b)
    return (err <= config.max_fb_error) & (lam_min >= config.min_texture ** 2)


def flow_geometry(flow: np.ndarray, config: BoundaryConfig, back_flow: Optional[np.ndarray] = None,
                  gray: Optional[np.ndarray] = None) -> FlowGeometry:
    """Eqs. 1-2 on the flow at the analysis scale; derivatives in px per full-resolution px."""
    s = config.analysis_scale
    flow_s = analysis_flow(flow, s)
    jac = flow_jacobian(flow_s, s)
    cos2, sin2 = structure_axis(jac, max(config.normal_sigma / s, 0.5))
    ux, uy, vx, vy = jac
    grad = np.abs(ux) + np.abs(uy) + np.abs(vx) + np.abs(vy)
    jump = None
    if config.measure == "jump":
        jump = flow_jump(flow_s, *normal_from_axis(cos2, sin2), config.jump_radius / s)
    reliable = None
    if back_flow is not None and gray is not None and config.require_reliable_sides:
        reliable = flow_reliability(flow_s, analysis_flow(back_flow, s), gray, config)
    return FlowGeometry(grad, divergence_from_axis(jac, cos2, sin2), cos2, sin2, jump, reliable)


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) float32 pixel coordinates of an (h, w) image, cached per size (read-only)."""
    g = _GRIDS.get((h, w))
    if g is None:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        xs.flags.writeable = ys.flags.writeable = False
        if len(_GRIDS) > 8:
            _GRIDS.clear()
        g = _GRIDS[(h, w)] = (xs, ys)
    return g


def flow_jump(flow: np.ndarray, nx: np.ndarray, ny: np.ndarray, r: float) -> np.ndarray:
    """How much the flow *jumps* across d at each pixel, px: the flow difference over the span
    [p − r d, p + r d] minus what the flow's own slope on either side predicts for it,
    ``|1.5 (F[p + r d] − F[p − r d]) − 0.5 (F[p + 3r d] − F[p − 3r d])|``.

    Zero wherever the flow is linear along d (a plane seen by a moving camera: its flow varies
    smoothly and has a gradient everywhere), the step height at a discontinuity (ours: eq. 3's
    ||∇F||₁ fires on the smooth parallax of every receding floor and wall)."""
    h, w = flow.shape[:2]
    xs, ys = _grid(h, w)

    def at(k):
        return cv2.remap(flow, xs + k * r * nx, ys + k * r * ny, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mid = at(1) - at(-1)
    j = 1.5 * mid - 0.5 * (at(3) - at(-3))
    size = cv2.magnitude(j[..., 0], j[..., 1])
    # 2r either side of a step the measure has a lobe of half the height with the opposite sign,
    # where the middle span itself holds no jump: keep only where the middle span carries it.
    along = j[..., 0] * mid[..., 0] + j[..., 1] * mid[..., 1]
    size[along < 0.5 * size * size] = 0.0
    return size


# ---------------------------------------------------------------------------------------------
# Eq. 3 and the boundary map


@dataclass(frozen=True)
class Confidence:
    """B of eq. 3, and where it came from (to read the normal d of the chosen flow)."""

    value: np.ndarray  # B, float32 (H, W)
    geometries: tuple[FlowGeometry, ...]  # (prev, next) or just the one available
    use_first: Optional[np.ndarray] = None  # bool (H, W): b_prev > b_next; None with one flow

    def normal_at(self, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """d at integer pixels (ys, xs), from the flow eq. 3 chose there."""
        g = self.geometries
        if self.use_first is None:
            return normal_from_axis(g[0].cos2[ys, xs], g[0].sin2[ys, xs])
        first = self.use_first[ys, xs]
        c = np.where(first, g[0].cos2[ys, xs], g[1].cos2[ys, xs])
        s = np.where(first, g[0].sin2[ys, xs], g[1].sin2[ys, xs])
        return normal_from_axis(c, s)

    def reliable_at(self, ys, xs, nx, ny, reach: float) -> Optional[np.ndarray]:
        """Per pixel: the chosen flow is reliable ``reach`` px out on both sides along d (None: not known)."""
        g = self.geometries
        if any(x.reliable is None for x in g):
            return None
        h, w = self.value.shape
        out = np.ones(len(ys), bool)
        for sgn in (1.0, -1.0):
            qx = np.clip(np.rint(xs + sgn * reach * nx), 0, w - 1).astype(np.int64)
            qy = np.clip(np.rint(ys + sgn * reach * ny), 0, h - 1).astype(np.int64)
            if self.use_first is None:
                ok = g[0].reliable[qy, qx]
            else:
                ok = np.where(self.use_first[ys, xs], g[0].reliable[qy, qx], g[1].reliable[qy, qx])
            out &= ok
        return out

    @property
    def normal_x(self) -> np.ndarray:
        ys, xs = np.indices(self.value.shape)
        return self.normal_at(ys, xs)[0]

    @property
    def normal_y(self) -> np.ndarray:
        ys, xs = np.indices(self.value.shape)
        return self.normal_at(ys, xs)[1]


def boundary_confidence(prev: Optional[FlowGeometry], next_: Optional[FlowGeometry]) -> Confidence:
    """Eq. 3: B and its normal, from the more reliable (larger b) of F_prev and F_next at each pixel."""
    if prev is None or next_ is None:
        only = prev if next_ is None else next_
        return Confidence(only.strength, (only,))
    use_prev = prev.divergence > next_.divergence
    value = next_.strength.copy()
    np.copyto(value, prev.strength, where=use_prev)
    return Confidence(value, (prev, next_), use_prev)


def confident_band(confidence: np.ndarray, config: BoundaryConfig, scale: int = 1) -> np.ndarray:
    """Box blur (k), divide by the p-th percentile, threshold: the paper's confident-edge band."""
    k = max(1, int(round(config.box_blur / scale)))
    blurred = cv2.blur(confidence, (k, k), borderType=cv2.BORDER_REFLECT)
    # The percentile of a subsample (1/16 of the full-resolution pixels): the same value to within
    # noise, 10x cheaper.
    step = max(1, 4 // scale)
    sub = blurred[::step, ::step].ravel()
    rank = min(len(sub) - 1, max(0, int(round(config.percentile / 100.0 * (len(sub) - 1)))))
    scale = float(np.partition(sub, rank)[rank])
    if scale <= 1e-6:
        return np.zeros(confidence.shape, bool)
    return blurred > config.threshold * scale


# Zhang-Suen thinning as a lookup table on the 8-neighbour code (bit k = neighbour k of
# P2 (N), P3 (NE), P4 (E), P5 (SE), P6 (S), P7 (SW), P8 (W), P9 (NW)), the same rule as
# cv2.ximgproc.thinning(THINNING_ZHANGSUEN), evaluated only at the foreground pixels.
def _zhang_suen_tables() -> tuple[np.ndarray, np.ndarray]:
    codes = np.arange(256)
    p = [(codes >> k) & 1 for k in range(8)]  # p[0] = P2 ... p[7] = P9
    b = sum(p)
    a = sum((p[k] == 0) & (p[(k + 1) % 8] == 1) for k in range(8))
    base = (a == 1) & (b >= 2) & (b <= 6)
    p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
    first = base & (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
    second = base & (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
    return first, second


_ZS_TABLES = _zhang_suen_tables()


def thin_points(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of the set of pixels (ys, xs) (distinct) of an image of ``shape``;
    returns which of them are kept (bool, per point). Only the points are visited, never the
    whole image. Same rule as cv2.ximgproc.thinning: border pixels are never deleted."""
    h, w = shape
    wp = w + 2
    pad = np.zeros((h + 2) * wp, np.uint8)
    idx = (np.asarray(ys, np.int64) + 1) * wp + np.asarray(xs, np.int64) + 1
    pad[idx] = 1
    alive = np.ones(len(idx), bool)
    inner = np.nonzero((ys > 0) & (ys < h - 1) & (xs > 0) & (xs < w - 1))[0]
    cur = idx[inner]
    offsets = np.array([-wp, -wp + 1, 1, wp + 1, wp, wp - 1, -1, -wp - 1])
    while True:
        changed = False
        for table in _ZS_TABLES:
            code = np.zeros(len(cur), np.int32)
            for k, off in enumerate(offsets):
                code |= pad[cur + off].astype(np.int32) << k
            gone = table[code]
            if gone.any():
                pad[cur[gone]] = 0
                alive[inner[gone]] = False
                cur, inner = cur[~gone], inner[~gone]
                changed = True
        if not changed:
            break
    return alive


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean mask, as cv2.ximgproc.thinning (pixels on the image border
    are read as neighbours but never deleted)."""
    ys, xs = np.nonzero(mask)
    out = np.zeros(mask.shape, bool)
    keep = thin_points(mask.shape, ys, xs)
    out[ys[keep], xs[keep]] = True
    return out


@dataclass
class Boundaries:
    """The thin boundary map of one frame and, per boundary pixel, its normal d and piece."""

    mask: np.ndarray  # bool (H, W), 1 px thin
    ys: np.ndarray  # int32, the boundary pixels (row-major order)
    xs: np.ndarray
    normal_x: np.ndarray  # float32 unit d at each boundary pixel
    normal_y: np.ndarray
    piece: np.ndarray  # int32 8-connected piece of each boundary pixel
    _distance: Optional[np.ndarray] = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ys)

    @property
    def distance(self) -> np.ndarray:
        """Distance (px, float32) of every pixel to the nearest boundary pixel, exact up to
        ``NEAR_RADIUS`` px and ``NEAR_RADIUS + 0.5`` beyond (all the alignment test reads); computed once."""
        if self._distance is None:
            self._distance = near_distance(self.mask)
        return self._distance

    @staticmethod
    def empty(shape: tuple[int, int]) -> "Boundaries":
        z = np.zeros(0, np.int32)
        f = np.zeros(0, np.float32)
        return Boundaries(np.zeros(shape, bool), z, z, f, f, z)


def detect_boundaries(conf: Confidence, config: BoundaryConfig, shape: Optional[tuple[int, int]] = None) -> Boundaries:
    """Thin occlusion boundaries of one frame from its confidence map B (section 3.1).

    ``conf`` is at the analysis scale; ``shape`` is the full frame size (H, W) the boundaries are
    mapped back to (default: the size of ``conf``, i.e. analysis scale 1).
    """
    value = conf.value
    h, w = value.shape
    H, W = shape if shape is not None else (h, w)
    rx, ry = W / w, H / h
    s = max(rx, ry)
    band = confident_band(value, config, int(round(s)))
    sigma = config.ridge_sigma / s
    smooth = cv2.GaussianBlur(value, (0, 0), sigma) if sigma >= 0.25 else value
    floor = config.min_jump if config.measure == "jump" else config.min_flow_gradient
    cand = band & (smooth > floor)
    b = int(np.ceil(config.border / s))
    if b:
        cand[:b] = False
        cand[h - b:] = False
        cand[:, :b] = False
        cand[:, w - b:] = False
    ys, xs = np.nonzero(cand)
    if len(ys) == 0:
        return Boundaries.empty((H, W))
    nx, ny = conf.normal_at(ys, xs)
    rel = conf.reliable_at(ys, xs, nx, ny, config.side_reach / s)
    if rel is not None:
        ys, xs, nx, ny = ys[rel], xs[rel], nx[rel], ny[rel]
        if len(ys) == 0:
            return Boundaries.empty((H, W))
    v = smooth[ys, xs]
    fx, fy = xs.astype(np.float32), ys.astype(np.float32)
    # Ridge: a local maximum of B along d (non-maximum suppression) ...
    ahead = sample(smooth, fx + nx, fy + ny)
    behind = sample(smooth, fx - nx, fy - ny)
    keep = (v >= ahead) & (v > behind)
    # ... and the dominant one within ridge_radius px along d.
    for k in range(2, int(np.ceil(config.ridge_radius / s)) + 1):
        i = np.nonzero(keep)[0]
        near = (v[i] >= sample(smooth, fx[i] + k * nx[i], fy[i] + k * ny[i])) & (
            v[i] >= sample(smooth, fx[i] - k * nx[i], fy[i] - k * ny[i]))
        keep[i[~near]] = False
    i = np.nonzero(keep)[0]
    keep[i[~thin_points((h, w), ys[i], xs[i])]] = False
    i = np.nonzero(keep)[0]
    thin_map = np.zeros((h, w), np.uint8)
    thin_map[ys[i], xs[i]] = 1
    n, labels = cv2.connectedComponents(thin_map, connectivity=8)
    lab = labels[ys, xs]
    sizes = np.bincount(lab[i], minlength=n)
    big = sizes >= max(1, int(np.ceil(config.min_component / s)))
    big[0] = False
    final = keep & big[lab]
    ys, xs, nx, ny, lab = ys[final], xs[final], nx[final], ny[final], lab[final]
    if s == 1:
        mask = np.zeros((H, W), bool)
        mask[ys, xs] = True
        return Boundaries(mask, ys.astype(np.int32), xs.astype(np.int32), nx, ny, lab.astype(np.int32))
    # Back to full resolution: the ridge's sub-pixel position along d (parabola through B at
    # -1, 0, +1), then one point per full-resolution pixel along the tangent.
    a, c, m = behind[final], ahead[final], v[final]
    curv = a - 2 * m + c
    delta = np.where(curv < -1e-9, 0.5 * (a - c) / np.where(curv < -1e-9, curv, -1.0), 0.0)
    delta = np.clip(delta, -0.5, 0.5)  # vertex offset along +d, in analysis px
    cx = (xs + 0.5 + delta * nx) * rx - 0.5
    cy = (ys + 0.5 + delta * ny) * ry - 0.5
    k = int(round(s))
    steps = np.arange(k, dtype=np.float32) - (k - 1) / 2.0
    px = np.rint(cx[:, None] - ny[:, None] * steps[None, :]).astype(np.int64).ravel()
    py = np.rint(cy[:, None] + nx[:, None] * steps[None, :]).astype(np.int64).ravel()
    src = np.repeat(np.arange(len(xs)), k)
    ok = (px >= 0) & (px < W) & (py >= 0) & (py < H)
    flat = py[ok] * W + px[ok]
    flat, first = np.unique(flat, return_index=True)
    src = src[ok][first]
    fy_, fx_ = np.divmod(flat, W)
    kept = thin_points((H, W), fy_, fx_)
    fy_, fx_, src = fy_[kept], fx_[kept], src[kept]
    mask = np.zeros((H, W), bool)
    mask[fy_, fx_] = True
    return Boundaries(mask, fy_.astype(np.int32), fx_.astype(np.int32), nx[src], ny[src], lab[src].astype(np.int32))


def occlusion_boundaries(conf: Confidence, config: BoundaryConfig, shape=None) -> np.ndarray:
    """Thin boolean boundary map from the confidence map B and its normal d (section 3.1)."""
    return detect_boundaries(conf, config, shape).mask


NEAR_RADIUS = 3


def _near_tables(radius: int):
    offsets = [(dx, dy) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    r2 = sorted({dx * dx + dy * dy for dx, dy in offsets if 0 < dx * dx + dy * dy <= radius * radius})
    kernels = []
    for r in r2:
        k = np.zeros((2 * radius + 1, 2 * radius + 1), np.uint8)
        for dx, dy in offsets:
            if dx * dx + dy * dy <= r:
                k[dy + radius, dx + radius] = 1
        kernels.append(k)
    # count of the discs that reach a pixel -> its distance (all discs: on the boundary).
    lut = np.full(256, radius + 0.5, np.float32)
    values = [0.0] + [float(np.sqrt(r)) for r in r2]
    for count in range(1, len(values) + 1):
        lut[count] = values[len(values) - count]
    return kernels, lut


_NEAR = _near_tables(NEAR_RADIUS)


def near_distance(boundary: np.ndarray) -> np.ndarray:
    """Euclidean distance (px, float32) to the nearest boundary pixel, exact up to NEAR_RADIUS px and
    NEAR_RADIUS + 0.5 beyond: a stack of disc dilations (much cheaper than a distance transform)."""
    kernels, lut = _NEAR
    src = boundary.view(np.uint8) if boundary.dtype == bool else (boundary > 0).astype(np.uint8)
    count = src.copy()
    for k in kernels:
        count += cv2.dilate(src, k)
    return cv2.LUT(count, lut) if count.size else count.astype(np.float32)
