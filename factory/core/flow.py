"""Optical-flow backends.

The paper computes flow with FlowNet 2.0 (section 3.1). Our CPU default is OpenCV's DIS
(Kroeger et al. 2016); for GPU actors there is the learned RAFT-small (:mod:`dynocc.factory.core.raft`,
``FlowConfig(backend="raft-small", weights=...)``). Other backends satisfy :class:`FlowBackend`.

A flow field is a float32 array (H, W, 2): ``flow[y, x] = (dx, dy)``, the displacement of
pixel (x, y) of the first frame into the second.
"""

from __future__ import annotations

import threading
from typing import Protocol, Sequence

import cv2
import numpy as np

from dynocc.factory.config import FlowConfig


class FlowBackend(Protocol):
    """What the miner needs from a flow method: batched pairs of RGB frames in, flows out."""

    name: str

    def flows(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Flow from the first to the second frame of each pair, (H, W, 2) float32."""
        ...


def to_gray(frame_rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY) if frame_rgb.ndim == 3 else frame_rgb


def dis_calc(dis, a: np.ndarray, b: np.ndarray, flow: np.ndarray | None = None) -> np.ndarray:
    """``dis.calc(a, b, flow)`` for grey frames of any size.

    OpenCV's DIS builds its pyramid from the image size; when the image is too small for the
    preset (coarsest scale < finest scale) it picks another pyramid from the *width* alone. That
    path raises for images under 12 px, reads out of bounds (a segfault: the whole worker dies)
    on short wide images (e.g. 25x100, a 100x400 video in :func:`frame_motion`), and keeps the
    patch size and finest scale it picked for every later call on the instance. Frames smaller
    than the preset needs (short side ``patch << finest``, long side ``4 * patch * 2**(finest - 1/2)``)
    are therefore padded, edge pixels repeated, to that size, and the flow is cropped back.
    """
    h, w = a.shape[:2]
    p, s = dis.getPatchSize(), dis.getFinestScale()
    short, long_ = (p << s) + 1, int(4 * p * 2 ** (s - 0.5)) + 2  # +1/+2: clear of DIS's float rounding
    H, W = max(h, short), max(w, short)
    if max(H, W) < long_:
        H, W = (H, long_) if W >= H else (long_, W)
    if (H, W) == (h, w):
        return dis.calc(a, b, flow)

    def pad(x):
        return cv2.copyMakeBorder(np.ascontiguousarray(x), 0, H - h, 0, W - w, cv2.BORDER_REPLICATE)

    out = dis.calc(pad(a), pad(b), None if flow is None else pad(flow))
    return np.ascontiguousarray(out[:h, :w])


_MOTION = threading.local()  # one DIS ultrafast per thread (the miner's flow runs in another)


def frame_motion(gray_a: np.ndarray, gray_b: np.ndarray, scale: int = 4) -> float:
    """Median optical-flow magnitude from frame a to frame b, in full-resolution px: DIS ultrafast
    on the grey frames downscaled by ``scale`` (about 1 ms at 854×480), to choose a neighbour offset."""
    dis = getattr(_MOTION, "dis", None)
    if dis is None:
        dis = _MOTION.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    h, w = gray_a.shape[:2]
    size = (max(8, w // scale), max(8, h // scale))

    def small(g):
        return np.clip(cv2.resize(np.asarray(g, np.float32), size, interpolation=cv2.INTER_AREA), 0, 255).astype(np.uint8)

    f = dis_calc(dis, small(gray_a), small(gray_b))
    return float(np.median(cv2.magnitude(f[..., 0], f[..., 1]))) * (w / size[0])


class DISFlow:
    """OpenCV DIS optical flow on grey frames (presets: ultrafast, fast, medium)."""

    _PRESETS = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }

    def __init__(self, preset: str = "medium", threads: int | None = None):
        self.name = f"dis-{preset}"
        self._dis = cv2.DISOpticalFlow_create(self._PRESETS[preset])
        if threads is not None:
            cv2.setNumThreads(threads)
        self._gray: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id -> (frame, grey): the last few frames

    def _grey(self, frame: np.ndarray) -> np.ndarray:
        hit = self._gray.get(id(frame))
        if hit is not None and hit[0] is frame:
            return hit[1]
        grey = to_gray(frame)
        if len(self._gray) >= 8:
            self._gray.pop(next(iter(self._gray)))
        self._gray[id(frame)] = (frame, grey)
        return grey

    def flows(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        return [dis_calc(self._dis, self._grey(a), self._grey(b)) for a, b in pairs]

    def flows_from(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]], initial: Sequence[np.ndarray]) -> list[np.ndarray]:
        """As :meth:`flows`, each started from an initial flow (DIS refines it from its coarsest scale on;
        :func:`dynocc.factory.core.stereo.initial_disparity` gives one for displacements DIS cannot find alone)."""
        return [dis_calc(self._dis, self._grey(a), self._grey(b), np.array(f, np.float32, copy=True))
                for (a, b), f in zip(pairs, initial)]


def make_flow_backend(config: FlowConfig) -> FlowBackend:
    """The backend named by the config (the one place a backend is chosen). RAFT-small's weights are
    read from a local path here; engines use :func:`dynocc.factory.io.weights.flow_backend`, which
    reads them from any URL with the job's storage options."""
    if config.backend == "dis":
        return DISFlow(config.dis_preset, config.threads)
    if config.backend == "raft-small":
        from dynocc.factory.core.raft import RAFTFlow  # imports torch: only when asked for

        return RAFTFlow(config.weights, iters=config.iters, device=config.device,
                        batch_size=config.batch_size, precision=config.precision)
    raise ValueError(f"unknown flow backend {config.backend!r}")
