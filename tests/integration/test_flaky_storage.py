"""Mining into S3 through a proxy that fails requests: retries, no loss, no duplicates; a storage
that is down for good stops the job (exit 4) and a rerun after it is back completes exactly.

The proxy (started here, on 127.0.0.1) forwards to the moto S3 server and answers a share of the
requests itself: ``503 SlowDown``, a connection reset (RST, no answer) or a stall longer than the
client's read timeout. Who retries: botocore retries each request (``config_kwargs.retries``,
standard mode, with backoff), :class:`dynocc.factory.io.storage.StorageRoot` retries each small
object, and a mining task mines the items since its last commit again when a streamed shard fails
(``dynocc.factory.engine.job.mine_task``), up to 4 times; then the job stops.
"""

from __future__ import annotations

import http.client
import http.server
import json
import random
import re
import socket
import struct
import threading
import time

import pyarrow as pa
import pytest

from dynocc.factory.io.writer import committed_items, read_failures, read_frames
from support import run_cli, start_cli, wait_for

pytestmark = pytest.mark.slow

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b'<Message>Please reduce your request rate.</Message></Error>')


class FaultProxy:
    """A forward-to-moto HTTP proxy that fails a share of requests (``mode``: 'flaky', 'down', 'ok')."""

    def __init__(self, upstream: str, seed: int = 7, p503: float = 0.08, preset: float = 0.05,
                 pstall: float = 0.03, stall_s: float = 4.0):
        self.upstream = upstream.split("://", 1)[1]
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.p = (p503, preset, pstall)
        self.stall_s = stall_s
        self.mode = "flaky"
        self.counts = {"forwarded": 0, "503": 0, "reset": 0, "stall": 0, "down": 0}
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _fault(self) -> str:
                with proxy.lock:
                    if proxy.mode == "down":
                        return "down"
                    if proxy.mode == "ok":
                        return ""
                    r = proxy.rng.random()
                p503, preset, pstall = proxy.p
                return "503" if r < p503 else "reset" if r < p503 + preset else "stall" if r < p503 + preset + pstall else ""

            def _count(self, what: str) -> None:
                with proxy.lock:
                    proxy.counts[what] += 1

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = self._fault()
                if fault in ("503", "down"):
                    self._count(fault)
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOWDOWN)))
                    self.end_headers()
                    self.wfile.write(SLOWDOWN)
                    return
                if fault == "reset":
                    self._count("reset")
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "stall":
                    self._count("stall")
                    time.sleep(proxy.stall_s)  # past the client's read timeout: it gives up and retries
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()
                self._count("forwarded")

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(s3):
    p = FaultProxy(s3.endpoint)
    yield p
    p.close()


@pytest.fixture(scope="module")
def videos(synthetic_videos):
    return [str(p) for p in synthetic_videos([f"f{i}.mp4" for i in range(5)], height=96, width=128, n_frames=14)]


def _options(s3, endpoint: str, attempts: int, read_timeout: float = 2.0) -> dict:
    return {"key": s3.storage_options["key"], "secret": s3.storage_options["secret"],
            "client_kwargs": {"endpoint_url": endpoint}, "skip_instance_cache": True,
            "config_kwargs": {"connect_timeout": 2, "read_timeout": read_timeout,
                              "retries": {"max_attempts": attempts, "mode": "standard"}}}


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by([("video_id", "ascending"), ("frame_index", "ascending")])


def _mine(videos, out, options, *extra, timeout=600):
    return run_cli("mine", *videos, "--out", out, "--quiet", "--engine", "local", "--items-per-task", "2",
                   "--storage-options", json.dumps(options), *extra, timeout=timeout)


def test_a_flaky_s3_loses_and_duplicates_nothing(videos, tmp_path, s3, proxy):
    reference = tmp_path / "reference"
    assert run_cli("mine", *videos, "--out", reference, "--quiet", "--engine", "local").returncode == 0
    out = s3.url("flaky")
    r = _mine(videos, out, _options(s3, proxy.endpoint, attempts=10))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert proxy.counts["503"] and proxy.counts["reset"] and proxy.counts["stall"], proxy.counts
    direct = s3.storage_options
    got = read_frames(out, direct)
    keys = list(zip(got["video_id"].to_pylist(), got["frame_index"].to_pylist()))
    assert len(keys) == len(set(keys))
    assert _sorted(got).equals(_sorted(read_frames(str(reference))))
    assert len(committed_items(out, direct)) == len(videos) and read_failures(out, direct).num_rows == 0


def test_storage_down_for_good_stops_the_job_and_a_rerun_completes_it(videos, tmp_path, s3, proxy):
    reference = tmp_path / "reference"
    assert run_cli("mine", *videos, "--out", reference, "--quiet", "--engine", "local").returncode == 0
    out = s3.url("down")
    options = _options(s3, proxy.endpoint, attempts=2, read_timeout=2.0)
    proxy.mode = "ok"
    first = _mine(videos[:2], out, options)  # two videos committed while the storage is up
    assert first.returncode == 0, first.stderr
    # Down before the job can even list what is done: it stops at once.
    proxy.mode = "down"
    r = _mine(videos, out, options)
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert "storage" in r.stderr and "Rerun the same command" in r.stderr, r.stderr
    # Down in the middle of the job, once it has committed one more task: the tasks give up after
    # their tries and the job stops.
    proxy.mode = "ok"
    records = lambda: s3.fs.glob(f"{out}/commits/*.parquet")  # noqa: E731
    before = len(records())
    job = start_cli("mine", *videos, "--out", out, "--quiet", "--engine", "local", "--items-per-task", "1",
                    "--storage-options", json.dumps(options))
    wait_for(lambda: s3.fs.invalidate_cache() or len(records()) > before, timeout=300, what="a commit",
             interval=0.05, alive=job)
    proxy.mode = "down"
    stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 4, (job.returncode, stderr)
    assert "Traceback" not in stderr
    assert "failed 4 times" in stderr and "Rerun the same command" in stderr, stderr
    proxy.mode = "ok"  # it is back
    again = _mine(videos, out, options)
    assert again.returncode == 0, again.stderr
    done = int(re.search(r"already done: (\d+)", again.stdout).group(1))
    assert 3 <= done < len(videos), again.stdout
    got = read_frames(out, s3.storage_options)
    assert _sorted(got).equals(_sorted(read_frames(str(reference))))
    assert read_failures(out, s3.storage_options).num_rows == 0
