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
