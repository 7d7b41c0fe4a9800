"""Which MANO convention do parameters follow: ground truth made here under each convention from
MANO's own definitions (hands_mean, hands_components, a mirror), one at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from utnet_diag.geometry.mano_conventions import (
    AGREE_MM,
    flip_pose,
    mano_convention,
    translation_convention,
)
from utnet_diag.joints import KEYPOINTFUSION_TO_SPEC, invert
from utnet_diag.mano import ManoLayer

MIRROR = torch.tensor([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def layer() -> ManoLayer:
    return ManoLayer()


@pytest.fixture(scope="module")
def params() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    pose = torch.cat([torch.randn(6, 3, generator=gen), torch.randn(6, 45, generator=gen) * 0.3], 1)
    return pose, torch.randn(6, 10, generator=gen).clamp(-2, 2)


def joints(layer: ManoLayer, pose: torch.Tensor, betas: torch.Tensor, **kw) -> torch.Tensor:
    with torch.no_grad():
        return layer(pose[:, :3], pose[:, 3:], betas, **kw).joints


def test_flip_pose_is_the_mirror_of_every_rotation():
    # mirroring x -> -x turns rotation R into M R M with M = diag(-1, 1, 1)
    v = np.random.default_rng(0).normal(size=(4, 16, 3))
    flipped = flip_pose(torch.tensor(v).reshape(4, 48)).reshape(4, 16, 3).numpy()
    m = np.diag([-1.0, 1.0, 1.0])
    expected = m @ Rotation.from_rotvec(v.reshape(-1, 3)).as_matrix() @ m
    np.testing.assert_allclose(Rotation.from_rotvec(flipped.reshape(-1, 3)).as_matrix(),
                               expected, atol=1e-12)  # fmt: skip


def test_parameters_that_agree_give_the_canonical_reading(layer, params):
    pose, betas = params
    result = mano_convention(layer, pose, betas, joints(layer, pose, betas))
    assert result.best == ("absolute", "right", "spec") and result.agrees
    assert result.as_given_mm < 1e-3 and result.fix() == ""


def test_a_pose_relative_to_the_mean_is_named(layer, params):
    pose, betas = params
    relative = pose.clone()
    relative[:, 3:] -= layer.hands_mean  # what flat_hand_mean=False code would store
    result = mano_convention(layer, relative, betas, joints(layer, pose, betas))
    assert result.best == ("relative", "right", "spec")
    assert result.best_mm < 1e-3 and not result.agrees and result.as_given_mm > AGREE_MM
    assert "add hands_mean" in result.fix()


def test_pca_coefficients_are_named(layer, params):
    pose, betas = params
    coeffs = torch.randn(6, 45, generator=torch.Generator().manual_seed(4)) * 0.5
    absolute = torch.cat([pose[:, :3], coeffs @ layer.hands_components], 1)
    given = torch.cat([pose[:, :3], coeffs], 1)
    result = mano_convention(layer, given, betas, joints(layer, absolute, betas))
    assert result.best[0] == "pca" and result.best_mm < 1e-2


def test_left_hands_mirrored_joints_and_unflipped_samples(layer, params):
    pose, betas = params
    # a left hand: the mirror image of the right model run on the flipped pose
    left = joints(layer, flip_pose(pose), betas) * MIRROR
    assert mano_convention(layer, pose, betas, left).best == ("absolute", "left", "spec")
    # joints mirrored, pose kept
    mirrored = joints(layer, pose, betas) * MIRROR
    assert mano_convention(layer, pose, betas, mirrored).best[1] == "mirrored"
    # two samples flipped to right hands whose poses were not flipped: named per sample
    gt = joints(layer, pose, betas)
    gt[[1, 4]] = joints(layer, flip_pose(pose[[1, 4]]), betas[[1, 4]])
    result = mano_convention(layer, pose, betas, gt)
    assert result.best == ("absolute", "right", "spec")  # the batch's own, by the median
    assert list(result.sample_hands) == ["right", "unflipped", "right", "right", "unflipped",
                                         "right"]  # fmt: skip
    assert (result.per_sample_mm[[1, 4]] > AGREE_MM).all() and not result.agrees


def test_joint_order_and_opengl_frame_of_the_ground_truth(layer, params):
    pose, betas = params
    gt = joints(layer, pose, betas)
    kf = gt[:, list(invert(KEYPOINTFUSION_TO_SPEC))]  # stored in KeypointFusion's order
    result = mano_convention(layer, pose, betas, kf)
    assert result.best == ("absolute", "right", "keypointfusion")
    assert f"keypoints_3d[:, {list(KEYPOINTFUSION_TO_SPEC)}]" in result.fix()
    opengl = gt * torch.tensor([1.0, -1.0, -1.0])
    result = mano_convention(layer, pose, betas, opengl)
    assert result.best == ("absolute", "right", "spec+opengl")
    assert "OpenGL camera frame" in result.fix()


def test_unannotated_joints_are_left_out_by_weight(layer, params):
    pose, betas = params
    gt = joints(layer, pose, betas)
    gt[:, 8] += 500.0
    weights = torch.ones(6, 21)
    weights[:, 8] = 0.0
    assert mano_convention(layer, pose, betas, gt, weights).agrees
    assert not mano_convention(layer, pose, betas, gt).agrees


def test_translation_readings(layer, params):
    pose, betas = params
    trans_m = torch.tensor([[0.05, -0.02, 0.6]]).repeat(6, 1)
    gt = joints(layer, pose, betas, transl=trans_m)
    result = translation_convention(layer, pose, betas, trans_m, gt)
    assert result.best == "metres" and result.agrees
    result = translation_convention(layer, pose, betas, trans_m * 1000.0, gt)
    assert result.best == "millimetres" and not result.agrees
    assert result.errors_mm["millimetres"] < 1e-2 and result.errors_mm["metres"] > 500.0
