"""The amp checks on hand-built AmpSections: overflow, precision, the scaler's verdicts."""

from __future__ import annotations

import math

import pytest

from utnet_diag.checks.amp import AMP_CHECKS
from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.report.result import CheckResult, Status
from utnet_diag.report.sections import AmpSection


def term(name, f32, low, dtype="float32"):
    rel = abs(low - f32) / abs(f32) if math.isfinite(low) and f32 else None
    return {"term": name, "float32": f32, "amp": low, "dtype": dtype, "rel_diff": rel}


def section(terms=None, outputs=None, scaler=None, dtype="float16", origin=None):
    terms = terms if terms is not None else [term("loss_2d", 10.0, 10.01)]
    outputs = outputs if outputs is not None else [
        {"output": "keypoints_3d", "dtype": "float32", "nonfinite": 0, "nonfinite_float32": 0,
         "max_abs_diff": 0.25}]  # fmt: skip
    return AmpSection(dtype, "cpu", terms, outputs, origin, scaler)


def run(check_id: str, amp) -> CheckResult:
    results = run_checks(AMP_CHECKS.specs, CheckContext(extras={"amp": amp}))
    return next(r for r in results if r.id == check_id)


def scaler(*skipped_then_taken):
    attempts = [{"step": k, "scale": 2.0 ** (16 - k), "skipped": s}
                for k, s in enumerate(skipped_then_taken)]  # fmt: skip
    taken = next((a["scale"] for a in attempts if not a["skipped"]), None)
    return {"used": True, "init_scale": 65536.0, "attempts": attempts,
            "skipped": sum(skipped_then_taken), "scale": taken, "max_steps": 31}  # fmt: skip


def test_overflow_names_the_term_the_output_and_the_origin():
    origin = {"stage": "forward", "where": "head.up", "message": "'head.up' outputs inf"}
    amp = section([term("loss_3d_joint", 7e4, float("inf"))],
                  [{"output": "vertices", "dtype": "float16", "nonfinite": 5,
                    "nonfinite_float32": 0, "max_abs_diff": None}], origin=origin)  # fmt: skip
    result = run("amp_overflow", amp)
    assert result.status is Status.FAIL and result.value == ["loss_3d_joint", "vertices"]
    assert (
        "loss_3d_joint is inf" in result.message and "vertices has 5 non-finite" in result.message
    )
    assert result.message.endswith("'head.up' outputs inf")
    for dependent in ("amp_precision", "amp_scaler"):
        assert run(dependent, amp).status is Status.SKIP


def test_a_term_already_non_finite_in_float32_is_not_an_overflow():
    amp = section([term("loss_2d", float("nan"), float("nan"))])
    assert run("amp_overflow", amp).status is Status.PASS


@pytest.mark.parametrize(("low", "status"), [(10.1, Status.PASS), (10.11, Status.WARN)])
def test_precision_warns_above_one_percent(low, status):
    result = run("amp_precision", section([term("loss_2d", 10.0, low)]))
    assert result.status is status and result.threshold == 0.01
    assert "keypoints_3d moves up to 0.25 mm" in result.message


def test_precision_warns_for_a_float16_term_above_65504_kept_finite_by_float32():
    big = [term("loss_3d_joint", 73632.9, 73632.9)]
    result = run("amp_precision", section(big))
    assert result.status is Status.WARN and "above float16's largest value 65504" in result.message
    assert run("amp_precision", section(big, dtype="bfloat16")).status is Status.PASS
    assert run("amp_precision", section([term("loss_3d_joint", 65503.0, 65503.0)])).status is (
        Status.PASS)  # fmt: skip


def test_scaler_verdicts():
    result = run("amp_scaler", section(scaler=scaler(True, True, False)))
    assert result.status is Status.PASS and result.value == 16384.0
    assert "skips the first 2 steps (scale 65536 -> 16384)" in result.message
    assert "initial scale 65536" in run("amp_scaler", section(scaler=scaler(False))).message
    low = scaler(*([True] * 17 + [False]))  # taken at 2**-1
    result = run("amp_scaler", section(scaler=low))
    assert (
        result.status is Status.WARN and result.value == 0.5 and "even unscaled" in result.message
    )
    never = scaler(*([True] * 31))
    result = run("amp_scaler", section(scaler=never, origin={"message": "node X makes nan"}))
    assert result.status is Status.FAIL and "skips every step" in result.message
    assert "from 65536 to 6.10352e-05 (31 steps); node X makes nan" in result.message


def test_bfloat16_needs_no_scaler():
    ok = run("amp_scaler", section(dtype="bfloat16",
                                   scaler={"used": False, "gradients_finite": True}))  # fmt: skip
    assert ok.status is Status.PASS and "needs no GradScaler" in ok.message
    bad = run("amp_scaler", section(dtype="bfloat16",
                                    scaler={"used": False, "gradients_finite": False}))  # fmt: skip
    assert bad.status is Status.FAIL and "origin not found" in bad.message and bad.value is False
    assert run("amp_scaler", section(scaler=None)).status is Status.SKIP


def test_a_settled_scale_of_1_passes_and_below_1_warns():
    # scale 1 (step 16): the unscaled gradients are finite in float16; 0.5: they overflow
    at_one = run("amp_scaler", section(scaler=scaler(*[True] * 16, False)))
    assert at_one.status is Status.PASS and at_one.value == 1.0
    below = run("amp_scaler", section(scaler=scaler(*[True] * 17, False)))
    assert below.status is Status.WARN and below.value == 0.5
    assert "overflow float16 even unscaled" in below.message and below.threshold == 1.0
