"""grad-flow's default path on the reference UTNet: per-term boundary gradients (the largest
term's by subtraction from the total's) agree with exact mode's, and weights are untouched."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from utnet_diag.diagnostics.grad_flow import grad_flow
from utnet_diag.diagnostics.runner import load_inputs
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
