"""Reading images and flow fields at arbitrary (sub-pixel) points, vectorised with cv2.remap."""

from __future__ import annotations

import cv2
import numpy as np


def sample(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, *, nearest: bool = False) -> np.ndarray:
    """Bilinear (or nearest) samples of ``image`` at points (xs, ys); clamps at the border.

    Returns shape ``xs.shape`` for a one-channel image, ``xs.shape + (C,)`` otherwise.
    """
    shape = np.shape(xs)
    mx = np.asarray(xs, np.float32).reshape(-1, 1)
    my = np.asarray(ys, np.float32).reshape(-1, 1)
    if mx.size == 0:
        channels = () if image.ndim == 2 else (image.shape[2],)
        return np.zeros(shape + channels, np.float32)
    # cv2.remap handles at most 32767 rows per call; reshape as a wide image instead.
    n = mx.shape[0]
    width = 1024
    rows = -(-n // width)
    pad = rows * width - n
    mx = np.pad(mx[:, 0], (0, pad)).reshape(rows, width)
    my = np.pad(my[:, 0], (0, pad)).reshape(rows, width)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out = cv2.remap(image, mx, my, interp, borderMode=cv2.BORDER_REPLICATE)
    out = out.reshape(rows * width, -1)[:n]
    if image.ndim == 2:
        return out.reshape(shape)
    return out.reshape(shape + (image.shape[2],))


def inside(xs: np.ndarray, ys: np.ndarray, width: int, height: int, margin: float = 0.0) -> np.ndarray:
    """True where (xs, ys) lies at least ``margin`` px inside the image."""
    return (xs >= margin) & (ys >= margin) & (xs <= width - 1 - margin) & (ys <= height - 1 - margin)
