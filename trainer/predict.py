"""Depth-map files of ``dynocc predict``.

``<stem>.depth.png``: 16-bit greyscale, the predicted relative inverse depth of the image
min-max normalised to 0..65535 (brighter = closer; only the order of values is meaningful).
``<stem>.color.png``: the same map through the Turbo colour map (red = near, blue = far).
"""

from __future__ import annotations

import os
import posixpath

import cv2
import numpy as np


def normalise(z: np.ndarray) -> np.ndarray:
    """float map -> [0, 1] (min-max; a constant map becomes 0)."""
    z = np.asarray(z, np.float64)
    lo, hi = float(np.min(z)), float(np.max(z))
    return np.zeros_like(z) if hi <= lo else (z - lo) / (hi - lo)


def depth_png16(z: np.ndarray) -> np.ndarray:
    return np.round(normalise(z) * 65535).astype(np.uint16)


def color_view(z: np.ndarray) -> np.ndarray:
    """BGR uint8 Turbo view, for ``cv2.imwrite``."""
    return cv2.applyColorMap(np.round(normalise(z) * 255).astype(np.uint8), cv2.COLORMAP_TURBO)


def save_prediction(z: np.ndarray, image_name: str, out_dir: str) -> tuple[str, str]:
    stem = posixpath.splitext(posixpath.basename(image_name.rstrip("/")))[0] or "image"
    depth = os.path.join(out_dir, f"{stem}.depth.png")
    color = os.path.join(out_dir, f"{stem}.color.png")
    if not (cv2.imwrite(depth, depth_png16(z)) and cv2.imwrite(color, color_view(z))):
        raise OSError(f"could not write {depth} / {color}")
    return depth, color
