"""loss-breakdown on the toy UTNet: exact numbers, the spec's ranges, planted faults."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import utnet_toy

from utnet_diag.config import load_config
from utnet_diag.diagnostics.loss_breakdown import loss_breakdown
from utnet_diag.losses import compute_terms
from utnet_diag.report.result import Status


def _status(report, check_id: str) -> Status:
    return report.check(check_id).status


@pytest.mark.slow
def test_rows_match_the_spec_terms(toy_batch) -> None:
    model = utnet_toy.ToyUTNet()
    report = loss_breakdown(model, toy_batch)
    table = report.sections["loss_table"]
    rows = {r["term"]: r for r in table["terms"]}
    assert set(rows) == {"loss_2d", "loss_3d_joint", "loss_prior", "loss_aux"}
    # Same numbers as the loss functions on the same forward (train mode, seed 0).
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        out = model(toy_batch["rgb"], toy_batch["depth"])
    expected = compute_terms(out, toy_batch, load_config().weights)
    for term, value in expected.terms.items():
        assert math.isclose(rows[term]["logged"], float(value), rel_tol=1e-5), term
    b = toy_batch.size
    assert rows["loss_3d_joint"]["batch_size"] == b
    assert math.isclose(rows["loss_3d_joint"]["per_sample"], rows["loss_3d_joint"]["logged"] / b)
    assert math.isclose(rows["loss_3d_joint"]["per_element"],
                        rows["loss_3d_joint"]["logged"] / (b * 21 * 3))  # fmt: skip
    assert math.isclose(rows["loss_2d"]["per_element_px256"], rows["loss_2d"]["per_element"] * 256)
    assert rows["loss_2d"]["weight"] == 0.01 and rows["loss_2d"]["weight_source"] == "preset config"
    assert math.isclose(sum(r["share"] for r in rows.values()), 1.0, rel_tol=1e-9)
    assert math.isclose(table["total"], float(expected.total), rel_tol=1e-5)
    m = report.sections["metrics"]
    assert m["samples"] == b and 0 < m["pa_mpjpe_mm"] <= m["mpjpe_mm"]


@pytest.mark.slow
def test_healthy_toy_passes_and_config_weights_warn(toy_batch) -> None:
    report = loss_breakdown(utnet_toy.ToyUTNet(), toy_batch)
    for check_id in ("loss_finite", "loss_2d", "loss_3d_joint", "loss_prior", "loss_aux",
                     "pred_degenerate", "pred_kp2d_range", "pred_kp3d_units"):  # fmt: skip
        assert _status(report, check_id) is Status.PASS, report.check(check_id).message
    assert _status(report, "loss_vert") is Status.SKIP
    weights = report.check("loss_weights")
    assert weights.status is Status.WARN
    assert set(weights.details["flagged"]) == {"w_2d", "w_3d_joint"}
    assert "100x below" in weights.message


@pytest.mark.slow
def test_model_modes_and_buffers_restored(toy_batch) -> None:
    model = utnet_toy.ToyUTNet()
    model.eval()
    bn = model.backbone[4]
    before = bn.running_mean.clone()
    loss_breakdown(model, toy_batch)
    assert not model.training and not bn.training
    assert torch.equal(bn.running_mean, before)


def test_mano_bypass_is_degenerate(toy_batch) -> None:
    report = loss_breakdown(utnet_toy.ToyUTNet(mano_bypass=True), toy_batch)
    check = report.check("pred_degenerate")
    assert check.status is Status.FAIL
    assert "keypoints_3d are all zero in 4/4 samples" in check.message
    assert "MANO" in (check.hint or "")
    assert _status(report, "pred_kp3d_units") is Status.SKIP


def test_nan_module_fails_loss_finite_with_origin(toy_batch) -> None:
    report = loss_breakdown(utnet_toy.ToyUTNet(poison="refine"), toy_batch)
    check = report.check("loss_finite")
    assert check.status is Status.FAIL
    assert check.details["nan_origin"]["where"] == "refine.1"
    assert check.details["nan_origin"]["stage"] == "forward"
    assert "refine.1" in check.message
    assert _status(report, "loss_2d") is Status.SKIP  # requires loss_finite
    json_doc = report.to_json()  # NaN values serialise as strings
    assert '"nan"' in json_doc


@pytest.mark.slow
def test_2d_alarm_in_pixel_units(toy_batch) -> None:
    kp = toy_batch.tensors["keypoints_2d"]
    kp[..., :2] = (kp[..., :2] + 0.5) * 256  # GT in crop pixels, predictions in crop units
    report = loss_breakdown(utnet_toy.ToyUTNet(), toy_batch)
    check = report.check("loss_2d")
    assert check.status is Status.FAIL and check.value >= 10000
    assert "4 samples" in check.message and "px@256" in check.message


@pytest.mark.slow
def test_3d_exactly_zero_is_an_alarm(toy_batch) -> None:
    model = utnet_toy.ToyUTNet(protocol=True)
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        out = model(toy_batch["rgb"], toy_batch["depth"])
    toy_batch.tensors["keypoints_3d"][..., :3] = out["keypoints_3d"]
    report = loss_breakdown(model, toy_batch)
    assert report.check("loss_3d_joint").status is Status.FAIL
    assert report.check("loss_3d_joint").value == 0


@pytest.mark.slow
def test_predictions_in_metres(toy_batch) -> None:
    toy_batch.tensors["keypoints_3d"][..., :3] *= 1000.0  # GT 1000x the predictions
    report = loss_breakdown(utnet_toy.ToyUTNet(), toy_batch)
    check = report.check("pred_kp3d_units")
    assert check.status is Status.FAIL and "metres" in check.message


@pytest.mark.slow
def test_gt_in_metres_is_not_called_mm(toy_batch) -> None:
    toy_batch.tensors["keypoints_3d"][..., :3] /= 1000.0  # GT in metres, predictions in mm
    report = loss_breakdown(utnet_toy.ToyUTNet(), toy_batch)
    check = report.check("pred_kp3d_units")
    assert check.status is Status.FAIL
    assert "(GT looks like metres, predictions mm)" in check.message
    gt_text = check.message.split("GT hand span ")[1].split(":")[0]
    assert gt_text.endswith("(units of the batch)") and "mm" not in gt_text
    assert check.message.startswith("predicted hand span ") and " mm (median" in check.message


@pytest.mark.slow
def test_vertex_term_when_enabled(toy_batch) -> None:
    cfg = load_config(preset="recommended")
    cfg = replace(cfg, weights=replace(cfg.weights, use_vertex_loss=True))
    report = loss_breakdown(utnet_toy.ToyUTNet(), toy_batch, config=cfg)
    row = next(r for r in report.sections["loss_table"]["terms"] if r["term"] == "loss_3d_vert")
    assert row["weight"] == 0.5 and row["per_element"] > 0
    assert report.check("loss_vert").status is Status.PASS


def test_bad_model_object_is_an_input_error(toy_batch) -> None:
    from utnet_diag.errors import InputError

    with pytest.raises(InputError, match="expected a loaded model"):
        loss_breakdown(object(), toy_batch)
