"""Fuzzed inputs through the Ray engine (issue 16 line 5): a few hundred generated bad files.

Every input is made here, deterministically (a seeded NumPy generator), from a few small real
seeds: a 10-frame H.264 clip (index at the end, and "faststart" with the index first), one of its
frames as JPEG and PNG, and a frame folder. The bad inputs are those seeds truncated at random
points, with random bit flips or overwritten bytes, zero-byte files, wrong extensions, headers
that declare huge images, frame folders with some bad images, videos of thousands of 1x1 frames
or of very thin frames, and resolve failures (a missing path, a binary nested @list, an empty
folder). They go into one ``@list`` plus a few folders, and the Ray engine mines them in one job.

What must hold (each test):

* the job returns, within a wall-clock bound the test enforces (a hang fails the test, it does
  not hang CI): the job runs in a thread, the test waits for it;
* every input is accounted for: a commit record names it (its frame rows and/or failure rows)
  or, for an input that does not resolve, its ``resolve:`` failure;
* every failure row has an ``error_type`` the README's failure table lists for bad inputs: never
  ``worker_lost`` (a worker crashed) and never ``stage='mine'`` (a Python exception: a bug);
* no duplicate ``(video_id, frame_index)``; the control inputs (the undamaged seeds) have rows;
* the mining actors' memory stays bounded: the peak RSS (``VmHWM``) of every process under this
  one titled ``..._MineActor...`` is polled while the job runs and stays under
  :data:`ACTOR_RSS_BOUND`;
* each item is mined in bounded time (its ``seconds`` in the commit records).

:func:`test_fuzzed_inputs` runs the few hundred fuzzed inputs; :func:`test_pathological_inputs`
the inputs that take a decoder or the flow to its limits (thin and 1x1 frames, thousands of
frames, headers declaring huge images, the largest image a decoder accepts). Both held only after
fixes they drove (see their history): a bit flip in an MP4's codec tag, thin and tiny frames in
OpenCV's DIS flow, and image headers declaring huge sizes.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from dynocc.factory.config import MinerConfig
from dynocc.factory.engine.ray_engine import run_mine_job_ray
from dynocc.factory.io.decode import write_video
from dynocc.factory.io.writer import committed_items, read_failures, read_frames
from dynocc.factory.testing.procs import memory_mb, mining_workers
from dynocc.factory.testing.synthetic import make_scene
from support import REPO

pytestmark = pytest.mark.slow

SEED = 1605  # issue 16, line 5
H, W = 96, 128  # the seeds' frame size: small, and its clips give pairs
JOB_SECONDS = 420  # wall-clock bound of one job on a busy 2-core machine (typically 60-120 s)
ITEM_SECONDS = 60.0  # bound on one item's mining time (the slowest here take a few seconds)
# Peak RSS of a mining actor: about 0.3-0.4 GB at rest (a Ray worker with NumPy, OpenCV, PyAV,
# Arrow and the miner), plus what the largest frame a decoder accepts costs (an 8000x8000 PNG in a
# frame folder: its pixels as BGR and RGB, ~0.4 GB) and the mining of small frames. 1.5 GB leaves a
# wide margin, and is far below what an unchecked header makes a decoder allocate (a 4 KB JPEG
# declaring 16000x16000 costs 1.6 GB, 30000x30000 costs 5 GB).
ACTOR_RSS_BOUND = 1.5 * 2**30


# --------------------------------------------------------------------------- what the README allows


def readme_error_types() -> set[str]:
    """Every ``error_type`` named (in backticks) in the README's failure table."""
    text = (REPO / "README.md").read_text()
    start = text.index("| stage | `error_type` |")
    names: set[str] = set()
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = line.split("|")
        names |= set(re.findall(r"`([A-Za-z_0-9]+)`", cells[2]))
    return names


# --------------------------------------------------------------------------- byte-level mutations


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(png: bytes, width: int, height: int) -> bytes:
    """``png`` whose IHDR declares ``width`` x ``height`` (with a valid CRC); the pixel data stays."""
    assert png[12:16] == b"IHDR"
    ihdr = bytearray(png[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    return png[:8] + _chunk(b"IHDR", bytes(ihdr)) + png[33:]


def jpeg_declaring(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` whose SOF0 marker declares ``width`` x ``height``; the entropy-coded data stays."""
    i = 2
    while i < len(jpeg):
        marker, length = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            out = bytearray(jpeg)
            out[i + 5:i + 9] = struct.pack(">HH", height, width)
            return bytes(out)
        i += 2 + length
    raise ValueError("no SOF marker")


def png_bomb(side: int, colour: bool) -> bytes:
    """A valid PNG of ``side`` x ``side`` black pixels (8-bit grey or RGB): a few hundred KB that
    decode to ``side**2`` (x3) bytes."""
    row = b"\0" * (side * (3 if colour else 1) + 1)  # filter byte + the row
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2 if colour else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def truncated(data: bytes, rng: np.random.Generator) -> bytes:
    return data[:int(rng.integers(1, len(data)))]


def bit_flipped(data: bytes, rng: np.random.Generator, most: int = 12) -> bytes:
    out = bytearray(data)
    for pos in rng.integers(0, len(data) * 8, int(rng.integers(1, most + 1))):
        out[pos // 8] ^= 1 << (pos % 8)
    return bytes(out)


def overwritten(data: bytes, rng: np.random.Generator) -> bytes:
    """A run of 16-256 random bytes written over ``data`` at a random place."""
    n = int(rng.integers(16, 257))
    at = int(rng.integers(0, max(1, len(data) - n)))
    out = bytearray(data)
    out[at:at + n] = rng.integers(0, 256, min(n, len(data) - at), dtype=np.uint8).tobytes()
    return bytes(out)


# --------------------------------------------------------------------------- the corpus


@dataclass
class Corpus:
    root: Path
    listed: dict[str, str] = field(default_factory=dict)  # @list line -> kind
    folders: dict[str, str] = field(default_factory=dict)  # inputs given as they are -> kind
    controls: set[str] = field(default_factory=set)  # undamaged inputs: they must give rows

    def file(self, kind: str, name: str, data: bytes) -> str:
        path = self.root / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.listed[str(path)] = kind
        return str(path)

    def folder(self, kind: str, name: str, frames: dict[str, bytes], listed: bool) -> str:
        path = self.root / "folders" / name
        path.mkdir(parents=True)
        for fname, data in frames.items():
            (path / fname).write_bytes(data)
        (self.listed if listed else self.folders)[str(path)] = kind
        return str(path)

    def inputs(self) -> list[str]:
        """One @list with every listed input, then the folders given directly."""
        lst = self.root / "inputs.txt"
        lst.write_text("# fuzzed inputs\n" + "".join(f"{line}\n" for line in self.listed))
        return [f"@{lst}", *self.folders]

    @property
    def all(self) -> dict[str, str]:
        return {**self.listed, **self.folders}


@dataclass
class Seeds:
    mp4: bytes  # index (moov) at the end: a cut file does not open
    faststart: bytes  # index first: a cut file opens and is mined up to the cut
    jpeg: bytes
    png: bytes
    frames_jpeg: list[bytes]  # the clip's frames
    frames_png: list[bytes]


def make_seeds(tmp: Path) -> Seeds:
    tmp.mkdir(parents=True, exist_ok=True)
    frames = make_scene(SEED % 97, height=H, width=W, n_frames=10, n_static=0).frames
    write_video(frames, tmp / "seed.mp4")
    write_video(frames, tmp / "seed_fs.mp4", faststart=True, keyint=4)
    bgr = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in bgr]
    pngs = [cv2.imencode(".png", f)[1].tobytes() for f in bgr]
    return Seeds((tmp / "seed.mp4").read_bytes(), (tmp / "seed_fs.mp4").read_bytes(), jpegs[0], pngs[0], jpegs, pngs)


def fuzzed_corpus(root: Path) -> Corpus:
    """A few hundred bad inputs (and three controls) that the engine must survive."""
    rng = np.random.default_rng(SEED)
    seeds = make_seeds(root)
    c = Corpus(root)
    videos = {"mp4": seeds.mp4, "faststart": seeds.faststart}
    images = {"jpg": seeds.jpeg, "png": seeds.png}

    c.controls |= {c.file("control", "control.mp4", seeds.mp4), c.file("control", "control_fs.mp4", seeds.faststart)}
    c.controls.add(c.folder("control", "control_frames", {f"{i:05d}.jpg": b for i, b in enumerate(seeds.frames_jpeg)},
                            listed=False))
    for name, data in videos.items():
        for i in range(35):
            c.file("truncated video", f"cut_{name}_{i:02d}.mp4", truncated(data, rng))
        for i in range(40):
            c.file("bit-flipped video", f"flip_{name}_{i:02d}.mp4", bit_flipped(data, rng))
        for i in range(10):
            c.file("overwritten video", f"garbled_{name}_{i:02d}.mp4", overwritten(data, rng))
    for ext, data in images.items():
        for i in range(10):
            c.file("truncated image", f"cut_{ext}_{i:02d}.{ext}", truncated(data, rng))
            c.file("bit-flipped image", f"flip_{ext}_{i:02d}.{ext}", bit_flipped(data, rng))
    for ext in ("mp4", "mkv", "webm", "jpg", "png", "bin"):
        c.file("zero-byte", f"empty_{ext}.{ext}", b"")
    wrong = {
        "jpeg_as.mp4": seeds.jpeg, "png_as.mp4": seeds.png, "png_as.avi": seeds.png,
        "text_as.mp4": b"this is not a video\n" * 20, "html_as.mp4": b"<html><body>404 Not Found</body></html>\n",
        "random_as.mp4": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "random_as.mov": rng.integers(0, 256, 70_000, dtype=np.uint8).tobytes(),
        "mp4_as.jpg": seeds.mp4, "mp4_as.png": seeds.faststart, "gzip_as.mp4": zlib.compress(seeds.mp4),
        "mp4_header_only.mp4": seeds.faststart[:64], "nul_as.mp4": b"\0" * 10_000,
    }
    for name, data in wrong.items():
        c.file("wrong extension", name, data)
    for w, h in ((60000, 60000), (30000, 30000)):
        c.file("huge declared size", f"huge_{w}x{h}.png", png_declaring(seeds.png, w, h))
        c.file("huge declared size", f"huge_{w}x{h}_as.mp4", png_declaring(seeds.png, w, h))
    for w, h in ((65500, 65500), (30000, 30000), (16000, 16000)):
        c.file("huge declared size", f"huge_{w}x{h}.jpg", jpeg_declaring(seeds.jpeg, w, h))

    # Frame folders with 1-3 bad images among 10 good ones.
    bad_images = {
        "truncated jpg": lambda: truncated(seeds.jpeg, rng), "bit-flipped jpg": lambda: bit_flipped(seeds.jpeg, rng),
        "truncated png": lambda: truncated(seeds.png, rng), "bit-flipped png": lambda: bit_flipped(seeds.png, rng),
        "zero-byte": lambda: b"", "text": lambda: b"not an image\n", "an mp4": lambda: seeds.mp4,
    }
    kinds = list(bad_images)
    for i in range(30):
        png = i % 2 == 1
        frames = {f"{k:05d}.{'png' if png else 'jpg'}": b for k, b in
                  enumerate(seeds.frames_png if png else seeds.frames_jpeg)}
        names = sorted(frames)
        for k in rng.choice(len(names), int(rng.integers(1, 4)), replace=False):
            frames[names[k]] = bad_images[kinds[int(rng.integers(len(kinds)))]]()
        c.folder("folder with bad images", f"frames_{i:02d}", frames, listed=i % 3 != 0)
    c.folder("folder of bad images only", "all_bad",
             {f"{k:05d}.jpg": truncated(seeds.jpeg, rng)[:40] for k in range(6)}, listed=True)

    # Inputs that do not resolve.
    c.listed[str(root / "missing" / "nowhere.mp4")] = "resolve failure"
    nested = root / "nested_binary.txt"
    nested.write_bytes(b"\xff\xfe\x00\x81" + rng.integers(0, 256, 512, dtype=np.uint8).tobytes())
    c.listed[f"@{nested}"] = "resolve failure"
    (root / "folders" / "empty").mkdir(parents=True)
    c.folders[str(root / "folders" / "empty")] = "resolve failure"
    return c


def pathological_corpus(root: Path) -> Corpus:
    """Inputs that take a decoder or the flow to its limits: thin and tiny frames, thousands of
    1x1 frames, images whose headers declare huge sizes (in frame folders and alone), the largest
    frame a decoder accepts."""
    rng = np.random.default_rng(SEED + 1)
    seeds = make_seeds(root)
    c = Corpus(root)

    def clip(kind: str, name: str, frames) -> None:
        write_video(frames, root / "clip.tmp.mp4")
        c.file(kind, name, (root / "clip.tmp.mp4").read_bytes())
        (root / "clip.tmp.mp4").unlink()

    def folder(name: str, index: int, image: bytes, ext: str) -> None:
        frames = {f"{k:05d}.png": b for k, b in enumerate(seeds.frames_png) if k != index}
        c.folder("folder with a huge image", name, {**frames, f"{index:05d}.{ext}": image}, listed=True)

    c.controls.add(c.file("control", "control.mp4", seeds.mp4))
    clip("1x1 frames", "pixels_3000.mp4", [rng.integers(0, 256, (1, 1, 3), dtype=np.uint8) for _ in range(3000)])
    for h, w in ((2, 2), (8, 8), (12, 96), (24, 200), (100, 400), (400, 100)):  # DIS raises, or segfaults
        scene = make_scene(h * w % 89, height=max(h, 16), width=max(w, 16), n_frames=10, n_static=0).frames
        clip("thin frames", f"thin_{h}x{w}.mp4", [f[:h, :w] for f in scene])
    folder("png_60000", 4, png_declaring(seeds.png, 60000, 60000), "png")  # cv2.imread raises
    folder("jpg_65500", 4, jpeg_declaring(seeds.jpeg, 65500, 65500), "jpg")  # cv2.imread raises
    folder("jpg_16000", 5, jpeg_declaring(seeds.jpeg, 16000, 16000), "jpg")  # cv2.imread decodes 0.8 GB
    folder("bomb_8000", 6, png_bomb(8000, colour=False), "png")  # the largest frame allowed: decoded
    c.file("huge image", "bomb_16000_rgb.png", png_bomb(16000, colour=True))  # FFmpeg decodes 0.8 GB, twice
    c.file("huge image", "png_16000.png", png_declaring(seeds.png, 16000, 16000))
    return c


# --------------------------------------------------------------------------- running and measuring


@dataclass
class Run:
    summary: object
    seconds: float
    peak_rss: int  # bytes: the largest VmHWM of a mining actor
    actors_seen: int


def run_job(corpus: Corpus, out: Path) -> Run:
    """The Ray engine over the corpus, in a thread the test waits for at most JOB_SECONDS, while
    the mining actors' peak RSS is polled."""
    box: dict = {}

    def job() -> None:
        try:
            box["summary"] = run_mine_job_ray(corpus.inputs(), str(out), MinerConfig(), actors=2, items_per_task=4,
                                              max_retries=1)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = e

    thread = threading.Thread(target=job, name="fuzz-mining-job", daemon=True)
    start = time.monotonic()
    thread.start()
    peak, seen = 0, set()
    while thread.is_alive():
        for pid in mining_workers(os.getpid()):
            seen.add(pid)
            peak = max([peak, *memory_mb(pid, "VmHWM", "VmRSS").values()])
        if time.monotonic() - start > JOB_SECONDS:
            pytest.fail(f"the mining job did not finish within {JOB_SECONDS} s: a hang")
        thread.join(0.1)
    if "error" in box:
        raise box["error"]
    return Run(box["summary"], time.monotonic() - start, peak * 2**20, len(seen))


def check_outcome(corpus: Corpus, out: Path, run: Run) -> dict:
    """The properties every fuzz job must have (all problems are reported together); returns what
    was measured."""
    inputs = corpus.all
    commits = {s.item_key: s for s in committed_items(str(out))}
    failures = read_failures(str(out)).to_pylist()
    frames = read_frames(str(out))
    problems: list[str] = []

    def problem(what: str, cases: list) -> None:
        if cases:
            problems.append(f"{len(cases)} {what}: " + "; ".join(map(str, cases[:6])))

    # Every input is accounted for: committed as an item, or as the failure of its resolution.
    problem("inputs without a commit record", [i for i in inputs if i not in commits and f"resolve:{i}" not in commits])
    problem("commit records of no input", [k for k in commits if k.removeprefix("resolve:") not in inputs])
    problem("items committed with no rows, no failure and no frame decoded",
            [k for k, st in commits.items() if not (st.frames or st.failures or st.extra.get("frames_decoded"))])
    if run.summary.videos_ok + run.summary.videos_failed != len(inputs):
        problems.append(f"the summary counts {run.summary.videos_ok} + {run.summary.videos_failed} items, "
                        f"not {len(inputs)}")

    # Failure rows: a documented input error, never a crash or an exception.
    documented = readme_error_types() - {"worker_lost"}

    def name(f: dict) -> str:
        return f"{Path(f['input']).name}: {f['stage']}/{f['error_type']}: {f['message'][-160:]}"

    problem("inputs crashed their worker (worker_lost)",
            [name(f) for f in failures if f["error_type"] == "worker_lost"])
    problem("failure rows of an exception (stage 'mine': a bug)",
            [name(f) for f in failures if f["stage"] == "mine" and f["error_type"] != "worker_lost"])
    problem("failure rows with an error_type the README does not list",
            [name(f) for f in failures if f["stage"] != "mine" and f["error_type"] not in documented])
    problem("failure rows of no input", [f["input"] for f in failures if f["input"] not in inputs])
    if sum(st.failures for st in commits.values()) != len(failures):
        problems.append("the commit records count other failure rows than the failures table holds")

    # Frame rows: unique, and the controls have some.
    keys = list(zip(frames["video_id"].to_pylist(), frames["frame_index"].to_pylist()))
    problem("duplicate (video_id, frame_index) rows", [k for k, n in Counter(keys).items() if n > 1])
    problem("controls without rows", [c for c in corpus.controls if c not in commits or not commits[c].frames
                                      or commits[c].failures])

    # Bounded time per item, bounded memory per actor.
    slowest = max(commits.values(), key=lambda st: st.seconds)
    problem(f"items mined in more than {ITEM_SECONDS:g} s",
            [f"{Path(k).name}: {st.seconds:.1f} s" for k, st in commits.items() if st.seconds >= ITEM_SECONDS])
    if not run.actors_seen:
        problems.append("no mining actor was seen: their memory was not measured")
    if run.peak_rss >= ACTOR_RSS_BOUND:
        problems.append(f"a mining actor reached {run.peak_rss / 2**30:.2f} GB of RSS "
                        f"(bound {ACTOR_RSS_BOUND / 2**30:.1f} GB)")
    measured = {
        "inputs": len(inputs), "kinds": dict(Counter(inputs.values())),
        "error_types": dict(Counter(f"{f['stage']}/{f['error_type']}" for f in failures)),
        "items with rows": sum(1 for st in commits.values() if st.frames), "frame rows": frames.num_rows,
        "job seconds": round(run.seconds, 1), "max item seconds": round(slowest.seconds, 2),
        "slowest item": Path(slowest.item_key).name, "peak actor RSS MB": round(run.peak_rss / 2**20),
        "actors seen": run.actors_seen,
    }
    print(f"\n{corpus.root.parent.name}: {measured}")
    assert not problems, "\n".join(problems)
    return measured


# --------------------------------------------------------------------------- the tests


def test_fuzzed_inputs(ray_local, tmp_path):
    corpus = fuzzed_corpus(tmp_path / "in")
    assert len(corpus.all) >= 250
    check_outcome(corpus, tmp_path / "out", run_job(corpus, tmp_path / "out"))


def test_pathological_inputs(ray_local, tmp_path):
    corpus = pathological_corpus(tmp_path / "in")
    check_outcome(corpus, tmp_path / "out", run_job(corpus, tmp_path / "out"))
