"""``overfit`` on the embedded default (reference tiny model + embedded batch, config preset).

The full default (300 steps) takes 7-10 s on a 2-core machine and ends at 3.1-3.5% of the start
total and 0.8-0.9 mm MPJPE; it crosses both pass thresholds after about 100 steps, so the passing
test runs 120 steps at the default learning rate and thresholds. Each planted wiring bug is put
into the reference model itself (hooks and requires_grad, no model edits) and must be named.
"""

from __future__ import annotations

import pytest
import torch

from utnet_diag.diagnostics.overfit import OverfitOptions, overfit
from utnet_diag.diagnostics.runner import load_inputs


@pytest.fixture(scope="module")
def default_inputs():
    return load_inputs()  # embedded default model, embedded batch, config preset


def statuses(report) -> dict[str, str]:
    return {c.id: c.status.value for c in report.checks}


@pytest.mark.slow
def test_embedded_default_passes_at_default_lr_and_thresholds(default_inputs) -> None:
    defaults = OverfitOptions()
    assert (defaults.steps, defaults.lr, defaults.target_fraction) == (300, 1e-3, 0.1)
    model = default_inputs.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    threads = torch.get_num_threads()
    report = overfit(default_inputs, OverfitOptions(steps=120))
    assert set(statuses(report).values()) == {"pass"}, [c.message for c in report.checks]
    section = report.sections["overfit"]
    assert section["total_first"] == pytest.approx(327.35, rel=1e-3)
    assert section["total_last"] < 0.1 * section["total_first"]
    assert section["mpjpe_first_mm"] == pytest.approx(27.52, rel=1e-3)
    assert section["mpjpe_last_mm"] < 10.0
    assert section["cpu_threads"] == 1  # a small model on the CPU trains with one thread
    assert torch.get_num_threads() == threads  # and the caller's setting is restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _run_with(inputs, plant) -> object:
    """overfit on a copy of ``inputs`` whose model had ``plant(model)`` applied (hooks removed
    afterwards)."""
    import copy

    planted = copy.copy(inputs)
    planted.loaded = copy.copy(inputs.loaded)
    planted.loaded.model = copy.deepcopy(inputs.model)
    plant(planted.loaded.model)
    return overfit(planted, OverfitOptions(steps=30))


@pytest.mark.slow
def test_detached_head_is_named(default_inputs) -> None:
    def detach_coarse_head(model) -> None:
        model.coarse_head.register_forward_hook(
            lambda _m, _args, out: tuple(t.detach() for t in out)
        )

    report = _run_with(default_inputs, detach_coarse_head)
    moved = report.check("overfit_weights_moved")
    assert moved.status.value == "fail"
    assert moved.message == "coarse_head weights did not move (no gradient reaches them)"


@pytest.mark.slow
def test_frozen_backbone_is_named(default_inputs) -> None:
    def freeze_backbone(model) -> None:
        for param in model.backbone.parameters():
            param.requires_grad_(False)

    report = _run_with(default_inputs, freeze_backbone)
    moved = report.check("overfit_weights_moved")
    assert moved.status.value == "fail"
    assert moved.message == "backbone weights did not move (requires_grad is False: frozen)"
    assert moved.details["movement"]["backbone"]["relative_change"] == 0.0


@pytest.mark.slow
def test_bypassed_mano_is_named(default_inputs) -> None:
    def bypass_mano(model) -> None:
        # MANO gets a fixed hand (the first step's orientation, rest pose, mean shape) whatever
        # the heads predict
        first_orient: list[torch.Tensor] = []

        def rest_pose(_m, args):
            global_orient, hand_pose, betas = args[:3]
            if not first_orient:
                first_orient.append(global_orient.detach().clone())
            eye = torch.eye(3, dtype=hand_pose.dtype)
            return first_orient[0], eye.expand_as(hand_pose).clone(), torch.zeros_like(betas)

        model.mano.register_forward_pre_hook(rest_pose)

    report = _run_with(default_inputs, bypass_mano)
    s = statuses(report)
    assert s["overfit_total_drop"] == "fail" and s["overfit_mpjpe"] == "fail", s
    terms = report.check("overfit_terms").message
    assert "3D joint loss stalled at 100% of its start" in terms
    assert "keypoints_3d never changed during training" in terms
