"""Stereo inputs: resolving stereo photos and loading (left, right) views, on real files.

Every file is made in tmp_path from Middlebury 2014 *Motorcycle* (``skimage.data.stereo_motorcycle``,
quarter size, 741x500): side-by-side PNG/JPEG, JPS (right view first), MPO (written by Pillow),
csv pairs; broken ones (a cut MPO, a one-frame MPO, pairs of different sizes) are made from them.
A stereo photo over http: tests/integration/test_stereo_http.py.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from dynocc.factory.io.sources import WorkItem, resolve_inputs
from dynocc.factory.io.stereo_inputs import (
    is_remote_stereo,
    load_stereo_pair,
    pair_input,
    resolve_stereo_inputs,
    split_pair_input,
    stereo_sources,
)
from support import FAILURE_KEYS, JPEG_TOL, assert_views, stereo_load_error as load_error

@pytest.fixture(scope="module")
def views():
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    return np.ascontiguousarray(left), np.ascontiguousarray(right)


def save_mpo(path, frames, quality=95):
    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(path, format="MPO", save_all=True, append_images=imgs[1:], quality=quality)


@pytest.fixture(scope="module")
def files(tmp_path_factory, views):
    left, right = views
    root = tmp_path_factory.mktemp("stereo")
    photos = root / "photos"
    photos.mkdir()
    Image.fromarray(np.hstack([left, right])).save(photos / "sbs.png")
    Image.fromarray(np.hstack([right, left])).save(photos / "cross.jps", format="JPEG", quality=95)
    Image.fromarray(np.hstack([left, right])).save(photos / "sbs_plain.jpg", quality=95)
    save_mpo(photos / "camera.mpo", [left, right])
    save_mpo(photos / "mpo_inside.jpg", [left, right])  # a .jpg whose content is an MPO
    (photos / "notes.txt").write_text("not a photo")
    (photos / "clip.mp4").write_bytes(b"\0" * 16)
    (photos / "sub").mkdir()
    Image.fromarray(left).save(photos / "sub" / "deeper.png")

    odd = root / "odd"
    odd.mkdir()
    mid = np.full((left.shape[0], 1, 3), 255, np.uint8)
    Image.fromarray(np.hstack([left, mid, right])).save(odd / "odd_width.png")

    pairs = root / "pairs"
    (pairs / "img").mkdir(parents=True)
    Image.fromarray(left).save(pairs / "img" / "moto_l.png")
    Image.fromarray(right).save(pairs / "img" / "moto_r.png")
    Image.fromarray(right[::2, ::2]).save(pairs / "img" / "small_r.png")
    (pairs / "pairs.csv").write_text(
        "id,left,right\n"
        "1,img/moto_l.png,img/moto_r.png\n"
        f"2,{pairs / 'img' / 'moto_l.png'},img/small_r.png\n"
        "3,img/moto_l.png,img/missing_r.png\n"
        "# a comment row\n"
        "4,img/moto_l.png,\n")

    broken = root / "broken"
    broken.mkdir()
    data = (photos / "camera.mpo").read_bytes()
    # frame 1 starts with its SOI marker at (or just after: the MP offsets count from the MP
    # header) its DataOffset, right after frame 0's EOI marker
    first = data.index(b"\xff\xd8", Image.open(photos / "camera.mpo").mpinfo[0xB002][1]["DataOffset"])
    assert data[first - 2:first] == b"\xff\xd9"
    (broken / "cut.mpo").write_bytes(data[: first + (len(data) - first) // 2])  # frame 1 cut in half
    (broken / "cut_early.mpo").write_bytes(data[:first])  # frame 0 intact, frame 1 gone entirely
    Image.fromarray(left).save(broken / "mono.mpo", format="MPO", quality=95)  # one frame
    (broken / "text.jpg").write_text("this is not a jpeg")
    Image.fromarray(np.hstack([left[:20, :30], right[:20, :30]])).save(broken / "tiny.png")
    return root


def item(path, kind="stereo-file"):
    return WorkItem(str(path), os.path.splitext(os.path.basename(path))[0], kind)


# --------------------------------------------------------------------------- loading


def test_side_by_side_png_and_odd_width(files, views):
    assert_views(load_stereo_pair(item(files / "photos" / "sbs.png")), views)
    # odd width: the middle (white) column is dropped
    assert_views(load_stereo_pair(item(files / "odd" / "odd_width.png")), views)


def test_jps_is_right_view_first_and_cross_eyed_flips(files, views):
    left, right = views
    jps = item(files / "photos" / "cross.jps")
    assert_views(load_stereo_pair(jps), views, JPEG_TOL)
    assert_views(load_stereo_pair(jps, cross_eyed=True), (right, left), JPEG_TOL)
    sbs = item(files / "photos" / "sbs.png")
    assert_views(load_stereo_pair(sbs, cross_eyed=True), (right, left))
    assert_views(load_stereo_pair(item(files / "photos" / "sbs_plain.jpg")), views, JPEG_TOL)


def test_mpo_frames_and_jpg_that_is_mpo(files, views):
    mpo = item(files / "photos" / "camera.mpo")
    assert Image.open(mpo.input).format == "MPO"
    assert_views(load_stereo_pair(mpo), views, JPEG_TOL)
    assert_views(load_stereo_pair(mpo, cross_eyed=True), views, JPEG_TOL)  # MPO views are named
    # a .jpg holding an MPO: its two frames, not two halves of the first one
    got = load_stereo_pair(item(files / "photos" / "mpo_inside.jpg"))
    assert got[0].shape == views[0].shape
    assert_views(got, views, JPEG_TOL)


def test_max_long_side_resizes_both_views(files):
    left, right = load_stereo_pair(item(files / "photos" / "camera.mpo"), max_long_side=256)
    assert left.shape == right.shape == (173, 256, 3)
    full = load_stereo_pair(item(files / "photos" / "sbs.png"), max_long_side=10_000)  # never upscaled
    assert full[0].shape == (500, 741, 3)


def test_csv_pair_loads_and_size_mismatch(files, views):
    items, _ = resolve_stereo_inputs([str(files / "pairs" / "pairs.csv")])
    by_right = {split_pair_input(i.input)[1].rsplit("/", 1)[-1]: i for i in items}
    assert_views(load_stereo_pair(by_right["moto_r.png"]), views)
    err = load_error(by_right["small_r.png"])
    assert err.error_type == "size_mismatch" and err.stage == "decode"


def test_load_errors(files, tmp_path):
    cases = {
        "cut.mpo": "truncated_mpo",
        "cut_early.mpo": "truncated_mpo",
        "mono.mpo": "mono_image",
        "text.jpg": "not_an_image",
        "tiny.png": "too_small",
    }
    for name, error_type in cases.items():
        err = load_error(item(files / "broken" / name))
        assert (name, err.error_type, err.stage) == (name, error_type, "decode")
        if error_type == "truncated_mpo":
            assert "frame 1" in err.message  # frame 0 alone is readable
    assert load_error(item(tmp_path / "gone.jps")).error_type == "not_found"
    gone = WorkItem(pair_input(str(files / "pairs" / "img" / "moto_l.png"), str(tmp_path / "gone.png")),
                    "moto_l", "stereo-pair")
    assert load_error(gone).error_type == "not_found"
    # too_small is a threshold: the same 30x20 views pass with a lower one
    left, right = load_stereo_pair(item(files / "broken" / "tiny.png"), min_side=8)
    assert left.shape == right.shape == (20, 30, 3)
    with pytest.raises(ValueError):
        load_stereo_pair(WorkItem("x.mp4", "x", "video"))


# --------------------------------------------------------------------------- resolving


def test_files_and_folder_resolve(files):
    photos = files / "photos"
    items, failures = resolve_stereo_inputs([str(photos)])
    assert failures == []
    assert [(i.video_id, i.kind) for i in items] == [
        ("camera", "stereo-file"), ("cross", "stereo-file"), ("mpo_inside", "stereo-file"),
        ("sbs", "stereo-file"), ("sbs_plain", "stereo-file")]
    assert items[0] == WorkItem(str(photos / "camera.mpo"), "camera", "stereo-file")
    # a single file, whatever its name; the same file twice (and via file://) is one item
    one, _ = resolve_stereo_inputs([str(photos / "cross.jps"), f"file://{photos / 'cross.jps'}",
                                    str(photos / ".." / "photos" / "cross.jps")])
    assert one == [WorkItem(str(photos / "cross.jps"), "cross", "stereo-file")]
    # an item's input resolves back to it
    assert resolve_stereo_inputs([items[1].input])[0] == [items[1]]


def test_globs_lists_and_failures(files, tmp_path):
    photos = files / "photos"
    items, failures = resolve_stereo_inputs([str(photos / "*.jp*")])
    assert failures == [] and [i.video_id for i in items] == ["cross", "mpo_inside", "sbs_plain"]
    items, _ = resolve_stereo_inputs([str(files / "o*")])  # a glob matching a folder
    assert [i.video_id for i in items] == ["odd_width"]
    lst = tmp_path / "lists" / "stereo.txt"
    lst.parent.mkdir()
    lst.write_text(f"# stereo inputs\n{photos / 'camera.mpo'}\nmissing.jps\n"
                   f"{files / 'pairs' / 'pairs.csv'}\n@stereo.txt\nytdl:https://example.com/v\n")
    items, failures = resolve_stereo_inputs([f"@{lst}"])
    assert [i.kind for i in items] == ["stereo-file", "stereo-pair", "stereo-pair"]
    assert items[0].video_id == "camera" and items[1].video_id.startswith("moto_l-")
    assert sorted(f["error_type"] for f in failures) == ["bad_list", "not_found", "not_found", "unsupported_scheme"]
    assert str(lst.parent / "missing.jps") in {f["input"] for f in failures}  # relative to the list
    for f in failures:
        assert set(f) == FAILURE_KEYS and f["stage"] == "resolve"
    (tmp_path / "empty").mkdir()
    _, failures = resolve_stereo_inputs([str(tmp_path / "empty"), str(tmp_path / "nope" / "*.jps"),
                                         "ftp://host/x.jps"])
    assert [f["error_type"] for f in failures] == ["empty_folder", "not_found", "unsupported_scheme"]


def test_csv_pairs_resolve(files):
    pairs = files / "pairs"
    items, failures = resolve_stereo_inputs([f"@{pairs / 'pairs.csv'}"])
    assert resolve_stereo_inputs([str(pairs / "pairs.csv")]) == (items, failures)  # with or without @
    assert [i.kind for i in items] == ["stereo-pair", "stereo-pair"]
    # both rows have the left stem as id: they differ, so both get the input's hash
    assert all(i.video_id.startswith("moto_l-") for i in items) and len({i.video_id for i in items}) == 2
    lefts_rights = sorted(split_pair_input(i.input) for i in items)
    img = pairs / "img"
    assert lefts_rights == [(str(img / "moto_l.png"), str(img / "moto_r.png")),
                            (str(img / "moto_l.png"), str(img / "small_r.png"))]
    assert json.loads(items[0].input).keys() == {"left", "right"}
    assert stereo_sources(items[0]) == list(split_pair_input(items[0].input)) and not is_remote_stereo(items[0])
    assert sorted(f["error_type"] for f in failures) == ["bad_list", "not_found"]
    bad = next(f for f in failures if f["error_type"] == "bad_list")
    assert bad["input"] == f"{pairs / 'pairs.csv'}:6"  # the csv's line without a right image
    missing = next(f for f in failures if f["error_type"] == "not_found")
    assert split_pair_input(missing["input"])[1] == str(img / "missing_r.png") and missing["video_id"] == "moto_l"
    # a single pair: video_id is the left stem
    (pairs / "one.csv").write_text("left,right\nimg/moto_l.png,img/moto_r.png\n")
    one, failures = resolve_stereo_inputs([str(pairs / "one.csv")])
    assert failures == [] and [(i.video_id, i.kind) for i in one] == [("moto_l", "stereo-pair")]
    # the video resolver is unchanged: a csv list without left/right stays an ordinary list
    (pairs / "list.csv").write_text("path\n../photos/sbs.png\n")
    assert [i.video_id for i in resolve_stereo_inputs([f"@{pairs / 'list.csv'}"])[0]] == ["sbs"]
    assert resolve_inputs([f"@{pairs / 'list.csv'}"])[0] == [WorkItem(str(files / "photos" / "sbs.png"),
                                                                       "sbs", "video")]


def test_fsspec_memory_store(files, views):
    import fsspec

    mem = fsspec.filesystem("memory")
    for name in ("camera.mpo", "cross.jps", "notes.txt"):
        mem.put_file(str(files / "photos" / name), f"/dynocc-stereo/photos/{name}")
    for name in ("moto_l.png", "moto_r.png"):
        mem.put_file(str(files / "pairs" / "img" / name), f"/dynocc-stereo/pairs/img/{name}")
    mem.pipe_file("/dynocc-stereo/pairs/p.csv", b"left,right\nimg/moto_l.png,img/moto_r.png\n")
    try:
        items, failures = resolve_stereo_inputs(["memory://dynocc-stereo/photos/"])
        assert failures == [] and items == [
            WorkItem("memory://dynocc-stereo/photos/camera.mpo", "camera", "stereo-file"),
            WorkItem("memory://dynocc-stereo/photos/cross.jps", "cross", "stereo-file")]
        assert resolve_stereo_inputs(["memory://dynocc-stereo/*/*.jps"])[0] == items[1:]
        assert is_remote_stereo(items[0])
        assert_views(load_stereo_pair(items[0]), views, JPEG_TOL)
        assert_views(load_stereo_pair(items[1]), views, JPEG_TOL)
        pairs, failures = resolve_stereo_inputs(["@memory://dynocc-stereo/pairs/p.csv"])
        assert failures == [] and [(i.video_id, i.kind) for i in pairs] == [("moto_l", "stereo-pair")]
        assert split_pair_input(pairs[0].input) == ("memory://dynocc-stereo/pairs/img/moto_l.png",
                                                    "memory://dynocc-stereo/pairs/img/moto_r.png")
        assert_views(load_stereo_pair(pairs[0]), views)
        err = load_error(WorkItem("memory://dynocc-stereo/photos/gone.jps", "gone", "stereo-file"),
                         options={"retries": 0})
        assert (err.error_type, err.stage) == ("not_found", "download")
    finally:
        mem.rm("/dynocc-stereo", recursive=True)
