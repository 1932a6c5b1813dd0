"""DynOcc work items: a video or frame folder in, one frame row per mined frame out.

:func:`mine_item` fetches (remote inputs), decodes and mines one item with a
:class:`~dynocc.factory.core.miner.DynOccMiner`; a bad input becomes a failure row, never an
exception. :class:`VideoItemMiner` is the :class:`~.items.ItemMiner` the engines run.

A partly damaged input (unreadable frames in the middle, a file cut short) is mined in its good
stretches and gets one failure row per damaged stretch besides its frame rows
(:func:`damage_rows`, error types ``damaged_frames`` and ``truncated``: the item is mined, the
rows say what was skipped); see :mod:`dynocc.factory.io.decode`, "Damaged inputs".
"""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

from dynocc.factory.config import MinerConfig, SourceOptions
from dynocc.factory.core.miner import DynOccMiner, MinedFrame
from dynocc.factory.engine.items import ItemResult
from dynocc.factory.io.codecs import encode_jpeg
from dynocc.factory.io.decode import DAMAGED_FRAMES, DamagedStretch, DecodedFrames, InputError, decode_indexed
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


MAX_DAMAGE_ROWS = 50  # failure rows for damaged stretches per item; the rest are folded into one


def damage_rows(damage: list[DamagedStretch], input: str, video_id: Optional[str],  # noqa: A002 - the column's name
                limit: int = MAX_DAMAGE_ROWS) -> list[dict]:
    """One failure row per damaged stretch of an item that was mined: stage ``decode``, the
    stretch's error type (``damaged_frames`` or ``truncated``) and a message that starts with the
    frame range (``<input>: frames 5-7 (3 frames) skipped: <why>``). Past ``limit`` stretches the
    rest are folded into one ``damaged_frames`` row counting them (a video damaged all through
    would otherwise write a row per few frames)."""
    rows = [failure_row(input, "decode", d.error_type, d.message(input), video_id=video_id) for d in damage[:limit]]
    rest = damage[limit:]
    if rest:
        frames = sum(d.frames for d in rest)
        rows.append(failure_row(
            input, "decode", DAMAGED_FRAMES,
            f"{input}: frames {rest[0].first}-{'?' if rest[-1].last is None else rest[-1].last} skipped: "
            f"{len(rest)} more damaged stretches ({frames} frames)", video_id=video_id))
    return rows


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
    fetch stage downloaded it (:func:`~dynocc.factory.io.remote.download`).

    Damage inside the input is survived: the good stretches are mined (:meth:`DynOccMiner.mine_runs`,
    frame indices as in the undamaged input), each damaged stretch adds a failure row
    (:func:`damage_rows`, first among the item's failure rows) and ``result.frames_skipped``
    counts the frames lost. If no stretch is long enough to mine (``miner.min_run`` frames), a
    ``too_few_frames`` row fails the item."""
    start = time.perf_counter()
    result = ItemResult(item.input, item.video_id, [], [])
    config = miner.config
    decoded = 0
    frames: Optional[DecodedFrames] = None

    def counted(indexed):
        nonlocal decoded
        for f in indexed:
            decoded += 1
            yield f

    try:
        with fetch(item, config.source, prefetched) as local:  # remote inputs: a temp dir, removed after
            video_id = result.video_id = local.video_id or item.video_id
            frames = decode_indexed(os.fspath(local), config.decode, min_frames=miner.min_run)
            for mined in miner.mine_runs(counted(frames), video_id):
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
    if frames is not None and frames.damage:
        if not result.failures and frames.longest_run < miner.min_run:
            result.failures.append(failure_row(
                item.input, "decode", "too_few_frames",
                f"{item.input}: no stretch of {miner.min_run} undamaged frames to mine (the longest has "
                f"{frames.longest_run}; {frames.frames_skipped} frames damaged)", video_id=result.video_id))
        result.failures[:0] = damage_rows(frames.damage, item.input, result.video_id)
    # Frames lost inside the item (0 when undamaged), for the item's stats (ItemResult.frames_skipped).
    result.frames_skipped = frames.frames_skipped if frames is not None else 0
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
