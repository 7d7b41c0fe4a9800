"""Planted convention faults trip the right check with the right diagnosis; clean data pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utnet_diag.checks.conventions import CONVENTION_CHECKS, PREDICTION_CONVENTION_CHECKS
from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.joints import KNOWN_ORDERS
from utnet_diag.report.result import Status
from utnet_diag.synthetic import faults_convention as fc
from utnet_diag.synthetic.sample import project

IDS = ("joint_order", "root_index", "kp2d_kp3d_consistency", "coord_frame", "mano_consistency")


def run(batch, mano=None, outputs=None) -> dict:
    ctx = CheckContext(batch=batch, mano=mano, outputs=outputs)
    results = run_checks(CONVENTION_CHECKS.specs, ctx)
    if outputs is not None:
        results += run_checks(PREDICTION_CONVENTION_CHECKS.specs, ctx, prior=results)
    return {r.id: r for r in results}


def statuses(results: dict) -> dict:
    return {k: r.status for k, r in results.items()}


@pytest.mark.slow
def test_clean_sample_batches_pass_every_check_over_many_seeds(mano_layer):
    from utnet_diag.synthetic.sample import make_sample_batch

    for seed in range(8):
        batch = dict(make_sample_batch(6, seed=100 + seed, image_size=(16, 16)).tensors)
        got = statuses(run(batch, mano_layer))
        assert all(got[i] is Status.PASS for i in IDS), (seed, got)


def test_clean_skeleton_batch_passes_without_mano(clean_batch):
    got = statuses(run(clean_batch))
    assert got["joint_order"] is Status.PASS
    assert got["kp2d_kp3d_consistency"] is Status.PASS
    assert got["coord_frame"] is Status.PASS
    assert got["mano_consistency"] is Status.SKIP


@pytest.mark.parametrize("order", ["mano", "keypointfusion"])
def test_known_joint_order_is_named_with_its_permutation(sample_batch, mano_layer, order):
    res = run(fc.permute_joints(sample_batch, order), mano_layer)
    assert res["joint_order"].status is Status.FAIL
    assert res["joint_order"].value == order
    assert str(list(KNOWN_ORDERS[order])) in res["joint_order"].message
    assert res["kp2d_kp3d_consistency"].status is Status.PASS  # both moved together
    # one permutation fixes both keys; the MANO check waits for it (its joints change)
    perm = list(KNOWN_ORDERS[order])
    assert res["joint_order"].details["fix"] == [
        {"key": "keypoints_3d", "op": "permute", "perm": perm},
        {"key": "keypoints_2d", "op": "permute", "perm": perm},
    ]
    assert res["mano_consistency"].message == "after the fix of joint_order"


@pytest.mark.slow
def test_root_not_at_index_zero(sample_batch, mano_layer):
    res = run(fc.move_root(sample_batch, 4), mano_layer)
    assert res["root_index"].status is Status.FAIL and res["root_index"].value == 4
    assert res["joint_order"].status is Status.FAIL
    assert res["joint_order"].details["permutation"][0] == 4


@pytest.mark.slow
def test_root_index_follows_diag_root_id(sample_batch, mano_layer):
    """A batch whose wrist is at the root the config declares passes root_index."""
    from utnet_diag.config import DiagConfig

    moved = fc.move_root(sample_batch, 4)
    ctx = CheckContext(batch=moved, mano=mano_layer, config=DiagConfig(root_id=4))
    res = {r.id: r for r in run_checks(CONVENTION_CHECKS.specs, ctx)}
    assert res["root_index"].status is Status.PASS and res["root_index"].value == 4
    assert "diag.root_id" in res["root_index"].message
    ctx = CheckContext(batch=sample_batch, mano=mano_layer, config=DiagConfig(root_id=4))
    res = {r.id: r for r in run_checks(CONVENTION_CHECKS.specs, ctx)}
    assert res["root_index"].status is Status.FAIL and "not 4" in res["root_index"].message


def test_2d_from_another_sample_is_traced_to_that_sample(sample_batch):
    res = run(fc.kp2d_from_other_sample(sample_batch, [2, 5]))
    check = res["kp2d_kp3d_consistency"]
    assert check.status is Status.FAIL
    assert "2/12 samples" in check.message
    assert check.details["diagnosis"]["2"] == "its 2D is the projection of sample 5's 3D"
    assert res["joint_order"].status is Status.PASS


def test_2d_in_another_order(sample_batch):
    res = run(fc.kp2d_in_order(sample_batch, "keypointfusion"))
    check = res["kp2d_kp3d_consistency"]
    assert check.status is Status.FAIL
    assert "keypointfusion order" in check.details["diagnosis"]["0"]


def test_anisotropic_2d_gives_the_factor(sample_batch):
    res = run(fc.anisotropic_2d(sample_batch, width=256, height=192))
    check = res["kp2d_kp3d_consistency"]
    assert check.status is Status.FAIL
    assert check.value == pytest.approx(0.75, rel=1e-3)
    assert "0.7500" in check.message


def test_opengl_frame_gives_the_flip(sample_batch, mano_layer):
    res = run(fc.opengl_frame(sample_batch), mano_layer)
    assert res["coord_frame"].status is Status.FAIL
    assert "diag(1,-1,-1)" in res["coord_frame"].message
    assert res["coord_frame"].details["flip"] == [[1, 0, 0], [0, -1, 0], [0, 0, -1]]
    # only the joints were stored in the OpenGL frame: MANO(mano_pose) is in OpenCV already
    assert res["coord_frame"].details["fix"] == [
        {"key": "keypoints_3d", "op": "scale_axes", "factors": [1, -1, -1]}
    ]
    assert res["kp2d_kp3d_consistency"].message == "after the fix of coord_frame"
    assert res["mano_consistency"].message == "after the fix of coord_frame"


@pytest.mark.slow
def test_root_relative_3d_skips_the_frame_check_and_still_projects(sample_batch):
    batch = dict(sample_batch)
    kp3d = batch["keypoints_3d"].clone()
    kp3d[..., :3] -= kp3d[:, :1, :3]
    batch["keypoints_3d"] = kp3d
    res = run(batch)
    assert res["coord_frame"].status is Status.SKIP
    assert res["kp2d_kp3d_consistency"].status is Status.PASS


@pytest.mark.parametrize(
    ("fault", "best"),
    [
        ("relative", ("relative", "right", "spec")),
        ("pca", ("pca", "right", "spec")),
    ],
)
def test_mano_convention_faults_are_named(sample_batch, mano_layer, fault, best):
    plant = {
        "relative": lambda b: fc.pose_relative_to_mean(b, mano_layer.hands_mean),
        "pca": lambda b: fc.pose_as_pca(b, mano_layer.hands_components),
    }[fault]
    res = run(plant(sample_batch), mano_layer)
    check = res["mano_consistency"]
    assert check.status is Status.FAIL
    assert tuple(check.details["best"]) == best
    assert check.details["best_mm"] < 1.0
    assert check.value > 10.0
    op = {"relative": "add_hands_mean", "pca": "pca_to_axis_angle"}[fault]
    assert [f["op"] for f in check.details["fix"]] == [op]


@pytest.mark.parametrize("fault", ["left", "mirrored"])
def test_left_hands_are_handedness_first(sample_batch, mano_layer, fault):
    """A left hand (left MANO, or a mirrored sample whose pose was kept) is a handedness
    failure with the whole flip; the MANO check waits for it."""
    plant = {
        "left": lambda b: fc.left_hand(b, mano_layer, project),
        "mirrored": lambda b: fc.mirrored_without_pose_flip(b, project),
    }[fault]
    res = run(plant(sample_batch), mano_layer)
    assert res["handedness"].status is Status.FAIL
    ops = {(f["key"], f["op"]) for f in res["handedness"].details["fix"]}
    assert ops == {("keypoints_3d", "scale_axes"), ("keypoints_2d", "scale_axes"),
                   ("mano_pose", "mirror_pose")}  # fmt: skip
    assert res["mano_consistency"].message == "after the fix of handedness"


def test_flipped_samples_whose_pose_was_kept_are_named(sample_batch, mano_layer):
    res = run(fc.flipped_without_pose(sample_batch, [1, 4]), mano_layer)
    assert res["handedness"].status is Status.PASS
    assert "2 samples marked left are right hands" in res["handedness"].message
    check = res["mano_consistency"]
    assert check.status is Status.FAIL and check.details["unflipped"] == [1, 4]
    assert check.details["fix"] == [{"key": "mano_pose", "op": "mirror_pose", "samples": [1, 4]}]


def test_missing_keys_skip(sample_batch):
    res = run({"mano_pose": sample_batch["mano_pose"]})
    assert all(res[i].status is Status.SKIP for i in IDS)


# --- predictions ---------------------------------------------------------------------------
def untrained_outputs(batch, mano_layer, seed=0) -> dict:
    """Predictions like a randomly initialised model's: near the mean pose, a rough camera."""
    gen = torch.Generator().manual_seed(seed)
    n = batch["keypoints_3d"].shape[0]
    pose = torch.randn(n, 48, generator=gen) * 0.05
    pose[:, :3] = batch["mano_pose"][:, :3]
    with torch.no_grad():
        joints = mano_layer(pose[:, :3], pose[:, 3:], torch.zeros(n, 10)).joints
    cam_t = torch.tensor([0.0, 0.0, 8000.0]) + torch.randn(n, 3, generator=gen) * 50
    kp3d = joints - joints[:, :1]
    return {
        "keypoints_3d": kp3d,
        "keypoints_2d": project(kp3d + cam_t[:, None]),
        "coarse_pose": pose,
        "coarse_shape": torch.zeros(n, 10),
    }


def test_untrained_predictions_pass(sample_batch, mano_layer):
    res = run(sample_batch, mano_layer, untrained_outputs(sample_batch, mano_layer))
    for check in ("pred_joint_order", "pred_projection", "aux_target_convention"):
        assert res[check].status is Status.PASS, res[check].message


def test_predictions_in_mano_order(sample_batch, mano_layer):
    out = untrained_outputs(sample_batch, mano_layer)
    out = fc.permute_joints(out, "mano")
    res = run(sample_batch, mano_layer, out)
    check = res["pred_joint_order"]
    assert check.status is Status.FAIL
    assert check.details["pred_to_gt"] == list(KNOWN_ORDERS["mano"])


def test_prediction_order_compared_with_gt_order(sample_batch, mano_layer):
    """GT and predictions both in MANO order: the orders match (joint_order flags the GT)."""
    out = fc.permute_joints(untrained_outputs(sample_batch, mano_layer), "mano")
    res = run(fc.permute_joints(sample_batch, "mano"), mano_layer, out)
    assert res["pred_joint_order"].status is Status.PASS


def test_predicted_2d_not_from_predicted_3d(sample_batch, mano_layer):
    """A 2D head in another joint order. (Another sample's 2D of the same untrained mean hand is
    a valid projection of this 3D under another rotation, so it cannot be told apart.)"""
    out = fc.kp2d_in_order(untrained_outputs(sample_batch, mano_layer), "mano")
    check = run(sample_batch, mano_layer, out)["pred_projection"]
    assert check.status is Status.FAIL
    assert "12/12 samples" in check.message


def test_predicted_2d_anisotropic(sample_batch, mano_layer):
    out = fc.anisotropic_2d(untrained_outputs(sample_batch, mano_layer), 256, 192)
    check = run(sample_batch, mano_layer, out)["pred_projection"]
    assert check.status is Status.FAIL and check.value == pytest.approx(0.75, rel=1e-3)


@pytest.mark.parametrize("frame", ["unit01", "pixels"])
def test_predicted_2d_in_another_crop_frame(sample_batch, mano_layer, frame):
    out = untrained_outputs(sample_batch, mano_layer)
    out["keypoints_2d"] = (
        out["keypoints_2d"] + 0.5 if frame == "unit01" else out["keypoints_2d"] * 256
    )
    check = run(sample_batch, mano_layer, out)["pred_projection"]
    assert check.status is Status.FAIL
    assert "another frame" in check.message


def test_aux_target_in_another_pose_space(sample_batch, mano_layer):
    import copy

    relative_layer = copy.copy(mano_layer)
    relative_layer.flat_hand_mean = False  # the model adds hands_mean to its coarse pose
    res = run(sample_batch, relative_layer, untrained_outputs(sample_batch, mano_layer))
    check = res["aux_target_convention"]
    assert check.status is Status.FAIL
    assert check.details == {"model_space": "relative", "target_space": "absolute"}


def test_many_seeds_of_untrained_predictions_raise_no_alarm(sample_batch, mano_layer):
    for seed in range(10):
        res = run(sample_batch, mano_layer, untrained_outputs(sample_batch, mano_layer, seed))
        assert res["pred_joint_order"].status is Status.PASS
        assert res["pred_projection"].status is Status.PASS
        assert np.isfinite(res["pred_projection"].value)


def test_rotated_2d_names_the_angle_per_sample(sample_batch):
    """The issue's DexYCB case: rotation augmentation turned two samples' 2D by -144 and +103
    degrees and left their 3D; the fit of what a crop can do does not absorb it."""
    batch = fc.rotate_2d(fc.rotate_2d(sample_batch, [1], -144.0), [6], 103.0)
    check = run(batch)["kp2d_kp3d_consistency"]
    assert check.status is Status.FAIL
    assert check.details["rotation_deg"] == {"1": -144.0, "6": 103.0}
    assert "sample 1: -144 deg, sample 6: +103 deg" in check.message
    rotations = [f for f in check.details["fix"] if f["op"] == "rotate_3d"]
    assert [f["samples"] for f in rotations] == [[1], [6]]
    np.testing.assert_allclose(
        rotations[0]["matrix"][0][:2], [np.cos(np.radians(-144)), -np.sin(np.radians(-144))],
        atol=1e-3,
    )  # fmt: skip


def test_small_rotations_pass_and_a_mirror_fails(sample_batch):
    assert run(fc.rotate_2d(sample_batch, [0, 3], 1.0))["kp2d_kp3d_consistency"].status is (
        Status.PASS
    )
    mirrored = dict(sample_batch)
    mirrored["keypoints_2d"] = sample_batch["keypoints_2d"].clone()
    mirrored["keypoints_2d"][[2, 7], :, 0] *= -1.0  # flipped 2D, 3D kept (a right hand)
    check = run(mirrored)["kp2d_kp3d_consistency"]
    assert check.status is Status.FAIL and check.details["mirrored"] == [2, 7]
    assert "2D is mirrored relative to 3D in 2/12 samples" in check.message


@pytest.mark.parametrize("fault", ["millimetres", "opengl"])
def test_translation_is_checked_in_the_joints_frame(sample_batch, mano_layer, fault):
    batch = fc.with_translation(sample_batch, mano_layer)
    assert run(batch, mano_layer)["mano_consistency"].status is Status.PASS
    if fault == "millimetres":
        batch["mano_trans"] = batch["mano_trans"] * 1000.0
        fix = {"key": "mano_trans", "op": "scale_axes", "factors": [0.001, 0.001, 0.001]}
    else:
        from utnet_diag.geometry.mano_conventions import rest_root_m

        root = rest_root_m(mano_layer, batch["mano_shape"])
        flip = torch.tensor([1.0, -1.0, -1.0])
        batch["mano_trans"] = (batch["mano_trans"] + root) * flip - root
        fix = {"key": "mano_trans", "op": "move_translation",
               "matrix": [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]}  # fmt: skip
    check = run(batch, mano_layer)["mano_consistency"]
    assert check.status is Status.FAIL and check.details["fix"] == [fix]
    assert check.details["translation_mm"][fault] < 1.0
