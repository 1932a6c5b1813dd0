"""Flags and entry points of ``dynocc train``, ``dynocc eval`` and ``dynocc predict``.

``dynocc/cli.py`` adds the subparsers and calls :func:`run_train`, :func:`run_eval`,
:func:`run_predict`; heavy imports (torch, ray) happen only when a command runs.
Exit codes: 0 done, 2 bad flags / configuration / output folder (nothing ran), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from .config_loader import json_object as _json_object

EXIT_USAGE = 2


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", default=None, metavar="URL[:WEIGHT]",
                   help="shard root of a mining job (any fsspec URL), optionally with a sampling weight, e.g. "
                        "s3://b/redweb:30 (repeatable; replaces data.sources of --config)")
    p.add_argument("--out", required=True, help="run folder or URL: checkpoints/, metrics.csv, tensorboard/")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint under --out")
    g = p.add_argument_group("settings (defaults: the papers' values; see TrainConfig in trainer/config.py)")
    g.add_argument("--config", metavar="FILE.yaml", help="settings as YAML (keys of TrainConfig), e.g. jobs/train_*.yaml")
    g.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set loss.keep_hard=0.8 (repeatable)")
    g.add_argument("--workers", type=int, help="Ray Train workers (default: 1)")
    g.add_argument("--use-gpu", action="store_true", default=None, help="one GPU per worker")
    g.add_argument("--cpus-per-worker", type=float, help="default: free CPUs less one, shared by the workers")
    g.add_argument("--backbone", choices=["resnet18", "resnet34", "resnet50"], help="encoder (default: resnet50)")
    g.add_argument("--backbone-weights", metavar="PATH_OR_URL", help="torchvision-format ImageNet weights")
    g.add_argument("--image-size", type=int, help="training crop, px, multiple of 32 (default: 384)")
    g.add_argument("--min-confidence", type=float, metavar="C",
                   help="use only stored pairs with pair_confidence >= C, in [0, 1] (default: 0, all pairs)")
    g.add_argument("--batch-size", type=int, help="global batch size (default: 4)")
    g.add_argument("--steps", type=int, help="total optimizer steps (default: 1000)")
    g.add_argument("--epochs", type=float, help="train this many epochs of the mix instead of --steps")
    g.add_argument("--lr", type=float, help="learning rate (default: 1e-4)")
    g.add_argument("--seed", type=int, help="model initialisation seed (default: 0)")
    g.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: 500)")
    g.add_argument("--log-every", type=int, help="steps between console lines (default: 10)")
    g.add_argument("--init-from", metavar="CHECKPOINT", help="start from these model weights (fine-tuning)")
    g.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    g.add_argument("--storage-options", type=_json_object, metavar="JSON", help="fsspec options for URLs")
    g.add_argument("--ray-logs", action="store_true", help="show Ray Data progress bars")


def train_config(args):
    from dynocc.config_loader import load_config

    from .trainer.config import TrainConfig, parse_data_arg

    sources = None
    if args.data:
        sources = [parse_data_arg(d).model_dump(exclude_none=True) for d in args.data]
    assignments = list(args.assignments)
    if args.steps is not None and args.epochs is None:
        assignments.append("optim.epochs=null")  # an explicit --steps wins over epochs from --config
    return load_config(TrainConfig, args.config, assignments, {
        "data.sources": sources, "data.image_size": args.image_size, "data.min_confidence": args.min_confidence, "data.storage_options": args.storage_options,
        "model.backbone": args.backbone, "model.backbone_weights": args.backbone_weights,
        "optim.batch_size": args.batch_size, "optim.steps": args.steps, "optim.epochs": args.epochs,
        "optim.lr": args.lr, "scale.workers": args.workers, "scale.use_gpu": args.use_gpu,
        "scale.cpus_per_worker": args.cpus_per_worker, "scale.address": args.address, "run.seed": args.seed,
        "run.checkpoint_every": args.checkpoint_every, "run.log_every": args.log_every,
        "run.init_from": args.init_from,
    })


def run_train(args) -> int:
    from .trainer.data import DataError
    from .trainer.train import TrainUsageError, train

    cfg = train_config(args)
    try:
        result = train(cfg, args.out, resume=args.resume, storage_options=cfg.data.storage_options,
                       ray_progress=args.ray_logs)
    except (TrainUsageError, DataError) as e:
        print(f"dynocc train: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"trained to step {result['step']}  loss {result['loss']:.4f}  checkpoint {result['checkpoint']}")
    return 0


def add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="RUN_OR_FILE", help="a run folder (its newest checkpoint) or a .pt file")
    p.add_argument("--diw-csv", metavar="FILE", help="DIW-format pairs: WHDR")
    p.add_argument("--image-root", metavar="DIR", help="resolve the CSV's image paths here (default: beside the CSV)")
    p.add_argument("--shards", metavar="URL", help="a mining job's output: WKDR on its pairs (dense truth for stereo rows)")
    p.add_argument("--tau", type=float, default=0.0, help="predicted equal if |zA - zB| <= tau (default: 0)")
    p.add_argument("--image-size", type=int, help="short side fed to the network (default: the training crop)")
    p.add_argument("--stereo-pairs", type=int, default=3000, help="pairs sampled per stereo row (default: 3000)")
    p.add_argument("--max-rows", type=int, help="evaluate at most this many shard rows")
    p.add_argument("--storage-options", type=_json_object, metavar="JSON", help="fsspec options for URLs")


def run_eval(args) -> int:
    from .trainer.evaluate import Predictor, evaluate_diw, evaluate_shards

    if not args.diw_csv and not args.shards:
        print("dynocc eval: give --diw-csv FILE and/or --shards URL", file=sys.stderr)
        return EXIT_USAGE
    try:
        predictor = Predictor(args.checkpoint, args.image_size, args.storage_options)
    except FileNotFoundError as e:
        print(f"dynocc eval: {e}", file=sys.stderr)
        return EXIT_USAGE
    result = {"checkpoint": predictor.url, "step": predictor.step}
    if args.shards:
        s = evaluate_shards(predictor, args.shards, args.tau, args.stereo_pairs,
                            storage_options=args.storage_options, max_rows=args.max_rows)
        print(f"shards {args.shards}: WKDR {s['wkdr']:.4f}  ordered {s['wkdr_neq']:.4f}  equal {s['wkdr_eq']:.4f}  "
              f"({s['pairs']} pairs, {s['images']} images)")
        result.update(whdr=s["whdr"], pairs=s["pairs"], images=s["images"], shards=s)
    if args.diw_csv:
        try:
            d = evaluate_diw(predictor, args.diw_csv, args.image_root, args.tau)
        except (FileNotFoundError, ValueError) as e:  # a missing or malformed DIW file or image
            print(f"dynocc eval: {e}", file=sys.stderr)
            return EXIT_USAGE
        print(f"DIW {args.diw_csv}: WHDR {d['whdr']:.4f}  ({d['wrong']} of {d['pairs']} pairs wrong, "
              f"{d['images']} images)")
        result.update(whdr=d["whdr"], pairs=d["pairs"], images=d["images"], wrong=d["wrong"], diw=d)
    print(json.dumps(result, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))
    return 0


def add_predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="RUN_OR_FILE", help="a run folder or a .pt file")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or URLs")
    p.add_argument("--out", required=True, metavar="DIR", help="writes <stem>.depth.png and <stem>.color.png")
    p.add_argument("--image-size", type=int, help="short side fed to the network (default: the training crop)")
    p.add_argument("--storage-options", type=_json_object, metavar="JSON", help="fsspec options for URLs")


def run_predict(args) -> int:
    from .trainer.evaluate import Predictor, read_image
    from .trainer.predict import save_prediction

    try:
        predictor = Predictor(args.checkpoint, args.image_size, args.storage_options)
    except FileNotFoundError as e:
        print(f"dynocc predict: {e}", file=sys.stderr)
        return EXIT_USAGE
    os.makedirs(args.out, exist_ok=True)
    for image in args.images:
        depth, color = save_prediction(predictor.predict(read_image(image)), image, args.out)
        print(f"{image}: {depth} {color}")
    return 0
