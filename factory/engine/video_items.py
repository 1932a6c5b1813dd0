"""DynOcc work items: a video or frame folder in, one frame row per mined frame out.

:func:`mine_item` fetches (remote inputs), decodes and mines one item with a
:class:`~dynocc.factory.core.miner.DynOccMiner`; a bad input becomes a failure row, never an
exception. :class:`VideoItemMiner` is the :class:`~.items.ItemMiner` the engines run.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

from dynocc.factory.config import MinerConfig, SourceOptions
from dynocc.factory.core.miner import DynOccMiner, MinedFrame
from dynocc.factory.engine.items import ItemResult
from dynocc.factory.io.codecs import encode_jpeg
from dynocc.factory.io.decode import InputError, decode_frames
from dynocc.factory.io.remote import Prefetched, fetch
from dynocc.factory.io.sources import WorkItem, resolve_inputs
from dynocc.factory.io.weights import flow_backend
from dynocc.schemas import failure_row, frame_row
from dynocc.schemas.frames import CONFIDENCE_COLUMN


def mined_frame_row(mined: MinedFrame, video_id: str, config: MinerConfig) -> dict:
    """A frame row (schema v1.1, with ``pair_confidence``) for one mined frame."""
    h, w = mined.image.shape[:2]
    p = mined.pairs
    return frame_row(
        config.dataset, video_id, mined.frame_index, encode_jpeg(mined.image, config.jpeg_quality),
        w, h, p.ya, p.xa, p.yb, p.xb, p.ordinal,
        **({} if p.confidence is None else {CONFIDENCE_COLUMN: p.confidence}),
    )


def mine_item(
    miner: DynOccMiner,
    item: WorkItem,
    on_frame: Optional[Callable[[MinedFrame], None]] = None,
    keep_empty_frames: bool = False,
    on_row: Optional[Callable[[dict], None]] = None,
    prefetched: Optional[Prefetched] = None,
) -> ItemResult:
    """Decode and mine one item; a bad input becomes a failure row, never an exception.

    ``on_row``: where frame rows go as they are made (the writer: memory stays flat however long
    the video); without it they are kept in ``result.frame_rows``. ``prefetched``: the item as the
    fetch stage downloaded it (:func:`~dynocc.factory.io.remote.download`)."""
    start = time.perf_counter()
    result = ItemResult(item.input, item.video_id, [], [])
    config = miner.config
    decoded = 0

    def counted(frames):
        nonlocal decoded
        for f in frames:
            decoded += 1
            yield f

    try:
        with fetch(item, config.source, prefetched) as local:  # remote inputs: a temp dir, removed after
            video_id = result.video_id = local.video_id or item.video_id
            frames = decode_frames(os.fspath(local), config.decode, min_frames=2 * config.boundary.baseline + 1)
            for mined in miner.mine_video(counted(frames), video_id):
                result.frames_mined += 1
                if on_frame is not None:
                    on_frame(mined)
                if len(mined.pairs) or keep_empty_frames:
                    row = mined_frame_row(mined, video_id, config)
                    on_row(row) if on_row is not None else result.frame_rows.append(row)
                    result.pairs += len(mined.pairs)
    except InputError as e:
        result.failures.append(failure_row(item.input, e.stage, e.error_type, e.message,
                                           video_id=result.video_id, attempts=max(1, getattr(e, "attempts", 1) or 1)))
    except Exception as e:  # a bug or an unexpected library error: record it, go on with the rest
        result.failures.append(
            failure_row(item.input, "mine", type(e).__name__, f"{type(e).__name__}: {e}", video_id=item.video_id)
        )
    result.frames_decoded = decoded
    result.seconds = time.perf_counter() - start
    return result


class VideoItemMiner:
    """DynOcc work: a video or frame folder in, one frame row per mined frame out.

    An :class:`~.items.ItemMiner`, like the stereo branch's :class:`~.stereo_items.StereoItemMiner`.
    """

    media = None  # the input walker's default hooks (videos, frame folders)

    def __init__(self, config: MinerConfig):
        self.config = config
        self.miner = DynOccMiner(config, flow_backend(config.flow, config.source))  # weights read once per actor

    @staticmethod
    def resolve(inputs: list[str], source: Optional[SourceOptions] = None):
        return resolve_inputs(inputs, source)

    def mine(self, item: WorkItem, on_frame: Optional[Callable[[MinedFrame], None]] = None,
             on_row: Optional[Callable[[dict], None]] = None, prefetched: Optional[Prefetched] = None) -> ItemResult:
        return mine_item(self.miner, item, on_frame=on_frame, on_row=on_row, prefetched=prefetched)
