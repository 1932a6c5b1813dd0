"""The stereo branch as a job: one stereo photo (or left/right pair) in, one schema-v1 row out.

:class:`StereoItemMiner` has the same small interface as :class:`~.job.VideoItemMiner`, so
`dynocc mine-stereo` runs on the same planning, resume, failure rows, shard writer and Ray actor
pool as video mining. The row is the left image, its dense relative inverse depth as a 16-bit PNG
(``depth_png``: 0 unknown, 1 sky, larger = closer) and pairs sampled with ReDWeb's σ rule.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np

from dynocc.schemas import failure_row, frame_row
from dynocc.schemas.frames import CONFIDENCE_COLUMN
from dynocc.factory.config import SourceOptions, StereoJobConfig
from dynocc.factory.io.decode import InputError
from dynocc.factory.engine.items import ItemResult
from dynocc.factory.io.codecs import encode_jpeg
from dynocc.factory.core.miner import MinedFrame, frame_seed
from dynocc.factory.core.sky import make_sky_detector
from dynocc.factory.io.sources import WorkItem
from dynocc.factory.core.stereo import StereoPairError, stereo_depth
from dynocc.factory.io.stereo_inputs import STEREO_MEDIA, load_stereo_pair, resolve_stereo_inputs
from dynocc.factory.io.weights import flow_backend
from dynocc.factory.core.stereo_pairs import sample_stereo_pairs


class StereoItemMiner:
    media = STEREO_MEDIA  # the input walker's stereo hooks

    def __init__(self, config: StereoJobConfig):
        self.config = config
        self.flow = flow_backend(config.stereo.flow, config.source)  # loaded once per actor
        self.sky = make_sky_detector(config.stereo)

    @staticmethod
    def resolve(inputs: list[str], source: Optional[SourceOptions] = None):
        return resolve_stereo_inputs(inputs, source)

    def mine(self, item: WorkItem, on_frame: Optional[Callable[[MinedFrame], None]] = None,
             on_row: Optional[Callable[[dict], None]] = None, prefetched=None) -> ItemResult:
        """Load, compute depth, sample pairs; a bad or unusable pair becomes a failure row.

        ``on_row`` / ``prefetched``: as :meth:`~.video_items.VideoItemMiner.mine` (stereo photos are
        loaded here, not by the fetch stage: ``prefetched`` is always None)."""
        cfg = self.config
        start = time.perf_counter()
        result = ItemResult(item.input, item.video_id, [], [])

        def fail(stage: str, error_type: str, message: str, attempts: int = 1) -> None:
            result.failures.append(failure_row(item.input, stage, error_type, message,
                                               video_id=item.video_id, attempts=attempts))

        try:
            left, right = load_stereo_pair(item, cfg.source, cross_eyed=cfg.cross_eyed, max_long_side=cfg.max_long_side)
            result.frames_decoded = 1
            depth = stereo_depth(left, right, self.flow, cfg.stereo, self.sky)
            result.frames_mined = 1
            if not depth.ok:
                fail("stereo", depth.result.reject_reason, f"not a usable stereo pair: {depth.result.reject_detail}")
            else:
                rng = np.random.default_rng(frame_seed(cfg.seed, item.video_id, 0))
                pairs = sample_stereo_pairs(depth.result.disparity, depth.valid, depth.sky, rng=rng, config=cfg.stereo,
                                            uncertainty=depth.result.uncertainty)
                h, w = left.shape[:2]
                (on_row or result.frame_rows.append)(frame_row(
                    cfg.dataset, item.video_id, 0, encode_jpeg(left, cfg.jpeg_quality), w, h,
                    pairs.ya, pairs.xa, pairs.yb, pairs.xb, pairs.ordinal, depth_png=depth.png,
                    **({} if pairs.confidence is None else {CONFIDENCE_COLUMN: pairs.confidence}),
                ))
                result.pairs = len(pairs)
                if on_frame is not None:
                    on_frame(MinedFrame(0, left, pairs))
        except InputError as e:
            fail(e.stage, e.error_type, e.message, max(1, getattr(e, "attempts", 1) or 1))
        except StereoPairError as e:
            fail("stereo", e.reason, f"not a usable stereo pair: {e.detail}")
        except Exception as e:  # a bug or an unexpected library error: record it, go on with the rest
            fail("mine", type(e).__name__, f"{type(e).__name__}: {e}")
        result.seconds = time.perf_counter() - start
        return result
