"""grad-flow's default path on the reference UTNet: per-term boundary gradients (the largest
term's by subtraction from the total's) agree with exact mode's, and weights are untouched."""

from __future__ import annotations

import math

import pytest
import torch
import utnet_toy

from utnet_diag.diagnostics.grad_flow import grad_flow
from utnet_diag.diagnostics.runner import load_inputs
from utnet_diag.model.reference import build_reference
from utnet_diag.synthetic.sample import make_sample_batch


@pytest.fixture(scope="module")
def reference_inputs():
    batch = make_sample_batch(4, seed=2)
    return load_inputs(batch=batch, device="cpu", model=build_reference())


def test_default_matches_exact_on_the_reference_model(reference_inputs):
    model = reference_inputs.model
    model.eval()
    before = utnet_toy.state_hash(model)
    fast = grad_flow(reference_inputs.loaded, reference_inputs.batch)
    exact = grad_flow(reference_inputs.loaded, reference_inputs.batch, exact=True)
    assert utnet_toy.state_hash(model) == before and not model.training
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
    from utnet_diag.diagnostics.grad.norms import GradNorms

    params = [torch.ones(3), torch.ones(4, dtype=torch.float16), torch.ones(2)]
    grads = [torch.tensor([0.0, -0.0, float("nan")]), torch.zeros(4, dtype=torch.float16), None]
    grads[1][1] = 2.0
    for chosen in ([grads[0], None, None], grads):  # the float32-only path and the mixed one
        summary = GradNorms(params)
        summary.add(range(3), chosen)
        norms, nonzero, param_norms = summary.read()
        assert nonzero[0] == 1 and math.isnan(norms[0])  # NaN counts as non-zero
        assert norms[2] is None and nonzero[2] == 0
        assert param_norms == pytest.approx([math.sqrt(3), 2.0, math.sqrt(2)])
    assert nonzero[1] == 1 and norms[1] == 2.0


class _FrozenNormNet(torch.nn.Module):
    """A model whose ``train()`` keeps its norm layer in eval mode (a common override)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))
        self.norm = torch.nn.BatchNorm1d(3)

    def train(self, mode: bool = True) -> _FrozenNormNet:
        super().train(mode)
        self.norm.eval()
        return self


def test_training_step_sets_modes_like_train_and_restores_them():
    from utnet_diag.diagnostics.runner import training_step

    plain = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Sequential(torch.nn.Dropout()))
    plain.eval()
    plain[1].train()  # a mixed state, restored module by module
    with training_step(plain):
        assert all(m.training for m in plain.modules())
    assert [m.training for m in plain.modules()] == [False, False, True, True]

    frozen = _FrozenNormNet().eval()
    with training_step(frozen):  # the override runs: the norm layer stays in eval
        assert frozen.training and frozen.body.training and not frozen.norm.training
    assert not any(m.training for m in frozen.modules())


def test_garbage_collector_state_is_restored(reference_inputs):
    import gc

    assert gc.isenabled()
    grad_flow(reference_inputs.loaded, reference_inputs.batch)
    assert gc.isenabled()
    gc.disable()
    try:
        grad_flow(reference_inputs.loaded, reference_inputs.batch)
        assert not gc.isenabled()  # left off when the caller had it off
    finally:
        gc.enable()


def test_training_step_restores_running_stats_but_not_constant_mano_data():
    from utnet_diag.diagnostics.runner import constant_buffers, training_step
    from utnet_diag.mano import ManoLayer

    class SmplxLike(torch.nn.Module):  # stands for smplx's body models (module "smplx.*")
        pass

    SmplxLike.__module__ = "smplx.body_models"
    mano = ManoLayer()
    assert constant_buffers(mano) and constant_buffers(SmplxLike())
    assert not constant_buffers(torch.nn.BatchNorm1d(3)) and not constant_buffers(
        torch.nn.Linear(2, 2)
    )

    model = torch.nn.ModuleDict({"norm": torch.nn.BatchNorm1d(3), "mano": mano})
    stats = model["norm"].running_mean.clone()
    with training_step(model):
        model["norm"](torch.randn(8, 3) + 5.0)  # running statistics move in place
        assert not torch.equal(model["norm"].running_mean, stats)
        mano.hands_mean.add_(1.0)  # not something a forward does: shows MANO data is not saved
    assert torch.equal(model["norm"].running_mean, stats)  # restored
    assert torch.equal(mano.hands_mean, ManoLayer().hands_mean + 1.0)  # not copied back


def test_term_frontiers_give_each_terms_boundary_gradient():
    # A hand-made graph with what the reference model has and more: frontier edges nested in
    # one another (the 2D term enters the shared graph twice, one entry below the other), a
    # term that feeds the boundary directly, a term whose root another term uses, and a
    # parameter reached both through the boundary and around it.
    from utnet_diag.diagnostics.grad.plan import GraphWalk, reach_sets
    from utnet_diag.diagnostics.grad.strategies import from_frontier, term_frontiers

    torch.manual_seed(0)
    w_trunk, w_head, w_side = (torch.randn(4, 4, requires_grad=True) for _ in range(3))
    x = torch.randn(3, 4)
    features = torch.tanh(x @ w_trunk)  # the boundary
    hidden = torch.sin(features @ w_head)  # shared by every head term
    joints = hidden.exp()  # shared by 2d and 3d
    cam = hidden[:, :2] * 3.0  # the 2d term's own, entering above joints
    terms = {
        "loss_2d": (joints[:, :2] * cam).abs().sum(),
        "loss_3d_joint": (joints - 1.0).abs().sum(),
        "loss_aux": (features * 0.5).pow(2).sum() + (x @ w_side).sum(),  # boundary + bypass
    }
    terms["loss_prior"] = terms["loss_aux"] * 1.0  # its root is another term's
    weights = {"loss_2d": 0.01, "loss_3d_joint": 0.05, "loss_aux": 1.0, "loss_prior": 0.3}
    names = list(terms)
    total = sum(weights[k] * terms[k] for k in names)
    params = [w_trunk, w_head, w_side]
    param_bit = {id(p): i for i, p in enumerate(params)}
    walk = GraphWalk([t.grad_fn for t in terms.values()])
    masks: dict = {}
    reach_sets(terms, param_bit, features, walk, masks)
    zero = torch.zeros_like(features)
    with term_frontiers(walk, names, weights, terms, features, masks, 1 << 3) as frontiers:
        (g_total,) = torch.autograd.grad(total, [features], retain_graph=True)
    assert frontiers["loss_prior"] and len(frontiers["loss_2d"]) >= 2
    parts = {}
    for k in names:
        parts[k] = from_frontier(frontiers[k], features, zero)
        (expected,) = torch.autograd.grad(weights[k] * terms[k], [features], retain_graph=True)
        assert torch.allclose(parts[k], expected, rtol=1e-5, atol=1e-7), k
    assert torch.allclose(sum(parts.values()), g_total, rtol=1e-5, atol=1e-6)
    recorded = {k: {key: g.clone() for key, g in f.items()} for k, f in frontiers.items()}
    torch.autograd.grad(total, [features], retain_graph=True)  # the hooks are gone: no change
    for k, f in frontiers.items():
        assert f.keys() == recorded[k].keys()
        assert all(torch.equal(g, recorded[k][key]) for key, g in f.items())


@pytest.mark.slow
def test_cosines_and_boundary_norms_match_plain_autograd(reference_inputs):
    # Independently of the tool's backward strategies: each term's weighted gradient at the
    # trunk's output by torch.autograd.grad, and their cosines by F.cosine_similarity.
    from utnet_diag.diagnostics.runner import forward_pass, training_step

    model = reference_inputs.model
    with training_step(model, 0):
        fwd = forward_pass(reference_inputs, grad=True, seed=0)
        weights = fwd.config.weights
        features = fwd.boundary.features
        grads = {}
        for term, value in fwd.terms.terms.items():
            w = weights.weight_of(term)
            if w == 0 or not value.requires_grad:
                continue
            (g,) = torch.autograd.grad(w * value, [features], retain_graph=True, allow_unused=True)
            if g is not None:
                grads[term] = g.reshape(-1).double()
    for exact in (False, True):
        report = grad_flow(reference_inputs.loaded, reference_inputs.batch, exact=exact)
        rows = {t["term"]: t for t in report.sections["grad_terms"]["terms"]}
        for term, g in grads.items():
            assert math.isclose(rows[term]["boundary_norm"], float(g.norm()), rel_tol=1e-4), term
        conflicts = report.sections["grad_terms"]["conflicts"]
        assert len(conflicts) == len(grads) * (len(grads) - 1) // 2
        for c in conflicts:
            # eps far below the prior's boundary norm (about 1e-8: the default eps would clamp it)
            expected = torch.nn.functional.cosine_similarity(
                grads[c["a"]], grads[c["b"]], dim=0, eps=1e-30
            )
            assert math.isclose(c["cosine"], float(expected), abs_tol=1e-4), (exact, c)
