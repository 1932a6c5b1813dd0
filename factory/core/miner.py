"""The DynOcc miner: frames of one video in, relative depth pairs per frame out.

A :class:`DynOccMiner` holds its flow backend (loaded once), so a Ray actor can keep one and mine
many videos. It streams: only the frames t − 2b_max … t + 2b_max and their flows are held.

Per frame t (paper section 3.4):

0. the neighbour offset b (paper: 2 frames of YouTube-VOS at 6 fps, ≈ 0.33 s): with
   ``boundary.baseline_rule = "motion"`` (default) it is chosen per frame from the measured motion
   (:func:`neighbour_offset`, from a cheap low-resolution flow between t and t+1), when the
   configured one would give too much or too little of it;
1. flows F(t→t±b) and back F(t±b→t), computed once per frame pair and shared by every frame that
   needs them (with a constant b, two flow calls per frame in all);
2. boundaries of t and of t±b at offset b (:mod:`.boundaries`, section 3.1), each computed once;
3. the depth-order vote (:mod:`.vote`, section 3.2);
4. pairs (:mod:`.pairs`, section 3.3), with a random generator seeded by (seed, video id, t),
   so the same input and config give identical rows.

A frame is mined when it has both neighbours t ± b. A damaged input (frames lost in the middle)
is mined with :meth:`DynOccMiner.mine_runs`: each run of consecutive good frames on its own, so no
frame is ever mined with a neighbour across the gap, and a frame whose :func:`reach` holds no lost
frame gives the same row as in the undamaged input. Everything but the flow is vectorised
NumPy/OpenCV: dense work at the analysis scale (half resolution by default), the rest on the
sparse boundary pixels. ``benchmarks/bench_miner.py`` measures its cost against the flow's.
"""

from __future__ import annotations

import hashlib
import itertools
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import numpy as np

from dynocc.factory.core.boundaries import Boundaries, boundary_confidence, detect_boundaries, flow_geometry
from dynocc.factory.config import BoundaryConfig, MinerConfig
from dynocc.factory.core.flow import FlowBackend, frame_motion, make_flow_backend, to_gray
from dynocc.factory.core.pairs import FrameContext, PairSet, extract_pairs
from dynocc.factory.core.vote import NeighbourView, split_segments, vote_with_margin


@dataclass(frozen=True)
class MinedFrame:
    frame_index: int  # 0-based in the decoded sequence (of the undamaged input, for a damaged one)
    image: np.ndarray  # RGB uint8, the size all coordinates refer to
    pairs: PairSet
    boundary: Optional[np.ndarray] = None  # thin boundary map, kept for grading and pictures
    segment_label: Optional[np.ndarray] = None  # int8 map: ±1 on boundary pixels of voted segments, else 0
    foreground_dir: Optional[np.ndarray] = None  # float32 (H, W, 2): unit (dx, dy) into the foreground there
    offset: int = 0  # the neighbour offset b this frame was mined with


def frame_seed(seed: int, video_id: str, frame_index: int) -> int:
    digest = hashlib.sha256(f"{seed}\x00{video_id}\x00{frame_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def neighbour_offset(motion: float, long_side: int, config: BoundaryConfig) -> int:
    """The neighbour offset b for a frame whose median motion to the next frame is ``motion`` px.

    ``baseline_rule = "fixed"``: always ``baseline`` (paper: 2). ``"motion"`` (ours): start from
    ``baseline``; while b > 1 and the expected motion b·motion exceeds ``max_motion_fraction`` of the
    long side, use a smaller b (large displacements are where a CPU flow fails: DIS medium's EPE near
    depth edges on the HoloLens walk is 17 px at t±2, 13% of the width, and 3.6 px at t±1); while
    b < ``max_baseline`` and b·motion is below ``min_motion`` px (but not zero: a still camera over a
    still scene gives nothing at any b), use a larger one (too little parallax to order anything).
    """
    b = config.baseline
    if config.baseline_rule == "fixed" or not np.isfinite(motion):
        return b
    limit = config.max_motion_fraction * long_side
    while b > 1 and b * motion > limit:
        b -= 1
    while motion > 0 and b < config.max_baseline and b * motion < config.min_motion and (b + 1) * motion <= limit:
        b += 1
    return b


def largest_offset(config: BoundaryConfig) -> int:
    """The largest neighbour offset b :func:`neighbour_offset` can choose: ``max_baseline`` when the
    motion rule may grow it (``min_motion`` > 0), else ``baseline``."""
    grows = config.baseline_rule == "motion" and config.min_motion > 0
    return max(config.baseline, config.max_baseline if grows else config.baseline)


def reach(config: BoundaryConfig) -> int:
    """How many frames on each side of t frame t's row depends on: its neighbours t ± b, their own
    neighbours t ± 2b (their boundaries need flows to both sides), and the frames t − 2 … t + 3
    whose motion picks b (:func:`neighbour_offset`). Two inputs whose frames t − reach … t + reach
    are the same give frame t the same row (same seed: it depends on the frame index only)."""
    return max(2 * largest_offset(config), 3)


def runs(frames: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, Iterator[np.ndarray]]]:
    """Split ``(frame_index, frame)`` pairs (ascending indices) into runs of consecutive indices:
    ``(first index, its frames)``, lazily. Consume each run before asking for the next."""
    position = itertools.count()
    for _, run in itertools.groupby(frames, key=lambda item: item[0] - next(position)):
        first = next(run)
        yield first[0], itertools.chain((first[1],), (frame for _, frame in run))


class DynOccMiner:
    def __init__(self, config: MinerConfig = MinerConfig(), flow: Optional[FlowBackend] = None):
        self.config = config
        self.flow = flow if flow is not None else make_flow_backend(config.flow)

    @property
    def min_run(self) -> int:
        """The fewest consecutive frames worth mining: 2·baseline + 1 (frame t and both neighbours
        at the configured offset); the engines' ``min_frames``."""
        return 2 * self.config.boundary.baseline + 1

    def mine_runs(self, frames: Iterable[tuple[int, np.ndarray]], video_id: str, keep_maps: bool = False,
                  min_run: Optional[int] = None) -> Iterator[MinedFrame]:
        """Mine frames given with their index in the undamaged sequence (``(frame_index, frame)``,
        ascending; damaged ones left out, see :func:`dynocc.factory.io.decode.decode_indexed`).

        Each run of consecutive indices is mined as a video of its own (:meth:`mine_video` with
        ``first_index``), so neighbours never span a gap and frame indices and seeds are those of
        the undamaged input. A run shorter than ``min_run`` (default :attr:`min_run`) yields
        nothing: it is not worth a flow, and is not an error (the caller judges the whole input).
        For input without gaps this is :meth:`mine_video`.
        """
        min_run = self.min_run if min_run is None else min_run
        for first, run in runs(frames):
            head = list(itertools.islice(run, min_run))
            if len(head) < min_run:  # the run ended within min_run frames
                continue
            yield from self.mine_video(itertools.chain(head, run), video_id, keep_maps, first_index=first)

    def mine_video(self, frames: Iterable[np.ndarray], video_id: str, keep_maps: bool = False,
                   first_index: int = 0) -> Iterator[MinedFrame]:
        """Yield one :class:`MinedFrame` for every frame t with both neighbours t ± b (b chosen per frame).

        ``first_index``: the index of the first frame in its whole sequence (a run of a damaged
        input, :meth:`mine_runs`): frame indices and the per-frame seeds count from it."""
        cfg = self.config.boundary
        horizon = 2 * largest_offset(cfg)  # frames t needs ahead
        images: dict[int, np.ndarray] = {}
        grays: dict[int, np.ndarray] = {}
        motion: dict[int, float] = {}  # t -> median motion t -> t+1, px
        flows: dict[tuple[int, int], np.ndarray] = {}  # (i, j) -> F(i→j)
        boundaries: dict[tuple[int, int], Boundaries] = {}  # (j, b) -> boundaries of j at offset b
        last: Optional[int] = None  # index of the last frame, once the video has ended
        executor = ThreadPoolExecutor(1, thread_name_prefix="dynocc-flow") if self.config.flow.prefetch else None
        pending: Optional[tuple[list, Future]] = None

        def collect() -> None:
            nonlocal pending
            if pending is not None:
                keys, job = pending
                pending = None
                for k, f in zip(keys, job.result()):
                    flows[k] = f

        def needed(t: int, b: int, end: int) -> list[tuple[int, int]]:
            """Flow pairs frame t needs at offset b: t↔t±b, and t±b↔t±2b where those frames exist."""
            keys = []
            for a, c in ((t, t - b), (t, t + b), (t - b, t - 2 * b), (t + b, t + 2 * b)):
                if 0 <= c <= end and 0 <= a <= end:
                    keys += [(a, c), (c, a)]
            return list(dict.fromkeys(keys))

        def ensure(keys: list[tuple[int, int]]) -> None:
            collect()
            todo = [k for k in keys if k not in flows]
            for k, f in zip(todo, self.flow.flows([(images[a], images[c]) for a, c in todo]) if todo else []):
                flows[k] = f

        def prefetch(keys: list[tuple[int, int]]) -> None:
            nonlocal pending
            collect()
            todo = [k for k in keys if k not in flows and all(i in images for i in k)]
            if todo and executor is not None:
                pending = (todo, executor.submit(self.flow.flows, [(images[a], images[c]) for a, c in todo]))

        def boundary_of(j: int, b: int, end: int) -> Boundaries:
            key = (j, b)
            if key not in boundaries:
                prev = flow_geometry(flows[(j, j - b)], cfg, flows[(j - b, j)], grays[j]) if j - b >= 0 else None
                nxt = flow_geometry(flows[(j, j + b)], cfg, flows[(j + b, j)], grays[j]) if j + b <= end else None
                if prev is None and nxt is None:
                    boundaries[key] = Boundaries.empty(images[j].shape[:2])
                else:
                    boundaries[key] = detect_boundaries(boundary_confidence(prev, nxt), cfg, images[j].shape[:2])
            return boundaries[key]

        def offset_of(t: int) -> int:
            # The median motion of the frames around t: the offset changes rarely, so frames keep
            # sharing their flows (each change of b costs new flow pairs).
            around = [motion[k] for k in range(t - 2, t + 3) if k in motion]
            m = float(np.median(around)) if around else float("nan")
            return neighbour_offset(m, max(images[t].shape[:2]), cfg)

        def mine(t: int, b: int, end: int) -> MinedFrame:
            ensure(needed(t, b, end))
            # The next frame's flows are computed in the worker thread while this frame is mined
            # (OpenCV and most NumPy work release the GIL).
            if last is None and t + 1 + horizon <= end + 1 and t + 1 in images:
                prefetch(needed(t + 1, offset_of(t + 1), end))
            bd = boundary_of(t, b, end)
            pixels = split_segments(bd, self.config.vote.segment_length)
            views = [NeighbourView(flows[(t, t + o)], flows[(t + o, t)], boundary_of(t + o, b, end).distance)
                     for o in (-b, b)]
            label, margin = vote_with_margin(pixels, views[0], views[1], self.config.vote)
            ctx = FrameContext(grays[t], (grays[t - b], grays[t + b]), (flows[(t, t - b)], flows[(t, t + b)]))
            rng = np.random.default_rng(frame_seed(self.config.seed, video_id, first_index + t))
            pairs = extract_pairs(pixels, label, ctx, self.config.pairs, self.config.vote, rng, margin)
            if not keep_maps:
                return MinedFrame(first_index + t, images[t], pairs, offset=b)
            seg = np.zeros(bd.mask.shape, np.int8)
            fg_dir = np.zeros(bd.mask.shape + (2,), np.float32)
            if len(pixels):
                lab = label[pixels.segment]
                seg[pixels.ys, pixels.xs] = lab
                fg_dir[pixels.ys, pixels.xs, 0] = pixels.normal_x * lab
                fg_dir[pixels.ys, pixels.xs, 1] = pixels.normal_y * lab
            return MinedFrame(first_index + t, images[t], pairs, bd.mask, seg, fg_dir, offset=b)

        def drop_before(i: int) -> None:
            for d in (images, grays, motion):
                for k in [k for k in d if k < i]:
                    del d[k]
            for k in [k for k in flows if min(k) < i]:
                del flows[k]
            for k in [k for k in boundaries if k[0] < i]:
                del boundaries[k]

        def ready(newest: int) -> Iterator[MinedFrame]:
            """Mine every frame t whose whole neighbourhood (t + 2b) has arrived (or the video ended)."""
            nonlocal next_t
            end = newest if last is None else last
            while next_t <= end:
                t = next_t
                if last is None and t + horizon > newest:
                    return
                b = offset_of(t)
                if t - b >= 0 and t + b <= end:
                    yield mine(t, b, end)
                next_t += 1
                drop_before(next_t - horizon)

        next_t = 0
        try:
            i = -1
            for i, frame in enumerate(frames):
                images[i] = frame
                grays[i] = to_gray(frame).astype(np.float32)
                if i >= 1 and cfg.baseline_rule == "motion":  # a fixed offset needs no measure
                    motion[i - 1] = frame_motion(grays[i - 1], grays[i])
                yield from ready(i)
            last = i
            if last >= 0:
                yield from ready(last)
        finally:
            if executor is not None:
                if pending is not None:
                    pending[1].cancel()
                executor.shutdown(wait=True, cancel_futures=True)
