"""A pytest example for CI that calls utnet-diag's Python API instead of the CLI.

Copy into your UTNet repository's tests and point ``REPO``/``BATCH``/``CONFIG`` at your files;
with the defaults below (None) it runs on the embedded reference model and synthetic batch.
Run: ``python -m pytest -q examples/ci/test_utnet_gate.py``.
"""

from __future__ import annotations

import os

import pytest

import utnet_diag

REPO = os.environ.get("UTNET_REPO")  # your UTNet checkout (src.models.utnet.UTNet), or None
BATCH = os.environ.get("UTNET_BATCH")  # a small committed batch .pt/.npz, or None
CONFIG = os.environ.get("UTNET_CONFIG")  # config/config.yaml, or None (preset "config")
CHECKPOINT = os.environ.get("UTNET_CHECKPOINT")


@pytest.fixture(scope="module")
def loaded():
    """One model load shared by the tests below."""
    return utnet_diag.load_model(CHECKPOINT, repo=REPO, device="cpu")


@pytest.fixture(scope="module")
def gate_report(loaded):
    return utnet_diag.gate(model=loaded, batch=BATCH, config=CONFIG, device="cpu")


def _failures(report) -> list[str]:
    return [f"{c.id}: {c.message} ({c.hint})" for c in report.checks if c.status.value == "fail"]


def test_gate_has_no_failed_check(gate_report) -> None:
    assert not _failures(gate_report), "\n".join(_failures(gate_report))


def test_every_loss_term_is_finite(gate_report) -> None:
    assert gate_report.check("loss_finite").status.value == "pass"


def test_gradient_reaches_the_backbone(gate_report) -> None:
    reach = gate_report.check("grad_reach")
    assert reach.status.value == "pass", reach.message


def test_mpjpe_is_reported_in_millimetres(gate_report) -> None:
    metrics = gate_report.sections["metrics"]
    assert metrics["samples"] > 0 and metrics["mpjpe_mm"] >= metrics["pa_mpjpe_mm"] >= 0


def test_gradients_do_not_change_the_weights(loaded) -> None:
    before = [p.detach().clone() for p in loaded.model.parameters()]
    utnet_diag.grad_flow(loaded, BATCH, config=CONFIG, device="cpu")
    after = list(loaded.model.parameters())
    assert all(a.equal(b) for a, b in zip(before, after))
