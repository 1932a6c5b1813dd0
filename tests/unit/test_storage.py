"""One storage convention everywhere (``dynocc.factory.io.storage``): flat or per-protocol fsspec
options, URL tests, and writes that appear whole or not at all (the writer with per-protocol options
on S3: tests/integration/test_writer_s3.py)."""

from __future__ import annotations

import pytest

from dynocc.factory.io.storage import StorageRoot, is_local, is_url, options_for


def test_options_for_reads_both_conventions():
    flat = {"key": "k", "client_kwargs": {"endpoint_url": "http://x"}}
    assert options_for("s3://b/x", flat) == flat
    per = {"s3": {"key": "k"}, "gcs": {"token": "anon"}}
    assert options_for("s3://b/x", per) == {"key": "k"}
    assert options_for("gcs://b/x", per) == {"token": "anon"}
    assert options_for("/local/path", per) == {}
    assert options_for("s3://b/x", None) == {}


def test_url_tests():
    assert is_url("s3://b/k") and is_url("file:///tmp/x") and not is_url("/tmp/x") and not is_url("a:b")
    assert is_local("/tmp/x") and is_local("file:///tmp/x") and not is_local("s3://b/k")


def test_a_local_put_leaves_no_temp_file_and_returns_the_path(tmp_path):
    root = StorageRoot(str(tmp_path / "out"), None)
    assert root.put("a/b.txt", b"hello") == str(tmp_path / "out" / "a" / "b.txt")
    assert (tmp_path / "out" / "a" / "b.txt").read_bytes() == b"hello"
    assert [p.name for p in (tmp_path / "out" / "a").iterdir()] == ["b.txt"]


@pytest.mark.parametrize("url", ["memory://top.png", "memory://dir/pic.png"])
def test_save_png_to_a_store(url):
    import fsspec
    import numpy as np

    from dynocc.factory.tools.overlay import save_png

    assert save_png(np.zeros((4, 5, 3), np.uint8), url) == url
    with fsspec.open(url, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
