"""ManoLayer: shapes, units, the spec's joint order, rotmat/axis-angle, hands_mean, PCA, left."""

from __future__ import annotations

import pytest
import torch
from smplx.lbs import batch_rodrigues

from utnet_diag.errors import InputError
from utnet_diag.joints import FINGER_JOINTS, MANO_TIP_VERTICES
from utnet_diag.mano import ManoLayer, mano_forward_pose48


@pytest.fixture(scope="module")
def layer() -> ManoLayer:
    return ManoLayer()


def _pose(batch: int, seed: int = 0, scale: float = 0.4):
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 3, generator=generator) * scale,
        torch.randn(batch, 45, generator=generator) * scale,
        torch.randn(batch, 10, generator=generator),
    )


def test_output_shapes_and_millimetres(layer):
    out = layer(*_pose(3))
    assert out.vertices.shape == (3, 778, 3)
    assert out.joints.shape == (3, 21, 3)
    assert out.joints_mano.shape == (3, 16, 3)
    assert out.unit == "mm"
    rest = layer(torch.zeros(1, 3), torch.zeros(1, 45))
    wrist_to_middle1 = (rest.joints[0, 9] - rest.joints[0, 0]).norm()
    assert 85.0 < wrist_to_middle1 < 95.0  # millimetres
    metres = ManoLayer(unit="m")(torch.zeros(1, 3), torch.zeros(1, 45))
    assert torch.allclose(metres.vertices * 1000.0, rest.vertices, atol=1e-3)
    assert layer.faces.shape == (1538, 3) and layer.hands_mean.shape == (45,)


def test_joints_are_in_the_spec_order(layer):
    out = layer(*_pose(2, seed=3))
    joints, vertices, mano = out.joints, out.vertices, out.joints_mano
    assert torch.equal(joints[:, 0], mano[:, 0])
    tips = [FINGER_JOINTS[f][3] for f in ("thumb", "index", "middle", "ring", "pinky")]
    for spec_index, vertex in zip(tips, MANO_TIP_VERTICES):
        assert torch.equal(joints[:, spec_index], vertices[:, vertex])
    # the thumb's joints 1-3 are MANO's thumb1-3 (13-15), the ones that chain to the thumb tip
    assert torch.equal(joints[:, 1:4], mano[:, 13:16])
    rest = layer(torch.zeros(1, 3), torch.zeros(1, 45)).joints[0]
    for finger, ids in FINGER_JOINTS.items():
        chain = [0, *ids]
        steps = [(rest[b] - rest[a]).norm().item() for a, b in zip(chain[1:-1], chain[2:])]
        assert all(5.0 < s < 60.0 for s in steps), (finger, steps)  # neighbours on one finger
        direction = rest[ids[3]] - rest[ids[1]]
        assert (rest[ids[2]] - rest[ids[1]]) @ direction > 0  # monotone along the finger


def test_rotation_matrices_and_axis_angle_agree(layer):
    global_orient, hand_pose, betas = _pose(4, seed=1)
    by_angle = layer(global_orient, hand_pose, betas)
    rot_global = batch_rodrigues(global_orient).view(4, 1, 3, 3)
    rot_hand = batch_rodrigues(hand_pose.reshape(-1, 3)).view(4, 15, 3, 3)
    for g in (rot_global, rot_global[:, 0], global_orient):
        by_matrix = layer(g, rot_hand, betas)
        assert torch.allclose(by_matrix.vertices, by_angle.vertices, atol=1e-3)
        assert torch.allclose(by_matrix.joints, by_angle.joints, atol=1e-3)


def test_flat_hand_mean_false_adds_the_mean(layer):
    global_orient, hand_pose, betas = _pose(2, seed=2)
    relative = ManoLayer(flat_hand_mean=False)
    out = relative(global_orient, hand_pose, betas)
    absolute = layer(global_orient, hand_pose + relative.hands_mean, betas)
    assert torch.allclose(out.vertices, absolute.vertices, atol=1e-4)
    # and the difference is large: a constant pose offset, not a rounding error
    plain = layer(global_orient, hand_pose, betas)
    assert (out.joints - plain.joints).norm(dim=-1).max() > 10.0
    with pytest.raises(InputError, match="absolute"):
        relative(global_orient, batch_rodrigues(hand_pose.reshape(-1, 3)).view(2, 15, 3, 3))


def test_pca_coefficients_map_through_the_components(layer):
    pca = ManoLayer(use_pca=True, num_pca_comps=6)
    coeffs = torch.randn(2, 6)
    out = pca(torch.zeros(2, 3), coeffs)
    expected = layer(torch.zeros(2, 3), coeffs @ layer.hands_components[:6])
    assert torch.allclose(out.vertices, expected.vertices, atol=1e-4)


def test_pose48_transl_and_betas(layer):
    global_orient, hand_pose, betas = _pose(2, seed=4)
    pose48 = torch.cat([global_orient, hand_pose], dim=1)
    transl = torch.tensor([[0.1, 0.0, -0.2], [0.0, 0.05, 0.0]])  # metres
    out = mano_forward_pose48(layer, pose48, betas, transl)
    base = layer(global_orient, hand_pose, betas)
    assert torch.allclose(out.joints - base.joints, transl[:, None] * 1000.0, atol=1e-3)
    bigger = layer(torch.zeros(1, 3), torch.zeros(1, 45), torch.tensor([[2.0] + [0.0] * 9]))
    rest = layer(torch.zeros(1, 3), torch.zeros(1, 45))
    ratio = (bigger.joints[0, 9] - bigger.joints[0, 0]).norm() / (
        rest.joints[0, 9] - rest.joints[0, 0]
    ).norm()
    assert ratio.item() == pytest.approx(1.12, abs=1e-4)


def test_left_hand_mirrors_the_right(layer):
    left = ManoLayer(side="left")
    global_orient, hand_pose, betas = _pose(2, seed=5)
    flip = torch.tensor([1.0, -1.0, -1.0])
    out_left = left(global_orient * flip, (hand_pose.view(2, 15, 3) * flip).view(2, 45), betas)
    out_right = layer(global_orient, hand_pose, betas)
    mirror = torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(out_left.vertices * mirror, out_right.vertices, atol=1e-3)
    assert torch.allclose(out_left.joints * mirror, out_right.joints, atol=1e-3)


def test_gradients_reach_pose_and_shape(layer):
    global_orient, hand_pose, betas = (t.requires_grad_() for t in _pose(2, seed=6))
    layer(global_orient, hand_pose, betas).joints.sum().backward()
    for t in (global_orient, hand_pose, betas):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.zeros(2, 4), torch.zeros(2, 45)), "global_orient has shape"),
        ((torch.zeros(2, 3), torch.zeros(2, 44)), "hand_pose has shape"),
        ((torch.zeros(2, 3), torch.zeros(3, 45)), "batch"),
        ((torch.zeros(2, 3), torch.zeros(2, 45), torch.zeros(2, 11)), "betas"),
    ],
)
def test_bad_shapes_are_input_errors(layer, args, match):
    with pytest.raises(InputError, match=match):
        layer(*args)
    with pytest.raises(InputError, match="mano_pose"):
        mano_forward_pose48(layer, torch.zeros(2, 45))


def test_bad_options():
    with pytest.raises(InputError, match="side"):
        ManoLayer(side="middle")
    with pytest.raises(InputError, match="unit"):
        ManoLayer(unit="cm")
