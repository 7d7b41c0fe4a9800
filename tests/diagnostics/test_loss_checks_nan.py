"""loss_weights with a NaN term: no shares of a total that does not exist."""

from __future__ import annotations

from dataclasses import replace

import pytest
import utnet_toy

from utnet_diag.diagnostics.loss_breakdown import loss_breakdown
from utnet_diag.report.result import Status


@pytest.mark.slow
def test_loss_weights_does_not_claim_dominance_when_a_term_is_nan(toy_batch) -> None:
    kp3d = toy_batch["keypoints_3d"].clone()
    kp3d[1, 7, 1] = float("nan")  # one bad annotation: L_3D_joint is NaN
    batch = replace(toy_batch, tensors={**toy_batch.tensors, "keypoints_3d": kp3d})
    report = loss_breakdown(utnet_toy.ToyUTNet(), batch)
    assert report.check("loss_finite").status is Status.FAIL
    weights = report.check("loss_weights")
    assert "shares not computed: loss_3d_joint non-finite" in weights.message
    assert "of the weighted total" not in weights.message
    assert weights.details["dominant"] is None and weights.details["shares"] == {}
    metrics = report.sections["metrics"]
    assert metrics["samples_left_out"] == 1 and metrics["samples"] == batch.size - 1
