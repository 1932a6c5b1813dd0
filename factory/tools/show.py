"""``dynocc show``: pair overlays, depth maps and a static HTML gallery of mined frames.

For each selected frame (the ``frames`` view of :mod:`dynocc.factory.tools.query`, optionally filtered
by a SQL predicate) it writes, under ``out``:

* ``images/<key>.png``        the frame with its pairs drawn by :func:`~dynocc.factory.tools.overlay.draw_pairs`
                              (closer point vermillion, farther point sky blue, equal pairs yellow);
* ``images/<key>.depth.png``  for stereo rows (non-null ``depth_png``): the inverse depth in colour
                              (turbo: red near, blue far; sky at the far end; unknown pixels grey),
                              the same size as the overlay;
* ``index.html``              a gallery page that links every image with a caption
                              (video_id, frame_index, pairs, dataset), relative links only.

``<key>`` is :func:`dynocc.factory.tools.export.frame_key` of (dataset, video_id, frame_index).
``out`` may be a local folder or any fsspec URL.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from dynocc.factory.io.codecs import decode_rgb
from dynocc.factory.io.storage import StorageRoot
from dynocc.factory.tools.export import frame_key, select_sql
from dynocc.factory.tools.overlay import CLOSER_RGB, EQUAL_RGB, FARTHER_RGB, confidence_rgb, draw_pairs, encode_png
from dynocc.factory.tools.query import connect, iter_batches
from dynocc.factory.core.stereo import decode_inverse_depth_png

__all__ = ["GalleryEntry", "Gallery", "depth_colour", "render_gallery", "DEFAULT_LIMIT"]

DEFAULT_LIMIT = 100
UNKNOWN_RGB = (128, 128, 128)


@dataclass(frozen=True)
class GalleryEntry:
    dataset: str
    video_id: str
    frame_index: int
    pairs: int
    overlay: str  # relative to the gallery folder
    depth: str | None  # relative to the gallery folder, for stereo rows
    width: int  # of the overlay PNG
    height: int


@dataclass
class Gallery:
    out: str
    index: str  # URL or path of index.html
    entries: list[GalleryEntry] = field(default_factory=list)


def depth_colour(depth_png: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """An RGB picture of a ``depth_png`` cell: turbo colours of inverse depth (red near, blue far),
    sky as the farthest colour, unknown pixels grey; resized (nearest) to ``size`` = (h, w)."""
    inv, sky = decode_inverse_depth_png(depth_png)
    unknown = ~np.isfinite(inv)
    v = np.clip(np.nan_to_num(inv, nan=0.0), 0.0, 1.0)
    v[sky] = 0.0
    bgr = cv2.applyColorMap(np.rint(v * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb[unknown] = UNKNOWN_RGB
    if size is not None and rgb.shape[:2] != tuple(size):
        rgb = cv2.resize(rgb, (int(size[1]), int(size[0])), interpolation=cv2.INTER_NEAREST)
    return rgb


def _out_root(url: str, storage_options: dict | None) -> StorageRoot:
    root = StorageRoot(url, storage_options)
    root.fs.makedirs(root.root, exist_ok=True)
    return root


_CSS = """
body { font-family: system-ui, sans-serif; background: #1e1e1e; color: #eee; margin: 1.5em; }
h1 { font-size: 1.3em; } .legend span { display: inline-block; margin-right: 1.2em; }
.dot { width: .8em; height: .8em; border-radius: 50%; display: inline-block; border: 1px solid #000;
       vertical-align: middle; margin-right: .3em; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; background: #2b2b2b; padding: .5em; border-radius: 4px; }
figure img { max-width: 480px; height: auto; display: block; }
.pics { display: flex; gap: .5em; } figcaption { font-size: .85em; margin-top: .4em; }
"""


def _rgb(c: tuple[int, int, int]) -> str:
    return f"rgb({c[0]},{c[1]},{c[2]})"


def _html(entries: list[GalleryEntry], title: str, source: str, where: str | None) -> str:
    esc = html.escape
    head = (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{esc(title)}</title>\n"
            f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>\n")
    info = f"<p>{len(entries)} frame{'s' if len(entries) != 1 else ''} from <code>{esc(source)}</code>"
    info += f" where <code>{esc(where)}</code>" if where else ""
    info += "</p>\n"
    legend = (f"<p class=\"legend\"><span><i class=\"dot\" style=\"background:{_rgb(CLOSER_RGB)}\"></i>closer</span>"
              f"<span><i class=\"dot\" style=\"background:{_rgb(FARTHER_RGB)}\"></i>farther</span>"
              f"<span><i class=\"dot\" style=\"background:{_rgb(EQUAL_RGB)}\"></i>equal depth</span>"
              "<span>depth maps: red near, blue far, grey unknown</span></p>\n")
    figs = []
    for e in entries:
        caption = f"{esc(e.video_id)} &middot; frame {e.frame_index} &middot; {e.pairs} pairs &middot; {esc(e.dataset)}"
        alt = esc(f"{e.video_id} frame {e.frame_index}: {e.pairs} pairs", quote=True)
        pics = (f"<a href=\"{esc(e.overlay, quote=True)}\"><img src=\"{esc(e.overlay, quote=True)}\" "
                f"width=\"{e.width}\" height=\"{e.height}\" alt=\"{alt}\" loading=\"lazy\"></a>")
        if e.depth:
            pics += (f"<a href=\"{esc(e.depth, quote=True)}\"><img src=\"{esc(e.depth, quote=True)}\" "
                     f"width=\"{e.width}\" height=\"{e.height}\" alt=\"{alt} (depth)\" loading=\"lazy\"></a>")
        figs.append(f"<figure>\n<div class=\"pics\">{pics}</div>\n<figcaption>{caption}</figcaption>\n</figure>")
    body = "<div class=\"grid\">\n" + "\n".join(figs) + "\n</div>\n" if figs else "<p>No frames matched.</p>\n"
    return head + info + legend + body + "</body>\n</html>\n"


def render_gallery(
    data,
    out: str,
    where: str | None = None,
    limit: int | None = DEFAULT_LIMIT,
    storage_options: dict | None = None,
    out_storage_options: dict | None = None,
    title: str = "dynocc pairs",
    colour_by: str = "order",
) -> Gallery:
    """Draw overlays (and depth maps for stereo rows) of the selected frames and an ``index.html``.

    ``data``: mining output(s) as for :func:`dynocc.factory.tools.query.connect`. ``where``: a SQL
    predicate on the ``frames`` view (e.g. ``"video_id = 'bikes' AND frame_index < 40"``).
    Frames come sorted by dataset, video_id, frame_index; at most ``limit`` (None: all).
    ``colour_by``: ``"order"`` (dots closer / farther / equal, faint lines) or ``"confidence"``
    (also each pair's line coloured by its ``pair_confidence``, grey where none is stored).
    Raises :class:`~dynocc.factory.tools.query.QueryError` for a bad predicate.
    """
    if colour_by not in ("order", "confidence"):
        raise ValueError(f"colour_by must be 'order' or 'confidence', got {colour_by!r}")
    con = connect(data, storage_options, with_images=True)
    target = _out_root(out, out_storage_options if out_storage_options is not None else storage_options)
    gallery = Gallery(out=target.url, index="")
    try:
        columns = {r[0] for r in con.execute("DESCRIBE frames").fetchall()}
        sql = select_sql(where, limit, order=True)
        for batch in iter_batches(con, sql, batch_rows=16):
            for row in batch.to_pylist():
                key = frame_key(row["dataset"], row["video_id"], row["frame_index"])
                n = len(row["pair_ordinal"])
                lines = None
                if colour_by == "confidence":
                    conf = row.get("pair_confidence")
                    lines = confidence_rgb(np.full(n, np.nan) if conf is None else np.asarray(conf, np.float64))
                pic = draw_pairs(decode_rgb(row["image"]), row["pair_ya"], row["pair_xa"], row["pair_yb"],
                                 row["pair_xb"], row["pair_ordinal"], line_rgb=lines)
                overlay_rel = f"images/{key}.png"
                target.put(overlay_rel, encode_png(pic))
                depth_rel = None
                if "depth_png" in columns and row.get("depth_png"):
                    depth_rel = f"images/{key}.depth.png"
                    target.put(depth_rel, encode_png(depth_colour(row["depth_png"], pic.shape[:2])))
                gallery.entries.append(GalleryEntry(row["dataset"], row["video_id"], int(row["frame_index"]), n,
                                                    overlay_rel, depth_rel, pic.shape[1], pic.shape[0]))
    finally:
        con.close()
    source = data if isinstance(data, (str, os.PathLike)) else ", ".join(map(str, data))
    page = _html(gallery.entries, title, os.fspath(source), where)
    gallery.index = target.put("index.html", page.encode("utf-8"))
    return gallery
