"""The gate as a Python API: one load, one forward, every family of checks."""

from __future__ import annotations

import pytest
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
