"""The loss table of one forward pass: every term of the spec as the training log prints it, with
its weight and where the weight came from, its part of the total and its share, and the mean
error per element beside each batch sum (mm for 3D; crop units and pixels at 256 for 2D)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from utnet_diag.diagnostics.runner import ForwardResult
from utnet_diag.losses import TERMS
from utnet_diag.report.sections import LossTableSection
from utnet_diag.spec import TERM

CROP_PIXELS = 256  # 2D errors are also shown in pixels of a 256x256 crop
WEIGHT_KEY = {key: term.weight for key, term in TERM.items()}
TERM_LABEL = {key: term.row for key, term in TERM.items()}


@dataclass
class LossSummary:
    """Plain numbers of one forward's loss terms (JSON-ready rows, one per computed term).

    Row keys: ``term``, ``label``, ``logged`` (the value the training log prints; L_aux with w_aux
    inside), ``weight``, ``weight_source``, ``weighted`` (its part of the total), ``share``,
    ``reduction`` (``batch sum`` or ``mean``), ``batch_size``, ``per_sample``, ``per_element``,
    ``unit``, ``per_element_px256`` (2D), ``parts``.
    """

    rows: list[dict[str, Any]]
    total: float
    batch_size: int
    skipped: dict[str, str] = field(default_factory=dict)
    off: frozenset[str] = frozenset()  # skipped terms the weights turned off

    def row(self, term: str) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["term"] == term), None)

    def to_section(self) -> LossTableSection:
        """The report's ``loss_table`` section."""
        return LossTableSection(
            terms=self.rows, total=self.total, batch_size=self.batch_size, skipped=self.skipped
        )

    def to_dict(self) -> dict[str, Any]:
        return self.to_section().to_dict()


def _conf_sum(gt: torch.Tensor | None, dims: int) -> float | None:
    """Sum of confidences (conf 1 where the GT has no conf column)."""
    if gt is None:
        return None
    if gt.shape[-1] == dims + 1:
        return float(gt[..., dims].sum())
    return float(gt.shape[0] * gt.shape[1])


def summarize_terms(fwd: ForwardResult) -> LossSummary:
    """A LossSummary from one forward pass (detached numbers only)."""
    weights = fwd.config.weights
    batch = fwd.batch
    b = batch.size
    values = {k: float(v.detach()) for k, v in fwd.terms.terms.items()}
    parts = {k: float(v.detach()) for k, v in fwd.terms.parts.items()}
    weighted = {k: weights.weight_of(k) * v for k, v in values.items()}
    total = float(fwd.terms.total.detach())
    finite_parts = [abs(w) for w in weighted.values() if math.isfinite(w)]
    denom = sum(finite_parts)
    rows: list[dict[str, Any]] = []
    for term in TERMS:
        if term not in values:
            continue
        key = WEIGHT_KEY[term]
        row: dict[str, Any] = {
            "term": term,
            "label": TERM_LABEL[term],
            "logged": values[term],
            "weight": float(getattr(weights, key)),
            "weight_source": weights.source.get(key, "default"),
            "weighted": weighted[term],
            "share": (abs(weighted[term]) / denom)
            if denom > 0 and math.isfinite(weighted[term])
            else None,
            "batch_size": b,
            "reduction": "mean" if term in ("loss_prior", "loss_aux") else "batch sum",
            "per_sample": None,
            "per_element": None,
            "unit": None,
            "per_element_px256": None,
            "parts": {},
        }
        if term == "loss_2d":
            n = _conf_sum(batch.get("keypoints_2d"), 2)
            row.update(per_sample=values[term] / b, unit="crop")
            if n:
                row["per_element"] = values[term] / (2 * n)
                row["per_element_px256"] = row["per_element"] * CROP_PIXELS
        elif term == "loss_3d_joint":
            n = _conf_sum(batch.get("keypoints_3d"), 3)
            row.update(per_sample=values[term] / b, unit="mm")
            if n:
                row["per_element"] = values[term] / (3 * n)
        elif term == "loss_3d_vert":
            verts = fwd.outputs.get("vertices")
            count = verts.shape[1] if isinstance(verts, torch.Tensor) else 778
            row.update(per_sample=values[term] / b, unit="mm",
                       per_element=values[term] / (b * count * 3))  # fmt: skip
        elif term == "loss_prior":
            row["parts"] = {k: v for k, v in parts.items() if k in ("shape_prior", "pose_prior")}
        elif term == "loss_aux":
            # The log prints L_aux with w_aux inside; the total adds it once (DIGEST decision).
            row["weight_source"] += " (inside L_aux)"
            row["parts"] = {k: v for k, v in parts.items() if k.startswith("aux_")}
        rows.append(row)
    return LossSummary(rows, total, b, dict(fwd.terms.skipped), fwd.terms.off)
