"""``overfit`` on the toy UTNet: healthy wiring learns the batch; each planted bug is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from utnet_toy import ToyUTNet, make_batch

from utnet_diag.diagnostics.overfit import OverfitOptions, learning_rate_of, overfit
from utnet_diag.diagnostics.runner import load_inputs

# The toy has dropout and BatchNorm in train mode: its L1 loss levels off near 20% of the start
# on one batch, so the tests hold it to 30% (the command's default target is 10%).
OPTIONS = OverfitOptions(steps=100, lr=1e-2, target_fraction=0.3, mpjpe_threshold_mm=10.0)


def run(model: ToyUTNet, options: OverfitOptions = OPTIONS):
    inputs = load_inputs(batch=make_batch(8), model=model, preset="recommended")
    return overfit(inputs, options)


def statuses(report) -> dict[str, str]:
    return {c.id: c.status.value for c in report.checks}


@pytest.mark.slow
def test_healthy_toy_overfits_and_original_weights_are_untouched() -> None:
    model = ToyUTNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = run(model)
    assert set(statuses(report).values()) == {"pass"}, [c.message for c in report.checks]
    section = report.sections["overfit"]
    assert section["total_last"] < 0.3 * section["total_first"]
    assert section["mpjpe_last_mm"] < 10.0 < section["mpjpe_first_mm"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(report.sections["overfit_curves"]["total"]) == 100


def test_detached_head_is_named() -> None:
    report = run(ToyUTNet(detach_coarse=True), OverfitOptions(steps=40, lr=1e-2))
    moved = report.check("overfit_weights_moved")
    assert moved.status.value == "fail"
    assert moved.message == "coarse_head weights did not move (no gradient reaches them)"
    assert "aux loss stalled" in report.check("overfit_terms").message


def test_frozen_backbone_is_named() -> None:
    model = ToyUTNet()
    for param in model.backbone.parameters():
        param.requires_grad_(False)
    report = run(model, OverfitOptions(steps=20, lr=1e-2))
    moved = report.check("overfit_weights_moved")
    assert moved.status.value == "fail"
    assert "backbone weights did not move (requires_grad is False: frozen)" in moved.message
    assert moved.details["movement"]["backbone"]["relative_change"] == 0.0


def test_bypassed_mano_is_named() -> None:
    report = run(ToyUTNet(mano_bypass=True), OverfitOptions(steps=30, lr=1e-2))
    s = statuses(report)
    assert s["overfit_total_drop"] == "fail" and s["overfit_mpjpe"] == "fail"
    terms = report.check("overfit_terms").message
    assert "3D joint loss stalled at 100% of its start" in terms
    assert "keypoints_3d never changed during training (all zeros)" in terms


def test_learning_rate_from_config() -> None:
    from utnet_diag.config import DiagConfig

    assert learning_rate_of(DiagConfig(training={"lr": 2e-4})) == 2e-4
    assert learning_rate_of(DiagConfig(training={"learning_rate": 5e-5})) == 5e-5
    assert learning_rate_of(DiagConfig()) == 1e-3


def test_cli_json_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from utnet_diag.cli.app import main

    monkeypatch.chdir(Path(__file__).parent)
    plot = tmp_path / "overfit.png"
    args = ["overfit", "--model-factory", "utnet_toy:build_mano_bypass", "--steps", "5"]
    code = main(args + ["--lr", "0.01", "--json", "--plot", str(plot)])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["command"] == "overfit"
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_plot_path_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from utnet_diag.cli.app import main

    code = main(["overfit", "--plot", str(tmp_path / "curves.jpg")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_short_run_without_a_stalled_term_blames_steps_or_lr() -> None:
    report = run(ToyUTNet(), OverfitOptions(steps=15, lr=1e-2, target_fraction=0.3))
    terms, drop = report.check("overfit_terms"), report.check("overfit_total_drop")
    assert terms.status.value == "pass", terms.message
    assert drop.status.value == "fail" and drop.details["stalled"] == {}
    assert "every term falls, none stalled" in drop.message
    assert "broken" not in drop.hint
    assert "raise --steps (now 15) or --lr (now 0.01)" in drop.hint


def test_stalled_term_hint_points_at_its_gradient_path() -> None:
    report = run(ToyUTNet(detach_coarse=True), OverfitOptions(steps=40, lr=1e-2))
    drop = report.check("overfit_total_drop")
    assert drop.status.value == "fail" and drop.details["stalled"], drop.message
    assert "stalled:" in drop.message and "path to the weights is broken" in drop.hint


def _terms_outcome(terms: dict[str, list[float]]):
    from utnet_diag.checks.engine import CheckContext
    from utnet_diag.diagnostics.overfit import OverfitHistory, OverfitOptions, check_terms

    history = OverfitHistory(terms=terms, total=[1.0, 0.1], mpjpe_mm=[30.0, 5.0])
    facts = {"keypoints_3d_changed": True, "keypoints_3d_all_zero": False}
    ctx = CheckContext(extras={"history": history, "options": OverfitOptions(), "facts": facts})
    return check_terms(ctx)


def test_a_rising_prior_is_named_and_fails_past_the_spec_range() -> None:
    """Every term is in the verdict: the prior is not left out of "every term falls"."""
    data = {"loss_2d": [100.0, 10.0], "loss_3d_joint": [5000.0, 400.0]}
    healthy = _terms_outcome({**data, "loss_prior": [1e-4, 0.2]})
    assert healthy.status.value == "pass"
    assert healthy.message.startswith("every data term falls (final/first: ")
    assert "prior loss rose 2e+03x (0.0001 -> 0.2; the spec's healthy < 100)" in healthy.message
    assert healthy.details["ratios"]["loss_prior"] == pytest.approx(2000.0)
    unhealthy = _terms_outcome({**data, "loss_prior": [1e-4, 250.0]})
    assert unhealthy.status.value == "fail" and "prior loss rose 2.5e+06x" in unhealthy.message
    falling = _terms_outcome({**data, "loss_prior": [0.2, 0.1]})
    assert falling.status.value == "pass" and falling.message.startswith("every term falls")
