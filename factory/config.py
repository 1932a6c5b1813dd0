"""Typed configuration of the DynOcc miner.

Every constant of the miner lives here, with its origin:

* ``paper``: DynOcc (Wang et al.), section 3 — ``shared/papers/dynocc-paper.txt``.
* ``ours``: a value the paper does not give, chosen by grading each stage on the
  synthetic scenes of :mod:`dynocc.factory.testing.synthetic` against their true depth
  (see ``tests/unit/test_miner_quality.py``).

The models are pydantic so that a YAML job file or CLI flags become one validated
object (:func:`dynocc.config_loader.load_config`), with errors that name the
bad key.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DecodeConfig(_Strict):
    """How frames are read from a video file or a frame folder."""

    max_long_side: Optional[int] = Field(
        854, ge=16, description="resize so the long side is at most this (ours: 854 = 480p); None keeps the size"
    )
    max_frames: Optional[int] = Field(None, ge=1, description="stop after this many decoded frames")
    fps: Optional[float] = Field(
        6.0, gt=0,
        description="videos: decode at this many frames per second of the container's timestamps (paper: "
        "YouTube-VOS frames are 6 fps); None = every frame. Frame folders are taken as they are",
    )
    frame_step: int = Field(1, ge=1, description="keep every n-th decoded frame (after fps)")


class FlowConfig(_Strict):
    """Optical-flow backend. The paper used FlowNet 2.0; our CPU default is OpenCV DIS; for GPU actors,
    ``raft-small`` (RAFT, Teed & Deng 2020; :mod:`dynocc.factory.core.raft`) with ``weights`` given."""

    backend: Literal["dis", "raft-small"] = Field(
        "dis", description="'dis': OpenCV DIS on CPU (default); 'raft-small': learned RAFT-small (needs weights)"
    )
    dis_preset: Literal["ultrafast", "fast", "medium"] = Field(
        "medium", description="DIS preset (ours: medium, EPE 1.8 px on Middlebury vs 2.5 for fast)"
    )
    threads: Optional[int] = Field(None, ge=1, description="OpenCV threads; None = OpenCV's default")
    prefetch: bool = Field(
        True, description="compute the next frame's flows in a worker thread while this frame is mined (ours)"
    )
    weights: Optional[str] = Field(
        None, description="raft-small: path or fsspec URL of the RAFT-small state dict (e.g. raft-small.pth)"
    )
    iters: int = Field(12, ge=1, description="raft-small: refinement iterations (RAFT's default: 12)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="raft-small: 'auto' = CUDA if available, else CPU"
    )
    batch_size: int = Field(8, ge=1, description="raft-small: pairs of the same size per forward pass")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="raft-small: 'auto' = fp16 autocast on CUDA, fp32 on CPU"
    )

    @model_validator(mode="after")
    def _raft_needs_weights(self) -> "FlowConfig":
        if self.backend == "raft-small" and not self.weights:
            raise ValueError(
                "flow.backend 'raft-small' needs flow.weights: a path or URL of raft-small.pth "
                "(CLI: --flow-weights PATH_OR_URL)"
            )
        return self


class BoundaryConfig(_Strict):
    """Occlusion boundary detection, paper section 3.1 (eqs. 1-3)."""

    baseline: int = Field(2, ge=1, description="frames between t and its neighbours t-b, t+b (paper: 2)")
    baseline_rule: Literal["fixed", "motion"] = Field(
        "motion",
        description="'fixed': always `baseline`; 'motion': per frame, a smaller offset where t±baseline would move "
        "more than max_motion_fraction of the image, a larger one (up to max_baseline) where it would move less "
        "than min_motion px (ours; dynocc.factory.core.miner.neighbour_offset)",
    )
    max_baseline: int = Field(4, ge=1, description="'motion': the largest offset it may choose (ours: 4, 0.67 s at 6 fps)")
    max_motion_fraction: float = Field(
        0.08, gt=0, le=1,
        description="'motion': the median motion to t±b at most this fraction of the long side (ours: t±2 moves "
        "3.8% of the width on TartanAir and 13% on the HoloLens walk, where DIS's EPE near edges is 17 px; "
        "t±1 there moves 6.5%: any value between ~5% and ~12% picks the same offsets on both)",
    )
    min_motion: float = Field(
        0.0, ge=0, description="'motion': grow the offset (up to max_baseline) while the median motion to t±b is "
        "below this, px; 0 = never (ours: off by default: with 1 px, bigbuckbunny's slow stretches went to t±3/t±4 "
        "and its 32 frames at 6 fps gave 80 pairs instead of 196, at 1.7x the flow calls)"
    )
    analysis_scale: int = Field(
        2, ge=1, le=4,
        description="boundaries are found on the flow downsampled by this factor, then mapped back with sub-pixel "
        "refinement; lengths below are in full-resolution px (ours: DIS medium computes its flow at 1/2 scale)",
    )
    measure: Literal["gradient", "jump"] = Field(
        "jump", description="B of eq. 3: 'gradient' = ||grad F||_1 (paper), 'jump' = the flow's discontinuity across d (ours)"
    )
    jump_radius: float = Field(
        3.0, gt=0,
        description="'jump': half-span r of the discontinuity measure, px (ours: DIS smears an edge over 3-8 px; realdata vote "
        "accuracy r=3 89%/88%, r=4 93%/86%, r=5 87%/76% (TartanAir/HoloLens); r=4 drops a synthetic frame below 100 pairs)",
    )
    min_jump: float = Field(
        1.0, ge=0, description="'jump': ridge pixels need a jump above this, px (ours: about DIS's EPE; with the true "
        "flow 1 px and 2 px give 98.7%/97.9% and 98.7%/97.6% ordered right on TartanAir/HoloLens)"
    )
    require_reliable_sides: bool = Field(
        True, description="a boundary needs trusted flow on both sides (forward-backward consistent, textured) (ours)"
    )
    side_reach: float = Field(
        8.0, gt=0, description="where the two sides' flow reliability is read, px from p (ours: = vote.helper_offset)"
    )
    max_fb_error: float = Field(
        2.0, gt=0, description="forward-backward flow mismatch still trusted, px (ours: ~DIS's EPE on textured "
        "surfaces; at t±1 on the realdata sequences 2 px keeps 2.3x the boundary pixels of 1 px)"
    )
    min_texture: float = Field(
        0.0, ge=0, description="smaller structure-tensor eigenvalue, sqrt, grey levels/px; 0 = off (ours: 0.5 left 25 "
        "boundary pixels per TartanAir frame, whose walls are textureless)"
    )
    texture_window: int = Field(7, ge=3, description="box size of the texture measure, px (ours)")
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
    confidence_motion_scale: float = Field(
        2.0, gt=0, description="pair confidence: motion differences of this many px count as strong evidence (ours: ~DIS's EPE)"
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


class EngineConfig(_Strict):
    """How a mining job runs: the engine and its settings, with their defaults, defined once.

    ``dynocc mine`` / ``mine-stereo`` derive their engine flags from these fields
    (:func:`dynocc.cli.add_model_flags`), a job spec's top-level keys are these fields
    (:class:`dynocc.jobspec.JobSpec`), and :func:`~dynocc.factory.engine.ray_engine.run_mine_job_ray`
    takes its defaults from here."""

    engine: Literal["ray", "local"] = Field(
        "ray", description="ray: a Ray Data actor pool on a local Ray or on --address; local: one process, no Ray "
        "(handy for debugging)",
    )
    address: Optional[str] = Field(
        None, min_length=1, description="Ray cluster address, e.g. ray://head:10001 or auto (default: $RAY_ADDRESS; "
        "without either a local Ray is started for the job)",
    )
    actors: Optional[int] = Field(None, ge=1, description="mining actors (default: the cluster's CPUs minus one, at least 1)")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs per mining actor")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per mining actor")
    max_retries: int = Field(
        2, ge=0, description="times a video whose Ray worker crashed is tried again before it becomes a "
        "'worker_lost' failure row",
    )
    shard_size: float = Field(
        256.0, gt=0, description="target size of a Parquet shard in MB: frame rows of many videos go into one "
        "shard, and a long video spans several",
    )
    items_per_task: int = Field(
        32, ge=1, description="work items per mining task (the unit a worker commits and a crash retries); "
        "small jobs use fewer so every actor gets work, and small remote ones at most fetch_concurrency (a task's "
        "downloads then take one round)",
    )
    fetch_concurrency: int = Field(
        8, ge=1, description="remote inputs (http, yt-dlp, buckets) downloaded at once by the fetch stage "
        "(Ray engine), ahead of the mining actors",
    )
    plan_in_driver_max: int = Field(
        20000, ge=0, description="up to this many resolved inputs the driver de-duplicates and checks them "
        "itself (fast); above it the plan runs as Ray Data joins and never enters the driver",
    )
    dry_run: bool = Field(False, description="resolve and plan the inputs, print how many would be mined, mine nothing")
    retry_failed: bool = Field(False, description="mine again the inputs an earlier run committed with failures")
    ray_logs: bool = Field(False, description="show Ray's own logs and progress bars")


# Engine settings that only mean something with the Ray engine (refused with engine 'local').
RAY_ONLY_SETTINGS = ("actors", "cpus_per_actor", "gpus_per_actor", "address")


class StereoConfig(_Strict):
    """The stereo branch: dense relative depth from web stereo photos, ReDWeb section 3.1.

    ``paper``: ReDWeb (Xian et al., CVPR 2018), ``shared/papers/redweb-paper.md``; ``ours``: a value
    the paper does not give, measured on Middlebury *Motorcycle* (``skimage.data.stereo_motorcycle``,
    true disparity) and on it with a synthetic sky band pasted on top; see ``tests/unit/test_stereo.py``.
    Lengths are in pixels of the image the flow is computed on (the decoder caps its long side).
    """

    flow: FlowConfig = Field(
        FlowConfig(), description="flow backend for left->right and right->left (paper: FlowNet 2.0; ours: DIS medium)"
    )
    # --- what a web pair needs before the flow (ours)
    match_exposure: bool = Field(
        True, description="match the right view's histogram to the left's per channel before the flow (ours: "
        "Motorcycle with the right view 20% darker, ordered pairs right 96.3% without)",
    )
    search_fraction: float = Field(
        0.3, ge=0, le=1,
        description="start the flow from a coarse exhaustive search over +-this fraction of the width "
        "(stereo.initial_disparity; 0 = off, the flow alone). Ours: DIS alone fails above ~19% of the width",
    )
    search_scale: int = Field(4, ge=1, le=16, description="the coarse search runs on the views downscaled by this (ours)")
    correct_misalignment: bool = Field(
        True, description="fit a small vertical shift, rotation and scale of the right view to the flow's vertical "
        "component, undo it and compute the flow again (stereo.estimate_misalignment; ours)",
    )
    min_misalignment: float = Field(
        0.3, ge=0, description="correct only when the fitted misalignment moves some pixel this far, px (ours)"
    )
    max_rotation_deg: float = Field(
        2.0, gt=0, description="larger fitted rotations are not corrected but rejected (too_much_vertical_flow) (ours)"
    )
    max_scale_difference: float = Field(
        0.03, gt=0, description="larger fitted scale differences between the views are rejected, not corrected (ours)"
    )
    # --- left-right consistency (ours; the paper excluded bad maps by hand)
    consistency_tolerance: float = Field(
        0.5, gt=0,
        description="a pixel is consistent if |F_lr(p) + F_rl(p + F_lr(p))| <= this, px (ours; Motorcycle, DIS "
        "medium, erosion 2: 0.5 keeps 67% of pixels at 0.71 px EPE and 98.3% random-pair accuracy, 1.0 keeps "
        "76% at 1.01 px and 97.1%; the median error of good flow is 0.16 px)",
    )
    erode_radius: int = Field(
        2, ge=0,
        description="the consistent mask is eroded by a (2r+1)^2 square (ours; Motorcycle edge / random pair "
        "accuracy: r=0 97.1% / 97.5%, r=1 99.7% / 97.9%, r=2 100% / 98.3%: drops the rims of DIS's smeared edges)",
    )
    # --- rejection of pairs that are not usable stereo (ours; the paper rejected by hand)
    min_consistent_fraction: float = Field(
        0.15, ge=0, le=1,
        description="reject if fewer valid pixels than this fraction (ours: Motorcycle 0.67; unrelated images 0.00, "
        "top/bottom halves 0.005; kept low because sky and water are inconsistent in good outdoor pairs)",
    )
    max_vertical_flow: float = Field(
        6.0, gt=0,
        description="reject if the median |dy| over valid pixels exceeds this, px (ours: Motorcycle 0.12 px; "
        "DIS keeps Motorcycle's EPE for constant offsets up to 20 px, so this catches wrong crops/formats, "
        "not inaccuracy: top/bottom halves 15 px, unrelated images 23 px)",
    )
    min_disparity_range: float = Field(
        2.0, ge=0,
        description="reject if the robust disparity range p(100-q) - p(q) over valid pixels is below this, px "
        "(ours: a duplicated mono image 0.00 px, translated 0.01 px; Motorcycle 44 px; ~2x DIS's EPE)",
    )
    range_percentile: float = Field(5.0, ge=0, lt=50, description="q of the robust range above (ours: 5 -> p95 - p5)")
    max_negative_fraction: float = Field(
        0.5, gt=0, le=1,
        description="reject if more than this fraction of valid pixels have disparity < -negative_tolerance "
        "(ours: swapped, i.e. cross-eyed, views give 1.00, Motorcycle 0.00); a parallel rig has none",
    )
    negative_tolerance: float = Field(1.0, ge=0, description="disparity below -this counts as negative, px (ours: ~EPE)")
    # --- sky (paper: RefineNet on ADE20K + dense CRF; no such weights here, so a heuristic, pluggable)
    sky_detector: Literal["heuristic", "none"] = Field(
        "heuristic", description="'heuristic': colour + top-connected + textureless + flow evidence (ours); 'none'"
    )
    sky_hue_range: tuple[float, float] = Field(
        (190.0, 250.0), description="hue of blue sky, degrees (ours: skimage's rocket dusk sky 216-223, the test band 214-221)"
    )
    sky_min_blue_saturation: float = Field(0.12, ge=0, le=1, description="blue sky saturation >= this (ours)")
    sky_min_blue_value: float = Field(
        0.2, ge=0, le=1, description="blue sky brightness >= this (ours: dusk sky in skimage's rocket is 0.24-0.5)"
    )
    sky_max_grey_saturation: float = Field(
        0.12, ge=0, le=1, description="overcast (grey-white) sky saturation <= this (ours)"
    )
    sky_min_grey_value: float = Field(0.6, ge=0, le=1, description="overcast sky brightness >= this (ours)")
    sky_max_texture: float = Field(
        2.5, gt=0,
        description="sky's mean Sobel gradient magnitude over a sky_window box is below this, grey levels/px (ours: "
        "rocket's sky p99 0.63, the grainy test band 1.16; Motorcycle p10 1.57, median 7.4)",
    )
    sky_window: int = Field(9, ge=1, description="box size of the texture measure, px (ours)")
    sky_max_disparity_px: float = Field(
        1.0, ge=0, description="flow evidence: valid pixels count as sky only with disparity below this, px (ours)"
    )
    sky_max_disparity_fraction: float = Field(
        0.1, ge=0, le=1,
        description="... or below this fraction of the p95 disparity, whichever is larger (ours: Motorcycle's "
        "farthest wall is at 0.16 of p95); invalid (inconsistent) pixels always pass",
    )
    sky_min_far_share: float = Field(
        0.25, ge=0, le=1,
        description="a top-connected sky candidate region is sky when this share of it is consistent with disparity "
        "below the far limit (ours: the grainy test band 0.92, a near white panel 0.00, Motorcycle's board 0.00)",
    )
    sky_max_near_rim: float = Field(
        0.5, ge=0, le=1,
        description="a blue region without that evidence is still sky if at most this share of the same-coloured "
        "pixels around it is measured near (ours: the clean test band 0.00)",
    )
    sky_min_area_fraction: float = Field(
        0.005, ge=0, le=1, description="a top-connected sky region must cover this fraction of the image (ours)"
    )
    sky_close_radius: int = Field(
        2, ge=0, description="morphological closing radius applied to the sky candidates before components, px (ours)"
    )
    sky_guard: int = Field(
        4, ge=0,
        description="valid pixels within this of the sky become unknown: flow smears across the horizon both ways "
        "(ours: sky band on Motorcycle with grain, edge-pair accuracy 98.6% -> 99.96% with 4 px)",
    )
    # --- pairs, ReDWeb eq. 1
    sigma: float = Field(0.02, ge=0, description="eq. 1 ratio threshold on depth (paper: 0.02, following [33])")
    random_pairs: int = Field(1000, ge=0, description="uniformly random pairs per image (ours; the paper draws 3K online)")
    edge_pairs: int = Field(1000, ge=0, description="pairs across inverse-depth edges per image (ours)")
    equal_rule: Literal["near", "eq1"] = Field(
        "near",
        description="'near' (ours): equal pairs are points equal_min..max_distance px apart on one surface (and "
        "sky-sky pairs); random/edge pairs that eq. 1 calls equal are dropped. 'eq1': eq. 1 on every pair as drawn "
        "(paper). Motorcycle: 'eq1' 72% of equal pairs right (flow error ~ sigma)",
    )
    equal_pairs: int = Field(300, ge=0, description="'near': equal pairs per image (ours)")
    equal_min_distance: float = Field(2.0, gt=0, description="'near': the two points at least this far apart, px (ours)")
    equal_max_distance: float = Field(
        5.0, gt=0, description="'near': ... and at most this far, px (ours; Motorcycle and its web perturbations: "
        "8 px 89-91% of equal pairs right, 5 px 94-96%, 4 px 94-96%)"
    )
    confidence_ordered_scale: float = Field(
        10.0, gt=0, description="pair confidence of ordered pairs: 1 - exp(-z / this), z = the gap beyond sigma in "
        "units of the disparity uncertainty (stereo_pairs.stereo_pair_confidence; ours, see its docstring)",
    )
    edge_smoothing: float = Field(
        2.0, ge=0,
        description="Gaussian sigma of the gap-filled inverse depth before its gradient, px (ours: 1.0 -> 99.7% "
        "edge-pair accuracy on Motorcycle, 2.0 -> 100%)",
    )
    edge_threshold: float = Field(
        0.04, gt=0,
        description="edge if |grad| of inverse depth / its p99 exceeds this per px, at a ridge of |grad| (ours: "
        "Motorcycle edge-pair accuracy 0.02 -> 99.6%, 0.04 -> 100%, 0.08 -> 100%)",
    )
    edge_search: int = Field(
        16, ge=1,
        description="from an edge pixel, walk up to this far along +-gradient to the first usable pixel, px (ours: "
        "occlusion gaps are as wide as the disparity jump; 32 -> 99.4% on Motorcycle, 16 -> 100%)",
    )
    edge_offset: float = Field(
        4.0, ge=0,
        description="... then a further uniform 0..this into that side, px (ours: 'a few px either side'; "
        "0 -> 99.8%, 4 -> 100%, 8 -> 99.2% on Motorcycle)",
    )


class StereoJobConfig(_Strict):
    """Everything `dynocc mine-stereo` needs: ReDWeb section 3.1 with the paper's values as defaults."""

    dataset: str = Field("redweb", min_length=1, description="value of the `dataset` column")
    seed: int = Field(0, description="mixed with the left image's stem into the pair sampling")
    jpeg_quality: int = Field(90, ge=1, le=100, description="quality of the stored left image JPEG")
    max_long_side: Optional[int] = Field(
        1024, ge=32, description="resize both views so the long side is at most this (ours); None keeps the size"
    )
    cross_eyed: bool = Field(False, description="swap the halves of side-by-side files (JPS: right view first)")
    stereo: StereoConfig = StereoConfig()
    source: SourceOptions = SourceOptions()
