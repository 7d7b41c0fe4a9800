"""MPJPE and PA-MPJPE on hand-computed cases."""

from __future__ import annotations

import math

import torch

from utnet_diag.diagnostics.metrics import mpjpe, pa_mpjpe, pose_metrics, procrustes_align


def _rotation(axis: torch.Tensor, angle: float) -> torch.Tensor:
    from utnet_diag.model.rotation import axis_angle_to_matrix

    return axis_angle_to_matrix(axis / axis.norm() * angle)


def _hand(seed: int = 0, n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 21, 3, generator=g, dtype=torch.float64) * 40.0


def test_mpjpe_hand_computed_root_relative() -> None:
    gt = torch.zeros(1, 21, 3)
    pred = gt.clone()
    pred[:, 1:, 0] = 3.0  # 20 joints off by 3 mm, root exact
    assert math.isclose(mpjpe(pred, gt).item(), 20 * 3.0 / 21, rel_tol=1e-6)
    shifted = pred + torch.tensor([100.0, -50.0, 7.0])  # a global translation is removed
    assert math.isclose(mpjpe(shifted, gt).item(), 20 * 3.0 / 21, rel_tol=1e-6)


def test_mpjpe_leaves_out_conf_zero_joints() -> None:
    gt = torch.zeros(1, 21, 4)
    gt[..., 3] = 1.0
    gt[0, 5, 3] = 0.0
    pred = torch.zeros(1, 21, 3)
    pred[0, 5] = torch.tensor([0.0, 0.0, 50.0])  # only the invisible joint is wrong
    pred[0, 6] = torch.tensor([0.0, 4.0, 0.0])
    assert math.isclose(mpjpe(pred, gt).item(), 4.0 / 20, rel_tol=1e-6)


def test_pa_mpjpe_removes_rotation_scale_translation() -> None:
    gt = _hand()
    rot = _rotation(torch.tensor([0.3, -1.0, 0.5], dtype=torch.float64), 1.2)
    pred = 1.7 * gt @ rot.T + torch.tensor([10.0, 20.0, -30.0], dtype=torch.float64)
    assert mpjpe(pred, gt).min().item() > 10.0
    assert pa_mpjpe(pred, gt).max().item() < 1e-6


def test_pa_mpjpe_does_not_mirror() -> None:
    gt = _hand(1)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    aligned = procrustes_align(mirrored, gt, torch.ones(2, 21, dtype=torch.float64))
    # A reflection would fit exactly; a rotation cannot, so the error stays large.
    assert pa_mpjpe(mirrored, gt).min().item() > 5.0
    assert not torch.allclose(aligned, gt, atol=1e-3)


def test_pose_metrics_average_and_non_finite_samples() -> None:
    gt = _hand(2, n=3).float()
    pred = gt.clone()
    pred[0, 1:, 2] += 6.0
    pred[2] = float("nan")
    out = pose_metrics(pred, gt)
    assert out["samples"] == 2 and out["samples_left_out"] == 1
    assert math.isclose(out["mpjpe_mm"], (20 * 6.0 / 21) / 2, rel_tol=1e-5)
    assert math.isclose(out["avg_metric_mm"], (out["mpjpe_mm"] + out["pa_mpjpe_mm"]) / 2)


def test_pose_metrics_leaves_out_samples_with_nan_ground_truth() -> None:
    gt = _hand(3, n=4).float()
    pred = gt.clone()
    pred[:, 1:, 0] += 3.0
    gt_with_conf = torch.cat([gt, torch.ones(4, 21, 1)], -1)
    gt_with_conf[2, 7, 1] = float("nan")  # one bad annotation must not break the SVD
    out = pose_metrics(pred, gt_with_conf)
    assert out["samples"] == 3 and out["samples_left_out"] == 1
    assert math.isclose(out["mpjpe_mm"], 20 * 3.0 / 21, rel_tol=1e-5)


def test_pa_mpjpe_matches_the_geometry_procrustes() -> None:
    from utnet_diag.geometry.procrustes import similarity_align

    gt = _hand(4, n=5)
    g = torch.Generator().manual_seed(4)
    pred = 0.8 * gt.flip(-1) + torch.randn(5, 21, 3, generator=g, dtype=torch.float64)
    weight = (torch.rand(5, 21, generator=g) > 0.3).double()
    fit = similarity_align(pred.numpy(), gt.numpy(), weight.numpy())
    aligned = procrustes_align(pred, gt, weight)
    assert torch.allclose(aligned, torch.from_numpy(fit.aligned), atol=1e-12)
    expected = ((aligned - gt).norm(dim=-1) * weight).sum(1) / weight.sum(1)
    got = pa_mpjpe(pred, torch.cat([gt, weight[..., None]], -1))
    assert torch.allclose(got, expected, atol=1e-9)
