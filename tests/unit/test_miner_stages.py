"""Each stage of the DynOcc miner graded on its own (DESIGN: "Getting the miner right").

Small unit tests on hand-made arrays (eqs. 1-3, thinning, segment orientation, the alignment
vote), then graders against the exact depth of the synthetic scenes: how many boundary pixels
lie on a true depth edge, how few on texture edges, how many true edges are found, how often
the per-segment depth-order vote is right, and where the pair points land. The measured
figures are printed and put in the assertion messages.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dynocc.factory.core.boundaries import (
    FlowGeometry,
    boundary_confidence,
    near_distance,
    detect_boundaries,
    divergence_along_normal,
    edge_normal,
    flow_geometry,
    flow_jacobian,
    thin,
)
from dynocc.factory.config import BoundaryConfig, MinerConfig, VoteConfig
from dynocc.factory.core.miner import DynOccMiner
from dynocc.factory.core.sampling import inside, sample
from dynocc.factory.testing.synthetic import make_scene
from dynocc.factory.core.boundaries import Boundaries
from dynocc.factory.core.vote import NeighbourView, alignment_vote, combine_alignment, split_segments, vote_depth_order

SEEDS = (0, 1, 2, 3, 4, 5)


def report(name: str, **figures) -> str:
    text = f"{name}: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(text)
    return text


# ------------------------------------------------------------------ hand-made arrays: eqs. 1-3


def _step_flow(h=40, w=40, left=(-2.0, 0.0), right=(2.0, 0.0), x0=20.0, width=2.0):
    """A vertical motion edge at x = x0: ``left`` motion for x < x0, ``right`` for x > x0 (smooth ramp)."""
    xs = np.arange(w, dtype=np.float32)[None, :].repeat(h, 0)
    a = 1.0 / (1.0 + np.exp(-(xs - x0) / (width / 4)))  # 0 on the left, 1 on the right
    flow = np.zeros((h, w, 2), np.float32)
    for c in range(2):
        flow[..., c] = left[c] + a * (right[c] - left[c])
    return flow


def test_eq12_sign_diverging_positive_converging_negative():
    cfg = BoundaryConfig(analysis_scale=1)
    diverging = flow_geometry(_step_flow(left=(-2, 0), right=(2, 0)), cfg)
    converging = flow_geometry(_step_flow(left=(2, 0), right=(-2, 0)), cfg)
    assert diverging.divergence[20, 19:22].min() > 0.5
    assert converging.divergence[20, 19:22].max() < -0.5
    # Same magnitude of flow gradient either way (||grad F||_1 does not see the sign).
    np.testing.assert_allclose(diverging.gradient_l1[20, 15:25], converging.gradient_l1[20, 15:25], rtol=1e-5)
    # A shear edge (motion along the edge) neither diverges nor converges.
    shear = flow_geometry(_step_flow(left=(0, -2), right=(0, 2)), cfg)
    assert np.abs(shear.divergence[20, 19:22]).max() < 0.05


def test_eq12_closed_form_equals_helper_pixel_difference():
    rng = np.random.default_rng(0)
    flow = cv2.GaussianBlur(rng.normal(0, 3, (32, 32, 2)).astype(np.float32), (0, 0), 3)
    jac = flow_jacobian(flow)
    nx, ny = edge_normal(jac, 1.0)
    b = divergence_along_normal(jac, nx, ny)
    # b = F[p + d]·d - F[p - d]·d, with the flow linearised at p (Jacobian = Sobel derivatives).
    ys, xs = np.mgrid[8:24, 8:24]
    d = np.stack([nx[ys, xs], ny[ys, xs]], -1)
    j = np.stack([np.stack([jac[0], jac[1]], -1), np.stack([jac[2], jac[3]], -1)], -2)[ys, xs]  # (.., 2, 2)
    f1 = np.einsum("...ij,...j->...i", j, d)  # dF along +d, per unit step
    expected = 2 * np.einsum("...i,...i->...", f1, d)
    np.testing.assert_allclose(b[ys, xs], expected, atol=1e-4)
    geo = flow_geometry(flow, BoundaryConfig(analysis_scale=1, normal_sigma=1.0))
    np.testing.assert_allclose(geo.divergence[ys, xs], b[ys, xs], atol=1e-4)


def test_edge_normal_crosses_the_edge():
    for angle in (0.0, 30.0, 60.0, 90.0, 135.0):
        a = np.deg2rad(angle)
        h = w = 48
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        u = (xs - 24) * np.cos(a) + (ys - 24) * np.sin(a)  # signed distance across the edge
        side = 1 / (1 + np.exp(-u))
        flow = np.stack([3 * side, -2 * side], -1).astype(np.float32)
        geo = flow_geometry(flow, BoundaryConfig(analysis_scale=1))
        cos = abs(geo.normal_x[24, 24] * np.cos(a) + geo.normal_y[24, 24] * np.sin(a))
        assert cos > 0.99, (angle, cos)


def test_eq3_takes_the_more_reliable_flow():
    h, w = 4, 5
    ones = np.ones((h, w), np.float32)
    prev = FlowGeometry(gradient_l1=1 * ones, divergence=np.where(np.arange(w) < 2, 1.0, -1.0) * ones,
                        cos2=ones, sin2=0 * ones)
    nxt = FlowGeometry(gradient_l1=7 * ones, divergence=0 * ones, cos2=-ones, sin2=0 * ones)
    conf = boundary_confidence(prev, nxt)
    expected = np.where(np.arange(w) < 2, 1.0, 7.0) * ones  # b_prev > b_next on the left only
    np.testing.assert_array_equal(conf.value, expected)
    nx, ny = conf.normal_at(np.array([0, 0]), np.array([0, 4]))
    np.testing.assert_allclose(nx, [1, 0], atol=1e-6)  # prev's d = (1, 0), next's d = (0, ±1)
    np.testing.assert_allclose(np.abs(ny), [0, 1], atol=1e-6)
    # Ties go to F_next (b_prev > b_next is strict), and a lone flow is used as it is.
    assert boundary_confidence(prev, None).value is prev.gradient_l1
    assert boundary_confidence(None, nxt).value is nxt.gradient_l1


def test_thin_is_zhang_suen_as_opencv():
    rng = np.random.default_rng(1)
    for i in range(20):
        blob = cv2.GaussianBlur(rng.random((50, 70)).astype(np.float32), (0, 0), rng.uniform(0.7, 3))
        mask = blob > np.quantile(blob, rng.uniform(0.4, 0.7))
        ours = thin(mask)
        ref = cv2.ximgproc.thinning(mask.astype(np.uint8) * 255, thinningType=cv2.ximgproc.THINNING_ZHANGSUEN) > 0
        np.testing.assert_array_equal(ours, ref, err_msg=f"mask {i}")


def test_detect_boundaries_on_a_straight_motion_edge():
    for scale in (1, 2):
        cfg = BoundaryConfig(analysis_scale=scale, border=4)
        flow = _step_flow(h=64, w=96, left=(-1.0, 0.0), right=(2.0, 0.5), x0=47.5, width=3.0)
        geo = flow_geometry(flow, cfg)
        bd = detect_boundaries(boundary_confidence(geo, None), cfg, flow.shape[:2])
        assert len(bd) > 40, scale
        assert np.abs(bd.xs - 47.5).max() <= 1.0, (scale, np.unique(bd.xs))
        assert np.all(np.abs(bd.normal_x) > 0.95)
        assert thin(bd.mask).sum() == bd.mask.sum() == len(bd)


def test_segments_orient_their_normals_consistently():
    # A horizontal boundary whose per-pixel normals flip between (0, 1) and (0, -1), as the
    # structure tensor's eigenvector may: every pixel of a segment must end up on one side.
    w = 40
    mask = np.zeros((20, w), bool)
    mask[10, 4:36] = True
    ys, xs = np.nonzero(mask)
    ny = np.where(xs % 3 == 0, -1.0, 1.0).astype(np.float32)
    nx = np.where(xs % 3 == 0, 0.05, -0.05).astype(np.float32)
    bd = Boundaries(mask, ys.astype(np.int32), xs.astype(np.int32), nx, ny, np.ones(len(ys), np.int32))
    px = split_segments(bd, 16)
    assert px.n_segments == 3  # tiles x in [0, 16), [16, 32), [32, 48)
    for s in range(px.n_segments):
        assert len(np.unique(np.sign(px.normal_y[px.segment == s]))) == 1


def _vertical_edge_views(fg_right: bool):
    """Boundary x = 20 in frame t. The right side moves +3 px/2 frames, the left one stays.
    In the nearby frames the edge has moved with the foreground."""
    h, w = 48, 48
    ys = np.arange(8, 40, dtype=np.int32)
    xs = np.full(len(ys), 20, np.int32)
    mask = np.zeros((h, w), bool)
    mask[ys, xs] = True
    bd = Boundaries(mask, ys, xs, np.ones(len(ys), np.float32), np.zeros(len(ys), np.float32), np.zeros(len(ys), np.int32))
    px = split_segments(bd, 16)
    views = []
    for sign in (-1, 1):  # t - b, t + b
        flow = np.zeros((h, w, 2), np.float32)
        flow[:, 21:, 0] = 3.0 * sign
        flow[:, 20, 0] = 1.5 * sign  # the boundary column itself is mixed
        shift = 3 * sign if fg_right else 0
        other = np.zeros((h, w), bool)
        other[ys, xs + shift] = True
        dist = cv2.distanceTransform((~other).astype(np.uint8), cv2.DIST_L2, 3)
        views.append(NeighbourView(flow, -flow, dist))
    return px, views


@pytest.mark.parametrize("fg_right", [True, False])
def test_alignment_vote_finds_the_side_the_edge_moves_with(fg_right):
    px, (prev, nxt) = _vertical_edge_views(fg_right)
    cfg = VoteConfig(helper_offset=5.0, occlusion_veto=False)
    expected = 1 if fg_right else -1  # side 1 = +d = +x = right
    assert np.all(alignment_vote(px, prev, cfg) == expected)
    assert np.all(alignment_vote(px, nxt, cfg) == expected)
    assert np.all(vote_depth_order(px, prev, nxt, cfg) == expected)
    # The paper's rule: both nearby frames must agree.
    assert np.all(vote_depth_order(px, prev, _vertical_edge_views(not fg_right)[1][1], cfg) == 0)


def test_vote_rules():
    s_prev = np.array([0.5, 0.5, 0.9, -0.5, 0.1, 0.5])
    s_next = np.array([0.5, 0.1, 0.0, -0.5, 0.1, -0.4])
    both = combine_alignment(s_prev, s_next, VoteConfig(vote_rule="both", delta=0.3))
    np.testing.assert_array_equal(both, [1, 0, 0, -1, 0, 0])  # paper: each frame passes delta
    total = combine_alignment(s_prev, s_next, VoteConfig(vote_rule="sum", delta=0.3))
    np.testing.assert_array_equal(total, [1, 0, 1, -1, 0, 0])  # sum > 2 delta, no frame says the opposite


def test_near_distance_is_exact_up_to_three_px():
    rng = np.random.default_rng(2)
    mask = rng.random((60, 80)) > 0.99
    exact = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    near = near_distance(mask)
    close = exact <= 3
    np.testing.assert_allclose(near[close], exact[close], atol=1e-5)
    assert (near[~close] == 3.5).all()
    assert (near_distance(np.zeros((5, 6), bool)) == 3.5).all()


def test_sample_bilinear_and_inside():
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(sample(img, np.array([0.5, 3.0]), np.array([0.0, 2.0])), [0.5, 11.0])
    np.testing.assert_allclose(sample(img, np.array([[1.0]]), np.array([[1.0]])), [[5.0]])
    two = np.stack([img, -img], -1)
    assert sample(two, np.array([1.0, 2.0]), np.array([0.0, 1.0])).shape == (2, 2)
    assert sample(img, np.zeros(0), np.zeros(0)).shape == (0,)
    n = 40000  # more points than cv2.remap takes rows
    assert sample(img, np.full(n, 3.0), np.full(n, 2.0)).shape == (n,)
    np.testing.assert_array_equal(inside(np.array([0, 2, 3]), np.array([0, 1, 2]), 4, 3, 0.5), [False, True, False])


# ------------------------------------------------------------------ graders on the synthetic scenes


def _depth_edges(layer_id: np.ndarray, border: int = 8) -> np.ndarray:
    lid = layer_id
    edge = np.zeros(lid.shape, bool)
    edge[1:, :] |= lid[1:, :] != lid[:-1, :]
    edge[:, 1:] |= lid[:, 1:] != lid[:, :-1]
    edge[:border] = edge[-border:] = False
    edge[:, :border] = edge[:, -border:] = False
    return edge


def _distance_to(mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return np.full(mask.shape, 1e6, np.float32)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)


@pytest.fixture(scope="module")
def mined():
    miner = DynOccMiner(MinerConfig())
    out = {}
    for seed in SEEDS:
        scene = make_scene(seed)
        out[seed] = (scene, list(miner.mine_video(scene.frames, f"stage-{seed}", keep_maps=True)))
    return out


def _moving(mined):
    for seed, (scene, frames) in mined.items():
        for mf in frames:
            if mf.frame_index in scene.moving_frames:
                yield scene, mf


def test_boundary_pixels_lie_on_true_depth_edges(mined):
    n = near = 0
    for scene, mf in _moving(mined):
        dist = _distance_to(_depth_edges(scene.layer_id[mf.frame_index]))
        n += mf.boundary.sum()
        near += (dist[mf.boundary] <= 3).sum()
    frac = near / n
    msg = report("boundary precision", within_3px=frac, boundary_px_per_frame=n / 48)
    assert frac >= 0.85, msg


def test_texture_edges_are_not_boundaries(mined):
    # The scenes paint hard-edged bands and stripes into every texture; they move with their
    # surface, so they must not show up: few boundary pixels far from any depth edge.
    n = far = 0
    for scene, mf in _moving(mined):
        dist = _distance_to(_depth_edges(scene.layer_id[mf.frame_index]))
        n += mf.boundary.sum()
        far += (dist[mf.boundary] > 6).sum()
    frac = far / n
    msg = report("boundary false positives", farther_than_6px=frac)
    assert frac <= 0.03, msg


def test_true_depth_edges_are_found(mined):
    n = found = 0
    for scene, mf in _moving(mined):
        edge = _depth_edges(scene.layer_id[mf.frame_index])
        n += edge.sum()
        found += (_distance_to(mf.boundary)[edge] <= 3).sum()
    recall = found / n
    msg = report("boundary recall", true_edge_px_within_3px=recall)
    assert recall >= 0.8, msg


def test_boundaries_are_one_pixel_thin(mined):
    for scene, frames in mined.values():
        for mf in frames:
            b = mf.boundary
            blocks = b[:-1, :-1] & b[1:, :-1] & b[:-1, 1:] & b[1:, 1:]
            assert not blocks.any(), (mf.frame_index, "2x2 block of boundary pixels")
            np.testing.assert_array_equal(thin(b), b)


def test_static_frames_have_no_boundaries(mined):
    for scene, frames in mined.values():
        for mf in frames:
            if mf.frame_index in scene.static_frames:
                assert not mf.boundary.any() and len(mf.pairs) == 0


def test_depth_order_vote_agrees_with_truth(mined):
    """Per voted boundary pixel: the side the vote calls foreground is nearer, read 8 px out."""
    n = ok = 0
    per_seed = {}
    for seed, (scene, frames) in mined.items():
        sn = sok = 0
        for mf in frames:
            if mf.frame_index not in scene.moving_frames:
                continue
            depth = scene.depth[mf.frame_index]
            h, w = depth.shape
            ys, xs = np.nonzero(mf.segment_label)
            s = mf.foreground_dir[ys, xs]
            assert np.allclose(np.hypot(s[:, 0], s[:, 1]), 1, atol=1e-4)
            fy = np.clip(np.rint(ys + 8 * s[:, 1]), 0, h - 1).astype(int)
            fx = np.clip(np.rint(xs + 8 * s[:, 0]), 0, w - 1).astype(int)
            by = np.clip(np.rint(ys - 8 * s[:, 1]), 0, h - 1).astype(int)
            bx = np.clip(np.rint(xs - 8 * s[:, 0]), 0, w - 1).astype(int)
            sn += len(ys)
            sok += int((depth[fy, fx] < depth[by, bx]).sum())
        per_seed[seed] = sok / max(sn, 1)
        n += sn
        ok += sok
    acc = ok / n
    msg = report("vote accuracy", pixel_weighted=acc, voted_px=n, per_seed=str({k: round(v, 4) for k, v in per_seed.items()}))
    assert acc >= 0.985, msg
    assert n / 48 >= 100, msg  # voted boundary pixels per moving frame


def test_pair_points_inside_and_within_the_distance_limits(mined):
    cfg = MinerConfig().pairs
    n_ordered = n_equal = 0
    for scene, frames in mined.values():
        for mf in frames:
            p = mf.pairs
            if not len(p):
                continue
            h, w = mf.image.shape[:2]
            for yy, xx in ((p.ya, p.xa), (p.yb, p.xb)):
                assert inside(xx.astype(float), yy.astype(float), w, h).all()
            dist = _distance_to(mf.boundary)
            # Ordered: (closer, farther) = (anchor in the foreground, p_b in the background).
            o = p.ordinal != 0
            near_y = np.where(p.ordinal == 1, p.ya, p.yb)[o]
            near_x = np.where(p.ordinal == 1, p.xa, p.xb)[o]
            far_y = np.where(p.ordinal == 1, p.yb, p.ya)[o]
            far_x = np.where(p.ordinal == 1, p.xb, p.xa)[o]
            # Distances to the thin map; +1 px for rounding points to pixels.
            assert dist[far_y, far_x].max() <= cfg.background_max_distance + 1
            assert dist[near_y, near_x].max() <= cfg.foreground_max_distance + 1
            assert np.hypot(far_y - near_y, far_x - near_x).max() <= (
                cfg.background_max_distance + cfg.anchor_offset + 4.0 + 1)
            e = ~o
            assert dist[p.ya[e], p.xa[e]].max(initial=0) <= cfg.foreground_max_distance + 1
            assert dist[p.yb[e], p.xb[e]].max(initial=0) <= cfg.foreground_max_distance + 1
            assert (np.hypot(p.ya[e] - p.yb[e], p.xa[e] - p.xb[e]) > 0).all()
            n_ordered += o.sum()
            n_equal += e.sum()
    report("pair geometry", ordered=int(n_ordered), equal=int(n_equal))
    assert n_ordered > 0 and n_equal > 0
