"""The protocols' metrics on cases whose answers are derived by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from utnet_diag.evaluation.protocols import (
    PROTOCOLS,
    centroid_align,
    fscores,
    measures,
    reorder,
    scale_translation_align,
)
from utnet_diag.evaluation.scores import score
from utnet_diag.joints import MANO_TO_SPEC, invert
from utnet_diag.synthetic.benchmark_files import hands, mesh

FREIHAND, HO3D, DEXYCB = PROTOCOLS["freihand"], PROTOCOLS["ho3d"], PROTOCOLS["dexycb"]


def _similar_copy(gt: np.ndarray, scale: float, seed: int = 0) -> np.ndarray:
    """Each sample rotated about the camera origin, scaled and translated."""
    rot = Rotation.from_rotvec([0.3, -0.5, 0.2]).as_matrix()
    return scale * gt @ rot.T + np.array([0.05, -0.02, 0.1])


def test_centroid_alignment_removes_a_similarity_exactly_while_root_relative_error_does_not():
    gt = hands(6) * 1000.0  # mm, as DexYCB
    pred = _similar_copy(gt, 1.3)
    s = score(DEXYCB, gt, pred)
    assert s.metrics["procrustes_mpjpe"] == pytest.approx(0.0, abs=1e-6)
    # root-relative error by hand: joint k's error is |1.3 R (g_k - g_0) - (g_k - g_0)|
    rot = Rotation.from_rotvec([0.3, -0.5, 0.2]).as_matrix()
    expected = []
    for sample in gt:
        rel = sample - sample[0]
        expected.append([np.linalg.norm(1.3 * rot @ r - r) for r in rel])
    expected = np.array(expected)
    assert s.metrics["root_relative_mpjpe"] == pytest.approx(expected.mean(0).mean(), rel=1e-9)
    assert s.metrics["root_relative_mpjpe"] > 10.0
    assert s.metrics["absolute_mpjpe"] > s.metrics["root_relative_mpjpe"]


def test_the_freihand_alignment_allows_reflections():
    gt = hands(4)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    fit = centroid_align(gt, mirrored)
    assert np.abs(fit.aligned - gt).max() < 1e-7  # the evaluators' 1e-8 added to each norm
    assert np.linalg.det(fit.rotation) == pytest.approx(-1.0)


def test_the_alignment_restores_the_ground_truths_scale_and_centroid():
    gt = hands(3)
    pred = gt + np.random.default_rng(0).normal(0, 0.01, gt.shape)
    fit = centroid_align(gt, pred)
    assert np.allclose(fit.aligned.mean(1), gt.mean(1))
    # a rotation of the normalised prediction times s <= 1 keeps the norm at most the GT's
    g = gt - gt.mean(1, keepdims=True)
    a = fit.aligned - fit.aligned.mean(1, keepdims=True)
    assert np.all(np.linalg.norm(a, axis=(1, 2)) <= np.linalg.norm(g, axis=(1, 2)) + 1e-12)


def test_auc_of_a_step_distribution_matches_the_trapezoid_by_hand():
    # every keypoint 0.02 m off: PCK(t) = 1 from the first threshold >= 0.02 (index m = 40 of
    # linspace(0, 0.05, 100)); trapezoid area (99 - m + 0.5) steps of 99 -> 59.5 / 99
    err = np.full((7, 21), 0.02)
    assert measures(err, 0.05).auc == pytest.approx(59.5 / 99)
    # half the keypoints exact (AUC 1), half 0.02 off: the mean over keypoints
    err[:, ::2] = 0.0
    expected = (11 * 1.0 + 10 * 59.5 / 99) / 21
    assert measures(err, 0.05).auc == pytest.approx(expected)


def test_mean_and_median_are_means_over_keypoints_of_per_keypoint_statistics():
    err = np.zeros((3, 21))
    err[:, 0] = [1.0, 2.0, 9.0]  # keypoint 0: mean 4, median 2; others 0
    m = measures(err, 50.0)
    assert m.mean == pytest.approx(4.0 / 21)
    assert m.median == pytest.approx(2.0 / 21)


def test_fscore_by_hand():
    gt = np.array([[[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]]], dtype=float) * 0.01
    pred = gt.copy()
    pred[0, 3] += [0, 0.004, 0]  # 4 mm off: within 5 mm
    pred[0, 2] += [0, 0.006, 0]  # 6 mm off; its nearest GT point is 2 (6 mm) -> out at 5 mm
    f5, f15 = fscores(gt, pred, (0.005, 0.015))[0]
    # precision (GT points with a prediction < 5 mm): 0, 1, 3 -> 3/4 (point 2's nearest is 6 mm)
    # recall (predictions with a GT point < 5 mm): 0, 1, 3 -> 3/4
    assert f5 == pytest.approx(0.75)
    assert f15 == pytest.approx(1.0)
    assert fscores(gt, np.zeros((1, 0, 3)), (0.005,))[0, 0] == 0.0


def test_ho3d_scale_translation_alignment_uses_mano_joints_0_and_4():
    gt_spec = hands(5)
    gt = reorder(gt_spec, "spec", "mano")
    assert np.allclose(gt[:, 4], gt_spec[:, 9])  # MANO joint 4 is the middle finger's base
    pred = 2.5 * gt + np.array([0.1, 0.2, 0.3])
    assert np.abs(scale_translation_align(gt, pred) - gt).max() < 1e-12
    # a rotated copy is not fixed by scale and translation
    rotated = _similar_copy(gt, 1.0)
    assert np.abs(scale_translation_align(gt, rotated) - gt).max() > 0.005


def test_zero_prediction_stays_zero_in_the_scale_translation_alignment():
    gt = reorder(hands(2), "spec", "mano")
    aligned = scale_translation_align(gt, np.zeros_like(gt))
    assert np.allclose(aligned, gt[:, :1])  # every joint at the GT wrist


def test_a_mesh_of_another_vertex_count_moves_with_the_joints_transform_as_the_evaluator_does():
    # with pred == gt the joint fit is the identity rotation with s = 1; the evaluator then
    # scales a non-MANO mesh about its centroid by the GT joints' Frobenius norm (it never
    # divides by the mesh's own norm) and keeps the centroid
    gt = hands(2)
    fit = centroid_align(gt, gt)
    verts = mesh(gt)[:, :500]
    centre = verts.mean(1, keepdims=True)
    norm = np.linalg.norm(gt - gt.mean(1, keepdims=True), axis=(1, 2)) + 1e-8
    assert np.allclose(fit.apply(verts), (verts - centre) * norm[:, None, None] + centre)


def test_freihand_reports_cm_and_ho3d_adds_the_scale_translation_rows():
    gt = hands(5)
    pred = gt + np.array([0.01, 0.0, 0.0])  # 1 cm off everywhere
    gv = mesh(gt)
    s = score(FREIHAND, gt, pred, gv, gv + np.array([0.01, 0.0, 0.0]))
    assert s.metrics["xyz_mean3d"] == pytest.approx(1.0)
    assert s.metrics["mesh_mean3d"] == pytest.approx(1.0)
    assert s.metrics["xyz_al_mean3d"] == pytest.approx(0.0, abs=1e-6)
    assert list(s.metrics) == list(FREIHAND.metrics)
    mano_gt = reorder(gt, "spec", "mano")
    h = score(HO3D, mano_gt, reorder(pred, "spec", "mano"), gv, gv)
    assert h.metrics["xyz_scale_trans_al_mean3d"] == pytest.approx(0.0, abs=1e-6)
    assert list(h.metrics) == list(HO3D.metrics)


def test_mano_order_permutation_round_trips():
    x = hands(2)
    assert np.allclose(reorder(reorder(x, "spec", "mano"), "mano", "spec"), x)
    assert np.allclose(reorder(x, "spec", "mano")[:, list(MANO_TO_SPEC)], x)
    assert tuple(invert(invert(MANO_TO_SPEC))) == MANO_TO_SPEC
