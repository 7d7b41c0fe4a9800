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


def test_each_terms_frontier_lies_below_its_own_nodes():
    # Two terms over one shared trunk, each with nodes of its own above it: their frontiers
    # are the edges into the trunk's output, not their roots (a backward from the root would
    # give the same gradient at twice the cost of the shared part saved).
    from utnet_diag.diagnostics.grad.plan import GraphWalk, reach_sets
    from utnet_diag.diagnostics.grad.strategies import grad, term_frontiers

    torch.manual_seed(0)
    trunk, head_a, head_b = torch.nn.Linear(4, 6), torch.nn.Linear(6, 2), torch.nn.Linear(6, 3)
    x = torch.randn(5, 4)
    features = torch.tanh(trunk(x))
    shared = features * 2.0  # a shared node between the boundary and the terms
    terms = {"a": head_a(shared).pow(2).mean(), "b": head_b(shared).abs().sum(),
             "c": (shared.sum() * 0.5).exp()}  # fmt: skip
    weights = {"a": 1.0, "b": 0.3, "c": 2.0}
    params = [*trunk.parameters(), *head_a.parameters(), *head_b.parameters()]
    walk = GraphWalk([t.grad_fn for t in terms.values()])
    masks: dict = {}
    reach_sets(terms, {id(p): i for i, p in enumerate(params)}, features, walk, masks)
    total = sum(weights[k] * terms[k] for k in terms)
    with term_frontiers(walk, list(terms), weights, terms, features, masks,
                        1 << len(params)) as frontiers:  # fmt: skip
        grad(total, [features])
    for name, term in terms.items():
        assert frontiers[name] and all(node is not term.grad_fn for node, _ in frontiers[name])
        assert {node for node, _ in frontiers[name]} == {shared.grad_fn}
        # the recorded gradient is the term's own, weighted, at the shared node
        (own,) = torch.autograd.grad(weights[name] * term, [shared], retain_graph=True)
        (recorded,) = frontiers[name].values()
        assert torch.allclose(recorded, own)
