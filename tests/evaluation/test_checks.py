"""Each prediction-file check on its planted fault, its clean case, and the metrics once fixed."""

from __future__ import annotations

import numpy as np
import pytest

from utnet_diag.evaluation.run import evaluate
from utnet_diag.joints import KEYPOINTFUSION_TO_SPEC, MANO_TO_SPEC, invert
from utnet_diag.report.result import Status
from utnet_diag.synthetic.benchmark_files import write_lines, write_pred


def _statuses(report) -> dict[str, str]:
    return {c.id: c.status.value for c in report.checks}


def _metric(report, name: str, key: str = "value") -> float:
    return next(r[key] for r in report.sections["evaluation"]["metrics"] if r["metric"] == name)


def test_a_clean_prediction_passes_every_check(tmp_path, gt_dir, clean):
    report = evaluate(write_pred(tmp_path / "p.json", *clean), gt_dir, "freihand")
    assert report.status is Status.PASS, _statuses(report)
    assert report.sections["evaluation"]["fixes"] == []
    assert all("fixed" not in row for row in report.sections["evaluation"]["metrics"])


def test_millimetres_for_freihand_fail_with_the_factor_and_the_fixed_metrics_are_the_clean_ones(
    tmp_path, gt_dir, clean
):
    clean_report = evaluate(write_pred(tmp_path / "c.json", *clean), gt_dir, "freihand")
    report = evaluate(
        write_pred(tmp_path / "p.json", clean[0] * 1000, clean[1] * 1000), gt_dir, "freihand"
    )
    units = report.check("eval_units")
    assert units.status is Status.FAIL
    assert "millimetres" in units.message and "0.001" in units.message
    # as submitted the unaligned error is about the distance of a 1000x hand: metres, in cm
    assert _metric(report, "xyz_mean3d") > 1e4
    # the aligned error does not see units (the alignment rescales)
    assert _metric(report, "xyz_al_mean3d") == pytest.approx(
        _metric(clean_report, "xyz_al_mean3d"), rel=1e-6
    )
    for name in ("xyz_mean3d", "mesh_mean3d", "f_score_5"):
        assert _metric(report, name, "fixed") == pytest.approx(
            _metric(clean_report, name), rel=1e-6
        )


def test_mano_order_for_freihand_names_the_order_and_the_permutation(tmp_path, gt_dir, clean):
    in_mano = clean[0][:, list(invert(MANO_TO_SPEC))]  # spec -> MANO order
    report = evaluate(write_pred(tmp_path / "p.json", in_mano, clean[1]), gt_dir, "freihand")
    order = report.check("eval_joint_order")
    assert order.status is Status.FAIL
    assert "MANO" in order.message
    perm = order.details["permutation"]
    assert perm == list(MANO_TO_SPEC)  # FreiHAND's order is the spec's
    assert np.allclose(in_mano[:, perm], clean[0])
    assert _metric(report, "xyz_al_mean3d", "fixed") < 0.5 * _metric(report, "xyz_al_mean3d")


def test_spec_order_for_ho3d_is_a_joint_order_fault(tmp_path, truth, clean):
    from utnet_diag.synthetic.benchmark_files import write_gt_folder

    flip = np.array([1.0, -1.0, -1.0])
    gt = write_gt_folder(
        tmp_path / "gt", truth[0][:, list(invert(MANO_TO_SPEC))] * flip, truth[1] * flip
    )
    report = evaluate(write_pred(tmp_path / "p.json", clean[0] * flip, clean[1] * flip), gt, "ho3d")
    order = report.check("eval_joint_order")
    assert order.status is Status.FAIL and "spec" in order.message
    assert order.details["permutation"] == list(invert(MANO_TO_SPEC))
    assert report.check("eval_frame").status is Status.PASS


def test_keypointfusion_order_is_named(tmp_path, gt_dir, clean):
    kf = clean[0][:, list(invert(KEYPOINTFUSION_TO_SPEC))]
    report = evaluate(write_pred(tmp_path / "p.json", kf, clean[1]), gt_dir, "freihand")
    assert "KeypointFusion" in report.check("eval_joint_order").message


def test_an_opengl_prediction_for_freihand_fails_the_frame_check(tmp_path, gt_dir, clean):
    flip = np.array([1.0, -1.0, -1.0])
    report = evaluate(
        write_pred(tmp_path / "p.json", clean[0] * flip, clean[1] * flip), gt_dir, "freihand"
    )
    frame = report.check("eval_frame")
    assert frame.status is Status.FAIL and "OpenGL" in frame.message
    assert report.check("eval_units").status is Status.PASS
    assert _metric(report, "xyz_mean3d", "fixed") < 1.0  # cm, back to the noise


def test_mirrored_hands_are_named_by_sample_although_the_aligned_score_hides_them(
    tmp_path, gt_dir, clean, mirror_x
):
    xyz, verts = clean[0].copy(), clean[1].copy()
    bad = [2, 7, 11]
    xyz[bad] = xyz[bad] * mirror_x
    verts[bad] = verts[bad] * mirror_x
    report = evaluate(write_pred(tmp_path / "p.json", xyz, verts), gt_dir, "freihand")
    mirrored = report.check("eval_mirrored")
    assert mirrored.status is Status.FAIL
    assert mirrored.details["samples"] == bad
    # FreiHAND's alignment allows reflections: the aligned joint error does not move much
    clean_report = evaluate(write_pred(tmp_path / "c.json", *clean), gt_dir, "freihand")
    assert _metric(report, "xyz_al_mean3d") == pytest.approx(
        _metric(clean_report, "xyz_al_mean3d"), rel=0.05
    )
    assert _metric(report, "xyz_mean3d") > 2 * _metric(clean_report, "xyz_mean3d")
    assert _metric(report, "xyz_mean3d", "fixed") < 1.1 * _metric(clean_report, "xyz_mean3d")


def test_a_missing_mesh_warns_and_its_metrics_are_not_computed(tmp_path, gt_dir, clean):
    report = evaluate(write_pred(tmp_path / "p.json", clean[0], None), gt_dir, "freihand")
    assert report.check("eval_mesh").status is Status.WARN
    assert _metric(report, "mesh_mean3d") is None
    assert _metric(report, "f_score_5") == 0.0


def test_a_mesh_of_another_size_warns(tmp_path, gt_dir, clean):
    report = evaluate(
        write_pred(tmp_path / "p.json", clean[0], clean[1][:, :500]), gt_dir, "freihand"
    )
    mesh = report.check("eval_mesh")
    assert mesh.status is Status.WARN and "500" in mesh.message
    assert report.sections["evaluation"]["notes"]


def test_root_relative_predictions_warn(tmp_path, gt_dir, clean):
    xyz = clean[0] - clean[0][:, :1]
    report = evaluate(
        write_pred(tmp_path / "p.json", xyz, clean[1] - clean[0][:, :1]), gt_dir, "freihand"
    )
    assert report.check("eval_root_relative").status is Status.WARN


def test_dexycb_skips_frames_without_a_hand_and_warns_on_repeated_ids(tmp_path, truth, clean):
    gt_mm = truth[0] * 1000.0
    gt_mm[[3, 9]] = -1.0  # no hand in these frames
    ids = np.arange(100, 100 + len(gt_mm))
    gt = write_lines(tmp_path / "gt.txt", ids, gt_mm)
    pred_mm = clean[0] * 1000.0
    lines = list(zip(ids, pred_mm)) + [(ids[0], pred_mm[0]), (999, pred_mm[1])]
    pred = write_lines(tmp_path / "res.txt", [i for i, _ in lines], np.stack([p for _, p in lines]))
    report = evaluate(pred, gt, "dexycb")
    section = report.sections["evaluation"]
    assert section["samples"] == len(gt_mm) - 2
    assert section["left_out"] == 2 and section["ignored"] == 1
    assert report.check("eval_ids").status is Status.WARN
    assert report.check("eval_mesh").status is Status.SKIP
    assert report.check("eval_units").status is Status.PASS
    worst_ids = {row["sample"] for row in section["worst"]}
    assert not worst_ids & {103, 109}


def test_metres_for_dexycb_fail_with_the_factor(tmp_path, truth, clean):
    ids = np.arange(len(truth[0]))
    gt = write_lines(tmp_path / "gt.txt", ids, truth[0] * 1000.0)
    pred = write_lines(tmp_path / "res.txt", ids, clean[0])
    units = evaluate(pred, gt, "dexycb").check("eval_units")
    assert units.status is Status.FAIL and "1000" in units.message


def test_an_order_of_no_convention_is_found_by_matching_joints_to_the_ground_truth(
    tmp_path, gt_dir, clean
):
    # thumb (1-4) and pinky (17-20) exchanged, and the index tip with the middle tip
    swap = list(range(21))
    swap[1:5], swap[17:21] = list(range(17, 21)), list(range(1, 5))
    swap[8], swap[12] = 12, 8
    report = evaluate(
        write_pred(tmp_path / "p.json", clean[0][:, swap], clean[1]), gt_dir, "freihand"
    )
    order = report.check("eval_joint_order")
    assert order.status is Status.FAIL and "no known convention" in order.message
    perm = order.details["permutation"]
    assert np.allclose(clean[0][:, swap][:, perm], clean[0])


def test_one_sample_in_millimetres_still_fails_units(tmp_path, truth, clean):
    from utnet_diag.synthetic.benchmark_files import write_gt_folder

    gt = write_gt_folder(tmp_path / "gt1", truth[0][:1], truth[1][:1])
    report = evaluate(
        write_pred(tmp_path / "p.json", clean[0][:1] * 1000, clean[1][:1] * 1000), gt, "freihand"
    )
    units = report.check("eval_units")
    assert units.status is Status.FAIL
    assert "predicted joints and mesh are in millimetres" in units.message


def test_order_details_are_in_the_report_unit_and_counts_are_zero_for_freihand(
    tmp_path, gt_dir, clean
):
    report = evaluate(write_pred(tmp_path / "p.json", *clean), gt_dir, "freihand")
    order = report.check("eval_joint_order")
    assert order.details["aligned_error_by_order"]["spec"] == pytest.approx(order.value)
    assert 0.1 < order.value < 2.0  # cm: 4 mm noise per coordinate
    section = report.sections["evaluation"]
    assert section["left_out"] == 0 and section["ignored"] == 0


def test_no_mesh_is_named_as_such(tmp_path, gt_dir, clean):
    mesh = evaluate(write_pred(tmp_path / "p.json", clean[0], None), gt_dir, "freihand").check(
        "eval_mesh"
    )
    assert "no predicted mesh" in mesh.message and mesh.value == 0


def test_a_root_relative_ground_truth_with_root_relative_predictions_is_fine(
    tmp_path, truth, clean
):
    from utnet_diag.synthetic.benchmark_files import write_gt_folder

    gt = write_gt_folder(tmp_path / "rr", truth[0] - truth[0][:, :1], truth[1] - truth[0][:, :1])
    pred = write_pred(tmp_path / "p.json", clean[0] - clean[0][:, :1], clean[1] - clean[0][:, :1])
    assert evaluate(pred, gt, "freihand").check("eval_root_relative").status is Status.PASS


def test_per_sample_rows_hold_each_samples_mean_joint_error_in_cm(tmp_path, gt_dir, truth, clean):
    import json

    out = tmp_path / "rows.jsonl"
    evaluate(write_pred(tmp_path / "p.json", *clean), gt_dir, "freihand", per_sample=out)
    rows = {r["sample"]: r for r in map(json.loads, out.read_text().splitlines())}
    by_hand = np.linalg.norm(clean[0][3] - truth[0][3], axis=-1).mean() * 100.0
    assert rows[3]["joint_error"] == pytest.approx(by_hand)
