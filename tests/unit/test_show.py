"""`dynocc stats` histograms and plot, and `dynocc show` (overlays, depth maps, index.html) on real mined shards
(conftest's ``mined_with_stereo``). On S3 and in headless Chromium: tests/integration/test_show_s3_browser.py."""

from __future__ import annotations

import html.parser
import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow.compute as pc

from dynocc.cli import main
from dynocc.factory.tools.overlay import CLOSER_RGB, EQUAL_RGB, FARTHER_RGB
from dynocc.factory.tools.stats import DISTANCE_EDGES, format_stats, plot_stats, read_stats
from dynocc.factory.io.writer import read_frames

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return w, h


def test_stats_histograms_match_the_rows(mined_with_stereo, capsys):
    stats = read_stats(str(mined_with_stereo))
    assert {"videos_ok", "videos_failed", "frames", "pairs", "pairs_per_frame", "ordinal_balance",
            "top_failure_reasons"} <= set(stats)
    frames = read_frames(str(mined_with_stereo))
    hist = stats["histograms"]

    lengths = pc.list_value_length(frames["pair_ordinal"]).to_numpy()
    ppf = hist["pairs_per_frame"]
    assert sum(b["count"] for b in ppf) == stats["frames"] == frames.num_rows
    for b in ppf:
        assert b["count"] == int(((lengths >= b["low"]) & (lengths < b["high"])).sum())
    assert len(ppf) <= 11 and ppf[0]["low"] == 0

    flat = {c: pc.list_flatten(frames[c]).to_numpy().astype(float) for c in ("pair_ya", "pair_xa", "pair_yb", "pair_xb")}
    dist = np.hypot(flat["pair_ya"] - flat["pair_yb"], flat["pair_xa"] - flat["pair_xb"])
    bins = hist["pair_distance_px"]
    assert [b["low"] for b in bins] == list(DISTANCE_EDGES[:-1]) and bins[-1]["high"] is None
    assert [b["count"] for b in bins] == np.histogram(dist, bins=np.asarray(DISTANCE_EDGES))[0].tolist()
    assert sum(b["count"] for b in bins) == stats["pairs"]

    by_ds = hist["ordinal_by_dataset"]
    assert set(by_ds) == {"dynocc", "redweb"}
    for key in ("closer_a", "closer_b", "equal"):
        assert sum(c[key] for c in by_ds.values()) == stats["ordinal_balance"][key]
    assert sum(by_ds["redweb"].values()) == 12

    text = format_stats(stats)
    assert "pairs per frame" in text and "pair distance" in text and "ordinal balance per dataset" in text
    assert "redweb" in text and "[500, inf)" in text

    plot = mined_with_stereo.parent / "plot" / "stats.png"
    assert main(["stats", str(mined_with_stereo), "--json", "--plot", str(plot)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["histograms"] == json.loads(json.dumps(hist))
    w, h = _png_size(plot)
    assert w == 720 and h > 500
    img = cv2.cvtColor(cv2.imread(str(plot)), cv2.COLOR_BGR2RGB)
    assert img.shape == plot_stats(stats).shape
    for colour in (CLOSER_RGB, FARTHER_RGB, EQUAL_RGB):  # the bars are drawn
        assert (np.abs(img.astype(int) - colour).sum(axis=2) == 0).sum() > 200


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images, self.captions, self._in_caption = [], [], [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a":
            self.links.append(a["href"])
        elif tag == "img":
            self.images.append(a)
        elif tag == "figcaption":
            self._in_caption = True
            self.captions.append("")

    def handle_endtag(self, tag):
        if tag == "figcaption":
            self._in_caption = False

    def handle_data(self, data):
        if self._in_caption:
            self.captions[-1] += data


def test_show_writes_overlays_depth_maps_and_a_gallery(mined_with_stereo, tmp_path, capsys):
    out = tmp_path / "gallery"
    frames = read_frames(str(mined_with_stereo)).to_pylist()
    assert main(["show", str(mined_with_stereo), "--out", str(out), "--limit", str(len(frames))]) == 0
    printed = capsys.readouterr().out
    assert "gallery:" in printed and "depth maps: 1" in printed

    page = (out / "index.html").read_text()
    parser = _Links()
    parser.feed(page)
    by_key = {(r["video_id"], r["frame_index"]): r for r in frames}
    assert len(parser.captions) == len(frames)
    keys = [(r["dataset"], r["video_id"], r["frame_index"]) for r in frames]
    shown = [(c.split("\u00b7")[3].strip(), c.split("\u00b7")[0].strip(), int(c.split("\u00b7")[1].split()[1]))
             for c in parser.captions]
    assert shown == sorted(keys)  # sorted by dataset, video_id, frame_index
    for link in parser.links:
        assert not link.startswith(("/", "http")) and (out / link).is_file()
    for img in parser.images:
        path = out / img["src"]
        w, h = _png_size(path)
        assert (str(w), str(h)) == (img["width"], img["height"])
    for caption in parser.captions:
        vid, frame, pairs, dataset = [p.strip() for p in caption.split("\u00b7")]
        row = by_key[(vid, int(frame.split()[1]))]
        assert int(pairs.split()[0]) == len(row["pair_ordinal"]) and dataset == row["dataset"]

    # an overlay at 2x (long side < 400) with the colours of draw_pairs
    first = out / parser.images[0]["src"]
    assert _png_size(first) == (320, 240)
    pic = cv2.cvtColor(cv2.imread(str(first)), cv2.COLOR_BGR2RGB).astype(int)
    for colour in (CLOSER_RGB, FARTHER_RGB):
        assert (np.abs(pic - colour).sum(axis=2) == 0).sum() > 10

    # the stereo row, selected with --where, gets a depth map beside its overlay
    st = tmp_path / "stereo"
    assert main(["show", str(mined_with_stereo), "--out", str(st), "--where", "depth_png IS NOT NULL"]) == 0
    capsys.readouterr()
    parser = _Links()
    parser.feed((st / "index.html").read_text())
    assert len(parser.images) == 2 and parser.images[1]["src"].endswith(".depth.png")
    overlay, depth = (st / parser.images[0]["src"]), (st / parser.images[1]["src"])
    assert _png_size(overlay) == _png_size(depth) == (160, 120)
    d = cv2.cvtColor(cv2.imread(str(depth)), cv2.COLOR_BGR2RGB).astype(int)
    assert (d[60:100, 10:30] != d[60:100, 130:150]).any()  # near (right) and far (left) differ
    assert (d[44:46, 64:76] == 128).all()  # unknown pixels grey (rows 22-23 x2, cols 32-37 x2)


def test_show_bad_where_and_empty_selection(mined_with_stereo, tmp_path, capsys):
    assert main(["show", str(mined_with_stereo), "--out", str(tmp_path / "g"), "--where", "nope > 1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dynocc show: ")
    assert main(["show", str(mined_with_stereo), "--out", str(tmp_path / "e"), "--where", "frame_index > 100000"]) == 0
    assert "No frames matched" in (tmp_path / "e" / "index.html").read_text()
