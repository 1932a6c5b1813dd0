"""The ranking loss (DynOcc eqs. 5-6, ReDWeb eqs. 2-3): values, gradients, hard pairs, sign.

The network predicts inverse depth z (larger = closer); ordinal +1 means A is closer, so an ordered
pair costs log(1 + exp(-r (zA - zB))) and an equal pair (zA - zB)^2.
"""

from __future__ import annotations

import math

import pytest
import torch

from dynocc.trainer.loss import gather_pairs, pair_losses, ranking_loss


def _map(values):
    """A (1, 1, 1, W) map whose pixel x holds values[x]."""
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1).requires_grad_(True)


def _pairs(*pairs):
    """pairs of (xA, xB, r) on row 0 -> coordinate tensors (1, P)."""
    xa = torch.tensor([[p[0] for p in pairs]])
    xb = torch.tensor([[p[1] for p in pairs]])
    zero = torch.zeros_like(xa)
    return zero, xa, zero, xb, torch.tensor([[p[2] for p in pairs]], dtype=torch.int8)


def test_pair_losses_pin_the_values_of_eq_6():
    za = torch.tensor([2.0, 2.0, 2.0, 0.5])
    zb = torch.tensor([1.0, 1.0, 1.0, 0.5])
    r = torch.tensor([1, -1, 0, 0], dtype=torch.int8)
    got = pair_losses(za, zb, r)
    want = [math.log(1 + math.exp(-1)), math.log(1 + math.exp(1)), 1.0, 0.0]
    assert got.tolist() == pytest.approx(want, rel=1e-6)


def test_gradients_of_an_ordered_and_an_equal_pair():
    z = _map([2.0, 1.0, 3.0, 0.5])
    ya, xa, yb, xb, r = _pairs((0, 1, 1), (2, 3, 0))  # A=x0 closer than x1; x2 equal to x3
    loss, stats = ranking_loss(z, ya, xa, yb, xb, r, keep_hard=1.0, reduction="sum")
    loss.backward()
    s = 1 / (1 + math.exp(1.0))  # sigmoid(-(zA - zB)) for zA - zB = 1
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)) + 2.5 ** 2)
    assert z.grad.view(-1).tolist() == pytest.approx([-s, s, 2 * 2.5, -2 * 2.5])
    assert stats == {"n_ordered": 1, "n_kept": 1, "n_equal": 1, "accuracy": 1.0}


def test_descending_the_loss_makes_the_closer_point_larger():
    """Sign convention: r = +1 (A closer) pushes zA above zB, i.e. z is inverse depth."""
    z = _map([0.0, 0.0])
    ya, xa, yb, xb, r = _pairs((0, 1, 1))
    for _ in range(20):
        loss, _ = ranking_loss(z, ya, xa, yb, xb, r)
        loss.backward()
        with torch.no_grad():
            z -= 0.5 * z.grad
            z.grad = None
    assert z[0, 0, 0, 0] > z[0, 0, 0, 1]


def test_the_easiest_quarter_of_ordered_pairs_is_ignored():
    # four ordered pairs with zA - zB = 3, 1, 0, -2 (all r = +1): losses ascending in that order
    z = _map([3.0, 0.0, 1.0, 0.0, 0.0, 0.0, -2.0, 0.0, 5.0, 5.0])
    ya, xa, yb, xb, r = _pairs((0, 1, 1), (2, 3, 1), (4, 5, 1), (6, 7, 1), (8, 9, 0))
    loss, stats = ranking_loss(z, ya, xa, yb, xb, r, keep_hard=0.75, reduction="mean")
    loss.backward()
    sp = lambda d: math.log(1 + math.exp(-d))  # noqa: E731
    assert stats["n_ordered"] == 4 and stats["n_kept"] == 3 and stats["n_equal"] == 1
    assert loss.item() == pytest.approx((sp(1) + sp(0) + sp(-2) + 0.0) / 4)
    g = z.grad.view(-1)
    assert g[0] == 0 and g[1] == 0  # the easiest pair (d = 3) gets no gradient
    assert g[2] != 0 and g[6] != 0
    assert stats["accuracy"] == pytest.approx(2 / 4)  # d = 3, 1 right; d = 0, -2 wrong


@pytest.mark.parametrize("n, keep, kept", [(5, 0.75, 4), (4, 1.0, 4), (8, 0.75, 6), (1, 0.75, 1), (10, 0.5, 5)])
def test_how_many_ordered_pairs_are_kept(n, keep, kept):
    z = _map([float(i) for i in range(2 * n)])
    _, stats = ranking_loss(z, *_pairs(*[(2 * i, 2 * i + 1, 1) for i in range(n)]), keep_hard=keep)
    assert stats["n_kept"] == kept


def test_padding_is_masked_out_and_sum_averages_over_images():
    z = torch.zeros(2, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        z[0, 0, 0, 0] = 1.0
        z[1, 0, 1, 1] = 2.0
    ya = torch.tensor([[0, 0], [1, 0]])
    xa = torch.tensor([[0, 1], [1, 0]])
    yb = torch.tensor([[1, 1], [0, 0]])
    xb = torch.tensor([[1, 0], [0, 1]])
    r = torch.tensor([[1, 1], [0, -1]], dtype=torch.int8)
    mask = torch.tensor([[True, False], [True, False]])
    loss, stats = ranking_loss(z, ya, xa, yb, xb, r, mask, keep_hard=1.0, reduction="sum")
    assert stats["n_ordered"] == 1 and stats["n_equal"] == 1
    assert loss.item() == pytest.approx((math.log(1 + math.exp(-1)) + 4.0) / 2)
    za, zb = gather_pairs(z, ya, xa, yb, xb)
    assert za.tolist() == [[1.0, 0.0], [2.0, 0.0]] and zb.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_no_pairs_gives_a_zero_loss_that_still_backpropagates():
    z = torch.randn(1, 1, 4, 4, requires_grad=True)
    coords = torch.zeros(1, 3, dtype=torch.long)
    loss, stats = ranking_loss(z, coords, coords, coords, coords, torch.zeros(1, 3, dtype=torch.int8),
                               torch.zeros(1, 3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and z.grad is not None and stats["n_ordered"] == 0
    assert math.isnan(stats["accuracy"])
