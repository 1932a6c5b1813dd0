"""The synthetic scenes that grade the miner: their ground truth must be exactly what they claim."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dynocc.factory.testing.synthetic import SyntheticScene, depth_order_truth, make_scene, true_flow

SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def scenes() -> dict[int, SyntheticScene]:
    return {seed: make_scene(seed) for seed in SEEDS}


def _interior(layer_id: np.ndarray, radius: int = 3) -> np.ndarray:
    """Pixels whose whole (2r+1)^2 neighbourhood has the same layer id."""
    lid = layer_id.astype(np.float32)
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(lid, kernel) == cv2.erode(lid, kernel)


def _warp_back(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``frame`` at x + flow (bilinear): the frame-``s`` colour of each frame-``t`` pixel."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(frame, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def test_deterministic_and_seed_dependent():
    a, b, c = make_scene(7), make_scene(7), make_scene(8)
    for x, y in zip(a.frames + a.depth + a.layer_id, b.frames + b.depth + b.layer_id):
        np.testing.assert_array_equal(x, y)
    assert a.layer_velocities == b.layer_velocities and a.background_velocity == b.background_velocity
    assert not np.array_equal(a.frames[0], c.frames[0])
    assert a.background_velocity != c.background_velocity


def test_shapes_dtypes_and_windows():
    s = make_scene(0)
    assert len(s.frames) == len(s.depth) == len(s.layer_id) == 16
    for f, d, lid in zip(s.frames, s.depth, s.layer_id):
        assert f.shape == (240, 320, 3) and f.dtype == np.uint8
        assert d.shape == (240, 320) and d.dtype == np.float32
        assert lid.shape == (240, 320) and lid.dtype == np.int16
    assert s.static_frames == frozenset({2})
    assert s.moving_frames == frozenset(range(6, 14))
    assert len(s.layer_velocities) == len(s.layer_depths) == 3

    small = make_scene(1, height=120, width=160, n_frames=12, n_layers=2, n_static=6)
    assert small.frames[0].shape == (120, 160, 3) and len(small.frames) == 12
    assert small.static_frames == frozenset({2, 3}) and small.moving_frames == frozenset({7, 8, 9})
    assert set(np.unique(np.concatenate([x.ravel() for x in small.layer_id]))) <= {0, 1, 2}


def test_static_window_is_identical_and_motion_follows(scenes):
    for s in scenes.values():
        for t in s.static_frames:
            for u in range(t - 2, t + 3):
                np.testing.assert_array_equal(s.frames[u], s.frames[t])
                np.testing.assert_array_equal(s.layer_id[u], s.layer_id[t])
        for t in s.moving_frames:
            assert t - 2 >= s.n_static - 1 and 2 <= t <= len(s.frames) - 3
            for u in range(t - 2, t + 2):
                assert np.abs(s.frames[u + 1].astype(int) - s.frames[u]).mean() > 5


def test_speeds_and_same_direction_layer(scenes):
    for s in scenes.values():
        bg = np.array(s.background_velocity)
        assert 1.0 <= np.linalg.norm(bg) <= 3.0
        same = 0
        for v in map(np.array, s.layer_velocities):
            assert 1.5 <= np.linalg.norm(v) <= 4.0 + 1e-9
            assert np.linalg.norm(v - bg) >= 1.5  # every layer has a flow edge against the background
            cos = v @ bg / (np.linalg.norm(v) * np.linalg.norm(bg))
            same += cos > 0.999 and abs(np.linalg.norm(v) - np.linalg.norm(bg)) >= 1.5
        assert same >= 1


def test_true_flow_explains_the_pixels(scenes):
    """Background and every layer move by exactly their stated velocity (photometric check)."""

    def error(s, t, flow, sel):
        back = _warp_back(s.frames[t + 2], flow).astype(np.float32)
        return np.abs(back - s.frames[t])[sel].mean()

    for s in scenes.values():
        t = min(s.moving_frames)
        flow = true_flow(s, t, t + 2)
        # Checkable: away from edges in frame t, and the same surface is seen at the target in t+2.
        target_id = _warp_back(s.layer_id[t + 2].astype(np.float32), flow)
        ok = _interior(s.layer_id[t]) & (target_id == s.layer_id[t])
        for k in range(len(s.layer_depths) + 1):
            sel = ok & (s.layer_id[t] == k)
            assert sel.sum() > 300
            err = error(s, t, flow, sel)  # not 0: bilinear resampling twice blurs the finest octave
            off = min(error(s, t, flow + np.float32(d), sel) for d in ((1, 0), (-1, 0), (0, 1), (0, -1)))
            still = error(s, t, np.zeros_like(flow), sel)
            assert err < 0.6 * off and err < still / 3, (k, err, off, still)
        assert np.abs(true_flow(s, 0, 2)).max() == 0  # static prefix


def test_depth_matches_layers(scenes):
    for s in scenes.values():
        depths = np.array(s.layer_depths)
        assert len(set(depths)) == len(depths) and np.all(depths < s.background_depth)
        assert np.all(np.diff(depths) > 0)  # layer 1 is the nearest
        for d, lid in zip(s.depth, s.layer_id):
            np.testing.assert_array_equal(d, np.concatenate([[s.background_depth], depths]).astype(np.float32)[lid])
        for k in range(1, len(depths) + 1):  # every layer stays mostly in view (frame, other layers)
            area = np.array([(lid == k).sum() for lid in s.layer_id])
            assert area.min() > 0.01 * lid.size and area.min() > 0.6 * area.max()


def test_layers_look_different_from_background(scenes):
    for s in scenes.values():
        f, lid = s.frames[0].astype(np.float32), s.layer_id[0]
        bg_mean = f[lid == 0].mean(0)
        for k in range(1, len(s.layer_depths) + 1):
            assert np.linalg.norm(f[lid == k].mean(0) - bg_mean) > 30


def test_texture_is_trackable(scenes):
    """DIS flow locks on: small error away from depth edges, on the background and on the layers."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    s = scenes[0]
    t = min(s.moving_frames)
    gray = [cv2.cvtColor(s.frames[u], cv2.COLOR_RGB2GRAY) for u in (t, t + 2)]
    epe = np.linalg.norm(dis.calc(gray[0], gray[1], None) - true_flow(s, t, t + 2), axis=2)
    assert np.median(epe[_interior(s.layer_id[t], 4)]) < 0.25


def test_depth_order_truth():
    depth = np.array([[2.0, 4.0], [4.0, 4.002]], np.float32)
    ya, xa = np.array([0, 0, 0, 1, 1]), np.array([0, 1, 1, 0, 1])
    yb, xb = np.array([0, 0, 1, 1, 0]), np.array([1, 0, 0, 1, 1])
    # (2 vs 4): A closer; (4 vs 2): B closer; 4 vs 4: equal; 4 vs 4.002: within 1e-3 log ratio; same pixel
    np.testing.assert_array_equal(depth_order_truth(depth, ya, xa, yb, xb), [1, -1, 0, 0, 0])
    assert depth_order_truth(depth, ya, xa, yb, xb).dtype == np.int8
    assert depth_order_truth(depth, 0, 0, 0, 1) == 1
    far = np.array([[4.0, 4.01]], np.float32)  # log ratio 2.5e-3: ordered
    assert depth_order_truth(far, 0, 1, 0, 0) == -1


def test_depth_order_truth_on_scene(scenes):
    s = scenes[1]
    d, lid = s.depth[8], s.layer_id[8]
    ya, xa = np.nonzero(lid == 1)
    yb, xb = np.nonzero(lid == 0)
    n = min(len(ya), len(yb), 500)
    assert np.all(depth_order_truth(d, ya[:n], xa[:n], yb[:n], xb[:n]) == 1)
    assert np.all(depth_order_truth(d, yb[:n], xb[:n], ya[:n], xa[:n]) == -1)
    assert np.all(depth_order_truth(d, yb[:n], xb[:n], yb[-n:], xb[-n:]) == 0)
