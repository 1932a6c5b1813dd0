"""Partial damage is survived: a frame folder or video with unreadable frames or corrupt packets in
the middle, or a file cut short, is mined in its good stretches; each damaged stretch is recorded
as a failure row (stage ``decode``, ``damaged_frames`` or ``truncated``, the frame range in the
message) and the item's ``frames_skipped``.

The rule the row comparisons check: frame t's row depends only on frames t - reach ... t + reach
(:func:`dynocc.factory.core.miner.reach`, 4 with the defaults), so where none of those was lost,
the damaged input's row for t equals the undamaged input's row, byte for byte; where one was,
the frame may have no row or another one (it is mined with the neighbours its stretch has).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dynocc.factory.config import BoundaryConfig, DecodeConfig, MinerConfig
from dynocc.factory.core.miner import DynOccMiner, reach, runs
from dynocc.factory.engine.job import run_mine_job
from dynocc.factory.engine.video_items import damage_rows, mine_item
from dynocc.factory.io.decode import (
    DamagedStretch,
    InputError,
    _Timeline,
    damaged_stretches,
    decode_frames,
    decode_indexed,
    is_damage,
    write_frame_folder,
    write_video,
)
from dynocc.factory.io.sources import WorkItem
from dynocc.factory.testing.synthetic import make_scene
from dynocc.factory.tools.stats import read_stats

KEEP = DecodeConfig(max_long_side=None)
SCENE = dict(seed=0, height=120, width=160)  # small: a few seconds per test with DIS
REACH = reach(MinerConfig().boundary)


@pytest.fixture(scope="module")
def miner() -> DynOccMiner:
    return DynOccMiner(MinerConfig())


def mine(miner: DynOccMiner, path: Path):
    """``mine_item`` on a local video or frame folder, always with video id 'clip' (the per-frame
    seeds depend on it, so damaged and clean copies must share it)."""
    return mine_item(miner, WorkItem(str(path), "clip", "frames" if path.is_dir() else "video"))


def same_row(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k] for k in a)


def untouched(lost: set[int], n: int) -> list[int]:
    """Frames whose reach holds no lost frame."""
    return [t for t in range(n) if not any(t + d in lost for d in range(-REACH, REACH + 1))]


def compare_with_clean(damaged, clean, lost: set[int], n: int) -> list[int]:
    """Assert the damaged item's rows equal the clean item's where the damage does not touch the
    frame's reach, and that no lost frame has a row; return the frames compared that have rows."""
    got = {r["frame_index"]: r for r in damaged.frame_rows}
    want = {r["frame_index"]: r for r in clean.frame_rows}
    assert not set(got) & lost
    compared = []
    for t in untouched(lost, n):
        assert (t in got) == (t in want), t
        if t in got:
            assert same_row(got[t], want[t]), t
            compared.append(t)
    print(f"rows clean {sorted(want)}; damaged {sorted(got)}; identical where untouched: {compared}")
    return compared


def lost_frames(damage: list[DamagedStretch], n: int) -> set[int]:
    return {i for d in damage for i in range(d.first, (n - 1 if d.last is None else d.last) + 1)}


def check_damage_rows(result, damage: list[DamagedStretch]) -> None:
    """One failure row per stretch, first among the item's failures, with the frame range."""
    rows = result.failures[:len(damage)]
    assert [(r["stage"], r["error_type"]) for r in rows] == [("decode", d.error_type) for d in damage]
    for r, d in zip(rows, damage):
        span = f"frames {d.first}-{'?' if d.last is None else d.last}"
        assert span in r["message"] and r["video_id"] == "clip", r["message"]
    assert result.frames_skipped == sum(d.frames for d in damage)


# ------------------------------------------------------------------ frame folders


def folders(tmp_path: Path, n: int, bad: list[int]) -> tuple[Path, Path]:
    """The same scene as two frame folders named 'clip': whole, and with images ``bad`` unreadable."""
    frames = make_scene(n_frames=n, **SCENE).frames
    clean, damaged = tmp_path / "clean" / "clip", tmp_path / "damaged" / "clip"
    write_frame_folder(frames, clean)
    write_frame_folder(frames, damaged)
    for i in bad:
        (damaged / f"{i:05d}.jpg").write_bytes(b"not a jpeg")
    return clean, damaged


def test_one_bad_jpeg_in_11_frames_mines_both_stretches(tmp_path, miner):
    """11 frames, the 6th unreadable: stretches 0-4 and 6-10 are mined (this gave no rows at all
    and 'decode_error: stream breaks after 5 frames' before)."""
    clean, damaged = folders(tmp_path, 11, [5])
    decoded = decode_indexed(str(damaged), KEEP)
    assert [i for i, _ in decoded] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert decoded.damage == [DamagedStretch(5, 5, "damaged_frames", "unreadable image 00005.jpg")]
    assert (decoded.frames, decoded.frames_skipped, decoded.longest_run) == (10, 1, 5)

    result = mine(miner, damaged)
    assert len(result.failures) == 1 and all(is_damage(f) for f in result.failures)
    check_damage_rows(result, decoded.damage)
    assert "frames 5-5 (1 frame) skipped: unreadable image 00005.jpg" in result.failures[0]["message"]
    assert result.frame_rows and result.frames_decoded == 10
    compare_with_clean(result, mine(miner, clean), {5}, 11)


def test_one_bad_jpeg_in_24_frames_keeps_the_untouched_rows(tmp_path, miner):
    """24 frames, the 12th unreadable: every frame more than `reach` frames from it keeps its row,
    identical to the undamaged folder's (this kept 4 frame rows before)."""
    clean, damaged = folders(tmp_path, 24, [11])
    result, whole = mine(miner, damaged), mine(miner, clean)
    check_damage_rows(result, [DamagedStretch(11, 11, "damaged_frames", "")])
    compared = compare_with_clean(result, whole, {11}, 24)
    assert len(compared) >= 6 and min(compared) < 11 < max(compared), compared
    assert len(result.frame_rows) >= len(whole.frame_rows) - 2 * REACH - 1


def test_a_damaged_item_counts_as_mined_in_the_job_summary_and_in_stats(tmp_path):
    """The job and ``dynocc stats`` agree: an item with a damaged stretch skipped is mined, its
    damage row is listed among the failure reasons."""
    _, damaged = folders(tmp_path, 11, [5])
    out = str(tmp_path / "out")
    summary = run_mine_job([str(damaged)], out, MinerConfig())
    assert (summary.videos_ok, summary.videos_failed, summary.exit_code) == (1, 0, 0)
    stats = read_stats(out)
    assert (stats["videos_ok"], stats["videos_failed"]) == (1, 0) and stats["frames"] == summary.frames > 0
    assert stats["top_failure_reasons"] == [{"error_type": "damaged_frames", "count": 1}]


def test_no_stretch_long_enough_fails_the_item(tmp_path, miner):
    """Damage everywhere: no run of 2*baseline+1 good frames, so nothing is mined and a
    'too_few_frames' row (after the damage rows) fails the item."""
    _, damaged = folders(tmp_path, 12, [3, 7])  # runs 0-2, 4-6, 8-11
    result = mine(miner, damaged)
    assert not result.frame_rows and result.frames_mined == 0
    assert [f["error_type"] for f in result.failures] == ["damaged_frames", "damaged_frames", "too_few_frames"]
    assert not is_damage(result.failures[-1]) and "longest has 4" in result.failures[-1]["message"]


def test_whole_item_failures_stay(tmp_path):
    """Nothing readable is still 'not_a_video'; too few good frames overall still 'too_few_frames'
    (raised before anything is handed out); the first image unreadable is damage, not the end."""
    _, damaged = folders(tmp_path, 6, list(range(6)))
    with pytest.raises(InputError) as info:
        decode_indexed(str(damaged), KEEP)
    assert info.value.error_type == "not_a_video"
    _, damaged = folders(tmp_path / "b", 6, [1, 3])
    with pytest.raises(InputError) as info:
        decode_indexed(str(damaged), KEEP)
    assert info.value.error_type == "too_few_frames" and "2 damaged" in str(info.value)
    _, damaged = folders(tmp_path / "c", 8, [0])
    decoded = decode_indexed(str(damaged), KEEP)
    assert [i for i, _ in decoded] == list(range(1, 8)) and decoded.damage[0].first == 0


# ------------------------------------------------------------------ H.264 files

N_VIDEO = 36


@pytest.fixture(scope="module")
def video(tmp_path_factory, miner):
    """The scene as H.264 in MP4 with the index first (as web videos are served) and a keyframe
    every 6 frames, its decoded frames, and its rows mined whole."""
    path = tmp_path_factory.mktemp("clean") / "clip.mp4"
    write_video(make_scene(n_frames=N_VIDEO, **SCENE).frames, path, keyint=6, faststart=True)
    frames = dict(decode_indexed(str(path), KEEP))
    assert sorted(frames) == list(range(N_VIDEO))
    return path, frames, mine(miner, path)


def test_h264_with_bytes_overwritten_in_the_middle(tmp_path, video, miner):
    """A run of random bytes in the middle of the data: the decoder rejects or flags the frames it
    hits; they and the frames predicted from them (up to the next keyframe) are skipped, every
    frame handed out is the undamaged file's frame at the same index, and the rows match."""
    path, clean_frames, whole = video
    data = bytearray(path.read_bytes())
    start = len(data) // 2
    data[start:start + 3000] = np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "clip.mp4"
    damaged.write_bytes(bytes(data))

    decoded = decode_indexed(str(damaged), KEEP)
    good = list(decoded)
    assert decoded.damage and {d.error_type for d in decoded.damage} == {"damaged_frames"}, decoded.damage
    for i, frame in good:  # nothing concealed or garbled passes as good
        np.testing.assert_array_equal(frame, clean_frames[i], err_msg=f"frame {i}")
    lost = lost_frames(decoded.damage, N_VIDEO)
    assert {i for i, _ in good} | lost == set(range(N_VIDEO))
    assert max(i for i, _ in good) > max(lost)  # decoding recovers at the next keyframe
    print("damage:", [d.message("clip.mp4") for d in decoded.damage])

    result = mine(miner, damaged)
    check_damage_rows(result, decoded.damage)
    assert all(is_damage(f) for f in result.failures)
    compared = compare_with_clean(result, whole, lost, N_VIDEO)
    assert min(compared) < min(lost) and max(compared) > max(lost), compared


def test_file_cut_short(tmp_path, video, miner):
    """A download that stopped at 60% of the bytes: the frames before the cut are mined as in the
    whole file, the rest is one 'truncated' stretch up to the length the header declares."""
    path, clean_frames, whole = video
    data = path.read_bytes()
    cut = tmp_path / "clip.mp4"
    cut.write_bytes(data[:int(len(data) * 0.6)])

    decoded = decode_indexed(str(cut), KEEP)
    good = list(decoded)
    assert decoded.damage[-1].error_type == "truncated" and decoded.damage[-1].last == N_VIDEO - 1, decoded.damage
    for i, frame in good:
        np.testing.assert_array_equal(frame, clean_frames[i], err_msg=f"frame {i}")
    lost = lost_frames(decoded.damage, N_VIDEO)
    assert {i for i, _ in good} | lost == set(range(N_VIDEO)) and len(good) >= N_VIDEO // 3
    print("damage:", [d.message("clip.mp4") for d in decoded.damage])

    result = mine(miner, cut)
    check_damage_rows(result, decoded.damage)
    assert all(is_damage(f) for f in result.failures)
    assert len(compare_with_clean(result, whole, lost, N_VIDEO)) >= 3

    with pytest.raises(InputError) as info:  # the all-or-error reader still refuses it
        list(decode_frames(str(cut), KEEP))
    assert info.value.error_type == "decode_error" and info.value.frames_yielded == min(lost)


def test_mp4_cut_before_its_index_is_not_a_video(tmp_path):
    """An MP4 whose index comes last (moov at the end) cut short cannot be opened at all: a
    whole-item failure, as before."""
    path = tmp_path / "clip.mp4"
    write_video(make_scene(n_frames=8, **SCENE).frames, path)
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(InputError) as info:
        decode_indexed(str(path), KEEP)
    assert info.value.error_type == "not_a_video"


# ------------------------------------------------------------------ the pieces


def test_timeline_taints_what_is_predicted_from_damage():
    """Decode order I0 P3 B1 B2 P6 B4 B5 I9 B7 B8 (B-frames shown before the P they follow). P3
    comes out flagged corrupt after B1 and B2 came out: they were held back until P3 settled and are
    lost too, as are P6, B4, B5 (same group) and B7, B8 (leading pictures of the next group,
    predicted across the keyframe); I0 and I9 are good. Everything comes out in time order."""
    t = _Timeline()
    out = []
    for kind, pts, *rest in [("p", 0, True), ("p", 3, False), ("f", 0), ("p", 1, False), ("f", 1),
                             ("p", 2, False), ("f", 2), ("p", 6, False), ("c", 3), ("p", 4, False),
                             ("f", 4), ("p", 5, False), ("f", 5), ("p", 9, True), ("f", 6),
                             ("p", 7, False), ("f", 7), ("p", 8, False), ("f", 8), ("f", 9)]:
        if kind == "p":
            t.packet(pts, keyframe=rest[0], ok=True)
        else:
            t.frame(pts, f"frame{pts}", corrupt=kind == "c")
        out += list(t.release())
    out += list(t.release(final=True))
    assert [o[0] for o in out] == list(range(10))
    assert [o[0] for o in out if o[1] is not None] == [0, 9]
    assert out[3][2] == "flagged corrupt by the decoder"
    assert out[1][2] == out[7][2] == "predicted from a damaged frame (same group of pictures)"


def test_timeline_rejected_packet():
    """A packet the decoder rejects is lost; frames decoded after it in its group are lost too,
    frames decoded before it are not; a packet that never comes out as a frame is lost."""
    t = _Timeline()
    t.packet(0, keyframe=True, ok=True)
    t.frame(0, "f0", corrupt=False)
    t.packet(1, keyframe=False, ok=True)
    t.frame(1, "f1", corrupt=False)
    t.packet(2, keyframe=False, ok=False, reason="Invalid data")
    t.packet(3, keyframe=False, ok=True)
    t.frame(3, "f3", corrupt=False)
    t.packet(4, keyframe=True, ok=True)
    t.frame(4, "f4", corrupt=False)
    t.packet(5, keyframe=False, ok=True)  # swallowed: no frame, no error
    out = list(t.release(final=True))
    assert [(o[0], o[1]) for o in out] == [(0, "f0"), (1, "f1"), (2, None), (3, None), (4, "f4"), (5, None)]
    assert out[2][2] == "rejected by the decoder (Invalid data)" and out[5][2] == "never came out of the decoder"


def test_stretches_and_damage_rows():
    lost = [(3, "damaged_frames", "a", False), (4, "damaged_frames", "b", False), (5, "damaged_frames", "b", False),
            (9, "damaged_frames", "a", False), (10, "truncated", "cut", False), (11, "truncated", "cut", True)]
    stretches = damaged_stretches(lost)
    assert stretches == [DamagedStretch(3, 5, "damaged_frames", "a (1); b (2)"),
                         DamagedStretch(9, 9, "damaged_frames", "a"), DamagedStretch(10, None, "truncated", "cut")]
    assert [s.frames for s in stretches] == [3, 1, 0]
    assert stretches[2].message("x.mp4") == "x.mp4: frames 10-? (the rest of the stream) skipped: cut"
    rows = damage_rows(stretches, "x.mp4", "x", limit=1)
    assert [r["error_type"] for r in rows] == ["damaged_frames", "damaged_frames"]
    assert rows[1]["message"] == "x.mp4: frames 9-? skipped: 2 more damaged stretches (1 frames)"


def test_runs_and_reach(miner):
    """Runs split at index gaps; a run shorter than 2*baseline+1 is not mined; a mined run's frame
    indices count from its first index."""
    frames = make_scene(n_frames=12, seed=1, height=64, width=80).frames
    split = [(first, len(list(run))) for first, run in runs([(i, frames[i]) for i in (0, 1, 2, 3, 5, 6, 7, 8, 9, 10)])]
    assert split == [(0, 4), (5, 6)]
    indexed = [(i + 20, f) for i, f in enumerate(frames[:4])] + [(i + 30, f) for i, f in enumerate(frames[:7])]
    mined = [m.frame_index for m in miner.mine_runs(indexed, "clip")]
    alone = [m.frame_index for m in miner.mine_video(frames[:7], "clip")]
    assert mined == [30 + t for t in alone] and alone
    assert REACH == 4
    assert reach(BoundaryConfig(min_motion=1.0, max_baseline=4)) == 8
