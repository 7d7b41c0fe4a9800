"""The step checks on hand-built StepSections: every threshold and message."""

from __future__ import annotations

import pytest

from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.checks.step import STEP_CHECKS
from utnet_diag.report.result import CheckResult, Status
from utnet_diag.report.sections import StepSection

OPT = {"type": "AdamW", "lr": 1e-5, "weight_decay": 1e-4}


def section(factor=1.0, shrink=None, clip=1.0, ratios=None, lrs=None, unknown=None, **kw):
    ratios = ratios if ratios is not None else {"backbone": 1e-4, "head": 2e-4}
    groups = [{"name": n, "lr": (lrs or {}).get(n, 1e-5), "update_norm": r, "param_norm": 1.0,
               "ratio": r} for n, r in ratios.items()]  # fmt: skip
    values = dict(optimizer=dict(OPT), total_grad_norm=1.0 / factor if factor else 0.0,
                  clip_grad_norm=clip, clip_factor=factor, step_shrink=shrink,
                  term_shares={"loss_3d_joint": 0.9, "loss_2d": 0.1},
                  share_basis="all parameters", groups=groups, unknown_groups=unknown)  # fmt: skip
    values.update(kw)
    return StepSection(**values)


def run(check_id: str, step, grad_status=Status.PASS) -> CheckResult:
    prior = [CheckResult("grad_finite", grad_status, "", family="grad")]
    ctx = CheckContext(extras={"step": step})
    return next(r for r in run_checks(STEP_CHECKS.specs, ctx, prior=prior) if r.id == check_id)


@pytest.mark.parametrize(
    ("shrink", "status"),
    [(0.99, Status.PASS), (1e-3, Status.PASS), (0.99e-3, Status.WARN), (1e-6, Status.WARN)],
)
def test_clip_warns_when_it_shrinks_the_update_over_1000x(shrink, status):
    result = run("step_clip", section(factor=1e-4, shrink=shrink))
    assert result.status is status and result.value == shrink and result.threshold == 1e-3
    assert "scales the gradient (norm 1e+04) by 0.0001" in result.message
    assert "loss_3d_joint 90%, loss_2d 10% (at all parameters)" in result.message


def test_clip_passes_unclipped_and_without_clipping():
    assert "not clipped" in run("step_clip", section(factor=1.0)).message
    result = run("step_clip", section(factor=1.0, clip=None))
    assert result.status is Status.PASS and "no clipping configured" in result.message
    # an SGD-like step with no measured shrink: the clip factor is the shrink
    assert run("step_clip", section(factor=1e-6, shrink=None)).status is Status.WARN


@pytest.mark.parametrize(
    ("ratio", "status"),
    [(1e-4, Status.PASS), (1e-2, Status.PASS), (1.1e-2, Status.WARN), (1e-1, Status.WARN),
     (1.1e-1, Status.FAIL), (1e-6, Status.PASS), (0.9e-6, Status.WARN)],
)  # fmt: skip
def test_update_ratio_bands(ratio, status):
    result = run("step_update", section(ratios={"backbone": 1e-4, "head": ratio},
                                        lrs={"head": 1e-3}))  # fmt: skip
    assert result.status is status, result.message
    assert result.value == {"backbone": 1e-4, "head": ratio}
    if status is not Status.PASS:
        assert "head" in result.message and "lr 0.001" in result.message
        assert "backbone" not in result.message  # its ratio is healthy


def test_a_group_learning_rate_that_names_no_group_warns():
    result = run("step_update", section(unknown=["gnc"]))
    assert result.status is Status.WARN and "names no module group: gnc" in result.message


def test_step_checks_skip_after_non_finite_gradients_or_without_a_step():
    assert run("step_clip", section(), Status.FAIL).status is Status.SKIP
    assert run("step_update", None).status is Status.SKIP
    assert run("step_update", section(ratios={})).status is Status.SKIP
