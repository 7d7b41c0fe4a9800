"""``--metric-protocol``: a benchmark's joint metrics for a batch (mm, spec order, OpenCV)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from utnet_diag.evaluation.batch_metrics import protocol_metrics
from utnet_diag.synthetic.benchmark_files import hands


def _values(result) -> dict:
    return {row["metric"]: row["value"] for row in result["metrics"]}


def test_a_10_mm_shift_is_1_cm_for_freihand_and_10_mm_absolute_for_dexycb():
    gt = hands(5) * 1000.0
    pred = gt + np.array([10.0, 0.0, 0.0])
    fh = _values(protocol_metrics("freihand", pred, gt))
    assert fh["xyz_mean3d"] == pytest.approx(1.0)
    assert fh["xyz_al_mean3d"] == pytest.approx(0.0, abs=1e-6)
    assert not any(name.startswith(("mesh", "f_")) for name in fh)
    dex = _values(protocol_metrics("dexycb", pred, gt))
    assert dex["absolute_mpjpe"] == pytest.approx(10.0)
    assert dex["root_relative_mpjpe"] == pytest.approx(0.0, abs=1e-9)


def test_ho3d_gets_mano_order_so_its_scale_translation_alignment_sees_the_middle_finger():
    gt = hands(4) * 1000.0
    pred = 1.5 * (gt - gt[:, :1]) + gt[:, :1]  # hand scaled about its wrist
    ho3d = _values(protocol_metrics("ho3d", pred, gt))
    assert ho3d["xyz_scale_trans_al_mean3d"] == pytest.approx(0.0, abs=1e-9)
    assert ho3d["xyz_mean3d"] > 1.0


def test_samples_with_an_unannotated_or_nonfinite_joint_are_left_out():
    gt = hands(4) * 1000.0
    pred = gt.copy()
    pred[1, 3] = np.nan
    visible = np.ones((4, 21), bool)
    visible[2, 7] = False
    result = protocol_metrics("dexycb", pred, gt, visible)
    assert result["samples"] == 2 and result["samples_left_out"] == 2


@pytest.mark.slow
def test_loss_breakdown_reports_dexycbs_root_relative_mpjpe_equal_to_its_own_mpjpe(capsys):
    from utnet_diag.cli.app import main

    assert main(["loss-breakdown", "--metric-protocol", "dexycb", "--json"]) in (0, 1)
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    protocol = {row["metric"]: row["value"] for row in metrics["protocol"]["metrics"]}
    # every joint of the default batch is annotated: the two root-relative means agree
    assert protocol["root_relative_mpjpe"] == pytest.approx(metrics["mpjpe_mm"], rel=1e-5)
    assert "wrist" in metrics["convention"]


def test_ho3d_converts_frame_and_order_without_changing_distances():
    gt = hands(3) * 1000.0
    pred = gt + np.array([4.0, 4.0, 7.0])  # 9 mm off along every axis at once
    ho3d = _values(protocol_metrics("ho3d", pred, gt))
    assert ho3d["xyz_mean3d"] == pytest.approx(0.9)  # in cm, whatever the frame flip
