"""Pose metrics the spec watches: MPJPE and PA-MPJPE, root-relative, in millimetres.

``Avg Metric`` (spec 11.3) is the mean of the two. Joints with ``conf == 0`` are left out of both
the error and the Procrustes fit.
"""

from __future__ import annotations

import torch

from utnet_diag.geometry.procrustes import similarity_align
from utnet_diag.losses.functional import root_relative, split_conf


def _visible(gt: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GT coordinates (B,J,3) and a 0/1 visibility weight (B,J) from conf (conf > 0 counts)."""
    coords, conf = split_conf(gt, 3)
    weight = (conf[..., 0] > 0).to(pred.dtype)
    return coords.to(pred.dtype), weight


def per_joint_error(pred: torch.Tensor, gt: torch.Tensor, root_id: int = 0) -> torch.Tensor:
    """Root-relative Euclidean error per joint, (B, J) mm.

    Args:
        pred: (B, 21, 3) mm.
        gt: (B, 21, 3) mm, or (B, 21, 4) with conf.
    """
    coords, _ = _visible(gt, pred)
    return (root_relative(pred, root_id) - root_relative(coords, root_id)).norm(dim=-1)


def mpjpe(pred: torch.Tensor, gt: torch.Tensor, root_id: int = 0) -> torch.Tensor:
    """Mean per-joint position error after subtracting each side's root joint, (B,) mm.

    Joints with ``conf == 0`` are excluded; a sample with no visible joint gives NaN.

    >>> gt = torch.zeros(1, 21, 3); pred = gt.clone(); pred[:, 1:, 0] = 3.0
    >>> mpjpe(pred, gt).item()  # 20 of 21 joints off by 3 mm
    2.857...
    """
    pred64 = pred.detach().double()
    coords, weight = _visible(gt.detach().double(), pred64)
    err = (root_relative(pred64, root_id) - root_relative(coords, root_id)).norm(dim=-1)
    return ((err * weight).sum(1) / weight.sum(1)).to(pred.dtype)


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``pred`` aligned to ``gt`` by the similarity transform (rotation, scale, translation)
    minimising the weighted squared error; rotations only, never reflections (Umeyama 1991).

    The fit is :func:`utnet_diag.geometry.procrustes.similarity_align` (float64 numpy), the one
    Procrustes of the package.

    Args:
        pred, gt: (B, J, 3).
        weight: (B, J) non-negative joint weights.
    Returns:
        (B, J, 3) aligned prediction, dtype and device of ``pred``.
    """
    fit = similarity_align(
        pred.detach().cpu().double().numpy(),
        gt.detach().cpu().double().numpy(),
        weight.detach().cpu().double().numpy(),
    )
    return torch.from_numpy(fit.aligned).to(device=pred.device, dtype=pred.dtype)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MPJPE after Procrustes alignment with scale (reflections excluded), (B,) mm.

    Translation is removed by the alignment, so the result is root-independent.
    """
    pred64 = pred.detach().double()
    coords, weight = _visible(gt.detach().double(), pred64)
    aligned = procrustes_align(pred64, coords, weight)
    err = (aligned - coords).norm(dim=-1)
    return ((err * weight).sum(1) / weight.sum(1)).to(pred.dtype)


def pose_metrics(pred: torch.Tensor, gt: torch.Tensor, root_id: int = 0) -> dict[str, float]:
    """Batch means of MPJPE and PA-MPJPE and their average (the spec's "Avg Metric"), mm.

    Samples whose prediction or ground truth is non-finite, or that have no visible joint, are
    left out and counted.
    """
    per_sample = mpjpe(pred, gt, root_id)
    finite = torch.isfinite(pred.detach()).all(dim=(1, 2))
    finite &= torch.isfinite(gt.detach()[..., :3]).all(dim=(1, 2)).to(finite.device)
    pa = torch.full_like(per_sample, float("nan"))
    if bool(finite.any()):
        pa[finite] = pa_mpjpe(pred[finite], gt[finite])
    keep = torch.isfinite(per_sample) & torch.isfinite(pa)
    n = int(keep.sum())
    if n == 0:
        nan = float("nan")
        return {"mpjpe_mm": nan, "pa_mpjpe_mm": nan, "avg_metric_mm": nan, "samples": 0,
                "samples_left_out": int(per_sample.numel())}  # fmt: skip
    m, p = float(per_sample[keep].mean()), float(pa[keep].mean())
    return {
        "mpjpe_mm": m,
        "pa_mpjpe_mm": p,
        "avg_metric_mm": (m + p) / 2,
        "samples": n,
        "samples_left_out": int(per_sample.numel()) - n,
    }
