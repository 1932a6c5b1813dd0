"""Decoding real files (H.264 written with PyAV, JPEG/PNG frame folders) and its errors (the same real clip
mined at two frame rates: tests/integration/test_decode_real_clip.py)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from dynocc.factory.config import DecodeConfig
from dynocc.factory.io.decode import (
    InputError,
    decode_frames,
    natural_key,
    resize_long_side,
    sample_video_path,
    video_id_for,
    write_frame_folder,
    write_video,
)

KEEP = DecodeConfig(max_long_side=None)


def make_frames(n: int = 8, w: int = 64, h: int = 48) -> list[np.ndarray]:
    """Smooth gradient background with a bright square moving right by 3 px per frame."""
    y, x = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(n):
        f = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 60)], axis=-1).astype(np.uint8)
        f[10:26, 4 + 3 * t:20 + 3 * t] = (250, 240, 20)
        frames.append(f)
    return frames


@pytest.fixture
def frames():
    return make_frames()


@pytest.fixture
def video(tmp_path, frames):
    path = tmp_path / "clip.mp4"
    write_video(frames, path)
    return str(path)


def error_of(source, config=KEEP, min_frames=5) -> InputError:
    with pytest.raises(InputError) as info:
        list(decode_frames(str(source), config, min_frames=min_frames))
    return info.value


def test_video_round_trip(video, frames):
    out = list(decode_frames(video, KEEP))
    assert len(out) == len(frames)
    for got, want in zip(out, frames):
        assert got.shape == (48, 64, 3) and got.dtype == np.uint8 and got.flags.c_contiguous
        assert np.abs(got.astype(int) - want).mean() < 4  # H.264 crf 18 is lossy
    assert video_id_for(video) == "clip"


def test_odd_size_is_padded_and_decodes(tmp_path):
    path = tmp_path / "odd.mp4"
    write_video(make_frames(6, w=33, h=21), path)
    assert next(iter(decode_frames(str(path), KEEP))).shape == (22, 34, 3)


def test_resize_long_side():
    img = np.zeros((48, 64, 3), np.uint8)
    assert resize_long_side(img, 32).shape == (24, 32, 3)
    assert resize_long_side(img, 100) is img  # never upscale
    assert resize_long_side(img, None) is img
    assert resize_long_side(np.zeros((200, 50, 3), np.uint8), 100).shape == (100, 25, 3)


def test_decode_resizes_long_side(video):
    out = list(decode_frames(video, DecodeConfig(max_long_side=32)))
    assert {f.shape for f in out} == {(24, 32, 3)}
    assert list(decode_frames(video, DecodeConfig(max_long_side=640)))[0].shape == (48, 64, 3)


def test_frame_step_and_max_frames(video, frames):
    stepped = list(decode_frames(video, DecodeConfig(max_long_side=None, frame_step=3), min_frames=1))
    assert len(stepped) == 3  # source frames 0, 3, 6
    for got, t in zip(stepped, (0, 3, 6)):
        assert np.abs(got.astype(int) - frames[t]).mean() < 4
    assert len(list(decode_frames(video, DecodeConfig(max_frames=5)))) == 5
    assert len(list(decode_frames(video, DecodeConfig(frame_step=2, max_frames=2), min_frames=2))) == 2


def test_frame_folder_natural_order_and_sizes(tmp_path, frames):
    folder = tmp_path / "JPEGImages" / "vid1"
    folder.mkdir(parents=True)
    for t, f in enumerate(frames):  # names 0.png .. 7.png, plus 10.png: lexical order would break
        cv2.imwrite(str(folder / f"{t}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    big = cv2.resize(frames[0], (128, 96))  # a differing size is resized to the first frame's
    cv2.imwrite(str(folder / "10.png"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not an image")
    out = list(decode_frames(str(folder), KEEP))
    assert len(out) == 9 and {f.shape for f in out} == {(48, 64, 3)}
    for got, want in zip(out, frames):
        np.testing.assert_array_equal(got, want)  # PNG is lossless
    assert video_id_for(str(folder)) == "vid1"
    assert sorted(["10", "2", "1"], key=natural_key) == ["1", "2", "10"]


def test_jpeg_frame_folder_with_step(tmp_path, frames):
    write_frame_folder(frames, tmp_path / "f")
    assert sorted(os.listdir(tmp_path / "f"))[:2] == ["00000.jpg", "00001.jpg"]
    out = list(decode_frames(str(tmp_path / "f"), DecodeConfig(frame_step=2, max_long_side=32), min_frames=4))
    assert len(out) == 4 and out[0].shape == (24, 32, 3)


def test_corrupt_and_text_files_are_not_videos(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    text = tmp_path / "readme.txt"
    text.write_text("this is not a video\n" * 20)
    for path in (corrupt, text):
        err = error_of(path)
        assert (err.error_type, err.stage) == ("not_a_video", "decode")


def test_errors_are_raised_before_iteration(tmp_path):
    with pytest.raises(InputError):  # at call time, not at the first next()
        decode_frames(str(tmp_path / "missing.mp4"), KEEP)


def test_too_few_frames(tmp_path, frames):
    one = tmp_path / "one.mp4"
    write_video(frames[:1], one)
    assert error_of(one).error_type == "too_few_frames"
    assert len(list(decode_frames(str(one), KEEP, min_frames=1))) == 1
    empty = tmp_path / "empty.mp4"
    write_video([], empty)  # a valid container holding zero frames
    assert error_of(empty).error_type == "too_few_frames"
    write_frame_folder(frames[:1], tmp_path / "f1")
    assert error_of(tmp_path / "f1").error_type == "too_few_frames"


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    assert error_of(tmp_path / "empty").error_type == "empty_folder"
    err = error_of(tmp_path / "nope.mp4")
    assert err.error_type == "not_found" and "nope.mp4" in str(err)


def test_broken_image_midway_yields_frames_then_decode_error(tmp_path, frames):
    write_frame_folder(frames, tmp_path / "f")
    (tmp_path / "f" / "00006.jpg").write_bytes(b"garbage")
    got = []
    with pytest.raises(InputError) as info:
        for f in decode_frames(str(tmp_path / "f"), KEEP):
            got.append(f)
    assert info.value.error_type == "decode_error" and info.value.frames_yielded == 6 == len(got)
    (tmp_path / "f" / "00000.jpg").write_bytes(b"garbage")  # the first frame: nothing readable
    assert error_of(tmp_path / "f").error_type == "not_a_video"


def test_failure_dict():
    err = InputError("not_a_video", "x: bad")
    assert err.to_failure("x.mp4", "x") == {"input": "x.mp4", "video_id": "x", "stage": "decode",
                                            "error_type": "not_a_video", "message": "x: bad", "attempts": 1}


def test_real_sample_video_bikes():
    path = sample_video_path("bikes.mp4")
    assert video_id_for(path) == "bikes"
    out = list(decode_frames(path, DecodeConfig(max_long_side=None, max_frames=10)))
    assert len(out) == 10 and out[0].shape == (272, 640, 3)
    assert out[0].std() > 20  # a real street scene, not a blank frame
    small = next(iter(decode_frames(path, DecodeConfig(max_long_side=320, max_frames=5))))
    assert small.shape == (136, 320, 3)
    assert sum(1 for _ in decode_frames(path, DecodeConfig(max_long_side=None, fps=None))) == 250  # < 1 s
    assert sum(1 for _ in decode_frames(path, DecodeConfig(max_long_side=None))) == 60  # 10 s at 6 fps


def test_missing_sample_video_is_a_clear_error():
    with pytest.raises(InputError, match="no sample video"):
        sample_video_path("nope.mp4")


def test_cv2_fallback_when_pyav_cannot_open(video, frames, monkeypatch):
    import av

    def refuse(*args, **kwargs):
        raise av.InvalidDataError(1094995529, "refused by the test")

    monkeypatch.setattr(av, "open", refuse)
    out = list(decode_frames(video, DecodeConfig(max_long_side=None, frame_step=2), min_frames=4))
    assert len(out) == 4 and out[0].shape == (48, 64, 3)
    assert np.abs(out[1].astype(int) - frames[2]).mean() < 4


# ------------------------------------------------------------------ decoding at a target frame rate


def test_videos_decode_at_the_target_rate_from_their_timestamps(tmp_path):
    """The same moving square written at 6, 12 and 30 fps (1, 2, 5 source frames per time step)
    decodes at fps=6 to one frame per step, each the first frame of its step."""
    steps = make_frames(8)
    for rate in (6, 12, 30):
        per_step = rate // 6
        path = tmp_path / f"clip{rate}.mp4"
        write_video([f for f in steps for _ in range(per_step)], path, fps=rate)
        out = list(decode_frames(str(path), DecodeConfig(max_long_side=None, fps=6)))
        assert len(out) == len(steps), (rate, len(out))
        for got, want in zip(out, steps):
            assert np.abs(got.astype(int) - want).mean() < 4, rate
        every = list(decode_frames(str(path), DecodeConfig(max_long_side=None, fps=None)))
        assert len(every) == len(steps) * per_step
    # A rate above the source's keeps every frame; frame_step then thins the decoded frames.
    assert len(list(decode_frames(str(tmp_path / "clip6.mp4"), DecodeConfig(max_long_side=None, fps=25)))) == 8
    assert len(list(decode_frames(str(tmp_path / "clip30.mp4"),
                                  DecodeConfig(max_long_side=None, fps=6, frame_step=2), min_frames=4))) == 4


def test_frame_folders_ignore_the_target_rate(tmp_path, frames):
    write_frame_folder(frames, tmp_path / "clip")
    assert len(list(decode_frames(str(tmp_path / "clip"), DecodeConfig(max_long_side=None, fps=1)))) == len(frames)
