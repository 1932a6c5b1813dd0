"""Per-step training metrics: ``OUT/metrics.csv`` (any fsspec URL) and TensorBoard when available.

On resume the CSV keeps the rows up to the checkpoint's step (rows a killed run wrote after its
last checkpoint are dropped, they are trained again), so the loss curve continues with the next
step number. The CSV is rewritten whole at each flush (object stores cannot append).
"""

from __future__ import annotations

import csv
import io
import os
from typing import Optional

from dynocc.factory.io.storage import is_local, put_url, url_fs
from dynocc.factory.io.storage import join_url as join

COLUMNS = ("step", "loss", "accuracy", "pairs_ordered", "pairs_kept", "pairs_equal", "lr", "elapsed_s")


def read_metrics(out: str, storage_options: Optional[dict] = None) -> list[dict]:
    fs, path = url_fs(join(out, "metrics.csv"), storage_options)
    if not fs.exists(path):
        return []
    text = fs.cat_file(path).decode()
    ints = {"step", "pairs_ordered", "pairs_kept", "pairs_equal"}
    return [{k: (int(float(v)) if k in ints else float(v)) for k, v in r.items()}
            for r in csv.DictReader(io.StringIO(text))]


def _tensorboard(logdir: str, purge_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            return None
    return SummaryWriter(logdir, purge_step=purge_step)


class MetricsLog:
    def __init__(self, out: str, start_step: int = 0, storage_options: Optional[dict] = None,
                 tensorboard: bool = True):
        self.out = out
        self.storage_options = storage_options
        self.rows = [r for r in read_metrics(out, storage_options) if r["step"] <= start_step]
        self.elapsed0 = self.rows[-1]["elapsed_s"] if self.rows else 0.0
        local = is_local(out)
        self.tb = _tensorboard(os.path.join(out.removeprefix("file://"), "tensorboard"), start_step + 1) \
            if tensorboard and local else None

    def add(self, row: dict) -> None:
        row = {k: row[k] for k in COLUMNS}
        row["elapsed_s"] = self.elapsed0 + row["elapsed_s"]
        self.rows.append(row)
        if self.tb is not None:
            for k in ("loss", "accuracy", "lr"):
                self.tb.add_scalar(f"train/{k}", row[k], row["step"])

    def flush(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        put_url(join(self.out, "metrics.csv"), buf.getvalue().encode(), self.storage_options)
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        self.flush()
        if self.tb is not None:
            self.tb.close()
