"""Pictures of mined pairs, in the style of Figure 4 of the DynOcc paper.

Each pair is drawn as two small filled dots, optionally joined by a thin line:

* ordered pairs (ordinal ``+1`` / ``-1``): the CLOSER point in one colour, the FARTHER
  point in another;
* equal pairs (ordinal ``0``): both points in a third colour.

The ordinal follows frame schema v1: ``+1`` means A is closer to the camera than B,
``-1`` means B is closer, ``0`` means about the same depth.

Colours come from the Okabe-Ito palette (distinguishable with the common forms of
colour blindness); every dot has a thin dark rim so it stays visible on any background.
All functions are pure: they return new arrays and never modify their inputs.
"""

from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np

from dynocc.factory.io import codecs
from dynocc.factory.io.storage import put_url

__all__ = [
    "CLOSER_RGB",
    "FARTHER_RGB",
    "EQUAL_RGB",
    "MAX_PAIRS",
    "UPSCALE_BELOW",
    "draw_pairs",
    "confidence_rgb",
    "verdict_rgb",
    "encode_png",
    "save_png",
    "overlay_grid",
]

# Okabe-Ito palette, RGB.
CLOSER_RGB: tuple[int, int, int] = (213, 94, 0)  # vermillion
FARTHER_RGB: tuple[int, int, int] = (86, 180, 233)  # sky blue
EQUAL_RGB: tuple[int, int, int] = (240, 228, 66)  # yellow
RIM_RGB: tuple[int, int, int] = (0, 0, 0)
LINE_RGB: tuple[int, int, int] = (230, 230, 230)
LINE_ALPHA = 0.6
LEGEND_BG_RGB: tuple[int, int, int] = (20, 20, 20)
LEGEND_TEXT_RGB: tuple[int, int, int] = (255, 255, 255)

RIGHT_RGB: tuple[int, int, int] = (0, 158, 115)  # bluish green: right against true depth
WRONG_RGB: tuple[int, int, int] = (204, 121, 167)  # reddish purple: wrong
UNGRADED_RGB: tuple[int, int, int] = (120, 120, 120)

MAX_PAIRS = 4000  # at most this many pairs are drawn per image
UPSCALE_BELOW = 400  # images whose long side is shorter are drawn at ×2


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Return an (H, W, 3) uint8 copy of ``image`` (grey, RGB or RGBA; uint8 or float)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {img.shape}")
    img = img[:, :, :3]
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating):
            finite = img[np.isfinite(img)]
            if finite.size and finite.max() <= 1.0:
                img = img * 255.0
            img = np.nan_to_num(img, nan=0.0, posinf=255.0, neginf=0.0)
        img = np.clip(np.rint(img) if np.issubdtype(img.dtype, np.floating) else img, 0, 255)
        img = img.astype(np.uint8)
    return np.ascontiguousarray(img).copy()


def _select(n: int, max_pairs: int | None, seed: int) -> np.ndarray:
    """Indices of the pairs to draw: all of them, or a deterministic sorted sample."""
    if max_pairs is None or n <= max_pairs:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(max_pairs), replace=False))


def _draw_legend(img: np.ndarray, radius: int) -> None:
    """Draw a small legend box in the top-left corner, in place."""
    h, w = img.shape[:2]
    scale = float(np.clip(max(h, w) / 1000.0, 0.35, 0.8))
    thickness = 1
    font = cv2.FONT_HERSHEY_SIMPLEX
    entries = (("closer", CLOSER_RGB), ("farther", FARTHER_RGB), ("equal", EQUAL_RGB))
    sizes = [cv2.getTextSize(text, font, scale, thickness) for text, _ in entries]
    text_h = max(s[0][1] + s[1] for s in sizes)
    text_w = max(s[0][0] for s in sizes)
    dot_r = max(radius + 1, int(round(text_h * 0.35)), 3)
    pad = max(4, dot_r)
    row_h = max(text_h, 2 * dot_r) + pad // 2
    box_w = pad + 2 * dot_r + pad + text_w + pad
    box_h = pad + row_h * len(entries) + pad // 2
    x0, y0 = 6, 6
    x1, y1 = min(w - 1, x0 + box_w), min(h - 1, y0 + box_h)
    if x1 <= x0 or y1 <= y0:
        return
    # Semi-opaque dark box with a light border.
    roi = img[y0 : y1 + 1, x0 : x1 + 1]
    bg = np.array(LEGEND_BG_RGB, np.float32)
    roi[:] = np.clip(roi.astype(np.float32) * 0.25 + bg * 0.75, 0, 255).astype(np.uint8)
    cv2.rectangle(img, (x0, y0), (x1, y1), (200, 200, 200), 1, cv2.LINE_8)
    for i, (text, colour) in enumerate(entries):
        cy = y0 + pad + row_h * i + row_h // 2
        cx = x0 + pad + dot_r
        cv2.circle(img, (cx, cy), dot_r + 1, RIM_RGB, -1, cv2.LINE_8)
        cv2.circle(img, (cx, cy), dot_r, colour, -1, cv2.LINE_8)
        (tw, th), base = sizes[i]
        ty = cy + th // 2
        cv2.putText(img, text, (cx + dot_r + pad, ty), font, scale, LEGEND_TEXT_RGB, thickness, cv2.LINE_AA)


def draw_pairs(
    image_rgb: np.ndarray,
    ya,
    xa,
    yb,
    xb,
    ordinal,
    *,
    radius: int = 2,
    draw_lines: bool = True,
    legend: bool = True,
    max_pairs: int | None = MAX_PAIRS,
    seed: int = 0,
    line_rgb=None,
) -> np.ndarray:
    """Draw relative-depth pairs on an image and return a new RGB uint8 image.

    ``ya, xa, yb, xb`` are pixel coordinates (row, column) of points A and B in
    ``image_rgb``; ``ordinal`` is +1 (A closer), -1 (B closer) or 0 (same depth) per pair
    (only its sign is used). If the image's long side is shorter than 400 px it is
    upscaled ×2 (nearest neighbour) and the coordinates with it; ``radius`` is in output
    pixels. At most ``max_pairs`` pairs are drawn, a deterministic sample (``seed``) when
    there are more. Points outside the image are clipped by the drawing routines.
    ``line_rgb``: optional (N, 3) colours, one per pair, for opaque 2-px lines instead of the faint
    grey ones (e.g. :func:`confidence_rgb`, or right / wrong against true depth: :data:`RIGHT_RGB`,
    :data:`WRONG_RGB`).
    """
    img = _as_rgb_uint8(image_rgb)
    arrays = [np.asarray(a).reshape(-1) for a in (ya, xa, yb, xb, ordinal)]
    n = arrays[0].size
    if any(a.size != n for a in arrays):
        raise ValueError(f"ya, xa, yb, xb, ordinal must have equal lengths, got {[a.size for a in arrays]}")
    ya_, xa_, yb_, xb_ = (a.astype(np.float64) for a in arrays[:4])
    ordv = np.sign(np.nan_to_num(arrays[4].astype(np.float64))).astype(np.int8)

    h, w = img.shape[:2]
    scale = 2 if max(h, w) < UPSCALE_BELOW else 1
    if scale != 1:
        img = cv2.resize(img, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)

    finite = np.isfinite(ya_) & np.isfinite(xa_) & np.isfinite(yb_) & np.isfinite(xb_)
    keep = np.flatnonzero(finite)
    keep = keep[_select(keep.size, max_pairs, seed)]
    if keep.size:
        # Centre of the source pixel in the (possibly upscaled) output image.
        def to_px(v: np.ndarray) -> np.ndarray:
            return (np.rint(v[keep]) * scale + scale // 2).astype(np.int64)

        pa = np.stack([to_px(xa_), to_px(ya_)], axis=1)  # (x, y) for cv2
        pb = np.stack([to_px(xb_), to_px(yb_)], axis=1)
        o = ordv[keep]

        if line_rgb is not None:
            colours = np.asarray(line_rgb).reshape(-1, 3)[keep]
            for (x0, y0), (x1, y1), c in zip(pa.tolist(), pb.tolist(), colours.tolist()):
                cv2.line(img, (x0, y0), (x1, y1), tuple(int(v) for v in c), 2, cv2.LINE_AA)
        elif draw_lines:
            lines = img.copy()
            for (x0, y0), (x1, y1) in zip(pa.tolist(), pb.tolist()):
                cv2.line(lines, (x0, y0), (x1, y1), LINE_RGB, 1, cv2.LINE_AA)
            img = cv2.addWeighted(lines, LINE_ALPHA, img, 1.0 - LINE_ALPHA, 0.0)

        # Closer / farther point of each ordered pair; both points of equal pairs.
        a_closer = o > 0
        b_closer = o < 0
        equal = o == 0
        closer = np.concatenate([pa[a_closer], pb[b_closer]])
        farther = np.concatenate([pb[a_closer], pa[b_closer]])
        equals = np.concatenate([pa[equal], pb[equal]])
        groups = ((equals, EQUAL_RGB), (farther, FARTHER_RGB), (closer, CLOSER_RGB))
        r = max(int(radius), 0)
        # All rims first, then all fills, so a rim never cuts into a neighbouring dot.
        for pts, _ in groups:
            for x, y in pts.tolist():
                cv2.circle(img, (x, y), r + 1, RIM_RGB, -1, cv2.LINE_8)
        for pts, colour in groups:  # closer dots end up on top
            for x, y in pts.tolist():
                cv2.circle(img, (x, y), r, colour, -1, cv2.LINE_8)

    if legend:
        _draw_legend(img, int(radius))
    return img


def confidence_rgb(confidence) -> np.ndarray:
    """(N, 3) uint8 line colours for pair confidences in [0, 1]: OpenCV's VIRIDIS map (dark purple =
    least sure, yellow = most); NaN (no confidence stored) is grey."""
    c = np.asarray(confidence, np.float64).reshape(-1)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_VIRIDIS)[:, 0, ::-1]
    out = lut[np.clip(np.rint(np.nan_to_num(c, nan=0.0) * 255), 0, 255).astype(np.int64)].copy()
    out[~np.isfinite(c)] = UNGRADED_RGB
    return out


def verdict_rgb(verdict) -> np.ndarray:
    """(N, 3) uint8 line colours for verdicts against true depth: +1 right, −1 wrong, 0 ungraded."""
    v = np.asarray(verdict).reshape(-1)
    out = np.empty((len(v), 3), np.uint8)
    out[:] = UNGRADED_RGB
    out[v > 0] = RIGHT_RGB
    out[v < 0] = WRONG_RGB
    return out


def encode_png(image_rgb: np.ndarray) -> bytes:
    """Encode an RGB (or grey) image as PNG bytes (:func:`dynocc.factory.io.codecs.encode_png`)."""
    return codecs.encode_png(_as_rgb_uint8(image_rgb))


def save_png(image_rgb: np.ndarray, path: str | os.PathLike, **storage_options) -> str:
    """Write ``image_rgb`` as a PNG to ``path``, any fsspec URL; returns the path.

    Parent folders are created; the file appears whole or not at all (:class:`~dynocc.factory.io.storage.StorageRoot`).
    ``storage_options`` go to fsspec (flat or per protocol).
    """
    url = os.fspath(path)
    put_url(url, encode_png(image_rgb), storage_options)
    return url


def overlay_grid(
    images: Sequence[np.ndarray],
    cols: int = 3,
    *,
    pad: int = 4,
    background: tuple[int, int, int] = (32, 32, 32),
) -> np.ndarray:
    """Contact sheet: images laid out row by row, ``cols`` per row, each centred in a cell.

    Cells are as large as the largest image (no resizing, so dots stay crisp), separated
    by ``pad`` pixels of ``background``. Returns an RGB uint8 image.
    """
    imgs = [_as_rgb_uint8(im) for im in images]
    if not imgs:
        raise ValueError("overlay_grid needs at least one image")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    cols = min(int(cols), len(imgs))
    rows = -(-len(imgs) // cols)
    cell_h = max(im.shape[0] for im in imgs)
    cell_w = max(im.shape[1] for im in imgs)
    pad = max(int(pad), 0)
    sheet = np.empty((rows * cell_h + (rows + 1) * pad, cols * cell_w + (cols + 1) * pad, 3), np.uint8)
    sheet[:] = np.asarray(background, np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, cols)
        y = pad + r * (cell_h + pad) + (cell_h - im.shape[0]) // 2
        x = pad + c * (cell_w + pad) + (cell_w - im.shape[1]) // 2
        sheet[y : y + im.shape[0], x : x + im.shape[1]] = im
    return sheet
