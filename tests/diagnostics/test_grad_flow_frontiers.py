"""grad-flow's default path on the reference UTNet: per-term boundary gradients taken from where
each term's own part of the graph ends equal a backward from the term itself."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
from torch.autograd.graph import GradientEdge

from utnet_diag.diagnostics.grad_flow import GraphWalk, _capture_frontiers, grad_flow
from utnet_diag.diagnostics.runner import forward_pass, load_inputs, training_step
from utnet_diag.model.reference import build_reference
from utnet_diag.synthetic.sample import make_sample_batch


@pytest.fixture(scope="module")
def reference_inputs():
    batch = make_sample_batch(4, seed=2)
    return load_inputs(batch=batch, device="cpu", model=build_reference())


def _state_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_frontier_gradients_equal_a_backward_from_each_term(reference_inputs):
    inputs = reference_inputs
    weights = inputs.config.weights
    with training_step(inputs.model):
        fwd = forward_pass(inputs, grad=True)
        terms, features = fwd.terms.terms, fwd.boundary.features
        names = [k for k in terms if weights.weight_of(k) != 0]
        assert names == ["loss_2d", "loss_3d_joint", "loss_prior", "loss_aux"]
        walk = GraphWalk([t.grad_fn for t in terms.values()])
        captured, handles = _capture_frontiers(walk, terms, names, names, features)
        torch.autograd.grad(fwd.terms.total, [features], retain_graph=True)
        for handle in handles:
            handle.remove()
        assert set(captured) == set(names)  # every term has a private part here
        # aux's own part (MSE, 6D -> matrix -> axis-angle) ends at the coarse head's outputs
        aux_private = _private_nodes(walk, terms, names, "loss_aux")
        assert {"Atan2Backward0", "MseLossBackward0"} <= {type(n).__name__ for n in aux_private}
        for name in names:
            edges = [GradientEdge(child, nr) for child, nr in captured[name]]
            (ours,) = torch.autograd.grad(edges, [features], list(captured[name].values()),
                                          retain_graph=True)  # fmt: skip
            (direct,) = torch.autograd.grad(weights.weight_of(name) * terms[name], [features],
                                            retain_graph=True)  # fmt: skip
            assert direct.abs().max() > 0, name
            assert torch.allclose(ours, direct, rtol=1e-5, atol=1e-6 * float(direct.abs().max()))


def _private_nodes(walk, terms, names, name):
    """Nodes reached from ``name``'s root and from no other active term's root."""

    def below(root):
        seen, stack = set(), [root]
        while stack:
            node = stack.pop()
            if node is not None and node not in seen:
                seen.add(node)
                stack.extend(c for c, _ in walk.children[node])
        return seen

    others = set().union(*(below(terms[k].grad_fn) for k in names if k != name))
    return below(terms[name].grad_fn) - others


def test_a_term_inside_another_has_no_private_part():
    x = torch.randn(5, requires_grad=True)
    inner = x.sin().sum()
    outer = inner * 2 + x.cos().sum()
    walk = GraphWalk([inner.grad_fn, outer.grad_fn])
    frontiers = walk.frontiers({"inner": inner.grad_fn, "outer": outer.grad_fn})
    assert "inner" not in frontiers  # the outer term reaches it: no part of its own
    children = {child for _, _, child, _ in frontiers["outer"]}
    assert inner.grad_fn in children  # outer's own part ends where inner begins
    # a shared boundary stops every private part
    assert walk.frontiers({"outer": outer.grad_fn}, shared=outer.grad_fn) == {}


def test_default_matches_exact_on_the_reference_model(reference_inputs):
    model = reference_inputs.model
    model.eval()
    before = _state_hash(model)
    fast = grad_flow(reference_inputs.loaded, reference_inputs.batch)
    exact = grad_flow(reference_inputs.loaded, reference_inputs.batch, exact=True)
    assert _state_hash(model) == before and not model.training
    assert all(p.grad is None for p in model.parameters())
    fast_terms = {t["term"]: t for t in fast.sections["grad_terms"]["terms"]}
    for row in exact.sections["grad_terms"]["terms"]:
        got = fast_terms[row["term"]]
        assert got["reaches"] == row["reaches"]
        if row["boundary_norm"] is not None:
            assert math.isclose(got["boundary_norm"], row["boundary_norm"], rel_tol=1e-4)
    fast_cos = {(c["a"], c["b"]): c["cosine"] for c in fast.sections["grad_terms"]["conflicts"]}
    exact_cos = {(c["a"], c["b"]): c["cosine"] for c in exact.sections["grad_terms"]["conflicts"]}
    assert fast_cos.keys() == exact_cos.keys() and len(fast_cos) == 6
    for pair, cosine in exact_cos.items():
        assert math.isclose(fast_cos[pair], cosine, abs_tol=1e-4), pair
    fast_groups = {g["name"]: g for g in fast.sections["grad_modules"]["groups"]}
    for group in exact.sections["grad_modules"]["groups"]:
        assert math.isclose(fast_groups[group["name"]]["grad_norm"], group["grad_norm"],
                            rel_tol=1e-4), group["name"]  # fmt: skip
        # exact sums per-term gradients: an element may round to 0 in one order only
        assert math.isclose(fast_groups[group["name"]]["no_grad_share"], group["no_grad_share"],
                            abs_tol=1e-3)  # fmt: skip


def test_grad_summary_counts_zeros_exactly():
    from utnet_diag.diagnostics.grad_flow import _GradSummary

    params = [torch.ones(3), torch.ones(4, dtype=torch.float16), torch.ones(2)]
    grads = [torch.tensor([0.0, -0.0, float("nan")]), torch.zeros(4, dtype=torch.float16), None]
    grads[1][1] = 2.0
    for chosen in ([grads[0], None, None], grads):  # the float32-only path and the mixed one
        summary = _GradSummary(params)
        summary.add(range(3), chosen)
        norms, nonzero, param_norms = summary.read()
        assert nonzero[0] == 1 and math.isnan(norms[0])  # NaN counts as non-zero
        assert norms[2] is None and nonzero[2] == 0
        assert param_norms == pytest.approx([math.sqrt(3), 2.0, math.sqrt(2)])
    assert nonzero[1] == 1 and norms[1] == 2.0
