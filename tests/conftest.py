"""Shared fixtures for tests/unit and tests/integration (plain helpers: tests/support.py).

``synthetic_videos`` (session)  a factory: writes small synthetic videos into a fresh folder and
                           returns their paths (see its docstring).
``mined_clip`` (session)   what `dynocc mine` writes for one small synthetic clip (read-only).
``mined_with_stereo`` (session)  a copy of it plus one stereo row with a depth_png (read-only).
``ray_local`` (module)     a local Ray (2 CPUs, no dashboard, no progress bars) for the module; yields ``ray``.
``fake_jobs`` (function)   `dynocc submit` talks to a fake Ray Jobs client (support.FakeJobs).

Real servers on 127.0.0.1 for the remote-source tests:

``moto_server`` (session)  a moto S3 endpoint (``ThreadedMotoServer``) on a free port; yields a
                           :class:`MotoS3` (endpoint, s3fs ``storage_options``, AWS ``env``).
``s3`` (function)          the same server plus a fresh bucket, with the standard AWS variables
                           (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID=testing``, ...) set for
                           the test only (monkeypatch), so they never leak into other tests.
``http_server`` (session)  a threaded ``http.server`` serving a temp folder, with test routes:

    /<path>                    the file <root>/<path> (404 when missing)
    /status/<code>/<anything>  always answers <code> (e.g. /status/404/clip.mp4)
    /flaky/<key>/<path>        500 for the first two requests of each <key>, then the file
    /cookie/<path>             the file only with the cookie ``session=letmein``, else 403

Both servers are shut down at the end of the session.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

COOKIE = ("session", "letmein")


_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(scope="session", autouse=True)
def _no_proxy_for_localhost():
    """Requests to 127.0.0.1 must never go through a proxy set in the environment."""
    if not any(os.environ.get(v) for v in _PROXY_VARS):
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        for name in ("NO_PROXY", "no_proxy"):
            current = os.environ.get(name, "")
            mp.setenv(name, ",".join(x for x in (current, "127.0.0.1", "localhost") if x))
        yield


# --------------------------------------------------------------------------- S3 (moto)


@dataclass(frozen=True)
class MotoS3:
    endpoint: str
    storage_options: dict  # for s3fs / fsspec: works without any AWS variable set
    env: dict  # the AWS variables that point boto/s3fs at this endpoint


@pytest.fixture(scope="session")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        storage_options = {
            "key": AWS_ENV["AWS_ACCESS_KEY_ID"],
            "secret": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            "client_kwargs": {"endpoint_url": endpoint},
        }
        yield MotoS3(endpoint, storage_options, {**AWS_ENV, "AWS_ENDPOINT_URL": endpoint})
    finally:
        server.stop()


@dataclass
class S3Bucket:
    name: str
    endpoint: str
    storage_options: dict
    fs: object  # s3fs.S3FileSystem

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key.lstrip('/')}"

    def put(self, key: str, data: bytes | str | os.PathLike) -> str:
        """Upload bytes, text, or a local file (a ``Path``) to ``key``; returns its ``s3://`` URL."""
        if isinstance(data, os.PathLike):
            self.fs.put_file(os.fspath(data), self.url(key))
        else:
            self.fs.pipe_file(self.url(key), data.encode() if isinstance(data, str) else data)
        return self.url(key)


@pytest.fixture
def s3(moto_server, monkeypatch):
    """A fresh bucket on the moto server, AWS variables set for this test only."""
    import s3fs

    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    fs = s3fs.S3FileSystem(**moto_server.storage_options)
    name = f"test-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    return S3Bucket(name, moto_server.endpoint, moto_server.storage_options, fs)


# --------------------------------------------------------------------------- HTTP


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mp4": "video/mp4",
        ".webm": "video/webm",
        ".m3u8": "application/vnd.apple.mpegurl",
        ".ts": "video/mp2t",
        ".html": "text/html",
        ".csv": "text/csv",
        ".txt": "text/plain",
    }

    def __init__(self, *args, state: "HttpServer", **kwargs):
        self.state = state
        super().__init__(*args, **kwargs)

    def log_message(self, format, *args):  # noqa: A002 - quiet; requests are recorded instead
        pass

    def _route(self) -> bool:
        """Handle the test routes; False means: serve the file at self.path."""
        self.state.requests.append((self.command, self.path, self.headers.get("Cookie")))
        parts = self.path.split("?", 1)[0].lstrip("/").split("/")
        if parts[0] == "status" and len(parts) >= 2 and parts[1].isdigit():
            self._answer(int(parts[1]))
            return True
        if parts[0] == "flaky" and len(parts) >= 3:
            with self.state.lock:
                n = self.state.flaky_counts[parts[1]] = self.state.flaky_counts.get(parts[1], 0) + 1
            if n <= 2:
                self._answer(500)
                return True
            self.path = "/" + "/".join(parts[2:])
            return False
        if parts[0] == "cookie" and len(parts) >= 2:
            if f"{COOKIE[0]}={COOKIE[1]}" not in (self.headers.get("Cookie") or ""):
                self._answer(403)
                return True
            self.path = "/" + "/".join(parts[1:])
            return False
        return False

    def _answer(self, code: int) -> None:
        body = f"{code} {http.server.BaseHTTPRequestHandler.responses.get(code, ('',))[0]}\n".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        if not self._route():
            super().do_GET()

    def do_HEAD(self):  # noqa: N802
        if not self._route():
            super().do_HEAD()


@dataclass
class HttpServer:
    base_url: str
    root: Path
    requests: list = field(default_factory=list)  # (method, path, Cookie header)
    flaky_counts: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def requested(self, path_part: str) -> list:
        return [r for r in self.requests if path_part in r[1]]


@pytest.fixture(scope="session")
def http_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    state = HttpServer("", root)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, state=state, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-http-server", daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def synthetic_videos(tmp_path_factory):
    """Factory ``synthetic_videos(names, height=, width=, n_frames=, frames=None) -> list[Path]``.

    Writes one video per file name into a fresh folder (all the videos of one call share it, and
    nothing else is in it); the k-th video is made from seed k: by default the frames of
    ``make_scene(k, height, width, n_frames, n_static=0)``, else those of ``frames(k)``.
    """
    from dynocc.factory.io.decode import write_video
    from dynocc.factory.testing.synthetic import make_scene

    def make(names, height: int = 120, width: int = 160, n_frames: int = 10, frames=None) -> list[Path]:
        root = tmp_path_factory.mktemp("videos")
        paths = []
        for seed, name in enumerate(names):
            if frames is None:
                clip = make_scene(seed, height=height, width=width, n_frames=n_frames, n_static=0).frames
            else:
                clip = frames(seed)
            write_video(clip, root / name)
            paths.append(root / name)
        return paths

    return make


@pytest.fixture(scope="session")
def mined_clip(tmp_path_factory) -> Path:
    """What `dynocc mine` writes for one small synthetic clip (160x120, 10 frames, seed 3).

    Shared, so treat it as read-only: copy it (shutil.copytree) before adding rows.
    """
    from dynocc.factory.config import MinerConfig
    from dynocc.factory.io.decode import write_video
    from dynocc.factory.engine.job import run_mine_job
    from dynocc.factory.testing.synthetic import make_scene

    root = tmp_path_factory.mktemp("mined_clip")
    scene = make_scene(3, height=120, width=160, n_frames=10, n_static=0)
    write_video(scene.frames, root / "clip.mp4")
    out = root / "mined"
    summary = run_mine_job([str(root / "clip.mp4")], str(out), MinerConfig())
    assert summary.pairs > 0
    return out


@pytest.fixture(scope="session")
def mined_with_stereo(mined_clip, tmp_path_factory) -> Path:
    """A real mining output (one synthetic clip) plus one stereo row with a depth_png in the same root.

    Shared, so treat it as read-only.
    """
    import shutil

    import cv2
    import numpy as np

    from dynocc.factory.core.stereo import inverse_depth_png
    from dynocc.factory.io.writer import ShardWriter
    from dynocc.schemas import frame_row

    out = tmp_path_factory.mktemp("show") / "mined"
    shutil.copytree(mined_clip, out)
    h, w = 60, 80
    yy, xx = np.mgrid[0:h, 0:w]
    disparity = (xx / w * 8 + 1).astype(np.float32)
    sky = yy < 8
    valid = np.ones((h, w), bool)
    valid[20:24, 30:40] = False
    rng = np.random.default_rng(0)
    n = 12
    left = cv2.imencode(".jpg", np.full((h, w, 3), 100, np.uint8))[1].tobytes()
    row = frame_row("redweb", "stereo_left", 0, left, w, h, rng.integers(8, h, n), rng.integers(0, w, n),
                    rng.integers(8, h, n), rng.integers(0, w, n), rng.integers(-1, 2, n),
                    depth_png=inverse_depth_png(disparity, valid, sky))
    ShardWriter(str(out)).write_item("stereo_left.jpg", [row], [], 0.1)
    return out


# --------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_local():
    """A fresh local Ray for one module, always shut down; code under test uses it as it is."""
    import ray
    from ray.data import DataContext

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    DataContext.get_current().enable_progress_bars = False
    try:
        yield ray
    finally:
        ray.shutdown()


# --------------------------------------------------------------------------- `dynocc submit`


@pytest.fixture
def fake_jobs(monkeypatch, tmp_path):
    """`dynocc submit` gets a :class:`support.FakeJobs` instead of a Ray Jobs API client."""
    from dynocc import submit
    from support import FakeJobs

    jobs = FakeJobs(tmp_path / "fake")
    monkeypatch.setattr(submit, "_client", lambda address: jobs)
    for name in submit.ENV_PASSTHROUGH:
        monkeypatch.delenv(name, raising=False)
    return jobs
