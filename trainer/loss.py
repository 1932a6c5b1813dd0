"""The ranking loss of DynOcc eqs. 5-6 / ReDWeb eqs. 2-3, with ReDWeb's hard-pair rule.

Sign convention. The network predicts relative **inverse depth** z (larger = closer). The
project's ordinal r is +1 when A is closer than B, −1 when B is closer, 0 for about equal depth,
so a correct prediction has ``r·(zA − zB) > 0`` and, per pair,

* ordered (r = ±1): ``log(1 + exp(−r·(zA − zB)))``  — DynOcc eq. 6 exactly (its z grows toward
  the camera: o = +1 "i closer" is penalised by ``log(1+exp(−z_i + z_j))``); ReDWeb eq. 3 is the
  same function with its opposite label sign (+1 = further) and z as depth;
* equal (r = 0): ``(zA − zB)²``.

Hard pairs (ReDWeb eq. 2, DynOcc 4.1): at each step the ordered pairs of the batch are sorted by
their loss and only the hardest ``keep_hard`` (0.75: the easiest 25% get weight 0) count; equal
pairs always count. ``reduction='mean'`` divides by the number of counted pairs (ours: the
learning rate does not depend on how many pairs an image has); ``'sum'`` is the papers' per-image
sum, averaged over the images of the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gather_pairs(z: torch.Tensor, ya, xa, yb, xb) -> tuple[torch.Tensor, torch.Tensor]:
    """z (N, 1, H, W) or (N, H, W); coordinates (N, P) -> (zA, zB), each (N, P)."""
    if z.dim() == 4:
        z = z[:, 0]
    n, h, w = z.shape
    flat = z.reshape(n, h * w)
    ia = ya.long() * w + xa.long()
    ib = yb.long() * w + xb.long()
    return flat.gather(1, ia), flat.gather(1, ib)


def pair_losses(za: torch.Tensor, zb: torch.Tensor, ordinal: torch.Tensor) -> torch.Tensor:
    """Per-pair loss before the hard-pair rule (eq. 6), same shape as ``za``."""
    r = ordinal.to(za.dtype)
    d = za - zb
    return torch.where(r != 0, F.softplus(-r * d), d * d)


def ranking_loss(z: torch.Tensor, ya, xa, yb, xb, ordinal, mask=None, keep_hard: float = 0.75,
                 reduction: str = "mean") -> tuple[torch.Tensor, dict]:
    """Loss of one batch and counts: ``n_ordered``, ``n_kept``, ``n_equal``, ``accuracy`` (share of
    ordered pairs with ``r·(zA − zB) > 0``, before the hard-pair rule)."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    za, zb = gather_pairs(z, ya, xa, yb, xb)
    mask = torch.ones_like(za, dtype=torch.bool) if mask is None else mask.bool()
    losses = pair_losses(za, zb, ordinal)
    ordered = mask & (ordinal != 0)
    equal = mask & (ordinal == 0)
    l_ord = losses[ordered]
    n_ord = int(l_ord.numel())
    n_kept = math.ceil(keep_hard * n_ord - 1e-9) if n_ord else 0
    kept = torch.topk(l_ord, n_kept, sorted=False).values if n_kept < n_ord else l_ord
    l_eq = losses[equal]
    total = kept.sum() + l_eq.sum() + z.sum() * 0.0  # keeps the graph when there are no pairs
    if reduction == "mean":
        loss = total / max(n_kept + int(l_eq.numel()), 1)
    else:
        loss = total / z.shape[0]
    with torch.no_grad():
        r = ordinal[ordered].to(za.dtype)
        right = (r * (za[ordered] - zb[ordered]) > 0).sum().item()
    stats = {"n_ordered": n_ord, "n_kept": n_kept, "n_equal": int(l_eq.numel()),
             "accuracy": right / n_ord if n_ord else float("nan")}
    return loss, stats
