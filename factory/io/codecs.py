"""Image codecs: the one place where RGB arrays become JPEG/PNG bytes and bytes become RGB arrays.

OpenCV works in BGR; everything in dynocc is RGB, so the conversion lives here and nowhere else.
(The stereo branch's 16-bit inverse-depth PNG is a format of its own: :mod:`dynocc.factory.core.stereo`.)
"""

from __future__ import annotations

import cv2
import numpy as np


def encode_jpeg(image_rgb: np.ndarray, quality: int = 90) -> bytes:
    """An RGB uint8 image as JPEG bytes at ``quality`` (1-100)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def encode_png(image_rgb: np.ndarray) -> bytes:
    """An RGB (or grey) uint8 image as PNG bytes."""
    img = np.asarray(image_rgb)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def decode_rgb(data: bytes, what: str = "image bytes") -> np.ndarray:
    """JPEG/PNG/... bytes as an RGB uint8 array; ``ValueError`` naming ``what`` if they do not decode."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{what}: not a decodable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
