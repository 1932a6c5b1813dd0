"""Frame-rate normalisation on a real clip: decoded at the default rate, the same street at 25 and 12.5 fps
gives the same instants and mines similar numbers of pairs per second (slow: it mines both)."""

from __future__ import annotations

from dynocc.factory.config import DecodeConfig
from dynocc.factory.io.decode import decode_frames, sample_video_path, write_video


def test_same_real_clip_at_two_frame_rates_gives_similar_pairs_per_second(tmp_path):
    """bikes.mp4 (25 fps) and the same street written at 12.5 fps (every second frame): decoded at the
    default 6 fps, both become the same instants (within 1/25 s), and mine similar pairs per second."""
    from dynocc.factory.config import MinerConfig
    from dynocc.factory.core.miner import DynOccMiner

    src = sample_video_path("bikes.mp4")
    full = list(decode_frames(src, DecodeConfig(max_long_side=None, fps=None)))
    half = tmp_path / "bikes12.mp4"
    write_video(full[::2], half, fps=12.5, crf=12)
    per_second = []
    for path, n_src, rate in ((src, len(full), 25.0), (str(half), len(full[::2]), 12.5)):
        frames = list(decode_frames(path, DecodeConfig()))
        assert abs(len(frames) - n_src / rate * 6) <= 2, (path, len(frames))
        pairs = sum(len(m.pairs) for m in DynOccMiner(MinerConfig()).mine_video(frames, "bikes"))
        per_second.append(pairs / (len(frames) / 6.0))
    assert min(per_second) > 0, per_second
    assert max(per_second) <= 1.5 * min(per_second), per_second
