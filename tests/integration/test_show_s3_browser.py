"""`dynocc show` reading shards from S3 (moto), and its gallery page rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pyarrow.compute as pc
import pytest

from dynocc.cli import main
from dynocc.factory.io.writer import ShardWriter, read_frames
from dynocc.factory.tools.overlay import CLOSER_RGB, FARTHER_RGB


def test_show_reads_s3(mined_with_stereo, s3, tmp_path, capsys):
    frames = read_frames(str(mined_with_stereo))
    frames = frames.filter(pc.equal(frames["dataset"], "dynocc")).drop_columns(["depth_png"]).slice(0, 2)
    ShardWriter(s3.url("m"), storage_options=s3.storage_options).write_item("clip", frames, [], 0.0)
    out = tmp_path / "s3gallery"
    assert main(["show", s3.url("m"), "--out", str(out), "--storage-options", json.dumps(s3.storage_options)]) == 0
    assert len(list((out / "images").glob("*.png"))) == 2 and (out / "index.html").is_file()


def _headless_chromium() -> str:
    """Debian's chromium; CI installs it (.ci/run), so there a missing browser fails instead of skipping."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return exe


def _screenshot(page: Path, shot: Path, profile: Path) -> np.ndarray:
    """Open `page` in headless Chromium (offline, throwaway profile) and return the RGB screenshot."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1200,900"]
    subprocess.run([_headless_chromium(), *flags, f"--screenshot={shot}", page.as_uri()],
                   check=True, timeout=90, capture_output=True)
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (900, 1200)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(int)


def test_gallery_renders_in_headless_chromium(mined_with_stereo, tmp_path):
    out = tmp_path / "gallery"
    assert main(["show", str(mined_with_stereo), "--out", str(out), "--limit", "3"]) == 0
    pic = _screenshot(out / "index.html", tmp_path / "shot.png", tmp_path / "profile")
    # The same page with its images gone: only the CSS legend dots carry the pair colours.
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    shutil.rmtree(broken / "images")
    bare = _screenshot(broken / "index.html", tmp_path / "bare.png", tmp_path / "profile")

    def painted(img, colour):
        return int((np.abs(img - colour).sum(axis=2) <= 6).sum())

    # The overlay PNGs were loaded and drawn: far more pixels in the pair colours than the legend has.
    for colour in (CLOSER_RGB, FARTHER_RGB):
        assert painted(pic, colour) > 3 * painted(bare, colour) + 100, colour
    if os.environ.get("DYNOCC_KEEP_SCREENSHOT"):
        shutil.copy(tmp_path / "shot.png", os.environ["DYNOCC_KEEP_SCREENSHOT"])
