"""handedness: left (mirrored) hands fed to the right-hand model are named per sample, whatever
the batch's is_right / hand_type flags say; clean right hands never fail."""

from __future__ import annotations

import numpy as np
import torch

from utnet_diag.checks.conventions import CONVENTION_CHECKS
from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.geometry.joint_order import CHIRALITY_MARGIN, palm_chirality, template_hand
from utnet_diag.io.batch import coerce_batch
from utnet_diag.report.result import Status
from utnet_diag.synthetic import faults_convention as fc
from utnet_diag.synthetic.sample import make_sample_batch, project


def _handedness(batch) -> object:
    results = run_checks(CONVENTION_CHECKS.specs, CheckContext(batch=batch))
    return {r.id: r for r in results}["handedness"]


def _mirror(batch: dict, samples: list[int]) -> dict:
    out = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    mirrored = fc.mirrored_without_pose_flip(batch, project)
    for key in ("keypoints_3d", "keypoints_2d"):
        out[key][samples] = mirrored[key][samples]
    return out


def test_the_palm_decides_the_side_with_a_margin():
    right, left = template_hand(curl=0.4), template_hand(curl=0.4, left=True)
    margins = palm_chirality(np.stack([right, left]))
    assert margins[0] > CHIRALITY_MARGIN and margins[1] < -CHIRALITY_MARGIN
    np.testing.assert_allclose(margins[0], -margins[1])  # a mirror swaps the two fits exactly


def test_clean_right_hands_pass_over_many_seeds():
    for seed in range(10):
        batch = dict(make_sample_batch(8, seed=300 + seed, image_size=(16, 16)).tensors)
        check = _handedness(batch)
        assert check.status is Status.PASS, (seed, check.message)
        assert check.details["left"] == []


def test_mirrored_samples_are_named(sample_batch):
    check = _handedness(_mirror(sample_batch, [2, 5]))
    assert check.status is Status.FAIL
    assert check.details["left"] == [2, 5]
    assert (
        check.message.startswith("2/12 samples are left hands") and "samples 2, 5" in check.message
    )
    assert "(x, -y, -z)" in check.hint  # the full flip, pose included


def test_left_hands_marked_left_were_not_flipped_by_the_loader(sample_batch, mano_layer):
    batch = fc.left_hand(sample_batch, mano_layer, project)
    batch["is_right"] = torch.zeros(12)
    check = _handedness(batch)
    assert check.status is Status.FAIL and check.value == 12
    assert "the batch marks them left: the loader did not flip them" in check.message


def test_mirrored_samples_marked_right_say_so(sample_batch):
    batch = _mirror(sample_batch, [0])
    batch["is_right"] = torch.ones(12)
    assert "(the batch marks them right)" in _handedness(batch).message


def test_right_hands_marked_left_were_flipped_by_the_loader(sample_batch):
    batch = dict(sample_batch)
    batch["is_right"] = torch.tensor([0.0, 1.0] * 6)
    check = _handedness(batch)
    assert check.status is Status.PASS
    assert "6 samples marked left are right hands (flipped by the loader" in check.message


def test_hand_type_strings_become_is_right():
    raw = dict(make_sample_batch(3, seed=1, image_size=(16, 16)).tensors)
    raw["hand_type"] = ["right", "left", "Right"]
    batch, problems = coerce_batch(raw, strict=False)
    assert not problems
    assert batch["is_right"].tolist() == [1.0, 0.0, 1.0]
    assert "'hand_type' read as is_right (1 = right hand)" in batch.notes


def test_a_hand_flattened_into_a_plane_is_undecided_not_left(sample_batch):
    # every joint of sample 3 moved into the plane z = its median depth: a planar hand is its
    # own mirror image, so the right and left palm fits tie (margin 0) and neither side wins
    batch = {k: v.clone() for k, v in sample_batch.items()}
    kp = batch["keypoints_3d"]
    kp[3, :, 2] = kp[3, :, 2].median()
    assert abs(float(palm_chirality(kp[3:4, :, :3].numpy())[0])) < 1e-6
    ctx = CheckContext(batch=batch)
    (check,) = run_checks([s for s in CONVENTION_CHECKS.specs if s.id == "handedness"], ctx)
    assert check.status is Status.PASS
    assert check.details["left"] == [] and 3 not in check.details["right"]
