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

from typing import Any, Literal, Optional

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
    analysis_scale: int = Field(
        2, ge=1, le=4,
        description="boundaries are found on the flow downsampled by this factor, then mapped back with sub-pixel "
        "refinement; lengths below are in full-resolution px (ours: DIS medium computes its flow at 1/2 scale)",
    )
    box_blur: int = Field(31, ge=1, description="box filter size k applied to B (paper: 31)")
    percentile: float = Field(90.0, gt=0, le=100, description="B is divided by this percentile (paper: 90)")
    threshold: float = Field(0.3, ge=0, description="threshold on the normalised, blurred B (paper: 0.3)")
    normal_sigma: float = Field(
        2.0, gt=0, description="Gaussian sigma of the flow structure tensor that gives the edge normal d (ours)"
    )
    ridge_sigma: float = Field(
        0.0, ge=0, description="Gaussian sigma applied to B before its ridge is taken, px (ours: 0, B is smooth enough)"
    )
    min_flow_gradient: float = Field(
        0.15, ge=0, description="ridge pixels need ||grad F||_1 above this, in px/px (ours: rejects static frames)"
    )
    ridge_radius: int = Field(
        5, ge=1, description="a ridge pixel must be the largest B within this many px along d (ours: DIS's staircase)"
    )
    min_component: int = Field(8, ge=1, description="boundary pieces shorter than this many pixels are dropped (ours)")
    border: int = Field(8, ge=0, description="pixels this close to the image border are not boundaries (ours)")


class VoteConfig(_Strict):
    """Depth-order estimation, paper section 3.2 (eq. 4)."""

    segment_length: int = Field(16, ge=2, description="segment length c in pixels (ours; the paper gives none)")
    helper_offset: float = Field(
        8.0, gt=0, description="p1, p2 offset from p along d (paper: 5 px; ours: 8, beyond most of DIS's bleed)"
    )
    side_flow_offset: float = Field(
        12.0, gt=0, description="where a side's motion is read for pairs, px from p (ours: beyond DIS's 3-8 px bleed)"
    )
    align_tolerance: float = Field(
        2.0, gt=0, description="a warped p aligns if within this of the nearby frame's boundaries, px (ours)"
    )
    align_margin: float = Field(
        1.0, ge=0,
        description="... and this much nearer to them than the other side's warp, px (ours; distances are exact "
        "up to 3 px, so keep align_tolerance + align_margin <= 3)",
    )
    delta: float = Field(0.3, ge=0, lt=1, description="eq. 4 threshold delta on (c1 - c2) / c (ours; the paper gives none)")
    vote_rule: Literal["both", "sum"] = Field(
        "both",
        description="'both': each nearby frame's score must pass delta (paper); 'sum': their sum must pass 2 delta "
        "and neither may say the opposite by more than delta (ours)",
    )
    min_segment_pixels: int = Field(4, ge=1, description="segments with fewer pixels are not voted on (ours)")
    occlusion_veto: bool = Field(
        True, description="the forward-backward occlusion cue (ref. [27]) may veto a segment it contradicts (ours)"
    )
    occlusion_threshold: float = Field(1.0, gt=0, description="forward-backward flow mismatch marking occlusion, px (ours)")
    min_motion_difference: float = Field(
        1.0, ge=0, description="the two sides' motions must differ by this many px, else no pairs (ours)"
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
    anchor_offset: float = Field(
        5.0, ge=0, description="the boundary point is pushed this far (up to the 7 px of p_f) into the foreground (ours)"
    )
    point_margin: float = Field(
        2.5, ge=0, description="the point this much nearer the boundary must also pass the side test (ours)"
    )
    same_flow_tolerance: float = Field(1.0, gt=0, description="same-flow acceptance test, px (ours)")
    tries: int = Field(8, ge=1, description="resampling attempts per point before the pair is dropped (ours)")
    max_pairs_per_frame: Optional[int] = Field(None, ge=1, description="cap on boundary pixels used per frame")


DEFAULT_USER_AGENT = "Mozilla/5.0 (compatible; dynocc/0.1; +https://github.com/)"


class SourceOptions(BaseModel):
    """How remote inputs are listed and fetched (one object for resolve and fetch)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_height: Optional[int] = Field(720, ge=1, description="yt-dlp: tallest format to pick; None = no cap")
    cookies: Optional[str] = Field(
        None, description="Netscape cookies.txt (local path or fsspec URL); sent by yt-dlp and http downloads"
    )
    max_duration: Optional[float] = Field(None, gt=0, description="reject videos longer than this (seconds)")
    retries: int = Field(3, ge=0, description="re-tries after the first try of a transient failure")
    backoff_seconds: float = Field(1.0, ge=0, description="sleep before the first re-try; doubles each time")
    max_backoff_seconds: float = Field(60.0, ge=0, description="cap of one backoff sleep")
    timeout_seconds: float = Field(60.0, gt=0, description="socket time-out of one request")
    max_bytes: Optional[int] = Field(None, ge=1, description="reject downloads bigger than this")
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options: for every protocol, or per protocol as {'s3': {...}, 'gs': {...}}",
    )
    temp_dir: Optional[str] = Field(None, description="where fetch() makes its temp dirs (default: system temp)")
    user_agent: str = Field(DEFAULT_USER_AGENT, description="User-Agent of plain http downloads")

    @classmethod
    def coerce(cls, value: "SourceOptions | dict | None") -> "SourceOptions":
        """``None`` -> defaults, a dict -> validated options, options -> themselves."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        return cls.model_validate(value)


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
    source: SourceOptions = SourceOptions()
