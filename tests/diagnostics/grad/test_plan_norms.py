"""The graph walk's reentrant-checkpoint flag, and exact non-zero counts past float32's 2**24."""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from utnet_diag.diagnostics.grad.norms import GradNorms
from utnet_diag.diagnostics.grad.plan import GraphWalk


def test_only_a_reentrant_checkpoint_raises_the_flag():
    layer = torch.nn.Linear(3, 3)
    x = torch.randn(2, 3, requires_grad=True)
    plain = layer(x).sum()
    assert not GraphWalk([plain.grad_fn]).reentrant_checkpoint
    later = checkpoint(layer, x, use_reentrant=False).sum()
    assert not GraphWalk([later.grad_fn]).reentrant_checkpoint
    reentrant = checkpoint(layer, x, use_reentrant=True).sum()
    assert GraphWalk([reentrant.grad_fn]).reentrant_checkpoint


def test_non_zero_counts_are_exact_past_two_to_the_24():
    # float32 counts stop at 2**24 (16777216 + 1 == 16777216 in float32): bigger tensors are
    # counted another way
    n = (1 << 24) + 3
    grad = torch.ones(n)
    grad[:2] = 0.0
    norms = GradNorms([torch.zeros(n)])
    norms.add([0], [grad])
    grad_norms, nonzero, _ = norms.read()
    assert nonzero == [n - 2]
    assert abs(grad_norms[0] - (n - 2) ** 0.5) < 1e-3


def test_the_anchor_is_the_largest_weighted_term():
    from utnet_diag.diagnostics.grad.strategies import _anchor

    terms = {"loss_2d": torch.tensor(300.0), "loss_3d_joint": torch.tensor(7000.0),
             "loss_aux": torch.tensor(-9e5)}  # fmt: skip
    active = {"loss_2d": 1.0, "loss_3d_joint": 0.05, "loss_aux": 1e-3}
    # weighted: 300, 350, |-900|: the size counts, not the sign
    assert _anchor(list(terms), active, terms) == "loss_aux"
    assert _anchor(["loss_2d", "loss_3d_joint"], active, terms) == "loss_3d_joint"
    assert _anchor([], active, terms) is None
