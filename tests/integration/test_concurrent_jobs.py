"""Two `dynocc mine` runs on the same inputs and `--out` at the same time end with the rows of one run.

Why it holds, on a local disk and on S3 alike (see factory/io/writer.py): every attempt writes
objects under names of its own (task key + attempt nonce), each object is put whole (S3: a single
PUT or a multipart upload is visible only once complete; locally a renamed temp file), nothing is
renamed or overwritten, and an item named by two commit records counts once: readers keep the first
record by name and read only its rows. No lock or lease is needed, so two drivers after a network
split cannot corrupt each other either; the cost is the duplicate work, not the data.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from dynocc.factory.io.writer import committed_items, read_failures, read_frames
from support import run_cli, start_cli

pytestmark = pytest.mark.slow
N_VIDEOS = 6


@pytest.fixture(scope="module")
def videos(synthetic_videos):
    return [str(p) for p in synthetic_videos([f"c{i}.mp4" for i in range(N_VIDEOS)], height=96, width=128,
                                             n_frames=16)]


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by([("video_id", "ascending"), ("frame_index", "ascending")])


def _two_at_once(videos, out, *extra):
    cmd = ["mine", *videos, "--out", out, "--quiet", "--engine", "local", "--items-per-task", "2", *extra]
    a, b = start_cli(*cmd), start_cli(*cmd)
    results = [p.communicate(timeout=600) for p in (a, b)]
    for p, (_, err) in zip((a, b), results):
        assert p.returncode == 0, err
        assert "Traceback" not in err


def _check(got: pa.Table, want: pa.Table) -> None:
    keys = list(zip(got["video_id"].to_pylist(), got["frame_index"].to_pylist()))
    assert len(keys) == len(set(keys)), "duplicate (video_id, frame_index)"
    assert _sorted(got).equals(_sorted(want))


def test_two_jobs_at_once_on_a_local_output(videos, tmp_path):
    reference = tmp_path / "reference"
    assert run_cli("mine", *videos, "--out", reference, "--quiet", "--engine", "local").returncode == 0
    out = tmp_path / "shared"
    _two_at_once(videos, out)
    _check(read_frames(str(out)), read_frames(str(reference)))
    assert len(committed_items(str(out))) == N_VIDEOS and read_failures(str(out)).num_rows == 0
    q = run_cli("query", "SELECT count(*) AS n, count(DISTINCT video_id || ':' || frame_index) AS k FROM frames",
                "--data", out, "--json")
    assert q.returncode == 0, q.stderr
    row = json.loads(q.stdout)[0]
    assert row["n"] == row["k"] == read_frames(str(reference)).num_rows
    again = run_cli("mine", *videos, "--out", out, "--quiet", "--engine", "local")  # a third run: all done
    assert again.returncode == 0 and f"already done: {N_VIDEOS}" in again.stdout


def test_two_jobs_at_once_on_s3(videos, tmp_path, s3):
    reference = tmp_path / "reference"
    assert run_cli("mine", *videos, "--out", reference, "--quiet", "--engine", "local").returncode == 0
    out = s3.url("shared")
    _two_at_once(videos, out, "--storage-options", json.dumps(s3.storage_options))
    got = read_frames(out, s3.storage_options)
    _check(got, read_frames(str(reference)))
    stats = run_cli("stats", out, "--json", "--storage-options", json.dumps(s3.storage_options))
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["frames"] == got.num_rows
