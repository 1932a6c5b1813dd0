"""A stereo photo (JPS, right view first) served over http (conftest's ``http_server``), and a 404."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dynocc.factory.io.sources import WorkItem
from dynocc.factory.io.stereo_inputs import load_stereo_pair, resolve_stereo_inputs
from support import JPEG_TOL, assert_views, stereo_load_error as load_error


@pytest.fixture(scope="module")
def views():
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    return np.ascontiguousarray(left), np.ascontiguousarray(right)


def test_http_stereo_file(http_server, views):
    left, right = views
    Image.fromarray(np.hstack([right, left])).save(http_server.root / "web.jps", format="JPEG", quality=95)
    url = http_server.url("web.jps?size=full")
    items, failures = resolve_stereo_inputs([url])
    assert failures == [] and items == [WorkItem(url, "web", "stereo-file")]
    assert_views(load_stereo_pair(items[0]), views, JPEG_TOL)  # .jps by the URL path: right first
    err = load_error(WorkItem(http_server.url("status/404/x.jps"), "x", "stereo-file"), options={"retries": 0})
    assert (err.error_type, err.stage) == ("http_404", "download")
