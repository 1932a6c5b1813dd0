"""Summary statistics of a mining output (committed items only), for ``dynocc stats``."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from .writer import committed_files, committed_items, read_failures

_PAIR_COLUMNS = ["dataset", "video_id", "frame_index", "pair_ordinal"]


def read_stats(out: str, storage_options: dict | None = None) -> dict:
    """Videos ok/failed, frames, pairs, pairs per frame, ordinal balance and top failure reasons."""
    fs, root = url_to_fs(out, **(storage_options or {}))
    if not fs.exists(root):
        raise FileNotFoundError(f"no mining output at {out}")
    items = committed_items(out, storage_options)
    ordinal = Counter()
    frames = 0
    for url in committed_files(out, "frames", storage_options):
        f_fs, f_path = url_to_fs(url, **(storage_options or {}))
        with f_fs.open(f_path, "rb") as f:
            table = pq.read_table(f, columns=_PAIR_COLUMNS)
        frames += table.num_rows
        values = pc.list_flatten(table["pair_ordinal"]).to_numpy(zero_copy_only=False)
        for v, n in zip(*np.unique(values, return_counts=True)):
            ordinal[int(v)] += int(n)
    failures = read_failures(out, storage_options)
    reasons = Counter(failures["error_type"].to_pylist()) if failures.num_rows else Counter()
    failed_items = sum(1 for s in items if s.failures)
    pairs = sum(ordinal.values())
    return {
        "videos_ok": len(items) - failed_items,
        "videos_failed": failed_items,
        "frames": frames,
        "pairs": pairs,
        "pairs_per_frame": round(pairs / frames, 2) if frames else 0.0,
        "ordinal_balance": {"closer_a": ordinal[1], "closer_b": ordinal[-1], "equal": ordinal[0]},
        "top_failure_reasons": [{"error_type": k, "count": n} for k, n in reasons.most_common(5)],
    }


def format_stats(stats: dict) -> str:
    ob = stats["ordinal_balance"]
    lines = [
        f"videos ok: {stats['videos_ok']}  failed: {stats['videos_failed']}",
        f"frames: {stats['frames']}  pairs: {stats['pairs']}  pairs/frame: {stats['pairs_per_frame']}",
        f"ordinal: +1 (A closer) {ob['closer_a']}  -1 (B closer) {ob['closer_b']}  0 (equal) {ob['equal']}",
    ]
    if stats["top_failure_reasons"]:
        lines.append("top failure reasons: " + ", ".join(f"{r['error_type']} ({r['count']})"
                                                         for r in stats["top_failure_reasons"]))
    return "\n".join(lines)
