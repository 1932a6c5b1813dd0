"""Reading images and flow fields at arbitrary (sub-pixel) points, vectorised with cv2.remap; filling gaps."""

from __future__ import annotations

import cv2
import numpy as np

_WIDTH = 1024  # cv2.remap handles at most 32767 rows per call: lay the points out as a wide image


def sample(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, *, nearest: bool = False) -> np.ndarray:
    """Bilinear (or nearest) samples of ``image`` at points (xs, ys); clamps at the border.

    Returns float32 (for a float32 image) of shape ``xs.shape`` for a one-channel image,
    ``xs.shape + (C,)`` otherwise.
    """
    shape = np.shape(xs)
    n = int(np.prod(shape)) if shape else 1
    channels = () if image.ndim == 2 else (image.shape[2],)
    if n == 0:
        return np.zeros(shape + channels, np.float32)
    rows = -(-n // _WIDTH)
    mx = np.empty(rows * _WIDTH, np.float32)
    my = np.empty(rows * _WIDTH, np.float32)
    mx[:n] = np.ravel(xs)
    my[:n] = np.ravel(ys)
    mx[n:] = 0
    my[n:] = 0
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out = cv2.remap(image, mx.reshape(rows, _WIDTH), my.reshape(rows, _WIDTH), interp,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape((rows * _WIDTH,) + channels)[:n].reshape(shape + channels)


def inside(xs: np.ndarray, ys: np.ndarray, width: int, height: int, margin: float = 0.0) -> np.ndarray:
    """True where (xs, ys) lies at least ``margin`` px inside the image."""
    return (xs >= margin) & (ys >= margin) & (xs <= width - 1 - margin) & (ys <= height - 1 - margin)


def nearest_fill(values: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Each unusable pixel takes the value of its nearest usable pixel (L2 distance transform labels)."""
    if usable.all():
        return values
    _, labels = cv2.distanceTransformWithLabels((~usable).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(usable)
    index = np.zeros(labels.max() + 1, np.int64)
    index[labels[usable]] = np.arange(len(ys))
    nearest = index[labels]
    return values[ys[nearest], xs[nearest]]
