"""ManoLayer's own skinning (tips skinned on their own, chain per tree level) against smplx's lbs."""

from __future__ import annotations

import pytest
import torch
from smplx.lbs import lbs

from utnet_diag.errors import InputError
from utnet_diag.mano import ManoLayer
from utnet_diag.mano.layer import _chain_plan, _tree_levels
from utnet_diag.model.rotation import axis_angle_to_matrix


def _smplx_reference(layer: ManoLayer, pose, betas, pose2rot: bool, transl=None):
    """Vertices, 16 MANO joints and the spec's 21 joints (mm) the way smplx's lbs gives them."""
    vertices, joints = lbs(betas, pose, layer.v_template, layer.shapedirs, layer.posedirs,
                           layer.J_regressor, layer.parents, layer.lbs_weights,
                           pose2rot=pose2rot)  # fmt: skip
    if transl is not None:
        vertices, joints = vertices + transl[:, None], joints + transl[:, None]
    vertices, joints = vertices * 1000.0, joints * 1000.0
    joints_21 = torch.cat([joints, vertices[:, layer.tip_vertices]], dim=1)[:, layer.to_spec]
    return vertices, joints, joints_21


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("batch", [1, 16])
def test_outputs_match_smplx_lbs(side, batch):
    layer = ManoLayer(side=side)
    generator = torch.Generator().manual_seed(batch)
    pose = torch.randn(batch, 48, generator=generator) * 0.6
    betas = torch.randn(batch, 10, generator=generator)
    transl = torch.randn(batch, 3, generator=generator) * 0.1
    rotmats = axis_angle_to_matrix(pose.reshape(batch, 16, 3))
    cases = [
        (layer(pose[:, :3], pose[:, 3:], betas), _smplx_reference(layer, pose, betas, True)),
        (layer(rotmats[:, :1], rotmats[:, 1:], betas),
         _smplx_reference(layer, rotmats, betas, False)),
        (layer(pose[:, :3], pose[:, 3:], betas, transl),
         _smplx_reference(layer, pose, betas, True, transl)),
    ]  # fmt: skip
    for out, (vertices, joints, joints_21) in cases:
        assert (out.vertices - vertices).abs().max() <= 1e-5  # mm
        assert (out.joints_mano - joints).abs().max() <= 1e-5
        assert (out.joints - joints_21).abs().max() <= 1e-5
        # the tips are still exactly the mesh's tip vertices
        assert torch.equal(out.joints[:, [4, 8, 12, 16, 20]], out.vertices[:, layer.tip_vertices])


def test_joint_gradients_match_and_skip_the_full_mesh():
    layer = ManoLayer()
    generator = torch.Generator().manual_seed(3)
    rotmats = axis_angle_to_matrix(torch.randn(4, 16, 3, generator=generator) * 0.5)
    betas = torch.randn(4, 10, generator=generator)
    weights = torch.randn(4, 21, 3, generator=generator)
    grads = []
    for fn in ("layer", "smplx"):
        r, b = rotmats.clone().requires_grad_(True), betas.clone().requires_grad_(True)
        if fn == "layer":
            out = layer(r[:, :1], r[:, 1:], b)
            joints = out.joints
            # the joints' graph holds no pose blend shapes of the full mesh (135 x 778*3)
            assert not _graph_has_shape(joints.grad_fn, (135, 778 * 3))
            assert _graph_has_shape(out.vertices.grad_fn, (135, 778 * 3))
        else:
            joints = _smplx_reference(layer, r, b, False)[2]
        grads.append(torch.autograd.grad((joints * weights).sum(), [r, b]))
    for ours, theirs in zip(*grads):
        assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-3)


def _graph_has_shape(root, shape: tuple[int, ...]) -> bool:
    """True when a node of the autograd graph below ``root`` saved a tensor of ``shape``."""
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        for attr in dir(node):
            if attr.startswith("_saved_"):
                value = getattr(node, attr, None)
                if isinstance(value, torch.Tensor) and tuple(value.shape) == shape:
                    return True
        stack.extend(child for child, _ in node.next_functions)
    return False


def test_tree_levels():
    levels, order = _tree_levels([-1, 0, 1, 2, 0, 4, 5])
    assert levels == [([1, 4], [0, 0]), ([2, 5], [0, 1]), ([3, 6], [0, 1])]
    assert order == [0, 1, 3, 5, 2, 4, 6]
    with pytest.raises(InputError, match="parent"):
        _tree_levels([-1, 2, 0])


@pytest.mark.parametrize("parents", [[-1, 0, 0, 1, 2, 1, 3], [-1, 0, 1, 0, 3, 4, 2]])
def test_rigid_transform_per_level_matches_smplx_on_other_trees(parents):
    from smplx.lbs import batch_rigid_transform

    layer = ManoLayer()
    levels, order = _tree_levels(parents)
    layer._chain_plan = _chain_plan(levels)
    by_level = [0] + [j for ids, _ in levels for j in ids]
    layer._by_level, layer._level_order = by_level, order
    generator = torch.Generator().manual_seed(len(parents))
    n = len(parents)
    rotmats = axis_angle_to_matrix(torch.randn(3, n, 3, generator=generator))
    joints = torch.randn(3, n, 3, generator=generator)
    layer.parents = torch.tensor(parents)
    posed, rel = layer._rigid_transform(rotmats, joints)
    expected_posed, expected_rel = batch_rigid_transform(rotmats, joints, torch.tensor(parents))
    assert torch.allclose(posed, expected_posed, atol=1e-6)
    assert torch.allclose(rel, expected_rel, atol=1e-6)
