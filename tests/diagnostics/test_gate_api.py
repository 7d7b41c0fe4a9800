"""The gate as a Python API: one load, one forward, every family of checks."""

from __future__ import annotations

import pytest
import torch
import utnet_toy

import utnet_diag
from utnet_diag.report.result import Status


def test_embedded_default_gate_has_no_failure() -> None:
    report = utnet_diag.gate()
    assert report.command == "gate" and report.exit_code() == 0
    families = {c.family for c in report.checks}
    assert {"batch", "loss", "prediction", "grad"} <= families
    for section in ("run", "batch", "loss_table", "metrics", "grad_modules", "grad_terms"):
        assert section in report.sections
    assert report.check("grad_reach").status is Status.PASS
    assert report.sections["grad_terms"]["boundary"]["guessed"] is False


@pytest.mark.slow
def test_gate_runs_the_model_forward_once(toy_batch) -> None:
    loaded = utnet_diag.load_model(model_factory="utnet_toy:build")
    calls = []
    original = loaded.forward

    def counting(batch):
        calls.append(1)
        return original(batch)

    loaded.forward = counting
    report = utnet_diag.gate(model=loaded, batch=toy_batch)
    assert len(calls) == 1
    assert report.check("loss_finite").status is Status.PASS


@pytest.mark.slow
def test_gate_on_a_nan_model_fails_once_per_family(toy_batch) -> None:
    report = utnet_diag.gate(model=utnet_toy.ToyUTNet(poison="refine"), batch=toy_batch)
    assert report.exit_code() == 1
    assert report.check("loss_finite").status is Status.FAIL
    assert report.check("grad_finite").status is Status.FAIL
    assert report.sections["nan_origin"]["where"] == "refine.1"


@pytest.mark.slow
def test_public_api_functions_return_reports(toy_batch) -> None:
    model = utnet_toy.ToyUTNet()
    assert utnet_diag.loss_breakdown(model, toy_batch).command == "loss-breakdown"
    assert utnet_diag.grad_flow(model, toy_batch).command == "grad-flow"


def test_a_model_without_checkpoint_is_built_from_a_fixed_seed_and_leaves_the_rng_alone():
    """Two runs on an untrained user model see the same random weights (a CI gate must be
    reproducible), and the caller's random state is not touched."""
    import random

    import numpy as np

    torch.manual_seed(123)
    before = (torch.random.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    first = utnet_diag.load_model(model_factory="utnet_toy:build")
    after = (torch.random.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    assert torch.equal(before[0], after[0]) and before[1] == after[1]
    assert np.array_equal(before[2], after[2])
    # (the toy seeds the global generator in its constructor: without the fork it would leak)
    from utnet_diag.model.sources import seeded_init

    def linear() -> torch.Tensor:
        return torch.nn.Linear(8, 8).weight.detach().clone()

    torch.manual_seed(999)  # another caller state: the model is the same anyway
    with seeded_init(0):
        a = linear()
    torch.manual_seed(5)
    with seeded_init(0):
        b = linear()
    with seeded_init(1):
        c = linear()
    assert torch.equal(a, b) and not torch.equal(a, c)
    pairs = zip(first.model.state_dict().values(), utnet_diag.load_model(
        model_factory="utnet_toy:build").model.state_dict().values())  # fmt: skip
    assert all(torch.equal(x, y) for x, y in pairs)
