"""The DynOcc miner: frames of one video in, relative depth pairs per frame out.

A :class:`DynOccMiner` holds its flow backend (loaded once), so a Ray actor can keep one and mine
many videos. It streams: only the frames t−b … t+2b and their flows are held at a time.

Per frame t (b = baseline = 2, paper section 3.4):

1. flows F(t→t±b) and back F(t±b→t), two flow calls per frame in all (each pair is used both ways);
2. boundaries of t and of t±b (:mod:`.boundaries`, section 3.1): each frame's boundaries (and the
   distance map the vote reads when the frame is a neighbour) are computed once and reused by the
   frames t−b and t+b;
3. the depth-order vote (:mod:`.vote`, section 3.2);
4. pairs (:mod:`.pairs`, section 3.3), with a random generator seeded by (seed, video id, t),
   so the same input and config give identical rows.

Everything but the flow is vectorised NumPy/OpenCV: dense work at the analysis scale (half
resolution by default), the rest on the sparse boundary pixels. ``benchmarks/bench_miner.py``
measures its cost against the flow's.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import numpy as np

from .boundaries import Boundaries, boundary_confidence, detect_boundaries, flow_geometry
from .config import MinerConfig
from .flow import FlowBackend, make_flow_backend, to_gray
from .pairs import FrameContext, PairSet, extract_pairs
from .vote import NeighbourView, split_segments, vote_with_margin


@dataclass(frozen=True)
class MinedFrame:
    frame_index: int
    image: np.ndarray  # RGB uint8, the size all coordinates refer to
    pairs: PairSet
    boundary: Optional[np.ndarray] = None  # thin boundary map, kept for grading and pictures
    segment_label: Optional[np.ndarray] = None  # int8 map: ±1 on boundary pixels of voted segments, else 0
    foreground_dir: Optional[np.ndarray] = None  # float32 (H, W, 2): unit (dx, dy) into the foreground there


def frame_seed(seed: int, video_id: str, frame_index: int) -> int:
    digest = hashlib.sha256(f"{seed}\x00{video_id}\x00{frame_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


class DynOccMiner:
    def __init__(self, config: MinerConfig = MinerConfig(), flow: Optional[FlowBackend] = None):
        self.config = config
        self.flow = flow if flow is not None else make_flow_backend(config.flow)

    def mine_video(self, frames: Iterable[np.ndarray], video_id: str, keep_maps: bool = False) -> Iterator[MinedFrame]:
        """Yield one :class:`MinedFrame` for every frame t with both neighbours t±b (b ≤ t < n−b)."""
        b = self.config.boundary.baseline
        images: dict[int, np.ndarray] = {}
        grays: dict[int, np.ndarray] = {}
        flows: dict[tuple[int, int], np.ndarray] = {}  # (i, j) -> F(i→j)
        boundaries: dict[int, Boundaries] = {}
        n = 0

        def boundary_of(j: int, last: int) -> None:
            cfg = self.config.boundary
            prev = flow_geometry(flows[(j, j - b)], cfg, flows[(j - b, j)], grays[j]) if j - b >= 0 else None
            nxt = flow_geometry(flows[(j, j + b)], cfg, flows[(j + b, j)], grays[j]) if j + b <= last else None
            if prev is None and nxt is None:
                boundaries[j] = Boundaries.empty(images[j].shape[:2])
            else:
                boundaries[j] = detect_boundaries(boundary_confidence(prev, nxt), cfg, images[j].shape[:2])

        def mine(t: int) -> MinedFrame:
            bd = boundaries[t]
            pixels = split_segments(bd, self.config.vote.segment_length)
            views = [NeighbourView(flows[(t, t + o)], flows[(t + o, t)], boundaries[t + o].distance) for o in (-b, b)]
            label, margin = vote_with_margin(pixels, views[0], views[1], self.config.vote)
            ctx = FrameContext(grays[t], (grays[t - b], grays[t + b]), (flows[(t, t - b)], flows[(t, t + b)]))
            rng = np.random.default_rng(frame_seed(self.config.seed, video_id, t))
            pairs = extract_pairs(pixels, label, ctx, self.config.pairs, self.config.vote, rng, margin)
            if not keep_maps:
                return MinedFrame(t, images[t], pairs)
            seg = np.zeros(bd.mask.shape, np.int8)
            fg_dir = np.zeros(bd.mask.shape + (2,), np.float32)
            if len(pixels):
                lab = label[pixels.segment]
                seg[pixels.ys, pixels.xs] = lab
                fg_dir[pixels.ys, pixels.xs, 0] = pixels.normal_x * lab
                fg_dir[pixels.ys, pixels.xs, 1] = pixels.normal_y * lab
            return MinedFrame(t, images[t], pairs, bd.mask, seg, fg_dir)

        def drop_before(i: int) -> None:
            for d in (images, grays, boundaries):
                for k in [k for k in d if k < i]:
                    del d[k]
            for k in [k for k in flows if min(k) < i]:
                del flows[k]

        def step(i: int, job) -> Iterator[MinedFrame]:
            """Everything that frame i's flows unlock: the boundaries of i−b, then frame i−2b."""
            if job is not None:
                fw, bw = job.result() if isinstance(job, Future) else job
                flows[(i - b, i)], flows[(i, i - b)] = fw, bw
            # Boundaries of frame j need F(j→j+b): available once frame j+b has arrived.
            j = i - b
            if j >= 0:
                boundary_of(j, last=i)
            # Frame t needs the boundaries of t+b, i.e. frame t+2b.
            t = i - 2 * b
            if t >= b:
                yield mine(t)
            drop_before(i - 3 * b)

        # With prefetch, frame i's flows are computed in a worker thread while frame i−1's work
        # (boundaries, vote, pairs) runs here: OpenCV and most NumPy work release the GIL.
        executor = ThreadPoolExecutor(1, thread_name_prefix="dynocc-flow") if self.config.flow.prefetch else None
        pending = None
        try:
            for i, frame in enumerate(frames):
                n = i + 1
                images[i] = frame
                grays[i] = to_gray(frame).astype(np.float32)
                job = None
                if i - b >= 0:
                    todo = [(images[i - b], frame), (frame, images[i - b])]
                    job = executor.submit(self.flow.flows, todo) if executor else self.flow.flows(todo)
                if pending is not None:
                    yield from step(*pending)
                pending = (i, job)
            if pending is not None:
                yield from step(*pending)
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        # End of video: boundaries of the last b frames (with only F_prev), then the last frames.
        last = n - 1
        for j in range(max(0, n - b), n):
            boundary_of(j, last)
        for t in range(max(b, n - 2 * b), n - b):
            yield mine(t)
