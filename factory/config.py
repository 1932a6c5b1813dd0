"""Typed configuration of the DynOcc miner.

Every constant of the miner lives here, with its origin:

* ``paper``: DynOcc (Wang et al.), section 3 — ``shared/papers/dynocc-paper.txt``.
* ``ours``: a value the paper does not give, chosen by grading each stage on the
  synthetic scenes of :mod:`dynocc.factory.synthetic` against their true depth
  (see ``tests/test_miner_quality.py``).

The models are pydantic so that a YAML job file or CLI flags become one validated
object (:func:`dynocc.config_loader.load_miner_config`), with errors that name the
bad key.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DecodeConfig(_Strict):
    """How frames are read from a video file or a frame folder."""

    max_long_side: Optional[int] = Field(
        854, ge=16, description="resize so the long side is at most this (ours: 854 = 480p); None keeps the size"
    )
    max_frames: Optional[int] = Field(None, ge=1, description="stop after this many decoded frames")
    frame_step: int = Field(1, ge=1, description="keep every n-th decoded frame")


class FlowConfig(_Strict):
    """Optical-flow backend. The paper used FlowNet 2.0; our CPU default is OpenCV DIS."""

    backend: Literal["dis"] = "dis"
    dis_preset: Literal["ultrafast", "fast", "medium"] = Field(
        "medium", description="DIS preset (ours: medium, EPE 1.8 px on Middlebury vs 2.5 for fast)"
    )
    threads: Optional[int] = Field(None, ge=1, description="OpenCV threads; None = OpenCV's default")


class BoundaryConfig(_Strict):
    """Occlusion boundary detection, paper section 3.1 (eqs. 1-3)."""

    baseline: int = Field(2, ge=1, description="frames between t and its neighbours t-b, t+b (paper: 2)")
    box_blur: int = Field(31, ge=1, description="box filter size k applied to B (paper: 31)")
    percentile: float = Field(90.0, gt=0, le=100, description="B is divided by this percentile (paper: 90)")
    threshold: float = Field(0.3, ge=0, description="threshold on the normalised, blurred B (paper: 0.3)")
    normal_sigma: float = Field(
        2.0, gt=0, description="Gaussian sigma of the flow structure tensor that gives the edge normal d (ours)"
    )
    ridge_sigma: float = Field(1.0, ge=0, description="Gaussian sigma applied to B before its ridge is taken (ours)")
    min_flow_gradient: float = Field(
        0.15, ge=0, description="ridge pixels need ||grad F||_1 above this, in px/px (ours: rejects static frames)"
    )
    min_component: int = Field(8, ge=1, description="boundary pieces shorter than this many pixels are dropped (ours)")
    border: int = Field(8, ge=0, description="pixels this close to the image border are not boundaries (ours)")


class VoteConfig(_Strict):
    """Depth-order estimation, paper section 3.2 (eq. 4)."""

    segment_length: int = Field(16, ge=2, description="segment length c in pixels (ours; the paper gives none)")
    helper_offset: float = Field(5.0, gt=0, description="p1, p2 offset from p along d (paper: 5 px)")
    side_flow_offset: float = Field(
        12.0, gt=0, description="where a side's motion is read, px from p (ours: beyond DIS's 3-8 px bleed)"
    )
    align_tolerance: float = Field(1.5, gt=0, description="warped p aligns if within this of a boundary (ours)")
    delta: float = Field(0.3, ge=0, lt=1, description="eq. 4 threshold delta on (c1 - c2) / c (ours)")
    min_motion_difference: float = Field(
        1.0, ge=0, description="the two sides' motions must differ by this many px, else the segment is dropped (ours)"
    )
    occlusion_threshold: float = Field(1.0, gt=0, description="forward-backward flow mismatch marking occlusion, px (ours)")
    require_occlusion_support: bool = Field(
        False, description="keep a segment only if an occlusion vote agrees with the alignment vote (ours)"
    )
    photometric_margin: float = Field(
        0.75, gt=0, le=1, description="a point's own-side patch error must be below this times the other side's (ours)"
    )
    photometric_max_error: float = Field(
        12.0, gt=0, description="largest mean absolute patch error (grey levels) for a point to match its side (ours)"
    )


class PairConfig(_Strict):
    """Relative depth pair sampling, paper sections 3.3-3.4."""

    background_max_distance: float = Field(30.0, gt=0, description="p_b within this of the boundary (paper: 30 px)")
    foreground_max_distance: float = Field(7.0, gt=0, description="p_f within this of the boundary (paper: 7 px)")
    min_distance: float = Field(2.0, ge=0, description="sampled points at least this far from the boundary (ours)")
    anchor_offset: float = Field(2.0, ge=0, description="the boundary point is pushed this far into the foreground (ours)")
    point_margin: float = Field(
        1.5, ge=0, description="the point this much nearer the boundary must also pass the side test (ours)"
    )
    same_flow_tolerance: float = Field(1.0, gt=0, description="same-flow acceptance test, px (ours)")
    tries: int = Field(8, ge=1, description="resampling attempts per point before the pair is dropped (ours)")
    max_pairs_per_frame: Optional[int] = Field(None, ge=1, description="cap on boundary pixels used per frame")


class MinerConfig(_Strict):
    """Everything the DynOcc miner needs; the paper's values are the defaults."""

    dataset: str = Field("dynocc", min_length=1, description="value of the `dataset` column")
    seed: int = Field(0, description="mixed with the video id into every random choice")
    jpeg_quality: int = Field(90, ge=1, le=100, description="quality of the stored frame JPEG")
    decode: DecodeConfig = DecodeConfig()
    flow: FlowConfig = FlowConfig()
    boundary: BoundaryConfig = BoundaryConfig()
    vote: VoteConfig = VoteConfig()
    pairs: PairConfig = PairConfig()
