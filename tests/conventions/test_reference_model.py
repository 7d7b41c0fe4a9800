"""Prediction conventions on the randomly initialised reference model (tiny preset)."""

from __future__ import annotations

import pytest
import torch

from utnet_diag.checks.conventions import CONVENTION_CHECKS, PREDICTION_CONVENTION_CHECKS
from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.joints import KNOWN_ORDERS
from utnet_diag.report.result import Status
from utnet_diag.synthetic import faults_convention as fc


@pytest.fixture(scope="module")
def model_run(mano_layer):
    from utnet_diag.model.reference import ReferenceUTNet
    from utnet_diag.synthetic.sample import make_sample_batch

    torch.manual_seed(0)
    model = ReferenceUTNet(mano=mano_layer).eval()
    batch = make_sample_batch(8, seed=11)
    with torch.no_grad():
        out = model(batch["rgb"], batch["depth"], batch["n_i"])
    outputs = {k: v.detach() for k, v in out.items() if isinstance(v, torch.Tensor)}
    return dict(batch.tensors), outputs


def _run(batch, outputs, mano):
    ctx = CheckContext(batch=batch, outputs=outputs, mano=mano)
    prior = run_checks(CONVENTION_CHECKS.specs, ctx)
    return {r.id: r for r in run_checks(PREDICTION_CONVENTION_CHECKS.specs, ctx, prior=prior)}


def test_untrained_reference_model_passes(model_run, mano_layer):
    batch, outputs = model_run
    res = _run(batch, outputs, mano_layer)
    assert {k: r.status for k, r in res.items()} == {
        "pred_joint_order": Status.PASS,
        "pred_projection": Status.PASS,
        "aux_target_convention": Status.PASS,
    }


def test_model_emitting_mano_order_is_caught(model_run, mano_layer):
    batch, outputs = model_run
    res = _run(batch, fc.permute_joints(outputs, "mano"), mano_layer)
    assert res["pred_joint_order"].status is Status.FAIL
    assert res["pred_joint_order"].details["pred_to_gt"] == list(KNOWN_ORDERS["mano"])
    # the 2D moved with the 3D, so the projection still holds
    assert res["pred_projection"].status is Status.PASS


def test_model_projecting_with_two_image_sizes_is_caught(model_run, mano_layer):
    batch, outputs = model_run
    res = _run(batch, fc.anisotropic_2d(outputs, 256, 192), mano_layer)
    assert res["pred_projection"].status is Status.FAIL
    assert res["pred_projection"].value == pytest.approx(0.75, rel=1e-2)
