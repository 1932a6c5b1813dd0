"""Training and evaluation data from the true depth of synthetic scenes (tests, demos).

:func:`stereo_rows` turns frames of a :func:`dynocc.factory.testing.synthetic.make_scene` clip into
stereo-style schema-v1 rows: the JPEG, a ``depth_png`` of the true inverse depth (so the trainer
samples pairs online, as for ReDWeb rows) and a few stored pairs. :func:`diw_records` draws
DIW-style ordered pairs (two random points of different true depth) for evaluation.
"""

from __future__ import annotations

import numpy as np

from dynocc.factory.core.stereo import inverse_depth_png
from dynocc.factory.io.codecs import encode_jpeg
from dynocc.factory.testing.synthetic import SyntheticScene, depth_order_truth
from dynocc.schemas import frame_row


def ordered_pairs(depth: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Up to ``n`` random point pairs whose true depths differ: (ya, xa, yb, xb, ordinal), +1 = A closer."""
    h, w = depth.shape
    m = 8 * n
    ya, yb = rng.integers(0, h, m), rng.integers(0, h, m)
    xa, xb = rng.integers(0, w, m), rng.integers(0, w, m)
    o = depth_order_truth(depth, ya, xa, yb, xb)
    keep = np.nonzero(o != 0)[0][:n]
    return ya[keep], xa[keep], yb[keep], xb[keep], o[keep]


def stereo_rows(scene: SyntheticScene, frames, video_id: str, rng: np.random.Generator,
                dataset: str = "synthetic-stereo", stored_pairs: int = 50) -> list[dict]:
    rows = []
    for t in frames:
        rgb, depth = scene.frames[t], scene.depth[t]
        h, w = depth.shape
        png = inverse_depth_png(1.0 / depth, np.ones((h, w), bool), np.zeros((h, w), bool))
        ya, xa, yb, xb, o = ordered_pairs(depth, stored_pairs, rng)
        rows.append(frame_row(dataset, video_id, t, encode_jpeg(rgb), w, h, ya, xa, yb, xb, o, depth_png=png))
    return rows


def diw_records(scene: SyntheticScene, frames, image_names, pairs_per_image: int,
                rng: np.random.Generator) -> list[dict]:
    """DIW-style records for :func:`dynocc.trainer.evaluate.write_diw_csv` (0-based coordinates,
    schema-v1 ``ordinal``: +1 A closer)."""
    records = []
    for t, name in zip(frames, image_names):
        depth = scene.depth[t]
        h, w = depth.shape
        for ya, xa, yb, xb, o in zip(*ordered_pairs(depth, pairs_per_image, rng)):
            records.append({"image": name, "ya": int(ya), "xa": int(xa), "yb": int(yb), "xb": int(xb),
                            "ordinal": int(o), "width": w, "height": h})
    return records
