"""The spec's loss terms as pure, differentiable functions on tensors (any device).

All batch sums follow the spec: they grow with the batch size. Units: 2D in normalized crop
coordinates ([-0.5, 0.5]), 3D in millimetres.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from utnet_diag.errors import InputError
from utnet_diag.spec import TERM, TERM_KEYS

TERMS = TERM_KEYS
# How reports name each term (the training log's wording).
TERM_LABELS = {key: term.label for key, term in TERM.items()}


class LossShapeError(InputError, ValueError):
    """Inputs of a loss term have the wrong shapes; the message names the shapes it got."""


def _shape(t: torch.Tensor) -> str:
    return "(" + ",".join(str(s) for s in t.shape) + ")"


def _expect(name: str, t: torch.Tensor, rank: int, last: tuple[int, ...], mid: int | None = None):
    if not isinstance(t, torch.Tensor):
        raise LossShapeError(f"{name} must be a tensor, got {type(t).__name__}")
    ok = t.dim() == rank and t.shape[-1] in last and (mid is None or t.shape[1] == mid)
    if not ok:
        want = "(B," + (f"{mid}," if mid else "") + "|".join(map(str, last)) + ")"
        raise LossShapeError(f"{name} must have shape {want}, got {_shape(t)}")


def _same_batch(*pairs: tuple[str, torch.Tensor]) -> None:
    sizes = {name: t.shape[0] for name, t in pairs}
    if len(set(sizes.values())) > 1:
        got = ", ".join(f"{n} {_shape(t)}" for n, t in pairs)
        raise LossShapeError(f"batch sizes differ: {got}")


def split_conf(gt: torch.Tensor, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (B,J,dims+1) into coordinates and conf (B,J,1); (B,J,dims) means conf 1."""
    if gt.shape[-1] == dims + 1:
        return gt[..., :dims], gt[..., dims:]
    return gt, torch.ones_like(gt[..., :1])


def keypoint_2d_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Conf-weighted L1 on 2D keypoints, summed over joints, coordinates and batch (spec 1).

    ``L_2D = sum_b sum_{j,c} conf_bj * |pred_bjc - gt_bjc|``

    Args:
        pred: (B, 21, 2) normalized crop coordinates.
        gt: (B, 21, 3) x, y, conf; or (B, 21, 2) meaning conf 1.

    >>> keypoint_2d_loss(torch.zeros(1, 21, 2), torch.full((1, 21, 2), 0.1)).item()  # 42 * 0.1
    4.2...
    """
    _expect("pred keypoints_2d", pred, 3, (2,), 21)
    _expect("gt keypoints_2d", gt, 3, (2, 3), 21)
    _same_batch(("pred", pred), ("gt", gt))
    coords, conf = split_conf(gt, 2)
    return (conf * (pred - coords).abs()).sum()


def root_relative(joints: torch.Tensor, root_id: int = 0) -> torch.Tensor:
    """(B, J, 3) joints minus their root joint ``root_id``."""
    return joints - joints[:, root_id : root_id + 1, :]


def keypoint_3d_loss(pred: torch.Tensor, gt: torch.Tensor, root_id: int = 0) -> torch.Tensor:
    """Conf-weighted L1 on root-relative 3D joints, summed over joints, xyz and batch (spec 2).

    ``L_3D = sum_b sum_{j,c} conf_bj * |(p_bj - p_b,root) - (g_bj - g_b,root)|_c``

    Args:
        pred: (B, 21, 3) mm.
        gt: (B, 21, 4) x, y, z mm and conf; or (B, 21, 3) meaning conf 1.
        root_id: the root joint (the wrist, 0).
    """
    _expect("pred keypoints_3d", pred, 3, (3,), 21)
    _expect("gt keypoints_3d", gt, 3, (3, 4), 21)
    _same_batch(("pred", pred), ("gt", gt))
    if not 0 <= root_id < pred.shape[1]:
        raise LossShapeError(f"root_id must be in 0..{pred.shape[1] - 1}, got {root_id}")
    coords, conf = split_conf(gt, 3)
    diff = root_relative(pred, root_id) - root_relative(coords, root_id)
    return (conf * diff.abs()).sum()


def prior_loss(
    betas: torch.Tensor,
    hand_pose: torch.Tensor | None = None,
    shape_weight: float = 1.0,
    pose_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """MANO parameter prior (spec 3): ``shape_prior`` and, if enabled, ``pose_prior``.

    ``shape_prior = shape_weight * mean(betas**2)``;
    ``pose_prior = pose_weight * mean_{b,j} ||R_bj - I||_F^2`` (only when ``pose_weight > 0`` and
    ``hand_pose`` is given).

    Args:
        betas: (B, 10).
        hand_pose: (B, 15, 3, 3) rotation matrices.
    """
    _expect("betas", betas, 2, (10,))
    out = {"shape_prior": shape_weight * (betas**2).mean()}
    if pose_weight > 0 and hand_pose is not None:
        if hand_pose.dim() != 4 or tuple(hand_pose.shape[1:]) != (15, 3, 3):
            raise LossShapeError(f"hand_pose must have shape (B,15,3,3), got {_shape(hand_pose)}")
        eye = torch.eye(3, device=hand_pose.device, dtype=hand_pose.dtype)
        out["pose_prior"] = pose_weight * ((hand_pose - eye) ** 2).sum(dim=(-2, -1)).mean()
    return out


def aux_loss(
    coarse_pose: torch.Tensor,
    coarse_shape: torch.Tensor,
    gt_pose: torch.Tensor,
    gt_shape: torch.Tensor,
    weight: float,
    has_mano: torch.Tensor | None = None,
) -> torch.Tensor:
    """Auxiliary loss on the coarse prediction (spec 4), weight included (DIGEST decision):

    ``L_aux = weight * (MSE(coarse_pose, gt_pose) + MSE(coarse_shape, gt_shape))``, means over
    the samples with ground-truth MANO (``has_mano`` (B,) truthy); exactly 0 when there are none.

    Args:
        coarse_pose, gt_pose: (B, 48) axis-angle (3 global + 15x3).
        coarse_shape, gt_shape: (B, 10).
    """
    _expect("coarse_pose", coarse_pose, 2, (48,))
    _expect("gt mano_pose", gt_pose, 2, (48,))
    _expect("coarse_shape", coarse_shape, 2, (10,))
    _expect("gt mano_shape", gt_shape, 2, (10,))
    _same_batch(("coarse_pose", coarse_pose), ("gt_pose", gt_pose), ("coarse_shape", coarse_shape),
                ("gt_shape", gt_shape))  # fmt: skip
    if has_mano is not None:
        mask = has_mano.reshape(-1).to(device=coarse_pose.device).bool()
        if mask.numel() != coarse_pose.shape[0]:
            raise LossShapeError(f"has_mano must have shape (B,), got {_shape(has_mano)}")
        if not bool(mask.any()):
            return coarse_pose.new_zeros(())
        coarse_pose, gt_pose = coarse_pose[mask], gt_pose[mask]
        coarse_shape, gt_shape = coarse_shape[mask], gt_shape[mask]
    pose = torch.nn.functional.mse_loss(coarse_pose, gt_pose.to(coarse_pose.dtype))
    shape = torch.nn.functional.mse_loss(coarse_shape, gt_shape.to(coarse_shape.dtype))
    return weight * (pose + shape)


def vertex_loss(
    pred_vertices: torch.Tensor,
    gt_vertices: torch.Tensor,
    pred_root: torch.Tensor,
    gt_root: torch.Tensor,
) -> torch.Tensor:
    """L1 on root-relative mesh vertices, summed over vertices, xyz and batch (optional term).

    Args:
        pred_vertices, gt_vertices: (B, 778, 3) mm.
        pred_root, gt_root: (B, 3) or (B, 1, 3) mm, the root joint of each side.
    """
    _expect("pred vertices", pred_vertices, 3, (3,))
    _expect("gt vertices_3d", gt_vertices, 3, (3,))
    if pred_vertices.shape != gt_vertices.shape:
        raise LossShapeError(
            f"vertex shapes differ: pred {_shape(pred_vertices)}, gt {_shape(gt_vertices)}"
        )
    roots = []
    for name, root in (("pred_root", pred_root), ("gt_root", gt_root)):
        if root.dim() == 2:
            root = root[:, None, :]
        if root.dim() != 3 or root.shape[1:] != (1, 3) or root.shape[0] != pred_vertices.shape[0]:
            raise LossShapeError(f"{name} must have shape (B,3) or (B,1,3), got {_shape(root)}")
        roots.append(root)
    return ((pred_vertices - roots[0]) - (gt_vertices - roots[1])).abs().sum()


def prior_total(prior: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The prior term as one scalar (sum of the dict's parts)."""
    if isinstance(prior, Mapping):
        return sum(prior.values())  # type: ignore[return-value]
    return prior


def total_loss(
    terms: Mapping[str, torch.Tensor | Mapping[str, torch.Tensor]], weights
) -> torch.Tensor:
    """``w_2d*L_2D + w_3d_joint*L_3D_joint + w_3d_vert*L_3D_vert + w_prior*L_prior + L_aux``.

    ``terms`` maps term names (``loss_2d``, ``loss_3d_joint``, ``loss_3d_vert``, ``loss_prior`` as a
    tensor or the prior dict, ``loss_aux`` already weighted) to values; missing terms count 0.
    ``weights`` is a LossWeights.
    """
    unknown = set(terms) - set(TERMS)
    if unknown:
        raise ValueError(f"unknown loss terms {sorted(unknown)}; expected some of {TERMS}")
    total = None
    for name in TERMS:
        if name not in terms:
            continue
        value = prior_total(terms[name]) if name == "loss_prior" else terms[name]
        w = weights.weight_of(name)
        if w == 0:
            continue
        part = w * value
        total = part if total is None else total + part
    if total is None:
        raise ValueError("no active loss term to sum")
    return total
