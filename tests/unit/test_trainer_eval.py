"""Evaluation (DIW files, WHDR), checkpoints, metrics and settings (the eval/predict commands in a subprocess:
tests/integration/test_trainer_eval_cli.py)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from dynocc.cli import build_parser, main
from dynocc.trainer.checkpoint import latest_checkpoint, load_checkpoint, resolve_checkpoint
from dynocc.train_commands import train_config
from dynocc.trainer.config import TrainConfig
from dynocc.trainer.evaluate import disagreement, evaluate_diw, read_diw_records, write_diw_csv
from dynocc.trainer.metrics import MetricsLog, read_metrics
from dynocc.trainer.train import TrainUsageError, train, worker_resources
from support import REPO, tiny_checkpoint


def test_diw_files_are_1_indexed_and_greater_means_a_is_further(tmp_path):
    (tmp_path / "img").mkdir()
    text = "./img/a.png\n10,20,30,40,>,160,120\n./img/a.png\n1,1,120,160,<,160,120\n"
    (tmp_path / "diw.csv").write_text(text)
    recs = read_diw_records(str(tmp_path / "diw.csv"))
    assert recs[0] == {"image": str(tmp_path / "img" / "a.png"), "ya": 9, "xa": 19, "yb": 29, "xb": 39,
                       "ordinal": -1, "width": 160, "height": 120}
    assert (recs[1]["ya"], recs[1]["xb"], recs[1]["ordinal"]) == (0, 159, 1)
    other = read_diw_records(str(tmp_path / "diw.csv"), image_root="/data/diw")
    assert other[0]["image"] == "/data/diw/img/a.png"
    (tmp_path / "with_header.csv").write_text("image,yA,xA,yB,xB,relation,width,height\n" + text)
    assert read_diw_records(str(tmp_path / "with_header.csv")) == recs
    (tmp_path / "extra_fields.csv").write_text(text.replace("a.png\n", "a.png,,,,,,\n"))
    assert read_diw_records(str(tmp_path / "extra_fields.csv")) == recs


def test_write_diw_csv_round_trips(tmp_path):
    recs = [{"image": "x.png", "ya": 0, "xa": 5, "yb": 7, "xb": 2, "ordinal": o, "width": 10, "height": 8}
            for o in (1, -1, 0)]
    for header in (False, True):
        path = str(tmp_path / f"h{header}.csv")
        write_diw_csv(path, recs, header=header)
        lines = Path(path).read_text().splitlines()
        assert lines[1 + header] == "1,6,8,3,<,10,8" and lines[3 + header].split(",")[4] == ">"
        back = read_diw_records(path)
        assert [(r["ya"], r["xa"], r["ordinal"]) for r in back] == [(0, 5, 1), (0, 5, -1), (0, 5, 0)]


class _RightIsCloser:
    """A predictor whose inverse depth grows to the right."""

    def predict(self, rgb):
        return np.tile(np.arange(rgb.shape[1], dtype=np.float32), (rgb.shape[0], 1))


def test_whdr_counts_disagreements(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((60, 80, 3), np.uint8))
    right = {"image": "a.png", "ya": 5, "xa": 70, "yb": 5, "xb": 10, "ordinal": 1, "width": 80, "height": 60}
    wrong = {**right, "ordinal": -1}
    half = {**right, "xa": 35, "xb": 5, "width": 40, "height": 30}  # in a 40x30 frame: scaled to the image
    write_diw_csv(str(tmp_path / "d.csv"), [right, right, wrong, half])
    got = evaluate_diw(_RightIsCloser(), str(tmp_path / "d.csv"))
    assert got["whdr"] == pytest.approx(0.25) and got["pairs"] == 4 and got["wrong"] == 1 and got["images"] == 1
    counts = disagreement(np.array([1, -1, 0, 0]), np.array([1, 1, 0, -1]))
    assert counts["wkdr"] == 0.5 and counts["wkdr_neq"] == pytest.approx(2 / 3) and counts["wkdr_eq"] == 0.0


def test_checkpoints_latest_prune_and_resolve(tmp_path):
    out = str(tmp_path / "run")
    assert latest_checkpoint(out) is None
    for step in (2, 4, 6):
        tiny_checkpoint(out, step, keep=2)
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["latest.json", "step-00000004.pt",
                                                                   "step-00000006.pt"]
    assert latest_checkpoint(out).endswith("step-00000006.pt")
    assert resolve_checkpoint(out) == latest_checkpoint(out)
    direct = str(tmp_path / "run" / "checkpoints" / "step-00000004.pt")
    assert load_checkpoint(direct)["step"] == 4
    with pytest.raises(FileNotFoundError):
        resolve_checkpoint(str(tmp_path / "nothing"))
    tiny_checkpoint("memory://runs/r1", 5)  # object stores: written in place, latest.json last
    assert latest_checkpoint("memory://runs/r1") == "memory://runs/r1/checkpoints/step-00000005.pt"
    assert load_checkpoint("memory://runs/r1")["step"] == 5


def test_metrics_continue_from_the_checkpoint_step(tmp_path):
    out = str(tmp_path)
    log = MetricsLog(out, 0, tensorboard=False)
    for step in range(1, 6):
        log.add({"step": step, "loss": 1.0 / step, "accuracy": 0.5, "pairs_ordered": 3, "pairs_kept": 2,
                 "pairs_equal": 1, "lr": 0.1, "elapsed_s": float(step)})
    log.close()
    resumed = MetricsLog(out, 3, tensorboard=False)  # steps 4-5 came after the last checkpoint: dropped
    resumed.add({"step": 4, "loss": 0.2, "accuracy": 0.6, "pairs_ordered": 3, "pairs_kept": 2,
                 "pairs_equal": 1, "lr": 0.1, "elapsed_s": 0.5})
    resumed.close()
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["loss"] == 0.2 and rows[-1]["elapsed_s"] == 3.5


@pytest.mark.parametrize("free, workers, gpu, want", [
    (2, 2, False, {"CPU": 0.5}),  # 2 x 1 CPU on 2 cores hangs: Ray Data needs one
    (2, 1, False, {"CPU": 1.0}),
    (16, 4, False, {"CPU": 3.0}),
    (1.5, 2, False, {"CPU": 0.25}),
    (8, 2, True, {"CPU": 1.0, "GPU": 1.0}),
])
def test_worker_resources_leave_a_cpu_to_ray_data(free, workers, gpu, want):
    cfg = TrainConfig.model_validate({"scale": {"workers": workers, "use_gpu": gpu}, "optim": {"batch_size": 4}})
    assert worker_resources(cfg, free) == want


def test_worker_resources_refuse_a_cluster_too_small():
    with pytest.raises(TrainUsageError, match="do not fit"):
        worker_resources(TrainConfig.model_validate({"scale": {"workers": 2}}), 1.0)
    cfg = TrainConfig.model_validate({"scale": {"workers": 2, "cpus_per_worker": 3}})
    assert worker_resources(cfg, 1.0) == {"CPU": 3.0}


def test_flags_override_the_yaml_and_jobs_validate(tmp_path):
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text("model: {backbone: resnet34}\noptim: {lr: 0.5, epochs: 3}\ndata: {sources: [{url: a}]}\n")
    args = build_parser().parse_args(["train", "--config", str(yaml_path), "--data", "s3://b/x:30", "--data", "y",
                                      "--out", "o", "--steps", "9", "--image-size", "96", "--workers", "2",
                                      "--batch-size", "8", "--set", "loss.keep_hard=0.8"])
    cfg = train_config(args)
    assert cfg.model.backbone == "resnet34" and cfg.optim.lr == 0.5
    assert cfg.optim.steps == 9 and cfg.optim.epochs is None  # --steps wins over the file's epochs
    assert [(s.url, s.weight) for s in cfg.data.sources] == [("s3://b/x", 30.0), ("y", 1.0)]
    assert cfg.data.image_size == 96 and cfg.scale.workers == 2 and cfg.loss.keep_hard == 0.8
    for name in ("train_dynocc", "train_redweb", "train_mix_finetune"):
        args = build_parser().parse_args(["train", "--config", str(REPO / "jobs" / f"{name}.yaml"), "--out", "o"])
        c = train_config(args)
        assert c.model.backbone == "resnet50" and c.loss.keep_hard == 0.75 and c.optim.epochs


def test_bad_settings_exit_2_before_anything_runs(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--image-size", "100"]) == 2
    assert "multiple of 32" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--batch-size", "3",
                 "--workers", "2"]) == 2
    assert not (tmp_path / "o").exists()


def test_train_refuses_a_run_folder_with_checkpoints_unless_resuming(tmp_path):
    cfg = tiny_checkpoint(str(tmp_path / "run"))
    with pytest.raises(TrainUsageError, match="--resume"):
        train(cfg, str(tmp_path / "run"))


def test_wkdr_on_shards_uses_stored_pairs_and_dense_stereo_truth(tmp_path):
    from dynocc.factory.core.stereo import inverse_depth_png
    from dynocc.factory.io.writer import ShardWriter
    from dynocc.schemas import frame_row
    from dynocc.trainer.evaluate import evaluate_shards
    from dynocc.trainer.synthetic import encode_jpeg

    h, w = 40, 60
    img = np.zeros((h, w, 3), np.uint8)
    ramp = np.tile(np.linspace(0.2, 1.0, w, dtype=np.float32), (h, 1))  # inverse depth grows to the right
    stereo = frame_row("s", "v", 0, encode_jpeg(img), w, h, [0], [0], [0], [1], [-1],
                       depth_png=inverse_depth_png(ramp, np.ones((h, w), bool), np.zeros((h, w), bool)))
    stored = frame_row("d", "v", 1, encode_jpeg(img), w, h, [5, 5, 5], [50, 10, 20], [5, 5, 6], [10, 50, 20],
                       [1, -1, 0])
    ShardWriter(str(tmp_path / "s")).write_item("a", [stereo, stored], [], 0.0)
    got = evaluate_shards(_RightIsCloser(), str(tmp_path / "s"), stereo_pairs=200)
    assert got["whdr"] == 0.0 and got["wkdr_neq"] == 0.0  # every ordered pair agrees with "right is closer"
    assert got["wkdr_eq"] > 0.3  # tau = 0: only pairs in one column are predicted equal
    assert got["pairs"] == 203 and got["images"] == 2
    loose = evaluate_shards(_RightIsCloser(), str(tmp_path / "s"), tau=1.5, stereo_pairs=200)  # same seed, pairs
    assert loose["wkdr_eq"] < got["wkdr_eq"] and loose["wkdr_neq"] >= got["wkdr_neq"]
