"""A mining job on one machine: resolve inputs, decode, mine, write shards and failure rows.

This is the thin layer around the pure miner. One work item (a video or a frame folder) is mined
by :func:`mine_item`, which never raises for a bad input: it returns frame rows and failure rows.
:func:`run_mine_job` drives the items through a :class:`~.writer.ShardWriter`, skipping items that
are already committed (so a rerun resumes), and returns a :class:`JobSummary`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import cv2
import numpy as np

from ..schemas import failure_row, frame_row
from .config import MinerConfig
from .decode import InputError, decode_frames
from .miner import DynOccMiner, MinedFrame
from .sources import WorkItem, resolve_inputs
from .writer import ShardWriter

# Exit codes of `dynocc mine` (documented in the README).
EXIT_OK = 0
EXIT_PARTIAL = 1  # some inputs failed, the rest were mined
EXIT_USAGE = 2  # bad flags or config: nothing was run
EXIT_NOTHING = 3  # every input failed


@dataclass
class ItemResult:
    item_key: str
    video_id: Optional[str]
    frame_rows: list[dict]
    failures: list[dict]
    frames_decoded: int = 0
    frames_mined: int = 0
    pairs: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class JobSummary:
    videos_ok: int = 0
    videos_failed: int = 0
    videos_skipped: int = 0  # already committed by an earlier run
    frames: int = 0  # frames written (frames with at least one pair)
    frames_mined: int = 0  # frames the miner looked at
    pairs: int = 0
    seconds: float = 0.0
    failures: list[dict] = field(default_factory=list)

    @property
    def pairs_per_frame(self) -> float:
        return self.pairs / self.frames if self.frames else 0.0

    @property
    def exit_code(self) -> int:
        if self.videos_failed and not (self.videos_ok or self.videos_skipped):
            return EXIT_NOTHING
        return EXIT_PARTIAL if self.videos_failed else EXIT_OK

    def as_dict(self) -> dict:
        return {
            "videos_ok": self.videos_ok,
            "videos_failed": self.videos_failed,
            "videos_skipped": self.videos_skipped,
            "frames": self.frames,
            "frames_mined": self.frames_mined,
            "pairs": self.pairs,
            "pairs_per_frame": round(self.pairs_per_frame, 2),
            "seconds": round(self.seconds, 2),
        }


def encode_jpeg(image_rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def mined_frame_row(mined: MinedFrame, video_id: str, config: MinerConfig) -> dict:
    """A schema-v1 row for one mined frame."""
    h, w = mined.image.shape[:2]
    p = mined.pairs
    return frame_row(
        config.dataset, video_id, mined.frame_index, encode_jpeg(mined.image, config.jpeg_quality),
        w, h, p.ya, p.xa, p.yb, p.xb, p.ordinal,
    )


def mine_item(
    miner: DynOccMiner,
    item: WorkItem,
    on_frame: Optional[Callable[[MinedFrame], None]] = None,
    keep_empty_frames: bool = False,
) -> ItemResult:
    """Decode and mine one item; a bad input becomes a failure row, never an exception."""
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
        frames = decode_frames(item.input, config.decode, min_frames=2 * config.boundary.baseline + 1)
        for mined in miner.mine_video(counted(frames), item.video_id):
            result.frames_mined += 1
            if on_frame is not None:
                on_frame(mined)
            if len(mined.pairs) or keep_empty_frames:
                result.frame_rows.append(mined_frame_row(mined, item.video_id, config))
                result.pairs += len(mined.pairs)
    except InputError as e:
        result.failures.append(failure_row(item.input, e.stage, e.error_type, e.message, video_id=item.video_id))
    except Exception as e:  # a bug or an unexpected library error: record it, go on with the rest
        result.failures.append(
            failure_row(item.input, "mine", type(e).__name__, f"{type(e).__name__}: {e}", video_id=item.video_id)
        )
    result.frames_decoded = decoded
    result.seconds = time.perf_counter() - start
    return result


def run_mine_job(
    inputs: list[str],
    out: str,
    config: MinerConfig,
    rows_per_shard: int = 512,
    storage_options: Optional[dict] = None,
    progress: Optional[Callable[[ItemResult, JobSummary], None]] = None,
    on_frame: Optional[Callable[[str, MinedFrame], None]] = None,
) -> JobSummary:
    """Mine every input into ``out``; items already committed there are skipped."""
    start = time.perf_counter()
    summary = JobSummary()
    writer = ShardWriter(out, rows_per_shard=rows_per_shard, storage_options=storage_options)
    items, resolve_failures = resolve_inputs(inputs)
    for f in resolve_failures:
        row = failure_row(f["input"], f["stage"], f["error_type"], f["message"], video_id=f.get("video_id"))
        writer.write_item(f"resolve:{f['input']}", [], [row], 0.0)
        summary.videos_failed += 1
        summary.failures.append(row)
        if progress:
            progress(ItemResult(f["input"], f.get("video_id"), [], [row]), summary)
    miner = DynOccMiner(config)
    for item in items:
        if writer.item_done(item.input):
            summary.videos_skipped += 1
            continue
        hook = (lambda mined, vid=item.video_id: on_frame(vid, mined)) if on_frame else None
        result = mine_item(miner, item, on_frame=hook)
        writer.write_item(item.input, result.frame_rows, result.failures, result.seconds,
                          extra_stats={"frames_decoded": result.frames_decoded, "frames_mined": result.frames_mined,
                                       "video_id": item.video_id})
        summary.frames += len(result.frame_rows)
        summary.frames_mined += result.frames_mined
        summary.pairs += result.pairs
        if result.ok:
            summary.videos_ok += 1
        else:
            summary.videos_failed += 1
            summary.failures.extend(result.failures)
        if progress:
            progress(result, summary)
    summary.seconds = time.perf_counter() - start
    writer.finalize(summary.as_dict())
    return summary
