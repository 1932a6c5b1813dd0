"""Benchmark: ``dynocc query`` (DuckDB over committed shards) on about a million pairs.

Not a test: run it by hand (well under a minute on 2 cores)::

    .venv/bin/python benchmarks/bench_query.py [--pairs 1000000] [--videos 100] [--frames 50]
                                               [--repeats 3] [--out DIR] [--json FILE]

Builds synthetic frame rows (random pairs, a tiny real JPEG as every frame's image) with the
project's :class:`~dynocc.factory.io.writer.ShardWriter` -- one work item per video, so the layout,
commit markers and encoding are those of a real mining output -- then times, each the fastest of
``--repeats`` runs:

* ``connect``     -- :func:`dynocc.factory.tools.query.connect`: read the commit markers, list the
                     committed files, create the views (what every ``dynocc query`` pays first);
* typical queries on the ``pairs`` and ``frames`` views (below), on that connection;
* ``end_to_end``  -- :func:`dynocc.factory.tools.query.run_query` of the first query, connect included.

Prints seconds per query (and writes them as JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import cv2
import numpy as np

from dynocc.factory.tools.query import connect, run_query
from dynocc.factory.io.writer import ShardWriter
from dynocc.schemas import frame_row

QUERIES = {
    "count_by_ordinal": "SELECT ordinal, count(*) AS n FROM pairs GROUP BY ordinal ORDER BY ordinal",
    "pairs_per_video": "SELECT video_id, count(*) AS n FROM pairs GROUP BY video_id ORDER BY n DESC, video_id LIMIT 10",
    "filter_aggregate": ("SELECT dataset, count(*) AS n, avg(sqrt((ya - yb)^2 + (xa - xb)^2)) AS mean_dist "
                         "FROM pairs WHERE ordinal <> 0 AND frame_index BETWEEN 10 AND 40 AND ya < 180 "
                         "GROUP BY dataset ORDER BY dataset"),
    "frames_top": ("SELECT video_id, frame_index, len(pair_ordinal) AS n FROM frames "
                   "ORDER BY n DESC, video_id, frame_index LIMIT 5"),
}


def build(out: str, pairs: int, videos: int, frames: int, seed: int = 0) -> dict:
    """Write ``videos`` items of ``frames`` frames each, ``pairs`` pairs in all (roughly even)."""
    rng = np.random.default_rng(seed)
    ok, jpeg = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))
    assert ok
    jpeg = jpeg.tobytes()
    w, h = 640, 360
    per_frame = max(1, pairs // (videos * frames))
    writer = ShardWriter(out)
    total = 0
    for v in range(videos):
        dataset = "dynocc" if v % 4 else "redweb"
        rows = []
        for f in range(frames):
            n = int(rng.integers(per_frame // 2, per_frame * 3 // 2 + 1))
            rows.append(frame_row(
                dataset, f"video_{v:05d}", f, jpeg, w, h,
                rng.integers(0, h, n, dtype=np.int16), rng.integers(0, w, n, dtype=np.int16),
                rng.integers(0, h, n, dtype=np.int16), rng.integers(0, w, n, dtype=np.int16),
                rng.integers(-1, 2, n, dtype=np.int8),
            ))
            total += n
        writer.write_item(f"video_{v:05d}.mp4", rows, [], seconds=0.0)
    return {"pairs": total, "frames": videos * frames, "videos": videos}


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--videos", type=int, default=100)
    ap.add_argument("--frames", type=int, default=50, help="frames per video")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", help="shard folder to build into (default: a temporary folder)")
    ap.add_argument("--json", help="write the figures here as JSON")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_query_") as tmp:
        out = args.out or os.path.join(tmp, "shards")
        t0 = time.perf_counter()
        sizes = build(out, args.pairs, args.videos, args.frames)
        build_s = time.perf_counter() - t0
        print(f"built {sizes['pairs']:,} pairs in {sizes['frames']:,} frames of {sizes['videos']} videos "
              f"in {build_s:.1f} s  ({out})")
        figures = {"sizes": sizes, "build_s": round(build_s, 3), "cpus": os.cpu_count(), "seconds": {}}

        connect_s, con = best_of(lambda: connect(out), args.repeats)
        figures["seconds"]["connect"] = connect_s
        print(f"{'connect':18s} {connect_s:7.3f} s")
        for name, sql in QUERIES.items():
            secs, rows = best_of(lambda: con.execute(sql).fetchall(), args.repeats)
            figures["seconds"][name] = secs
            print(f"{name:18s} {secs:7.3f} s   {rows[:3]}{' ...' if len(rows) > 3 else ''}")
        con.close()
        secs, table = best_of(lambda: run_query(QUERIES["count_by_ordinal"], out), args.repeats)
        figures["seconds"]["end_to_end"] = secs
        print(f"{'end_to_end':18s} {secs:7.3f} s   (connect + count_by_ordinal)")
        figures["seconds"] = {k: round(v, 4) for k, v in figures["seconds"].items()}
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
