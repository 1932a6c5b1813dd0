"""End to end: mined shards -> `dynocc train` (Ray Train, 2 CPU workers) -> `dynocc eval` (WHDR).

Training data: real shards mined by the DynOcc miner (`run_mine_job`) from 12 synthetic dynamic
scenes, mixed with stereo-style rows of 24 other scenes whose depth_png is their true inverse depth
(pairs sampled online, as for ReDWeb). Held out: frames of other scenes, written as a DIW-format CSV of random
pairs of different true depth. A small configuration (ResNet-18 from scratch, 96 px crops,
decoder 64 channels, 250 steps) must reach a WHDR well below chance (0.5); the Middlebury
Motorcycle WHDR of the same checkpoint is printed (a model that has seen only synthetic blobs is
not expected to beat chance there). The resume test interrupts a run (SIGINT) after a checkpoint
and continues it with --resume.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from dynocc.factory.config import MinerConfig
from dynocc.factory.io.decode import write_frame_folder
from dynocc.factory.engine.job import run_mine_job
from dynocc.factory.testing.synthetic import make_scene
from dynocc.factory.io.writer import ShardWriter
from dynocc.trainer.checkpoint import latest_checkpoint, load_checkpoint
from dynocc.trainer.evaluate import Predictor, evaluate_diw, write_diw_csv
from dynocc.trainer.synthetic import diw_records, stereo_rows
from support import run_cli, start_cli, wait_for

pytestmark = pytest.mark.slow

SMALL = """\
model: {decoder_channels: 64, head_channels: 32}
data: {stereo_pairs: 300, max_pairs: 300, keep_rate: 0.25}
optim: {optimizer: adam}
run: {log_every: 10, checkpoint_every: 50, keep_checkpoints: 1}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trainer_data")
    inputs = []
    for s in range(12):  # scene diversity matters more than frames: 6 clips + 6 scenes gave WHDR 0.23-0.37
        scene = make_scene(seed=100 + s, height=120, width=160, n_frames=12, n_static=0)
        write_frame_folder(scene.frames, root / "clips" / f"clip{s}")
        inputs.append(str(root / "clips" / f"clip{s}"))
    summary = run_mine_job(inputs, str(root / "mined"), MinerConfig())
    assert summary.videos_ok == 12 and summary.pairs > 5000
    rng = np.random.default_rng(0)
    writer = ShardWriter(str(root / "truth"))
    for s in range(24):
        scene = make_scene(seed=200 + s, height=120, width=160, n_frames=12, n_static=0)
        writer.write_item(f"truth-{s}", stereo_rows(scene, (1, 6, 11), f"truth-{s}", rng), [], 0.0)
    records, rng = [], np.random.default_rng(1)
    (root / "heldout" / "images").mkdir(parents=True)
    for s in range(5):
        scene = make_scene(seed=900 + s, height=120, width=160, n_frames=12, n_static=0)
        for t in (2, 6, 10):
            name = f"images/scene{s}_{t}.png"
            cv2.imwrite(str(root / "heldout" / name), cv2.cvtColor(scene.frames[t], cv2.COLOR_RGB2BGR))
            records += diw_records(scene, [t], [name], 20, rng)
    write_diw_csv(str(root / "heldout" / "diw.csv"), records)
    (root / "small.yaml").write_text(SMALL)
    return {"root": root, "mined": root / "mined", "truth": root / "truth", "diw": root / "heldout" / "diw.csv",
            "small": root / "small.yaml", "pairs": len(records)}


def _metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _motorcycle_whdr(checkpoint: str, folder: Path) -> dict:
    """WHDR on Middlebury Motorcycle (skimage), 3K random pairs of the true disparity, ordered ones."""
    import skimage.data as skdata
    from dynocc.factory.core.stereo_pairs import sample_stereo_pairs

    left, _, disp = skdata.stereo_motorcycle()
    folder.mkdir(exist_ok=True)
    cv2.imwrite(str(folder / "motorcycle.png"), cv2.cvtColor(left, cv2.COLOR_RGB2BGR))
    valid = np.isfinite(disp)
    p = sample_stereo_pairs(np.where(valid, disp, np.nan), valid, None, n_random=3000, n_edge=0, sigma=0.02, rng=0)
    h, w = disp.shape
    keep = p.ordinal != 0
    write_diw_csv(str(folder / "motorcycle.csv"), [
        {"image": "motorcycle.png", "ya": int(a), "xa": int(b), "yb": int(c), "xb": int(d), "ordinal": int(o),
         "width": w, "height": h}
        for a, b, c, d, o in zip(p.ya[keep], p.xa[keep], p.yb[keep], p.xb[keep], p.ordinal[keep])])
    return evaluate_diw(Predictor(checkpoint), str(folder / "motorcycle.csv"))


def test_training_on_mined_shards_beats_chance_on_held_out_frames(data, tmp_path):
    run = tmp_path / "run"
    t0 = time.perf_counter()
    r = run_cli("train", "--data", f"{data['mined']}:2", "--data", f"{data['truth']}:4", "--out", run,
                "--workers", "2", "--backbone", "resnet18", "--image-size", "96", "--batch-size", "8",
                "--steps", "250", "--lr", "1e-3", "--config", data["small"], timeout=480)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "trained to step 250" in r.stdout
    rows = _metrics(run)
    assert [int(x["step"]) for x in rows] == list(range(1, 251))
    losses = np.array([float(x["loss"]) for x in rows])
    accuracy = np.array([float(x["accuracy"]) for x in rows])  # ordered training pairs the right way round
    assert losses[-30:].mean() < losses[:30].mean() and accuracy[-30:].mean() > 0.7
    assert latest_checkpoint(str(run)).endswith("step-00000250.pt")

    r = run_cli("eval", "--checkpoint", run, "--diw-csv", data["diw"])
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    moto = _motorcycle_whdr(str(run), tmp_path / "moto")
    print(f"\nheld-out synthetic DIW WHDR {result['whdr']:.4f} ({result['wrong']}/{result['pairs']} pairs); "
          f"Motorcycle WHDR {moto['whdr']:.4f} ({moto['pairs']} pairs); training {seconds:.0f}s")
    assert result["pairs"] == data["pairs"] and result["images"] == 15
    assert result["whdr"] < 0.35
    assert 0.0 <= moto["whdr"] <= 1.0


TINY = """\
model: {decoder_channels: 16, head_channels: 8}
data: {stereo_pairs: 50, max_pairs: 64, image_size: 64}
optim: {optimizer: sgd, lr: 0.01, batch_size: 4}
run: {log_every: 1, checkpoint_every: 3, keep_checkpoints: 2}
"""


def test_an_interrupted_run_resumes_and_its_step_numbers_continue(data, tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    run = tmp_path / "run"
    common = ["train", "--data", str(data["truth"]), "--data", f"{data['mined']}:2", "--out", str(run),
              "--workers", "2", "--backbone", "resnet18", "--config", str(tmp_path / "tiny.yaml")]
    proc = start_cli(*common, "--steps", "200", start_new_session=True)
    try:
        wait_for(lambda: latest_checkpoint(str(run)), timeout=240, what="the first checkpoint", interval=0.5,
                 alive=proc)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=120)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)  # our own session only
        proc.communicate()
        raise
    assert proc.returncode == 130, err[-3000:]
    stopped = load_checkpoint(str(run))
    k = stopped["step"]
    assert k % 3 == 0 and k < 200
    before = [x for x in _metrics(run)]
    assert [int(x["step"]) for x in before] == list(range(1, k + 1))

    r = run_cli(*common, "--steps", k + 4, "--resume")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"resuming from {run}/checkpoints/step-{k:08d}.pt" in r.stderr
    after = _metrics(run)
    assert [int(x["step"]) for x in after] == list(range(1, k + 5))
    assert after[:k] == before  # the curve up to the checkpoint is kept as it was
    final = load_checkpoint(str(run))
    assert final["step"] == k + 4 and final["optimizer"]["state"]  # momentum buffers travel too
    assert f"step {k + 1}/{k + 4}" in r.stdout + r.stderr
