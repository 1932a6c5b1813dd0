"""Summary statistics of a mining output (committed items only), for ``dynocc stats``."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow.compute as pc
from dynocc.factory.io.storage import url_fs

from dynocc.factory.io.writer import committed_items, committed_parts, read_failures, read_part

_PAIR_COLUMNS = ["dataset", "video_id", "frame_index", "pair_ya", "pair_xa", "pair_yb", "pair_xb", "pair_ordinal"]

DISTANCE_EDGES = (0, 2, 5, 10, 20, 30, 50, 100, 200, 500, float("inf"))
"""Bins of the pair-distance histogram (pixels between A and B in the stored image)."""


def read_stats(out: str, storage_options: dict | None = None) -> dict:
    """Videos ok/failed, frames, pairs, pairs per frame, ordinal balance and top failure reasons.

    ``histograms`` adds: ``pairs_per_frame`` and ``pair_distance_px`` (lists of bins
    ``{"low", "high", "count"}``, ``[low, high)``, ``high`` None for infinity; distances are the pixels
    between A and B in the stored image) and ``ordinal_by_dataset`` (per dataset the counts of
    ``closer_a`` (+1), ``closer_b`` (-1) and ``equal`` (0)).
    """
    fs, root = url_fs(out, storage_options)
    if not fs.exists(root):
        raise FileNotFoundError(f"no mining output at {out}")
    items = committed_items(out, storage_options)
    ordinal = Counter()
    frames = 0
    per_frame: list[np.ndarray] = []
    dist_counts = np.zeros(len(DISTANCE_EDGES) - 1, np.int64)
    by_dataset: dict[str, Counter] = {}
    for part in committed_parts(out, "frames", storage_options):
        table = read_part(part, storage_options, columns=list(_PAIR_COLUMNS))
        frames += table.num_rows
        values = pc.list_flatten(table["pair_ordinal"]).to_numpy(zero_copy_only=False)
        for v, n in zip(*np.unique(values, return_counts=True)):
            ordinal[int(v)] += int(n)
        lengths = pc.list_value_length(table["pair_ordinal"]).to_numpy(zero_copy_only=False).astype(np.int64)
        per_frame.append(lengths)
        dist_counts += _distance_counts(table)
        names, codes = np.unique(np.asarray(table["dataset"].to_pylist(), dtype=object), return_inverse=True)
        per_pair = np.repeat(codes.reshape(-1), lengths)
        for k, name in enumerate(names.tolist()):
            counts = np.bincount(values[per_pair == k].astype(np.int64) + 1, minlength=3)
            by_dataset.setdefault(str(name), Counter()).update({-1: int(counts[0]), 0: int(counts[1]), 1: int(counts[2])})
    failures = read_failures(out, storage_options)
    reasons = Counter(failures["error_type"].to_pylist()) if failures.num_rows else Counter()
    failed_items = sum(1 for s in items if s.failed)  # damaged stretches alone do not fail an item
    pairs = sum(ordinal.values())
    return {
        "videos_ok": len(items) - failed_items,
        "videos_failed": failed_items,
        "frames": frames,
        "pairs": pairs,
        "pairs_per_frame": round(pairs / frames, 2) if frames else 0.0,
        "ordinal_balance": {"closer_a": ordinal[1], "closer_b": ordinal[-1], "equal": ordinal[0]},
        "top_failure_reasons": [{"error_type": k, "count": n} for k, n in reasons.most_common(5)],
        "histograms": {
            "pairs_per_frame": _pairs_per_frame_bins(np.concatenate(per_frame) if per_frame else np.zeros(0, np.int64)),
            "pair_distance_px": [
                {"low": _edge(lo), "high": _edge(hi), "count": int(n)}
                for lo, hi, n in zip(DISTANCE_EDGES[:-1], DISTANCE_EDGES[1:], dist_counts)
            ],
            "ordinal_by_dataset": {
                d: {"closer_a": c[1], "closer_b": c[-1], "equal": c[0]} for d, c in sorted(by_dataset.items())
            },
        },
    }


def _edge(v: float) -> float | int | None:
    """A bin edge for JSON: None for infinity."""
    return None if not np.isfinite(v) else (int(v) if float(v).is_integer() else float(v))


def _distance_counts(table) -> np.ndarray:
    coords = [pc.list_flatten(table[c]).to_numpy(zero_copy_only=False).astype(np.float32)
              for c in ("pair_ya", "pair_xa", "pair_yb", "pair_xb")]
    dist = np.hypot(coords[0] - coords[2], coords[1] - coords[3])
    counts, _ = np.histogram(dist, bins=np.asarray(DISTANCE_EDGES, np.float64))
    return counts.astype(np.int64)


def _nice_width(span: float, max_bins: int = 10) -> int:
    """The smallest 1-2-5 x 10^k integer bin width that covers ``span`` in at most ``max_bins`` bins."""
    width = 1
    while width * max_bins <= span:
        for m in (2, 5 / 2, 2):  # 1 -> 2 -> 5 -> 10 -> 20 ...
            width = int(round(width * m))
            if width * max_bins > span:
                break
    return width


def _pairs_per_frame_bins(lengths: np.ndarray) -> list[dict]:
    """Histogram of pairs per frame: up to 10 bins [low, high) of a 1-2-5 width, from 0."""
    if lengths.size == 0:
        return []
    top = int(lengths.max())
    width = _nice_width(top)
    n_bins = top // width + 1
    counts = np.bincount(lengths // width, minlength=n_bins)
    return [{"low": i * width, "high": (i + 1) * width, "count": int(c)} for i, c in enumerate(counts)]


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
    if stats.get("histograms"):
        lines.append(format_histograms(stats["histograms"]))
    return "\n".join(lines)


def _range_label(b: dict) -> str:
    return f"[{b['low']}, {'inf' if b['high'] is None else b['high']})"


def _bars(title: str, bins: list[dict], width: int = 40) -> list[str]:
    lines = [title]
    if not bins:
        return lines + ["  (none)"]
    labels = [_range_label(b) for b in bins]
    top = max(b["count"] for b in bins) or 1
    lw = max(len(x) for x in labels)
    cw = max(len(str(b["count"])) for b in bins)
    for label, b in zip(labels, bins):
        bar = "#" * int(round(width * b["count"] / top))
        lines.append(f"  {label.rjust(lw)}  {str(b['count']).rjust(cw)}  {bar}".rstrip())
    return lines


def format_histograms(hist: dict, width: int = 40) -> str:
    """The histograms of :func:`read_stats` as text bar charts."""
    lines = _bars("pairs per frame (frames per bin):", hist["pairs_per_frame"], width)
    lines += _bars("pair distance in px (pairs per bin):", hist["pair_distance_px"], width)
    lines.append("ordinal balance per dataset (+1 A closer / -1 B closer / 0 equal):")
    rows = hist["ordinal_by_dataset"]
    if not rows:
        lines.append("  (none)")
    dw = max((len(d) for d in rows), default=0)
    for d, c in rows.items():
        total = c["closer_a"] + c["closer_b"] + c["equal"]
        parts = [(k, c[key]) for k, key in (("+", "closer_a"), ("-", "closer_b"), ("=", "equal"))]
        bar = "".join(ch * int(round(width * n / total)) for ch, n in parts) if total else ""
        pct = "  ".join(f"{lab} {n} ({100.0 * n / total:.1f}%)" if total else f"{lab} 0"
                        for lab, n in (("+1", c["closer_a"]), ("-1", c["closer_b"]), ("0", c["equal"])))
        lines.append(f"  {d.ljust(dw)}  {pct}  {bar}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- PNG plot


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45, colour=(230, 230, 230),
          thickness: int = 1) -> None:
    import cv2

    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def _bar_panel(title: str, bins: list[dict], size: tuple[int, int], colour) -> np.ndarray:
    """A vertical bar chart of ``bins`` (counts on top of bars, ranges under them)."""
    import cv2

    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    _text(img, title, (12, 22), 0.55, (20, 20, 20), 1)
    if not bins:
        _text(img, "(no data)", (12, h // 2), 0.5, (90, 90, 90))
        return img
    left, right, top, bottom = 12, w - 12, 44, h - 44
    cv2.line(img, (left, bottom), (right, bottom), (60, 60, 60), 1)
    n = len(bins)
    slot = (right - left) / n
    peak = max(b["count"] for b in bins) or 1
    for i, b in enumerate(bins):
        x0 = int(round(left + i * slot + slot * 0.12))
        x1 = int(round(left + (i + 1) * slot - slot * 0.12))
        y0 = int(round(bottom - (bottom - top) * b["count"] / peak))
        if b["count"]:
            cv2.rectangle(img, (x0, min(y0, bottom - 1)), (x1, bottom), colour, -1)
        cx = (x0 + x1) // 2
        label = str(b["count"])
        (tw, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)
        _text(img, label, (cx - tw // 2, max(y0 - 4, top - 4)), 0.35, (40, 40, 40))
        rng = f"{b['low']}-" + ("" if b["high"] is None else str(b["high"]))
        (tw, _), _ = cv2.getTextSize(rng, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)
        _text(img, rng, (cx - tw // 2, bottom + 16 + (12 if i % 2 and tw > slot else 0)), 0.35, (40, 40, 40))
    return img


def _ordinal_panel(rows: dict, size: tuple[int, int]) -> np.ndarray:
    """Per dataset one horizontal 100% bar: +1 / -1 / 0 shares in the overlay colours."""
    import cv2

    from dynocc.factory.tools.overlay import CLOSER_RGB, EQUAL_RGB, FARTHER_RGB

    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    _text(img, "ordinal balance per dataset", (12, 22), 0.55, (20, 20, 20))
    legend = (("+1 A closer", CLOSER_RGB), ("-1 B closer", FARTHER_RGB), ("0 equal", EQUAL_RGB))
    x = 12
    for label, colour in legend:
        cv2.rectangle(img, (x, 34), (x + 12, 46), colour, -1)
        _text(img, label, (x + 18, 45), 0.4, (40, 40, 40))
        x += 130
    if not rows:
        _text(img, "(no data)", (12, h // 2), 0.5, (90, 90, 90))
        return img
    label_w = min(160, 12 + 8 * max(len(d) for d in rows))
    top, row_h = 60, max(18, min(40, (h - 70) // max(len(rows), 1)))
    for i, (d, c) in enumerate(rows.items()):
        y0 = top + i * row_h
        if y0 + row_h - 4 > h:
            break
        _text(img, d[:18], (12, y0 + row_h // 2 + 4), 0.45, (20, 20, 20))
        total = c["closer_a"] + c["closer_b"] + c["equal"]
        x = label_w
        span = w - 12 - label_w
        for (key, colour) in (("closer_a", CLOSER_RGB), ("closer_b", FARTHER_RGB), ("equal", EQUAL_RGB)):
            part = int(round(span * c[key] / total)) if total else 0
            if part:
                cv2.rectangle(img, (x, y0 + 2), (min(x + part, w - 12), y0 + row_h - 4), colour, -1)
                if part > 40:
                    _text(img, f"{100.0 * c[key] / total:.0f}%", (x + 4, y0 + row_h // 2 + 4), 0.4, (20, 20, 20))
            x += part
    return img


def plot_stats(stats: dict, width: int = 720) -> np.ndarray:
    """The histograms of :func:`read_stats` drawn with OpenCV as one RGB image (three panels)."""
    from dynocc.factory.tools.overlay import CLOSER_RGB, FARTHER_RGB

    hist = stats["histograms"]
    n_ds = len(hist["ordinal_by_dataset"])
    panels = [
        _bar_panel(f"pairs per frame ({stats['frames']} frames)", hist["pairs_per_frame"], (260, width), FARTHER_RGB),
        _bar_panel(f"pair distance, px ({stats['pairs']} pairs)", hist["pair_distance_px"], (260, width), CLOSER_RGB),
        _ordinal_panel(hist["ordinal_by_dataset"], (80 + 32 * max(n_ds, 1), width)),
    ]
    sep = np.full((6, width, 3), 210, np.uint8)
    out = [panels[0]]
    for p in panels[1:]:
        out += [sep, p]
    return np.concatenate(out, axis=0)


def save_stats_plot(stats: dict, path: str, storage_options: dict | None = None) -> str:
    """Write :func:`plot_stats` as a PNG to ``path`` (any fsspec URL); returns the path."""
    from dynocc.factory.tools.overlay import save_png

    return save_png(plot_stats(stats), path, **(storage_options or {}))
