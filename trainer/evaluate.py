"""Evaluation: WHDR on DIW-format CSV files, WKDR on shards; the predictor used by eval and predict.

DIW CSV (Chen et al. 2016): per record an image line (``path,…``, relative to the CSV or
``--image-root``) and a pair line ``yA,xA,yB,xB,REL,W,H`` — 1-indexed pixel coordinates in a W×H
image, ``REL`` '>' when A is further than B, '<' when A is closer, '=' about equal; an image may
appear in several records; a first line of column names is allowed. Files are read and written with
:mod:`dynocc.factory.tools.export`'s DIW functions.

The network predicts inverse depth z (larger = closer): A is predicted further when
``zA < zB − τ``, closer when ``zA > zB + τ``, equal otherwise. WHDR (DIW) and WKDR (Kinect-style
dense truth) are the share of pairs whose predicted relation differs from the truth (all weights 1).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dynocc.factory.io.codecs import decode_rgb
from dynocc.factory.tools.export import diw_pair_line, read_diw_csv

from .checkpoint import load_checkpoint
from .config import TrainConfig
from .model import build_model

# --------------------------------------------------------------------------- DIW files


def read_diw_records(path: str, image_root: Optional[str] = None,
                     storage_options: Optional[dict] = None) -> list[dict]:
    """Records ``{image (resolved), ya, xa, yb, xb (0-based), ordinal (+1 A closer), width, height}``
    of a DIW CSV, read by :func:`dynocc.factory.tools.export.read_diw_csv`."""
    return [{"image": p.image, "ya": p.ya, "xa": p.xa, "yb": p.yb, "xb": p.xb, "ordinal": p.ordinal,
             "width": p.width, "height": p.height} for p in read_diw_csv(path, storage_options, image_root)]


def write_diw_csv(path: str, records: Iterable[dict], header: bool = False) -> None:
    """Write records (0-based coordinates, schema-v1 ``ordinal``) in DIW format: per pair an image
    line and ``yA,xA,yB,xB,REL,W,H`` (1-indexed, '>' = A further); ``header`` adds a first line."""
    import fsspec

    lines = ["image,yA,xA,yB,xB,relation,width,height"] if header else []
    for r in records:
        lines += [str(r["image"]), diw_pair_line(r["ya"], r["xa"], r["yb"], r["xb"], r["ordinal"],
                                                 r["width"], r["height"])]
    with fsspec.open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read_image(url: str, storage_options: Optional[dict] = None) -> np.ndarray:
    from dynocc.factory.io.storage import open_url

    with open_url(url, "rb", storage_options) as f:
        return decode_rgb(f.read(), url)


# --------------------------------------------------------------------------- metrics


def predicted_relation(za, zb, tau: float = 0.0) -> np.ndarray:
    """Schema-v1 ordinal of the prediction: +1 A closer, −1 A further, 0 equal within ``tau``."""
    d = np.asarray(za, np.float64) - np.asarray(zb, np.float64)
    return np.where(d > tau, 1, np.where(d < -tau, -1, 0)).astype(np.int8)


def disagreement(pred: np.ndarray, truth: np.ndarray) -> dict:
    """WKDR-style counts: all pairs, ordered pairs only (``_neq``) and equal pairs only (``_eq``)."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    wrong = pred != truth
    neq, eq = truth != 0, truth == 0

    def rate(m):
        return float(wrong[m].mean()) if m.any() else float("nan")

    return {"wkdr": rate(np.ones_like(wrong)), "wkdr_neq": rate(neq), "wkdr_eq": rate(eq),
            "pairs": int(len(truth)), "pairs_ordered": int(neq.sum()), "pairs_equal": int(eq.sum())}


# --------------------------------------------------------------------------- predictor


def eval_size(h: int, w: int, image_size: int) -> tuple[int, int]:
    """Network input size: the short side ~ ``image_size``, both sides multiples of 32."""
    s = image_size / min(h, w)
    return max(32, round(h * s / 32) * 32), max(32, round(w * s / 32) * 32)


class Predictor:
    """A trained network from a checkpoint (file or run); ``predict(rgb) -> (H, W) inverse depth``."""

    def __init__(self, checkpoint: str, image_size: Optional[int] = None, storage_options: Optional[dict] = None):
        ckpt = load_checkpoint(checkpoint, storage_options)
        self.config = TrainConfig.model_validate(ckpt["config"])
        m = self.config.model
        self.model = build_model(m.backbone, m.decoder_channels, m.head_channels, m.channels_last)
        self.model.load_state_dict(ckpt["model"])
        self.model.eval()
        self.step = int(ckpt["step"])
        self.url = ckpt["url"]
        self.image_size = image_size or self.config.data.image_size

    @torch.no_grad()
    def predict(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        nh, nw = eval_size(h, w, self.image_size)
        x = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if nh < h else cv2.INTER_LINEAR)
        t = torch.from_numpy(x).permute(2, 0, 1)[None].float().div_(255.0)
        if self.config.model.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        z = F.interpolate(self.model(t), size=(h, w), mode="bilinear", align_corners=False)
        return z[0, 0].numpy().astype(np.float32)


def _scaled(y, x, rec_h, rec_w, h, w):
    if (rec_h, rec_w) == (h, w):
        return y, x
    return (min(h - 1, int((y + 0.5) * h / rec_h)), min(w - 1, int((x + 0.5) * w / rec_w)))


def evaluate_diw(predictor: Predictor, csv_path: str, image_root: Optional[str] = None, tau: float = 0.0,
                 storage_options: Optional[dict] = None) -> dict:
    """WHDR of ``predictor`` on a DIW-format file (each image predicted once)."""
    by_image = defaultdict(list)
    for r in read_diw_records(csv_path, image_root, storage_options):
        by_image[r["image"]].append(r)
    pred, truth = [], []
    for image, recs in by_image.items():
        z = predictor.predict(read_image(image, storage_options))
        h, w = z.shape
        for r in recs:
            ya, xa = _scaled(r["ya"], r["xa"], r["height"], r["width"], h, w)
            yb, xb = _scaled(r["yb"], r["xb"], r["height"], r["width"], h, w)
            pred.append(predicted_relation(z[ya, xa], z[yb, xb], tau))
            truth.append(r["ordinal"])
    counts = disagreement(np.array(pred, np.int8), np.array(truth, np.int8))
    wrong = int(round(counts["wkdr"] * counts["pairs"])) if counts["pairs"] else 0
    return {"whdr": counts["wkdr"], "pairs": counts["pairs"], "wrong": wrong, "images": len(by_image),
            "pairs_equal": counts["pairs_equal"], "tau": tau}


def evaluate_shards(predictor: Predictor, url: str, tau: float = 0.0, stereo_pairs: int = 3000,
                    sigma: float = 0.02, seed: int = 0, storage_options: Optional[dict] = None,
                    max_rows: Optional[int] = None) -> dict:
    """WKDR on shard rows: stored pairs, or for stereo rows ``stereo_pairs`` random pairs of the
    dense ``depth_png`` truth (σ rule). ``whdr`` is the ordered-pair rate (``wkdr_neq``)."""
    from dynocc.factory.core.stereo import decode_inverse_depth_png
    from dynocc.factory.core.stereo_pairs import PAPER_SAMPLING, sample_stereo_pairs
    from dynocc.factory.io.writer import read_frames


    table = read_frames(url, storage_options)
    rng = np.random.default_rng(seed)
    pred, truth = [], []
    n = table.num_rows if max_rows is None else min(max_rows, table.num_rows)
    has_depth = "depth_png" in table.column_names
    for i in range(n):
        row = table.slice(i, 1).to_pylist()[0]
        z = predictor.predict(decode_rgb(row["image"]))
        if has_depth and row.get("depth_png"):
            inv, sky = decode_inverse_depth_png(row["depth_png"])
            p = sample_stereo_pairs(inv, np.isfinite(inv) & ~sky, sky, n_random=stereo_pairs, n_edge=0,
                                    sigma=sigma, rng=rng, config=PAPER_SAMPLING)
            ya, xa, yb, xb, o = p.ya, p.xa, p.yb, p.xb, p.ordinal
        else:
            ya, xa, yb, xb, o = (np.asarray(row[k]) for k in
                                 ("pair_ya", "pair_xa", "pair_yb", "pair_xb", "pair_ordinal"))
        pred.append(predicted_relation(z[ya, xa], z[yb, xb], tau))
        truth.append(np.asarray(o, np.int8))
    if not pred:
        return {"whdr": math.nan, **disagreement(np.zeros(0, np.int8), np.zeros(0, np.int8)), "images": 0}
    counts = disagreement(np.concatenate(pred), np.concatenate(truth))
    return {"whdr": counts["wkdr_neq"], **counts, "images": n, "tau": tau}
