"""Resolving CLI inputs into work items and failure dicts, on real files in tmp_path."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from dynocc.factory.io.sources import WorkItem, resolve_inputs

FAILURE_KEYS = {"input", "video_id", "stage", "error_type", "message", "attempts"}


def touch_image(folder, name="00000.jpg"):
    """A tiny real JPEG (resolution only looks at names, but keep the files genuine)."""
    import cv2

    os.makedirs(folder, exist_ok=True)
    cv2.imwrite(str(folder / name), np.full((8, 8, 3), 128, np.uint8))


def touch_video(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 16)  # contents are judged at decode time, not here


@pytest.fixture
def vos(tmp_path):
    """A YouTube-VOS root: JPEGImages/<video>/*.jpg plus Annotations that must be ignored."""
    root = tmp_path / "ytvos"
    for vid in ("b2", "a1", "c10"):
        touch_image(root / "JPEGImages" / vid)
        touch_image(root / "JPEGImages" / vid, "00005.jpg")
    touch_image(root / "Annotations" / "a1", "00000.png")
    return root


def test_video_file_and_frame_folder(tmp_path):
    touch_video(tmp_path / "clip.mp4")
    touch_image(tmp_path / "frames")
    items, failures = resolve_inputs([str(tmp_path / "frames"), str(tmp_path / "clip.mp4")])
    assert failures == []
    assert items == [WorkItem(str(tmp_path / "clip.mp4"), "clip", "video"),
                     WorkItem(str(tmp_path / "frames"), "frames", "frames")]


def test_youtube_vos_root_and_jpegimages_folder(vos):
    items, failures = resolve_inputs([str(vos)])
    assert failures == []
    assert [(i.video_id, i.kind) for i in items] == [("a1", "frames"), ("b2", "frames"), ("c10", "frames")]
    assert items[0].input == str(vos / "JPEGImages" / "a1")
    # the JPEGImages folder itself gives the same items (and the two inputs de-duplicate)
    assert resolve_inputs([str(vos / "JPEGImages")])[0] == items
    assert resolve_inputs([str(vos), str(vos / "JPEGImages"), str(vos / "JPEGImages" / "a1")])[0] == items


def test_youtube_vos_empty_video_folder_is_a_failure(vos):
    (vos / "JPEGImages" / "d4").mkdir()
    items, failures = resolve_inputs([str(vos)])
    assert len(items) == 3
    assert [(f["video_id"], f["error_type"], f["stage"]) for f in failures] == [("d4", "empty_folder", "resolve")]


def test_folder_of_videos(tmp_path):
    for name in ("b.mp4", "a.MOV", "c.webm"):
        touch_video(tmp_path / "vids" / name)
    (tmp_path / "vids" / "notes.txt").write_text("ignored")
    items, failures = resolve_inputs([str(tmp_path / "vids")])
    assert failures == []
    assert [(i.video_id, i.kind) for i in items] == [("a", "video"), ("b", "video"), ("c", "video")]


def test_missing_and_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    items, failures = resolve_inputs([str(tmp_path / "missing.mp4"), str(tmp_path / "empty")])
    assert items == []
    assert [f["error_type"] for f in failures] == ["empty_folder", "not_found"]  # sorted by input
    for f in failures:
        assert set(f) == FAILURE_KEYS and f["stage"] == "resolve" and f["attempts"] == 1
    assert failures[1]["input"] == str(tmp_path / "missing.mp4") and failures[1]["video_id"] is None


def test_list_file(tmp_path, vos):
    touch_video(tmp_path / "data" / "x.mp4")
    lst = tmp_path / "data" / "inputs.txt"
    lst.write_text(f"# my inputs\n\nx.mp4\n  {vos / 'JPEGImages' / 'b2'}  \nmissing.mp4\n@inputs.txt\n")
    items, failures = resolve_inputs([f"@{lst}"])
    assert [i.video_id for i in items] == ["b2", "x"]
    assert items[1].input == str(tmp_path / "data" / "x.mp4")  # relative to the list's folder
    assert [(f["input"], f["error_type"]) for f in failures] == [(str(tmp_path / "data" / "missing.mp4"), "not_found")]
    _, failures = resolve_inputs([f"@{tmp_path / 'nolist.txt'}"])
    assert failures[0]["error_type"] == "not_found"


def test_csv_list_file(tmp_path):
    touch_video(tmp_path / "y.mp4")
    (tmp_path / "l.csv").write_text("id,path\n1,y.mp4\n")
    assert [i.video_id for i in resolve_inputs([f"@{tmp_path / 'l.csv'}"])[0]] == ["y"]


def test_duplicates_and_unique_ids(tmp_path):
    a, b = tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"
    touch_video(a)
    touch_video(b)
    (tmp_path / "link.mp4").symlink_to(a)  # the same file under another name: kept once
    inputs = [str(a), str(b), str(a), str(tmp_path / "a" / ".." / "a" / "clip.mp4")]
    items, failures = resolve_inputs(inputs)
    assert failures == [] and len(items) == 2
    suffix = {str(p): hashlib.sha1(str(p).encode()).hexdigest()[:8] for p in (a, b)}
    assert {i.video_id for i in items} == {f"clip-{suffix[str(a)]}", f"clip-{suffix[str(b)]}"}
    assert items == sorted(items, key=lambda i: (i.video_id, i.input))
    assert resolve_inputs(list(reversed(inputs)))[0] == items  # independent of the input order
    assert len(resolve_inputs([str(a), str(tmp_path / "link.mp4")])[0]) == 1


def test_schemes(tmp_path):
    touch_video(tmp_path / "v.mp4")
    items, failures = resolve_inputs([f"file://{tmp_path / 'v.mp4'}", "ftp://example.com/x.mp4"])
    assert [i.video_id for i in items] == ["v"]
    assert [(f["input"], f["error_type"], f["video_id"]) for f in failures] == [
        ("ftp://example.com/x.mp4", "unsupported_scheme", None)]


def test_parquet_list_and_local_glob(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name in ("p.mp4", "q.mp4"):
        touch_video(tmp_path / "v" / name)
    pq.write_table(pa.table({"n": [1, 2], "url": ["v/p.mp4", str(tmp_path / "v" / "q.mp4")]}), tmp_path / "l.parquet")
    items, failures = resolve_inputs([f"@{tmp_path / 'l.parquet'}"])
    assert failures == [] and [(i.video_id, i.kind) for i in items] == [("p", "video"), ("q", "video")]
    assert resolve_inputs([str(tmp_path / "v" / "*.mp4")])[0] == items
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    assert [f["error_type"] for f in resolve_inputs([f"@{tmp_path / 'bad.parquet'}"])[1]] == ["bad_list"]
