"""The user's loss specification as data (``shared/spec``, its sections cited as "spec 9.2").

The one place for the loss terms, their labels (in reports and as the training log prints them),
the weights that scale them, their healthy ranges and alarms, the weight presets, and the
debugging advice. The loss checks, the log checks, ``compare``, the weight advisor and the loss
table all read it; nothing else states these numbers.

Loss values are the spec's batch sums for 2D, 3D joint and 3D vertex (they grow with the batch
size) and means for the prior and the auxiliary term. ``L_aux`` carries ``w_aux`` inside its
value (the project's decision, see DIGEST.md), so the total adds it with weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Term:
    """One loss term of the spec.

    ``key``: the name in reports and JSON; ``label``: how reports name it; ``row``: the loss
    table's short name; ``log_label``: the line the training log prints for it (``None``: not
    printed as such); ``weight``: the config key of its weight; ``reduction``: ``batch sum`` or
    ``mean``; ``unit``: of one element's error (``crop``, ``mm``); ``healthy_below`` / ``alarm_at``:
    the spec's healthy range and alarm (``None``: the spec gives none); ``supervision``: an L1
    term on keypoints or vertices (its gradient balance against the others matters);
    ``hint``: the spec's debugging advice for a term out of range.
    """

    key: str
    label: str
    row: str
    log_label: str | None
    weight: str
    reduction: str
    unit: str | None
    healthy_below: float | None
    alarm_at: float | None
    supervision: bool
    hint: str


HINT_2D = (
    "check the 2D normalization (keypoints within [-0.5, 0.5]) and the camera projection; check"
    " every one of the 21 joints has valid GT (spec 9.3; utnet-diag check-batch)"
)
HINT_3D = (
    "check the 3D units (mm), the root-relative computation (root_id 0), and that MANO loaded"
    " and outputs non-zero joints (spec 9.3)"
)
HINT_PRIOR = "check the MANO shape parameters (betas); lower w_prior (spec 9.3)"
HINT_AUX = (
    "check the ViT backbone trains and the coarse outputs get gradient; raise w_aux (spec 9.3)"
)
HINT_NONFINITE = (
    "check the gradients: learning rate, division by zero, bad samples (spec 9.4); nan_origin"
    " names where the first non-finite value appears (utnet-diag grad-flow)"
)
HINT_WEIGHTS = "spec 9.1: start from w_2d=1.0, w_3d_joint=1.0, w_prior 0.001-0.01, w_aux 0.001-0.1"

TERMS: tuple[Term, ...] = (
    Term("loss_2d", "2D keypoint loss", "2D keypoint", "2D keypoint loss", "w_2d", "batch sum",
         "crop", 500.0, 10000.0, True, HINT_2D),
    Term("loss_3d_joint", "3D joint loss", "3D joint", "3D joint loss", "w_3d_joint", "batch sum",
         "mm", 80000.0, None, True, HINT_3D),  # its alarm: exactly 0 (spec 9.4)
    Term("loss_3d_vert", "3D vertex loss", "3D vertex", "3D vertex loss", "w_3d_vert",
         "batch sum", "mm", None, None, True, HINT_3D),
    Term("loss_prior", "prior loss", "Prior", None, "w_prior", "mean", None, 100.0, 5000.0, False,
         HINT_PRIOR),  # the log prints its parts: "Prior loss (shape)", "Prior loss (pose)"
    Term("loss_aux", "aux loss", "Aux", "Aux loss", "w_aux", "mean", None, 1.0, None, False,
         HINT_AUX),  # its alarm: NaN (spec 9.4)
)  # fmt: skip
TERM: dict[str, Term] = {t.key: t for t in TERMS}
TERM_KEYS: tuple[str, ...] = tuple(TERM)
TOTAL_LABEL = "total loss"

# The lines of a training log block (spec 9.4), in order: key -> printed label.
LOG_LINES: dict[str, str] = {
    "loss_2d": "2D keypoint loss",
    "loss_3d_joint": "3D joint loss",
    "loss_3d_vert": "3D vertex loss",
    "shape_prior": "Prior loss (shape)",
    "pose_prior": "Prior loss (pose)",
    "loss_aux": "Aux loss",
    "total": "Total loss",
}

# 2D keypoints are normalized to the crop: [-0.5, 0.5] (spec 1.3); the root joint is the wrist.
KEYPOINT_2D_LIMIT = 0.5
ROOT_ID = 0

# Weights (spec 5.2): the shipped config/config.yaml, loss.py's code defaults, the recommendation.
# The weights used when the config gives none: the spec's shipped config/config.yaml (what a
# UTNet checkout trains with). `gate` without --config and make-sample's config.yaml both use it.
DEFAULT_PRESET = "config"

PRESETS: dict[str, dict[str, Any]] = {
    "config": dict(w_2d=0.01, w_3d_joint=0.05, w_3d_vert=0.0, w_prior=0.001, w_aux=0.001,
                   use_vertex_loss=False, use_aux_loss=True),
    "code": dict(w_2d=1.0, w_3d_joint=1.0, w_3d_vert=0.5, w_prior=0.01, w_aux=0.1,
                 use_vertex_loss=False, use_aux_loss=True),
    "recommended": dict(w_2d=1.0, w_3d_joint=1.0, w_3d_vert=0.5, w_prior=0.001, w_aux=0.001,
                        use_vertex_loss=False, use_aux_loss=True),
}  # fmt: skip

# Ranges the spec recommends (spec 5.2 / 9.1), for the loss_weights check and the advisor.
RECOMMENDED_RANGES: dict[str, tuple[float, float]] = {
    "w_2d": (1.0, 1.0),
    "w_3d_joint": (1.0, 1.0),
    "w_prior": (0.001, 0.01),
    "w_aux": (0.001, 0.1),
}
