"""Measures more than one family of checks uses, so that one fault has one rule.

- hand size: the span of a hand, the largest distance between two of its visible joints
  (independent of the joint order, which may be wrong in the data being checked), in the
  joints' own units; an adult hand spans 50-400 mm (a fist to an open hand of a large adult);
- units: which of mm, cm or m a span fits;
- per-sample finiteness of a set of arrays.

NumPy and torch inputs both work (torch tensors are read on the CPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np

HAND_SPAN_MM = (50.0, 400.0)  # largest joint-to-joint distance of an adult hand
MIN_JOINTS_FOR_SPAN = 5  # visible joints needed to measure a hand's span
UNIT_FACTORS = {"millimetres": 1.0, "centimetres": 10.0, "metres": 1000.0}  # to mm


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def hand_span(
    joints: Any, visible: Any = None, min_joints: int = MIN_JOINTS_FOR_SPAN
) -> np.ndarray:
    """(B, J, 3) joints -> (B,) the largest distance between two visible joints, in the joints'
    units; NaN where fewer than ``min_joints`` joints are visible. ``visible`` (B, J) bool
    (default: the finite joints); non-finite joints never count."""
    coords = _numpy(joints)[..., :3]
    finite = np.isfinite(coords).all(-1)
    seen = finite if visible is None else (np.asarray(_numpy(visible), bool) & finite)
    everything = bool(seen.all())
    if not everything:
        coords = np.where(seen[..., None], coords, 0.0)
    # squared distances from the Gram matrix, on coordinates centred per sample (no cancellation
    # worth speaking of at hand scale): (B, J, J) instead of a (B, J, J, 3) difference array
    count = np.maximum(seen.sum(1, keepdims=True), 1)
    coords = coords - coords.sum(1, keepdims=True) / count[..., None]
    if not everything:
        coords = np.where(seen[..., None], coords, 0.0)
    norms = (coords**2).sum(-1)
    # the transposed operand made contiguous: numpy's matmul then takes its fast path
    dist2 = coords @ np.ascontiguousarray(coords.transpose(0, 2, 1))
    dist2 *= -2.0
    dist2 += norms[:, :, None]
    dist2 += norms[:, None, :]
    if not everything:
        dist2[~(seen[:, :, None] & seen[:, None, :])] = -np.inf
    span2 = dist2.reshape(len(dist2), -1).max(1, initial=-np.inf)
    span = np.sqrt(np.maximum(span2, 0.0))
    return np.where(seen.sum(1) >= min_joints, span, np.nan)


def unit_of(span: float) -> str | None:
    """The unit (``millimetres``, ``centimetres``, ``metres``) in which ``span`` is an adult
    hand's span, or None."""
    low, high = HAND_SPAN_MM
    for unit, factor in UNIT_FACTORS.items():
        if low / factor <= span <= high / factor:
            return unit
    return None


def in_mm_range(span: np.ndarray) -> np.ndarray:
    """(B,) spans -> (B,) whether each is an adult hand's span in mm (NaN: False)."""
    low, high = HAND_SPAN_MM
    with np.errstate(invalid="ignore"):
        return (span >= low) & (span <= high)


def finite_rows(*arrays: Any) -> np.ndarray:
    """(B,) whether every value of sample b is finite in every array (each (B, ...))."""
    rows = [np.isfinite(_numpy(a).reshape(len(a), -1)).all(1) for a in arrays]
    return np.logical_and.reduce(rows)
