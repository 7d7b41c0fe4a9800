"""All loss terms of the spec from model outputs and a batch, the way UTNet's train.py sums them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from utnet_diag.losses.functional import (
    aux_loss,
    keypoint_2d_loss,
    keypoint_3d_loss,
    prior_loss,
    prior_total,
    total_loss,
    vertex_loss,
)


@dataclass
class LossTerms:
    """Loss values of one forward pass.

    ``terms``: the scalars that enter the total (``loss_2d``, ``loss_3d_joint``, ``loss_prior``,
    ``loss_aux`` weighted by w_aux, ``loss_3d_vert`` when enabled); ``parts``: their components
    (``shape_prior``, ``pose_prior``, ``aux_pose_mse``, ``aux_shape_mse``); ``total``: the weighted
    sum; ``skipped``: term -> why it was not computed.
    """

    terms: dict[str, torch.Tensor]
    parts: dict[str, torch.Tensor]
    total: torch.Tensor
    skipped: dict[str, str] = field(default_factory=dict)
    off: frozenset[str] = frozenset()  # skipped terms the weights turned off (not missing inputs)


def compute_terms(
    outputs: Mapping[str, object],
    batch: Mapping[str, torch.Tensor],
    weights,
    root_id: int = 0,
    gt_vertices: torch.Tensor | None = None,
) -> LossTerms:
    """Every term of the spec for one batch.

    Args:
        outputs: model outputs (``keypoints_2d`` (B,21,2), ``keypoints_3d`` (B,21,3) mm,
            ``vertices`` (B,778,3) mm, ``mano_params`` {``betas``, ``hand_pose``},
            ``coarse_pose`` (B,48), ``coarse_shape`` (B,10)).
        batch: canonical batch tensors (``keypoints_2d``, ``keypoints_3d``, ``mano_pose``,
            ``mano_shape``, optional ``has_mano``, ``vertices_3d``).
        weights: a LossWeights.
        gt_vertices: (B,778,3) mm, used for the vertex term when the batch has no ``vertices_3d``.
    """
    acc = _Collected()
    device = outputs["keypoints_3d"].device  # type: ignore[union-attr]

    def gt(key: str) -> torch.Tensor | None:
        value = batch.get(key)
        return value.to(device) if isinstance(value, torch.Tensor) else None

    kp2d, kp3d = gt("keypoints_2d"), gt("keypoints_3d")
    if kp2d is not None:
        acc.terms["loss_2d"] = keypoint_2d_loss(
            outputs["keypoints_2d"], kp2d.to(outputs["keypoints_2d"].dtype)
        )  # type: ignore[union-attr,arg-type]
    else:
        acc.skipped["loss_2d"] = "the batch has no keypoints_2d"
    if kp3d is not None:
        pred3d = outputs["keypoints_3d"]
        acc.terms["loss_3d_joint"] = keypoint_3d_loss(pred3d, kp3d.to(pred3d.dtype), root_id)  # type: ignore[arg-type,union-attr]
    else:
        acc.skipped["loss_3d_joint"] = "the batch has no keypoints_3d"
    _prior_term(acc, outputs, weights)
    _aux_term(acc, outputs, gt, weights)
    _vertex_term(acc, outputs, gt, kp3d, gt_vertices, weights, root_id)
    if not acc.terms:
        raise ValueError("no loss term could be computed from this batch and these outputs")
    total = total_loss(acc.terms, weights)
    return LossTerms(terms=acc.terms, parts=acc.parts, total=total, skipped=acc.skipped,
                     off=frozenset(acc.off))  # fmt: skip


@dataclass
class _Collected:
    """What :func:`compute_terms` gathers term by term."""

    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    off: set[str] = field(default_factory=set)


def _prior_term(acc: _Collected, outputs: Mapping[str, Any], weights: Any) -> None:
    params = outputs.get("mano_params") or {}
    betas = params.get("betas")
    if betas is None:
        acc.skipped["loss_prior"] = "the model output has no mano_params.betas"
        return
    prior = prior_loss(betas, params.get("hand_pose"), weights.shape_weight, weights.pose_weight)
    acc.parts.update(prior)
    acc.terms["loss_prior"] = prior_total(prior)


def _aux_term(
    acc: _Collected,
    outputs: Mapping[str, Any],
    gt: Callable[[str], torch.Tensor | None],
    weights: Any,
) -> None:
    """L_aux (w_aux inside) and its unweighted pose/shape MSEs over the samples with MANO."""
    if not weights.use_aux_loss:
        acc.skipped["loss_aux"] = "use_aux_loss is false"
        acc.off.add("loss_aux")
        return
    if gt("mano_pose") is None or gt("mano_shape") is None:
        acc.skipped["loss_aux"] = "the batch has no mano_pose/mano_shape"
        return
    if outputs.get("coarse_pose") is None or outputs.get("coarse_shape") is None:
        acc.skipped["loss_aux"] = "the model output has no coarse_pose/coarse_shape"
        return
    has_mano = gt("has_mano")
    cp, cs = outputs["coarse_pose"], outputs["coarse_shape"]
    gp, gs = gt("mano_pose"), gt("mano_shape")
    acc.terms["loss_aux"] = aux_loss(cp, cs, gp, gs, weights.w_aux, has_mano)  # type: ignore[arg-type]
    with torch.no_grad():
        mask = has_mano.reshape(-1).bool() if has_mano is not None else None
        sel = (lambda t: t[mask]) if mask is not None else (lambda t: t)
        if mask is None or bool(mask.any()):
            acc.parts["aux_pose_mse"] = torch.nn.functional.mse_loss(sel(cp), sel(gp).to(cp.dtype))  # type: ignore[arg-type,union-attr]
            acc.parts["aux_shape_mse"] = torch.nn.functional.mse_loss(sel(cs), sel(gs).to(cs.dtype))  # type: ignore[arg-type,union-attr]


def _vertex_term(
    acc: _Collected,
    outputs: Mapping[str, Any],
    gt: Callable[[str], torch.Tensor | None],
    kp3d: torch.Tensor | None,
    gt_vertices: torch.Tensor | None,
    weights: Any,
    root_id: int,
) -> None:
    """L_3D_vert, root-relative, when use_vertex_loss; says which input is missing otherwise."""
    if not weights.use_vertex_loss:
        acc.skipped["loss_3d_vert"] = "use_vertex_loss is false"
        acc.off.add("loss_3d_vert")
        return
    gv = gt("vertices_3d")
    gv = gv if gv is not None else gt_vertices
    pv = outputs.get("vertices")
    if gv is None or kp3d is None or pv is None:
        missing = [
            *(["the batch has no vertices_3d (nor GT MANO to make them)"] if gv is None else []),
            *(["the batch has no keypoints_3d (the vertex root)"] if kp3d is None else []),
            *(["the model output has no vertices"] if pv is None else []),
        ]
        acc.skipped["loss_3d_vert"] = "; ".join(missing)
        return
    pred_root = outputs["keypoints_3d"][:, root_id]
    acc.terms["loss_3d_vert"] = vertex_loss(
        pv, gv.to(pv.device, pv.dtype), pred_root, kp3d[:, root_id, :3].to(pv.dtype)
    )
