"""Tests for factory/tools/overlay.py: colours read back from drawn pixels, PNG round trip, legend."""

from __future__ import annotations

import cv2
import fsspec
import numpy as np
import pytest

from dynocc.factory.tools import overlay
from dynocc.factory.tools.overlay import CLOSER_RGB, EQUAL_RGB, FARTHER_RGB, draw_pairs, overlay_grid, save_png


def _synthetic(h: int = 120, w: int = 160) -> np.ndarray:
    """A smooth grey gradient: no pixel has any of the palette colours."""
    y, x = np.mgrid[0:h, 0:w]
    g = (60 + 80 * x / w + 40 * y / h).astype(np.uint8)
    return np.stack([g, g, g], axis=2)


# Three well separated pairs, away from the legend corner (top left).
YA = np.array([80, 30, 100], np.int16)
XA = np.array([20, 120, 70], np.int16)
YB = np.array([80, 60, 100], np.int16)
XB = np.array([50, 120, 130], np.int16)
ORD = np.array([+1, -1, 0], np.int8)


def _px(img: np.ndarray, y: int, x: int, scale: int) -> tuple[int, ...]:
    return tuple(int(v) for v in img[y * scale + scale // 2, x * scale + scale // 2])


def test_colours_follow_ordinal_convention():
    src = _synthetic()
    out = draw_pairs(src, YA, XA, YB, XB, ORD, radius=2)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    # Long side 160 < 400: upscaled ×2.
    assert out.shape[:2] == (src.shape[0] * 2, src.shape[1] * 2)
    s = 2
    # +1: A is closer, B farther.
    assert _px(out, YA[0], XA[0], s) == CLOSER_RGB
    assert _px(out, YB[0], XB[0], s) == FARTHER_RGB
    # -1: B is closer, A farther.
    assert _px(out, YB[1], XB[1], s) == CLOSER_RGB
    assert _px(out, YA[1], XA[1], s) == FARTHER_RGB
    # 0: both equal colour.
    assert _px(out, YA[2], XA[2], s) == EQUAL_RGB
    assert _px(out, YB[2], XB[2], s) == EQUAL_RGB
    # The input is not modified.
    np.testing.assert_array_equal(src, _synthetic())
    # Palette colours are distinct.
    assert len({CLOSER_RGB, FARTHER_RGB, EQUAL_RGB}) == 3


def test_whole_dot_has_colour_and_line_joins_points():
    src = _synthetic()
    out = draw_pairs(src, YA, XA, YB, XB, ORD, radius=2, legend=False)
    cy, cx = YA[0] * 2 + 1, XA[0] * 2 + 1
    dot = out[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3)
    assert (dot == np.array(CLOSER_RGB, np.uint8)).all()
    # Midway between A and B of pair 0 (same row) the line brightens the gradient.
    base = cv2.resize(src, (src.shape[1] * 2, src.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    my, mx = cy, (XA[0] + XB[0]) + 1  # midpoint column in output pixels
    assert int(out[my, mx].astype(int).sum()) > int(base[my, mx].astype(int).sum()) + 30
    no_lines = draw_pairs(src, YA, XA, YB, XB, ORD, radius=2, legend=False, draw_lines=False)
    np.testing.assert_array_equal(no_lines[my, mx], base[my, mx])


def test_no_upscale_for_large_images_and_grey_input():
    src = _synthetic(300, 450)[:, :, 0]  # grey, long side 450
    out = draw_pairs(src, [10], [300], [200], [400], [-1], legend=False)
    assert out.shape == (300, 450, 3)
    assert tuple(int(v) for v in out[200, 400]) == CLOSER_RGB
    assert tuple(int(v) for v in out[10, 300]) == FARTHER_RGB


def test_legend_present():
    src = _synthetic()
    with_legend = draw_pairs(src, YA, XA, YB, XB, ORD)
    without = draw_pairs(src, YA, XA, YB, XB, ORD, legend=False)
    corner = (slice(0, 80), slice(0, 120))
    assert not np.array_equal(with_legend[corner], without[corner])
    box = with_legend[corner].reshape(-1, 3)
    for colour in (CLOSER_RGB, FARTHER_RGB, EQUAL_RGB):
        assert (box == np.array(colour, np.uint8)).all(axis=1).sum() >= 9, colour
    # White text on a dark box.
    assert (box.min(axis=1) > 200).sum() > 20
    assert (box.max(axis=1) < 40).sum() > 200
    # Away from the legend the two pictures are identical.
    np.testing.assert_array_equal(with_legend[120:, 150:], without[120:, 150:])


def test_empty_and_mismatched_inputs():
    src = _synthetic()
    out = draw_pairs(src, [], [], [], [], [], legend=False)
    base = cv2.resize(src, (320, 240), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(out, base)
    with pytest.raises(ValueError):
        draw_pairs(src, [1, 2], [1], [1], [1], [1])


def test_many_pairs_capped_and_deterministic():
    rng = np.random.default_rng(3)
    n = 20000
    h, w = 240, 320
    ya, yb = rng.integers(0, h, n), rng.integers(0, h, n)
    xa, xb = rng.integers(0, w, n), rng.integers(0, w, n)
    o = rng.integers(-1, 2, n)
    src = _synthetic(h, w)
    a = draw_pairs(src, ya, xa, yb, xb, o, draw_lines=False)
    b = draw_pairs(src, ya, xa, yb, xb, o, draw_lines=False)
    np.testing.assert_array_equal(a, b)
    assert overlay._select(n, overlay.MAX_PAIRS, 0).size == overlay.MAX_PAIRS
    # A smaller cap changes the picture.
    c = draw_pairs(src, ya, xa, yb, xb, o, draw_lines=False, max_pairs=100)
    assert not np.array_equal(a, c)


def test_png_round_trip(tmp_path):
    out = draw_pairs(_synthetic(), YA, XA, YB, XB, ORD)
    path = tmp_path / "sub" / "pairs.png"
    save_png(out, str(path))
    back = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, out)
    # Any fsspec URL works.
    url = "memory://overlay-test/pairs.png"
    save_png(out, url)
    with fsspec.open(url, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    back2 = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back2, out)


def test_overlay_grid():
    a = np.full((20, 30, 3), 10, np.uint8)
    b = np.full((10, 40, 3), 200, np.uint8)
    c = np.full((20, 30, 3), 100, np.uint8)
    sheet = overlay_grid([a, b, c], cols=2, pad=4)
    # 2 rows × 2 cols of 20×40 cells with 4 px gaps.
    assert sheet.shape == (2 * 20 + 3 * 4, 2 * 40 + 3 * 4, 3)
    assert sheet.dtype == np.uint8
    assert (sheet[4:24, 4 + 5 : 4 + 35] == 10).all()  # a centred horizontally
    assert (sheet[4 + 5 : 4 + 15, 48:88] == 200).all()  # b centred vertically
    assert (sheet[28:48, 4 + 5 : 4 + 35] == 100).all()
    assert (sheet[28:48, 48:88] == 32).all()  # empty cell is background
    assert overlay_grid([a], cols=3).shape == (28, 38, 3)
    with pytest.raises(ValueError):
        overlay_grid([])
