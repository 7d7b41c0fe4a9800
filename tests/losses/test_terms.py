"""The spec's loss terms against hand-computed values, their gradients and their shape errors."""

from __future__ import annotations

import re

import pytest
import torch

from utnet_diag.config import LossWeights
from utnet_diag.errors import InputError
from utnet_diag.losses import (
    LossShapeError,
    aux_loss,
    compute_terms,
    keypoint_2d_loss,
    keypoint_3d_loss,
    prior_loss,
    root_relative,
    total_loss,
    vertex_loss,
)


def test_keypoint_2d_loss_hand_computed_with_conf_zero_and_fractional():
    pred = torch.zeros(2, 21, 2)
    gt = torch.zeros(2, 21, 3)
    gt[..., 2] = 1.0
    gt[0, 3, :2] = torch.tensor([0.1, -0.2])  # conf 1: 0.1 + 0.2
    gt[1, 5, :2] = torch.tensor([0.4, 0.0])
    gt[1, 5, 2] = 0.5  # fractional conf: 0.5 * 0.4
    gt[1, 6, :2] = torch.tensor([1.0, 1.0])
    gt[1, 6, 2] = 0.0  # conf 0 removes the point
    assert keypoint_2d_loss(pred, gt).item() == pytest.approx(0.3 + 0.2, abs=1e-6)


def test_keypoint_2d_loss_two_column_gt_means_conf_one():
    gen = torch.Generator().manual_seed(0)
    pred, coords = torch.rand(3, 21, 2, generator=gen), torch.rand(3, 21, 2, generator=gen)
    with_conf = torch.cat([coords, torch.ones(3, 21, 1)], dim=-1)
    expected = (pred - coords).abs().sum()
    assert keypoint_2d_loss(pred, coords).item() == pytest.approx(expected.item(), rel=1e-6)
    assert keypoint_2d_loss(pred, with_conf).item() == pytest.approx(expected.item(), rel=1e-6)


def test_keypoint_2d_loss_is_a_batch_sum():
    gen = torch.Generator().manual_seed(1)
    pred, gt = torch.rand(1, 21, 2, generator=gen), torch.rand(1, 21, 2, generator=gen)
    single = keypoint_2d_loss(pred, gt)
    double = keypoint_2d_loss(pred.repeat(2, 1, 1), gt.repeat(2, 1, 1))
    assert double.item() == pytest.approx(2 * single.item(), rel=1e-6)


def test_keypoint_3d_loss_hand_computed_root_relative():
    gt = torch.zeros(1, 21, 4)
    gt[..., 3] = 1.0
    pred = torch.zeros(1, 21, 3)
    pred[0, 0] = torch.tensor([10.0, 0.0, 0.0])  # moving the root moves 20 relative joints
    assert keypoint_3d_loss(pred, gt).item() == pytest.approx(200.0)
    gt[0, 1, 3] = 0.0  # conf 0 on joint 1
    gt[0, 2, 3] = 0.25  # fractional conf on joint 2
    assert keypoint_3d_loss(pred, gt).item() == pytest.approx(200.0 - 10.0 - 7.5)


def test_keypoint_3d_loss_ignores_global_translation_and_uses_root_id():
    gen = torch.Generator().manual_seed(2)
    gt = torch.randn(2, 21, 3, generator=gen) * 50
    shifted = gt + torch.tensor([100.0, -40.0, 500.0])
    assert keypoint_3d_loss(shifted, gt).item() == pytest.approx(0.0, abs=1e-3)
    pred = gt.clone()
    pred[:, 0] += 5.0  # only the root moves: zero error around root 1 except joint 0 itself
    assert keypoint_3d_loss(pred, gt, root_id=1).item() == pytest.approx(2 * 3 * 5.0, rel=1e-5)
    assert keypoint_3d_loss(pred, gt, root_id=0).item() == pytest.approx(2 * 20 * 3 * 5.0, rel=1e-5)
    assert torch.equal(root_relative(gt)[:, 0], torch.zeros(2, 3))


def test_prior_loss_shape_and_pose_parts():
    betas = torch.arange(20, dtype=torch.float32).reshape(2, 10)
    out = prior_loss(betas)
    assert set(out) == {"shape_prior"}  # pose prior off by default (pose_weight 0)
    assert out["shape_prior"].item() == pytest.approx(sum(i * i for i in range(20)) / 20)
    hand_pose = torch.eye(3).repeat(2, 15, 1, 1)
    hand_pose[1, 4] = 2 * torch.eye(3)  # ||2I - I||_F^2 = 3
    out = prior_loss(betas, hand_pose, shape_weight=0.5, pose_weight=2.0)
    assert out["shape_prior"].item() == pytest.approx(0.5 * 2470 / 20)
    assert out["pose_prior"].item() == pytest.approx(2.0 * 3 / 30)


def test_aux_loss_weighted_once_and_masked_by_has_mano():
    coarse_pose, coarse_shape = torch.zeros(2, 48), torch.zeros(2, 10)
    gt_pose, gt_shape = torch.ones(2, 48), torch.full((2, 10), 2.0)
    gt_pose[1] = 3.0  # sample 1 differs, and is masked out below
    assert aux_loss(coarse_pose, coarse_shape, gt_pose, gt_shape, 0.1).item() == pytest.approx(
        0.1 * ((1 + 9) / 2 + 4)
    )
    has_mano = torch.tensor([1.0, 0.0])
    assert aux_loss(
        coarse_pose, coarse_shape, gt_pose, gt_shape, 0.1, has_mano
    ).item() == pytest.approx(0.1 * (1 + 4))


def test_aux_loss_is_exactly_zero_without_mano_ground_truth():
    coarse = torch.randn(3, 48, requires_grad=True)
    value = aux_loss(coarse, torch.zeros(3, 10), torch.ones(3, 48), torch.ones(3, 10), 0.1,
                     torch.zeros(3))  # fmt: skip
    assert value.item() == 0.0
    assert torch.isfinite(value)


def test_vertex_loss_hand_computed():
    gt = torch.zeros(1, 778, 3)
    pred = torch.ones(1, 778, 3)
    # Same root offset: root-relative vertices agree.
    assert vertex_loss(pred, gt, torch.ones(1, 3), torch.zeros(1, 3)).item() == 0.0
    assert vertex_loss(pred, gt, torch.zeros(1, 1, 3), torch.zeros(1, 3)).item() == pytest.approx(
        778 * 3
    )


def test_total_loss_weights_and_aux_added_once():
    weights = LossWeights.from_preset("config")
    terms = {
        "loss_2d": torch.tensor(300.0),
        "loss_3d_joint": torch.tensor(70000.0),
        "loss_prior": {"shape_prior": torch.tensor(70.0)},
        "loss_aux": torch.tensor(0.5),  # already carries w_aux
        "loss_3d_vert": torch.tensor(1000.0),  # use_vertex_loss false: ignored
    }
    expected = 0.01 * 300 + 0.05 * 70000 + 0.001 * 70 + 0.5
    assert total_loss(terms, weights).item() == pytest.approx(expected)
    on = weights.with_overrides({"use_vertex_loss": True, "w_3d_vert": 0.5}, "test")
    assert total_loss(terms, on).item() == pytest.approx(expected + 500.0)
    with pytest.raises(ValueError, match="unknown loss terms"):
        total_loss({"loss_2D": torch.tensor(1.0)}, weights)


@pytest.mark.parametrize(
    "call",
    [
        lambda: keypoint_2d_loss(torch.zeros(2, 21, 3), torch.zeros(2, 21, 3)),
        lambda: keypoint_2d_loss(torch.zeros(2, 20, 2), torch.zeros(2, 20, 3)),
        lambda: keypoint_2d_loss(torch.zeros(2, 21, 2), torch.zeros(3, 21, 3)),
        lambda: keypoint_3d_loss(torch.zeros(2, 21, 3), torch.zeros(2, 21, 5)),
        lambda: keypoint_3d_loss(torch.zeros(2, 21, 3), torch.zeros(2, 21, 4), root_id=21),
        lambda: prior_loss(torch.zeros(2, 9)),
        lambda: prior_loss(torch.zeros(2, 10), torch.zeros(2, 16, 3, 3), pose_weight=1.0),
        lambda: aux_loss(
            torch.zeros(2, 45), torch.zeros(2, 10), torch.zeros(2, 48), torch.zeros(2, 10), 0.1
        ),  # fmt: skip
        lambda: aux_loss(
            torch.zeros(2, 48),
            torch.zeros(2, 10),
            torch.zeros(2, 48),
            torch.zeros(2, 10),
            0.1,
            torch.ones(3),
        ),  # fmt: skip
        lambda: vertex_loss(
            torch.zeros(1, 778, 3), torch.zeros(1, 777, 3), torch.zeros(1, 3), torch.zeros(1, 3)
        ),  # fmt: skip
    ],
)
def test_wrong_shapes_raise_an_error_naming_the_shapes(call):
    with pytest.raises(LossShapeError) as info:
        call()
    assert isinstance(info.value, InputError)
    # Names the actual shape (or the bad root id) it got.
    assert re.search(r"\(\d+(,\d+)*\)|got \d+$", str(info.value)), str(info.value)


def test_shape_error_message_names_both_shapes():
    with pytest.raises(LossShapeError, match=r"pred \(2,21,2\), gt \(3,21,3\)"):
        keypoint_2d_loss(torch.zeros(2, 21, 2), torch.zeros(3, 21, 3))
    with pytest.raises(LossShapeError, match=r"\(B,21,3\|4\), got \(2,21,5\)"):
        keypoint_3d_loss(torch.zeros(2, 21, 3), torch.zeros(2, 21, 5))


@pytest.mark.slow
def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(3)

    def rand(*shape):
        return torch.rand(*shape, generator=gen, dtype=torch.float64)

    # Offsets keep |pred - gt| away from 0, where L1 is not differentiable.
    gt2 = torch.cat([rand(2, 21, 2), rand(2, 21, 1)], -1)
    pred2 = (gt2[..., :2] + 0.2 + rand(2, 21, 2)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: keypoint_2d_loss(p, gt2), (pred2,))
    gt3 = torch.cat([rand(2, 21, 3), rand(2, 21, 1)], -1)
    pred3 = gt3[..., :3] + 0.2 + rand(2, 21, 3)
    pred3[:, 0] = gt3[:, 0, :3] - 1.0  # root offset keeps root-relative differences non-zero
    pred3.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: keypoint_3d_loss(p, gt3), (pred3,))
    betas = rand(2, 10).requires_grad_()
    pose = rand(2, 15, 3, 3).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda b, r: sum(prior_loss(b, r, 1.0, 0.5).values()), (betas, pose)
    )
    cp, cs = rand(3, 48).requires_grad_(), rand(3, 10).requires_grad_()
    gp, gs = rand(3, 48), rand(3, 10)
    mask = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: aux_loss(a, b, gp, gs, 0.1, mask), (cp, cs))
    gv = rand(1, 778, 3)
    pv = (gv + 0.3 + rand(1, 778, 3)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda v: vertex_loss(
            v, gv, torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64)
        ),
        (pv,),  # fmt: skip
    )


def test_compute_terms_matches_the_functions(clean_batch):
    gen = torch.Generator().manual_seed(4)
    b = 8
    outputs = {
        "keypoints_2d": clean_batch["keypoints_2d"][..., :2]
        + 0.01 * torch.randn(b, 21, 2, generator=gen),
        "keypoints_3d": clean_batch["keypoints_3d"][..., :3] + torch.randn(b, 21, 3, generator=gen),
        "mano_params": {"betas": torch.randn(b, 10, generator=gen)},
        "coarse_pose": torch.zeros(b, 48),
        "coarse_shape": torch.zeros(b, 10),
    }
    weights = LossWeights.from_preset("config")
    out = compute_terms(outputs, clean_batch, weights)
    l2d = keypoint_2d_loss(outputs["keypoints_2d"], clean_batch["keypoints_2d"])
    l3d = keypoint_3d_loss(outputs["keypoints_3d"], clean_batch["keypoints_3d"])
    prior = (outputs["mano_params"]["betas"] ** 2).mean()
    pose_mse = (clean_batch["mano_pose"] ** 2).mean()
    shape_mse = (clean_batch["mano_shape"] ** 2).mean()
    aux = 0.001 * (pose_mse + shape_mse)
    assert out.terms["loss_2d"].item() == pytest.approx(l2d.item(), rel=1e-6)
    assert out.terms["loss_3d_joint"].item() == pytest.approx(l3d.item(), rel=1e-6)
    assert out.terms["loss_prior"].item() == pytest.approx(prior.item(), rel=1e-6)
    assert out.terms["loss_aux"].item() == pytest.approx(aux.item(), rel=1e-6)
    assert out.parts["aux_pose_mse"].item() == pytest.approx(pose_mse.item(), rel=1e-6)
    assert "loss_3d_vert" in out.skipped
    expected = 0.01 * l2d + 0.05 * l3d + 0.001 * prior + aux
    assert out.total.item() == pytest.approx(expected.item(), rel=1e-6)
    no_mano = dict(clean_batch, has_mano=torch.zeros(b))
    assert compute_terms(outputs, no_mano, weights).terms["loss_aux"].item() == 0.0


def test_compute_terms_names_each_missing_input(clean_batch):
    b = 8
    outputs = {
        "keypoints_2d": clean_batch["keypoints_2d"][..., :2],
        "keypoints_3d": clean_batch["keypoints_3d"][..., :3],
        "coarse_pose": torch.zeros(b, 48),
        "coarse_shape": torch.zeros(b, 10),
        "vertices": torch.zeros(b, 778, 3),
    }
    weights = LossWeights.from_preset("code")  # use_aux_loss
    for drop in ("mano_pose", "mano_shape"):  # half the MANO target is no target
        batch = {k: v for k, v in clean_batch.items() if k != drop}
        out = compute_terms(outputs, batch, weights)
        assert out.skipped["loss_aux"] == "the batch has no mano_pose/mano_shape", drop
    for drop in ("coarse_pose", "coarse_shape"):
        out = compute_terms({k: v for k, v in outputs.items() if k != drop}, clean_batch, weights)
        assert out.skipped["loss_aux"] == "the model output has no coarse_pose/coarse_shape", drop
    with_vertices = LossWeights(**{**vars(weights), "use_vertex_loss": True, "source": {}})
    without_gt = {k: v for k, v in clean_batch.items() if k != "vertices_3d"}
    out = compute_terms(outputs, without_gt, with_vertices)
    assert out.skipped["loss_3d_vert"] == "the batch has no vertices_3d (nor GT MANO to make them)"
    assert out.off == frozenset()  # missing inputs, not a term the weights turned off
    no_pred = {k: v for k, v in outputs.items() if k != "vertices"}
    out = compute_terms(no_pred, dict(clean_batch, vertices_3d=torch.zeros(b, 778, 3)),
                        with_vertices)  # fmt: skip
    assert out.skipped["loss_3d_vert"] == "the model output has no vertices"
    no_root = {k: v for k, v in clean_batch.items() if k != "keypoints_3d"}
    out = compute_terms(outputs, dict(no_root, vertices_3d=torch.zeros(b, 778, 3)), with_vertices)
    assert out.skipped["loss_3d_vert"] == "the batch has no keypoints_3d (the vertex root)"
    off = LossWeights(**{**vars(weights), "use_vertex_loss": False, "use_aux_loss": False,
                         "source": {}})  # fmt: skip
    assert compute_terms(outputs, clean_batch, off).off == {"loss_3d_vert", "loss_aux"}


def test_vertex_roots_of_another_batch_size_are_refused():
    v = torch.zeros(2, 778, 3)
    with pytest.raises(LossShapeError, match=r"pred_root must have shape \(B,3\) or \(B,1,3\)"):
        vertex_loss(v, v, torch.zeros(3, 3), torch.zeros(2, 3))
    with pytest.raises(LossShapeError, match="gt_root"):
        vertex_loss(v, v, torch.zeros(2, 3), torch.zeros(2, 2, 3))
