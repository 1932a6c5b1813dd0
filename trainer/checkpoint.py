"""Checkpoints of a training run, through fsspec (any URL), and reading them back.

Layout under a run's ``--out``::

    checkpoints/step-00001000.pt   torch.save({"model", "optimizer", "step", "config"})
    checkpoints/latest.json        {"step": 1000, "file": "step-00001000.pt"} -- written last

A checkpoint file appears whole or not at all (:func:`dynocc.factory.io.storage.put_url`: temporary
name + rename on local disks; object stores publish an upload only when complete), and ``latest.json`` is written only after it, so a
run killed at any point resumes from a complete checkpoint. ``model`` holds the plain (not DDP)
state dict: ``encoder.*`` keys are torchvision's ResNet names.
"""

from __future__ import annotations

import io
import json
from typing import Optional

import torch

from dynocc.factory.io.storage import join_url as join
from dynocc.factory.io.storage import put_url, url_fs

CKPT_DIR = "checkpoints"
LATEST = "latest.json"


def _get(url: str, storage_options: Optional[dict] = None) -> bytes:
    fs, path = url_fs(url, storage_options)
    return fs.cat_file(path)


def save_checkpoint(out: str, step: int, model_state: dict, optimizer_state: Optional[dict], config: dict,
                    keep: int = 3, storage_options: Optional[dict] = None) -> str:
    """Write ``step-<step>.pt`` then ``latest.json``; delete all but the ``keep`` newest; return the URL."""
    buf = io.BytesIO()
    torch.save({"model": model_state, "optimizer": optimizer_state, "step": int(step), "config": config}, buf)
    name = f"step-{int(step):08d}.pt"
    url = join(out, CKPT_DIR, name)
    put_url(url, buf.getvalue(), storage_options)
    put_url(join(out, CKPT_DIR, LATEST), json.dumps({"step": int(step), "file": name}).encode(), storage_options)
    fs, root = url_fs(join(out, CKPT_DIR), storage_options)
    fs.invalidate_cache(root)
    olds = sorted(p for p in fs.glob(join(root, "step-*.pt")))[:-keep]
    for p in olds:
        if not p.endswith(name):
            fs.rm(p)
    return url


def latest_checkpoint(out: str, storage_options: Optional[dict] = None) -> Optional[str]:
    """URL of the run's newest complete checkpoint, or None."""
    fs, root = url_fs(join(out, CKPT_DIR), storage_options)
    fs.invalidate_cache(root)
    if not fs.exists(join(root, LATEST)):
        return None
    info = json.loads(fs.cat_file(join(root, LATEST)))
    return join(out, CKPT_DIR, info["file"])


def checkpoint_step(url: str) -> int:
    """The step in a checkpoint's file name (``step-00001000.pt`` -> 1000)."""
    return int(url.rsplit("/", 1)[-1].removeprefix("step-").removesuffix(".pt"))


def resolve_checkpoint(run_or_file: str, storage_options: Optional[dict] = None) -> str:
    """A checkpoint file as given, or the latest checkpoint of a run folder."""
    fs, path = url_fs(run_or_file, storage_options)
    if fs.isfile(path):
        return run_or_file
    found = latest_checkpoint(run_or_file, storage_options)
    if found is None:
        raise FileNotFoundError(f"no checkpoint at {run_or_file} (neither a file nor a run with "
                                f"{CKPT_DIR}/{LATEST})")
    return found


def load_checkpoint(run_or_file: str, storage_options: Optional[dict] = None) -> dict:
    """The checkpoint dict (``model``, ``optimizer``, ``step``, ``config``), tensors on the CPU."""
    url = resolve_checkpoint(run_or_file, storage_options)
    ckpt = torch.load(io.BytesIO(_get(url, storage_options)), map_location="cpu", weights_only=True)
    ckpt["url"] = url
    return ckpt
