"""Remote inputs against real servers on 127.0.0.1: http downloads, yt-dlp pages, S3 (moto),
fsspec memory/file URLs, remote @lists and YouTube-VOS roots on a bucket."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynocc.factory.io import remote
from dynocc.factory.config import DecodeConfig
from dynocc.factory.io.decode import InputError, decode_frames, write_frame_folder, write_video
from dynocc.factory.io.remote import Fetched, SourceOptions, fetch, storage_options_for, ytdlp_format, ytdlp_params
from dynocc.factory.io.sources import WorkItem, resolve_inputs

FAILURE_KEYS = {"input", "video_id", "stage", "error_type", "message", "attempts"}
KEEP = DecodeConfig(max_long_side=None)
FAST = {"backoff_seconds": 0.01, "retries": 3, "timeout_seconds": 10}
N_FRAMES = 12


def make_frames(n: int = N_FRAMES, w: int = 64, h: int = 48, seed: int = 0) -> list[np.ndarray]:
    """A gradient with a bright square moving right 3 px per frame (a genuine little video)."""
    y, x = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(n):
        f = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 60 + seed * 40)], axis=-1).astype(np.uint8)
        f[8:20, 4 + 3 * t:16 + 3 * t] = (250, 240, 20)
        frames.append(f)
    return frames


def decoded(local) -> list[np.ndarray]:
    return list(decode_frames(local, KEEP, min_frames=5))


def fetch_error(item: WorkItem, options) -> InputError:
    with pytest.raises(InputError) as info:
        with fetch(item, options):
            pass
    err = info.value
    assert err.stage == "download"
    assert set(err.to_failure(item.input, item.video_id)) == FAILURE_KEYS
    return err


# --------------------------------------------------------------------------- served files


@pytest.fixture(scope="module")
def www(http_server):
    """Videos, pages and an HLS stream in the HTTP server's folder."""
    root, base = http_server.root, http_server.base_url
    write_video(make_frames(), root / "clip.mp4")
    write_video(make_frames(seed=1), root / "long-video.mp4")
    # web pages for yt-dlp's generic extractor
    (root / "page.html").write_text(
        '<html><head><title>A page</title></head><body>'
        '<video controls><source src="clip.mp4" type="video/mp4"></video></body></html>')
    (root / "novideo.html").write_text("<html><head><title>Nothing</title></head><body>no video</body></html>")
    ld = {"@context": "https://schema.org", "@type": "VideoObject", "name": "Long",
          "contentUrl": f"{base}/long-video.mp4", "duration": "PT2H", "uploadDate": "2020-01-01",
          "thumbnailUrl": f"{base}/thumb.jpg", "description": "two hours"}
    (root / "long.html").write_text('<html><head><title>Long</title><script type="application/ld+json">'
                                    f"{json.dumps(ld)}</script></head><body></body></html>")
    # HLS: two variants (48 and 72 px tall), one MPEG-TS segment each, behind a page
    for h, w in ((48, 64), (72, 96)):
        write_video(make_frames(w=w, h=h), root / f"seg{h}.ts")
        (root / f"v{h}.m3u8").write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"
                                         f"#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:0.48,\nseg{h}.ts\n#EXT-X-ENDLIST\n")
    (root / "master.m3u8").write_text("#EXTM3U\n"
                                      "#EXT-X-STREAM-INF:BANDWIDTH=100000,RESOLUTION=64x48\nv48.m3u8\n"
                                      "#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=96x72\nv72.m3u8\n")
    (root / "hls.html").write_text('<html><head><title>HLS</title></head><body><video>'
                                   '<source src="master.m3u8" type="application/x-mpegURL"></video></body></html>')
    return http_server


@pytest.fixture
def cookies_file(tmp_path, www):
    path = tmp_path / "cookies.txt"
    path.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tletmein\n")
    return path


# --------------------------------------------------------------------------- options and kinds


def test_source_options_and_storage_options():
    opts = SourceOptions.coerce({"max_height": 480, "retries": 0})
    assert (opts.max_height, opts.retries, opts.cookies, opts.max_duration) == (480, 0, None, None)
    assert SourceOptions.coerce(None) == SourceOptions() and SourceOptions.coerce(opts) is opts
    assert (SourceOptions().max_height, SourceOptions().retries, SourceOptions().backoff_seconds,
            SourceOptions().timeout_seconds, SourceOptions().storage_options) == (720, 3, 1.0, 60.0, {})
    with pytest.raises(ValueError):
        SourceOptions.coerce({"max_hieght": 480})
    flat = SourceOptions(storage_options={"anon": True, "client_kwargs": {"endpoint_url": "x"}})
    assert storage_options_for("s3", flat) == {"anon": True, "client_kwargs": {"endpoint_url": "x"}}
    per = SourceOptions(storage_options={"s3": {"anon": True}, "gs": {"token": "anon"}})
    assert storage_options_for("s3", per) == {"anon": True} and storage_options_for("memory", per) == {}
    assert [remote.backoff_delay(n, SourceOptions(backoff_seconds=1, max_backoff_seconds=5)) for n in (1, 2, 3, 4)] \
        == [1, 2, 4, 5]


def test_url_kinds_and_ids_without_network():
    items, failures = resolve_inputs([
        "https://cdn.example.com/a/My%20Clip.MP4?sig=abc",  # a video extension: direct download
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",       # a page: yt-dlp, id from the URL
        "https://youtu.be/dQw4w9WgXcQ",                      # the same video: one item
        "https://example.com/videos/show.html",              # unknown site: id from the path
        "ytdl:https://cdn.example.com/b/forced.mp4",          # forced through yt-dlp
        "ytdl:https://example.com/videos/show.html",          # redundant prefix: same item as above
    ])
    assert failures == []
    assert [(i.video_id, i.kind, i.input) for i in items] == [
        ("My Clip", "http", "https://cdn.example.com/a/My%20Clip.MP4?sig=abc"),
        ("dQw4w9WgXcQ", "ytdlp", "https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
        ("forced", "ytdlp", "ytdl:https://cdn.example.com/b/forced.mp4"),
        ("show", "ytdlp", "https://example.com/videos/show.html"),
    ]
    assert all(i.remote for i in items)
    for item in items:  # every input resolves back to its item
        assert resolve_inputs([item.input])[0] == [item]


def test_unknown_scheme_and_missing_objects(s3):
    items, failures = resolve_inputs(["ftp://example.com/x.mp4", "foo://bar/baz", s3.url("nothing/here.mp4"),
                                      s3.url("none/*.mp4"), "ytdl:"],
                                     {"storage_options": s3.storage_options})
    assert items == []
    got = {f["input"]: (f["error_type"], f["stage"]) for f in failures}
    assert got == {"ftp://example.com/x.mp4": ("unsupported_scheme", "resolve"),
                   "foo://bar/baz": ("unsupported_scheme", "resolve"),
                   s3.url("nothing/here.mp4"): ("not_found", "resolve"),
                   s3.url("none/*.mp4"): ("not_found", "resolve"),
                   "ytdl:": ("not_found", "resolve")}
    assert "'foo' is not supported" in next(f["message"] for f in failures if f["input"] == "foo://bar/baz")
    assert all(set(f) == FAILURE_KEYS for f in failures)
    with pytest.raises(ValueError, match="unknown work-item kind"):
        with fetch(WorkItem("x", "x", "carrier-pigeon")):
            pass


def test_local_items_pass_through_and_temp_dirs_are_removed(tmp_path, www):
    write_video(make_frames(), tmp_path / "local.mp4")
    [item], _ = resolve_inputs([str(tmp_path / "local.mp4")])
    with fetch(item) as local:
        assert local.path == item.input and local.kind == "video" and local.attempts == 1
    assert (tmp_path / "local.mp4").exists()
    [item], _ = resolve_inputs([www.url("clip.mp4")])
    with pytest.raises(RuntimeError):
        with fetch(item, {"temp_dir": str(tmp_path / "t"), **FAST}) as local:
            assert Path(local.path).parent.parent == tmp_path / "t" and os.path.isfile(local)
            raise RuntimeError("a bug while decoding")
    assert list((tmp_path / "t").iterdir()) == []  # cleaned up even so


# --------------------------------------------------------------------------- plain http


def test_http_download_and_decode(www, tmp_path):
    url = www.url("clip.mp4?token=1")
    items, failures = resolve_inputs([url])
    assert failures == [] and items == [WorkItem(url, "clip", "http")]
    with fetch(items[0], {"temp_dir": str(tmp_path), **FAST}) as local:
        assert isinstance(local, Fetched) and local.kind == "video" and local.attempts == 1
        assert local.video_id == "clip" and local.info["bytes"] == os.path.getsize(www.root / "clip.mp4")
        frames = decoded(local)
        assert len(frames) == N_FRAMES and frames[0].shape == (48, 64, 3)
        folder = Path(local.path).parent
    assert not folder.exists()


def test_http_404_is_a_failure_row_without_retries(www):
    [item], _ = resolve_inputs([www.url("status/404/gone.mp4")])
    err = fetch_error(item, FAST)
    assert (err.error_type, err.attempts) == ("http_404", 1)
    assert "HTTP 404" in err.message and item.input in err.message
    assert len(www.requested("/status/404/gone.mp4")) == 1
    row = err.to_failure(item.input, item.video_id)
    assert (row["stage"], row["error_type"], row["attempts"], row["video_id"]) == ("download", "http_404", 1, "gone")
    # another client error: download_failed with the status, not retried either
    err = fetch_error(resolve_inputs([www.url("status/403/secret.mp4")])[0][0], FAST)
    assert (err.error_type, err.attempts) == ("download_failed", 1) and "HTTP 403" in err.message


def test_http_retries_500_with_backoff(www, monkeypatch):
    sleeps = []
    monkeypatch.setattr(remote, "_sleep", sleeps.append)
    [item], _ = resolve_inputs([www.url("flaky/retry-ok/clip.mp4")])
    with fetch(item, {**FAST, "backoff_seconds": 0.5}) as local:
        assert local.attempts == 3 and len(decoded(local)) == N_FRAMES
    assert sleeps == [0.5, 1.0]  # exponential
    assert len(www.requested("/flaky/retry-ok/")) == 3
    # retries exhausted: download_failed with the status and the count
    [item], _ = resolve_inputs([www.url("flaky/retry-fail/clip.mp4")])
    err = fetch_error(item, {**FAST, "retries": 1})
    assert (err.error_type, err.attempts) == ("download_failed", 2)
    assert "HTTP 500" in err.message and err.to_failure(item.input)["attempts"] == 2
    # a server that is not there: connection errors are retried too
    [item], _ = resolve_inputs(["http://127.0.0.1:9/none.mp4"])
    err = fetch_error(item, {**FAST, "retries": 2})
    assert (err.error_type, err.attempts) == ("download_failed", 3)


def test_http_limits_and_cookies(www, cookies_file):
    [item], _ = resolve_inputs([www.url("clip.mp4")])
    err = fetch_error(item, {**FAST, "max_duration": 0.1})  # the clip lasts 0.48 s
    assert err.error_type == "too_long" and "max_duration" in err.message
    err = fetch_error(item, {**FAST, "max_bytes": 100})
    assert err.error_type == "too_large"
    [item], _ = resolve_inputs([www.url("cookie/clip.mp4")])
    assert "HTTP 403" in fetch_error(item, FAST).message
    with fetch(item, {**FAST, "cookies": str(cookies_file)}) as local:
        assert len(decoded(local)) == N_FRAMES


# --------------------------------------------------------------------------- yt-dlp


def test_ytdlp_page_downloads_and_decodes(www):
    url = www.url("page.html")
    [item], failures = resolve_inputs([url])
    assert failures == [] and (item.kind, item.video_id, item.input) == ("ytdlp", "page", url)
    with fetch(item, FAST) as local:
        assert local.kind == "video" and local.attempts == 1
        assert local.video_id == "page-1"  # the generic extractor's id for the page's first video
        assert local.info["extractor"]
        assert len(decoded(local)) == N_FRAMES
    # a direct file forced through yt-dlp
    [item], _ = resolve_inputs([f"ytdl:{www.url('clip.mp4')}"])
    assert item.kind == "ytdlp" and item.input.startswith("ytdl:http")
    with fetch(item, FAST) as local:
        assert local.video_id == "clip" and len(decoded(local)) == N_FRAMES


def test_ytdlp_page_without_video_keeps_ytdlp_text(www):
    [item], _ = resolve_inputs([www.url("novideo.html")])
    err = fetch_error(item, FAST)
    assert err.error_type == "ytdlp_error" and err.attempts == 1  # not worth a retry
    assert "Unsupported URL" in err.message and "yt-dlp" in err.message
    err = fetch_error(resolve_inputs([www.url("missing-page.html")])[0][0], FAST)
    assert err.error_type == "ytdlp_error" and "404" in err.message and err.attempts == 1


def test_ytdlp_retries_server_errors(www, monkeypatch):
    monkeypatch.setattr(remote, "_sleep", lambda s: None)
    [item], _ = resolve_inputs([www.url("flaky/ytdlp-page/page.html")])
    with fetch(item, FAST) as local:
        assert local.attempts == 3 and len(decoded(local)) == N_FRAMES


def test_ytdlp_max_height_picks_the_format(www):
    assert ytdlp_format(480) == "bestvideo[height<=?480]/best[height<=?480]"
    assert ytdlp_params(SourceOptions(max_height=360), "/tmp/x")["format"] == ytdlp_format(360)
    assert ytdlp_format(None) == "bestvideo/best"
    [item], _ = resolve_inputs([www.url("hls.html")])
    for max_height, height in ((50, 48), (720, 72)):
        with fetch(item, {**FAST, "max_height": max_height}) as local:
            assert local.info["height"] == height
            frames = decoded(local)
            assert frames[0].shape[0] == height and len(frames) == N_FRAMES
    err = fetch_error(item, {**FAST, "max_height": 20})
    assert err.error_type == "ytdlp_error" and "format is not available" in err.message


def test_ytdlp_max_duration_rejects_before_download(www):
    [item], _ = resolve_inputs([www.url("long.html")])
    err = fetch_error(item, {**FAST, "max_duration": 600})
    assert err.error_type == "too_long" and "7200" in err.message and "before download" in err.message
    assert err.attempts == 1
    with fetch(item, {**FAST, "max_duration": 3 * 3600}) as local:  # under the limit: fine
        assert local.info["duration"] == 7200 and len(decoded(local)) == N_FRAMES


def test_ytdlp_cookies_are_sent(www, cookies_file):
    [item], _ = resolve_inputs([www.url("cookie/page.html")])
    err = fetch_error(item, FAST)
    assert err.error_type == "ytdlp_error" and "403" in err.message
    before = cookies_file.read_text()
    with fetch(item, {**FAST, "cookies": str(cookies_file)}) as local:
        assert len(decoded(local)) == N_FRAMES
    assert cookies_file.read_text() == before  # yt-dlp got a copy to rewrite
    assert any(path == "/cookie/clip.mp4" and cookie == "session=letmein"
               for _, path, cookie in www.requests)


# --------------------------------------------------------------------------- S3 (moto) and fsspec


@pytest.fixture(scope="module")
def videos(synthetic_videos) -> Path:
    """A folder with b.mp4 and a.mp4 (make_frames seeds 0 and 1) and nothing else."""
    return synthetic_videos(["b.mp4", "a.mp4"], frames=lambda seed: make_frames(seed=seed))[0].parent


def test_s3_glob_fetch_and_decode(s3, videos):
    for name in ("a.mp4", "b.mp4"):
        s3.put(f"v/{name}", videos / name)
    s3.put("v/notes.txt", "not a video")
    opts = {"storage_options": s3.storage_options, **FAST}
    items, failures = resolve_inputs([s3.url("v/*.mp4")], opts)
    assert failures == []
    assert items == [WorkItem(s3.url("v/a.mp4"), "a", "fsspec"), WorkItem(s3.url("v/b.mp4"), "b", "fsspec")]
    assert resolve_inputs([s3.url("v/")], opts)[0] == items  # the folder lists the same videos
    for item in items:
        with fetch(item, opts) as local:
            assert local.kind == "video" and local.attempts == 1
            assert len(decoded(local)) == N_FRAMES
    err = fetch_error(WorkItem(s3.url("v/gone.mp4"), "gone", "fsspec"), opts)
    assert (err.error_type, err.attempts) == ("not_found", 1)


def test_s3_from_aws_environment_only(s3, videos):
    """No storage options: AWS_ENDPOINT_URL and the keys from the environment are enough."""
    s3.put("env/a.mp4", videos / "a.mp4")
    [item], failures = resolve_inputs([s3.url("env/*.mp4")])
    assert failures == [] and item.kind == "fsspec"
    with fetch(item, FAST) as local:
        assert len(decoded(local)) == N_FRAMES


def test_lists_on_s3_txt_csv_parquet(s3, videos, www):
    for name in ("a.mp4", "b.mp4"):
        s3.put(f"v/{name}", videos / name)
    http_clip = www.url("clip.mp4")
    s3.put("lists/l.txt", f"# videos\n../v/a.mp4\n\n{s3.url('v/b.mp4')}\n{http_clip}\nmissing.mp4\n")
    s3.put("lists/l.csv", f"id,url\n1,{s3.url('v/a.mp4')}\n2,../v/b.mp4\n3,{http_clip}\n")
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3], "url": [s3.url("v/a.mp4"), "../v/b.mp4", http_clip]}), buf)
    s3.put("lists/l.parquet", buf.getvalue())
    buf = io.BytesIO()  # no 'url' column: the first one
    pq.write_table(pa.table({"where": [s3.url("v/a.mp4"), s3.url("v/b.mp4"), http_clip], "n": [1, 2, 3]}), buf)
    s3.put("lists/first.parquet", buf.getvalue())
    opts = {"storage_options": s3.storage_options, **FAST}
    expected = [WorkItem(s3.url("v/a.mp4"), "a", "fsspec"), WorkItem(s3.url("v/b.mp4"), "b", "fsspec"),
                WorkItem(http_clip, "clip", "http")]
    for name in ("l.csv", "l.parquet", "first.parquet"):
        items, failures = resolve_inputs([f"@{s3.url('lists/' + name)}"], opts)
        assert (items, failures) == (expected, []), (name, failures)
    items, failures = resolve_inputs([f"@{s3.url('lists/l.txt')}"], opts)
    assert items == expected
    assert [(f["input"], f["error_type"]) for f in failures] == [(s3.url("lists/missing.mp4"), "not_found")]
    # a list that is missing
    _, failures = resolve_inputs([f"@{s3.url('lists/none.txt')}"], opts)
    assert [(f["error_type"], f["attempts"]) for f in failures] == [("not_found", 1)]


def test_list_over_http(www, s3, videos):
    s3.put("v/a.mp4", videos / "a.mp4")
    (www.root / "list.txt").write_text(f"clip.mp4\npage.html\n{s3.url('v/a.mp4')}\n")
    items, failures = resolve_inputs([f"@{www.url('list.txt')}"], {"storage_options": s3.storage_options})
    assert failures == []
    assert [(i.input, i.kind) for i in items] == [
        (s3.url("v/a.mp4"), "fsspec"), (www.url("clip.mp4"), "http"), (www.url("page.html"), "ytdlp")]
    _, failures = resolve_inputs([f"@{www.url('status/404/list.txt')}"], FAST)
    assert [(f["error_type"], f["stage"], f["attempts"]) for f in failures] == [("http_404", "resolve", 1)]


def test_youtube_vos_root_on_s3(s3, tmp_path):
    frames = make_frames(n=6)
    for vid in ("b2", "a1", "c10"):
        write_frame_folder(frames, tmp_path / "JPEGImages" / vid)
    s3.fs.put(str(tmp_path / "JPEGImages"), s3.url("ytvos/train/"), recursive=True)
    s3.put("ytvos/train/Annotations/a1/00000.png", b"ignored")
    s3.put("ytvos/train/JPEGImages/d4/readme.txt", "no images here")
    opts = {"storage_options": s3.storage_options, **FAST}
    items, failures = resolve_inputs([s3.url("ytvos/train/")], opts)
    root = s3.url("ytvos/train/JPEGImages")
    assert items == [WorkItem(f"{root}/{v}", v, "fsspec-frames") for v in ("a1", "b2", "c10")]
    assert [(f["input"], f["error_type"], f["video_id"]) for f in failures] == [(f"{root}/d4", "empty_folder", "d4")]
    assert resolve_inputs([root], opts) == (items, failures)  # the JPEGImages folder itself
    assert resolve_inputs([f"{root}/b2"], opts)[0] == [items[1]]  # one frame folder
    with fetch(items[0], opts) as local:
        assert local.kind == "frames" and local.info["files"] == 6 and os.path.isdir(local)
        got = decoded(local)
        assert len(got) == 6 and got[0].shape == (48, 64, 3)
    err = fetch_error(WorkItem(f"{root}/d4", "d4", "fsspec-frames"), opts)
    assert err.error_type == "empty_folder"


def test_memory_and_file_urls(tmp_path, videos):
    import fsspec

    mem = fsspec.filesystem("memory")
    mem.put_file(str(videos / "a.mp4"), "/dynocc-test/clips/a.mp4")
    mem.pipe_file("/dynocc-test/clips/readme.txt", b"x")
    try:
        items, failures = resolve_inputs(["memory://dynocc-test/clips/*.mp4"])
        assert failures == [] and items == [WorkItem("memory://dynocc-test/clips/a.mp4", "a", "fsspec")]
        assert resolve_inputs([items[0].input])[0] == items
        with fetch(items[0]) as local:
            assert len(decoded(local)) == N_FRAMES
    finally:
        mem.rm("/dynocc-test", recursive=True)
    items, failures = resolve_inputs([f"file://{videos}/*.mp4", str(videos / "?.mp4")])
    assert failures == []
    assert items == [WorkItem(str(videos / "a.mp4"), "a", "video"), WorkItem(str(videos / "b.mp4"), "b", "video")]
    _, failures = resolve_inputs([f"file://{videos}/*.mkv"])
    assert [f["error_type"] for f in failures] == ["not_found"]
