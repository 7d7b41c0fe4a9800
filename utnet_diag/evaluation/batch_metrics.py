"""A benchmark's official keypoint metrics for a batch's predicted and ground-truth joints, for
``loss-breakdown --metric-protocol`` and ``gate --metric-protocol``."""

from __future__ import annotations

from typing import Any

import numpy as np

from utnet_diag.evaluation.protocols import OPENGL_FLIP, PROTOCOLS, reorder
from utnet_diag.evaluation.scores import score


def protocol_metrics(
    protocol: str, pred_mm: np.ndarray, gt_mm: np.ndarray, visible: np.ndarray | None = None
) -> dict[str, Any]:
    """``protocol``'s joint metrics (no mesh) for joints (B, 21, 3) mm in the spec's order and
    the OpenCV frame, converted to the protocol's unit, order and frame first.

    Samples with a non-finite joint, or (``visible`` (B, 21) bool) an unannotated one, are left
    out (the official evaluators score every joint of every sample)."""
    proto = PROTOCOLS[protocol]
    pred = np.asarray(pred_mm, dtype=np.float64)
    gt = np.asarray(gt_mm, dtype=np.float64)
    keep = np.isfinite(pred).all((1, 2)) & np.isfinite(gt).all((1, 2))
    if visible is not None:
        keep &= np.asarray(visible, dtype=bool).all(1)
    pred, gt = pred[keep] / proto.to_mm, gt[keep] / proto.to_mm
    pred, gt = reorder(pred, "spec", proto.order), reorder(gt, "spec", proto.order)
    if proto.frame == "opengl":
        pred, gt = pred * OPENGL_FLIP, gt * OPENGL_FLIP
    names = [m for m in proto.metrics if not m.startswith(("mesh", "f_"))]
    values = score(proto, gt, pred).metrics if len(gt) else dict.fromkeys(names)
    rows = [proto.metric_row(name, values.get(name)) for name in names]
    return {
        "name": proto.name,
        "title": proto.title,
        "alignment": proto.alignment,
        "metrics": rows,
        "samples": int(keep.sum()),
        "samples_left_out": int((~keep).sum()),
    }
