"""The spec's loss terms (public API): pure functions on tensors, differentiable, any device."""

from utnet_diag.losses.functional import (
    TERM_LABELS,
    TERMS,
    LossShapeError,
    aux_loss,
    keypoint_2d_loss,
    keypoint_3d_loss,
    prior_loss,
    prior_total,
    root_relative,
    split_conf,
    total_loss,
    vertex_loss,
)
from utnet_diag.losses.terms import LossTerms, compute_terms

__all__ = [
    "TERM_LABELS",
    "TERMS",
    "LossShapeError",
    "LossTerms",
    "aux_loss",
    "compute_terms",
    "keypoint_2d_loss",
    "keypoint_3d_loss",
    "prior_loss",
    "prior_total",
    "root_relative",
    "split_conf",
    "total_loss",
    "vertex_loss",
]
