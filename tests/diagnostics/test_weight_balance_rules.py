"""loss_weights and grad_balance under the spec's recommended weights, the config preset, and a
planted imbalance: dominance by the mm term is information with the recommended weights, a
warning otherwise; a small aux term is not 'drowned'."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import utnet_toy

import utnet_diag
from utnet_diag.config import load_config
from utnet_diag.diagnostics.grad_flow import grad_flow
from utnet_diag.diagnostics.loss_breakdown import loss_breakdown
from utnet_diag.report.result import Status


def _with(preset: str, **weights: float):
    cfg = load_config(preset=preset)
    return replace(cfg, weights=replace(cfg.weights, **weights))


@pytest.mark.slow
def test_recommended_weights_report_dominance_as_information(toy_batch) -> None:
    report = loss_breakdown(
        utnet_toy.ToyUTNet(), toy_batch, config=load_config(preset="recommended")
    )
    check = report.check("loss_weights")
    assert check.status is Status.PASS, check.message
    assert check.details["dominant"] == "loss_3d_joint"
    assert check.details["shares"]["loss_3d_joint"] > 0.9
    assert check.details["recommended_weights"] is True
    assert (
        "expected with them" in check.message and "L1 errors of coordinates in mm" in check.message
    )
    assert "grad-flow" in check.message and "--target-shares" in check.message
    assert check.hint is None  # nothing to fix: no hint recommending what is already set


@pytest.mark.slow
def test_weights_outside_the_ranges_warn_with_the_dominance(toy_batch) -> None:
    report = loss_breakdown(utnet_toy.ToyUTNet(), toy_batch, config=_with("recommended", w_2d=0.01))
    check = report.check("loss_weights")
    assert check.status is Status.WARN
    assert check.details["flagged"] == {"w_2d": 0.01}
    assert "w_2d=0.01 is 100x below the recommended 1" in check.message
    assert "loss_3d_joint makes" in check.message
    assert "spec 9.1" in check.hint


def test_grad_balance_config_preset_drowns_2d_not_aux() -> None:
    check = grad_flow().check("grad_balance")  # embedded default: the config preset's weights
    assert check.status is Status.WARN
    assert check.message.startswith("loss_3d_joint drowns loss_2d (")
    assert "loss_aux" not in check.message
    assert check.details["compared"] == ["loss_2d", "loss_3d_joint"]
    assert check.value["loss_aux"] * 1e6 < check.value["loss_3d_joint"]  # tiny, yet not drowned


def test_grad_balance_recommended_weights_pass() -> None:
    check = grad_flow(preset="recommended").check("grad_balance")
    assert check.status is Status.PASS, check.message
    assert "loss_2d" in check.message and "x below loss_3d_joint" in check.message
    assert "loss_prior, loss_aux not compared (small by design)" in check.message


def test_grad_balance_planted_tiny_2d_weight_warns() -> None:
    check = grad_flow(config=_with("recommended", w_2d=1e-6)).check("grad_balance")
    assert check.status is Status.WARN
    assert check.message.startswith("loss_3d_joint drowns loss_2d (")
    ratio = check.value["loss_3d_joint"] / check.value["loss_2d"]
    assert ratio > 1e6


def test_make_sample_gate_agrees_with_the_default_and_passes_with_the_spec_weights(
    tmp_path: Path,
) -> None:
    """make-sample's config holds the default weights: its gate warns where the default gate
    warns; with the spec's recommended w_2d = w_3d_joint = 1.0 both checks pass."""
    from utnet_diag.synthetic.sample import make_sample

    make_sample(tmp_path)
    config = tmp_path / "config.yaml"

    def run():
        return utnet_diag.gate(tmp_path / "reference.pt", tmp_path / "batch.pt", config,
                               mano=tmp_path / "MANO_RIGHT.pkl")  # fmt: skip

    shipped, default = run(), utnet_diag.gate()
    for check_id in ("loss_weights", "grad_balance"):
        assert shipped.check(check_id).status is Status.WARN, check_id
        assert default.check(check_id).status is Status.WARN, check_id
    text = config.read_text()
    assert "  w_2d: 0.01\n" in text and "  w_3d_joint: 0.05\n" in text
    config.write_text(text.replace("  w_2d: 0.01\n", "  w_2d: 1.0\n")
                      .replace("  w_3d_joint: 0.05\n", "  w_3d_joint: 1.0\n"))  # fmt: skip
    report = run()
    for check_id in ("loss_weights", "grad_balance"):
        check = report.check(check_id)
        assert check.status is Status.PASS, check.message
    assert report.check("loss_weights").details["dominant"] == "loss_3d_joint"


@pytest.mark.slow
def test_too_small_aux_weight_is_loss_weights_finding(toy_batch) -> None:
    report = loss_breakdown(
        utnet_toy.ToyUTNet(), toy_batch, config=_with("recommended", w_aux=1e-4)
    )
    check = report.check("loss_weights")
    assert check.status is Status.WARN and "w_aux=0.0001 is 10x below" in check.message
