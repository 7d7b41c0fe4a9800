"""The official hand-pose benchmarks' conventions and metrics, computed as their evaluators do.

- FreiHAND (``lmb-freiburg/freihand`` ``eval.py``): joints in the spec's order, metres, OpenCV
  camera frame; errors reported in cm. The aligned error centres both sets on their centroid
  (the mean of all points, not the root), scales each by its Frobenius norm, rotates the
  prediction by the orthogonal Procrustes solution (reflections allowed), then restores the
  ground truth's scale and centroid; joints and mesh are aligned separately. AUC over 0-5 cm in
  100 steps; F-scores at 5 mm and 15 mm from nearest-point distances both ways.
- HO3D v2/v3 (``shreyashampali/ho3d`` ``eval.py``): as FreiHAND, with joints in MANO's order
  (16 + tips) and the OpenGL frame, plus a scale-translation alignment: the prediction is scaled
  by the ratio of the ground truth's to its own wrist-to-middle-base length (MANO joints 0 and
  4), then its wrist is put on the ground truth's.
- DexYCB (``NVlabs/dex-ycb-toolkit`` ``hpe_eval.py``): joints in the spec's order, millimetres;
  absolute, root-relative (joint 0 subtracted) and Procrustes (FreiHAND's alignment) errors;
  AUC over 0-50 mm in 100 steps; frames whose joints are all -1 (no hand) are left out.

Every error is the evaluators' "mean of per-keypoint means": the mean over keypoints of each
keypoint's mean error over the samples (equal to the plain mean when every joint is visible).
NumPy and SciPy only; everything is vectorised over samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from utnet_diag.joints import KNOWN_ORDERS, invert

OPENGL_FLIP = np.array([1.0, -1.0, -1.0])  # OpenCV <-> OpenGL camera frame (y, z negated)
MANO_WRIST, MANO_MIDDLE_BASE = 0, 4  # HO3D's scale-translation alignment, MANO order
FSCORE_THRESHOLDS_M = (0.005, 0.015)
AUC_STEPS = 100
NORM_EPS = 1e-8  # added to each Frobenius norm, as the evaluators do


@dataclass(frozen=True)
class Protocol:
    """One benchmark's conventions.

    ``unit``: the unit of its files ('m' or 'mm'); ``report_unit`` / ``report_factor``: the
    unit its errors are reported in and the factor from ``unit``; ``auc_max``: the AUC range's
    end in ``unit``; ``frame``: 'opencv' (hand at z > 0) or 'opengl' (z < 0); ``order``: the joint
    order of its files (a name of :data:`utnet_diag.joints.KNOWN_ORDERS`); ``mesh``: whether it
    scores a 778-vertex MANO mesh; ``metrics``: its metric names, in its evaluator's order.
    """

    name: str
    title: str
    unit: str
    report_unit: str
    report_factor: float
    auc_max: float
    frame: str
    order: str
    mesh: bool
    metrics: tuple[str, ...]
    alignment: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def to_mm(self) -> float:
        """Factor from the protocol's file unit to mm."""
        return 1000.0 if self.unit == "m" else 1.0

    def metric_row(self, name: str, value: float | None, **more: float | None) -> dict[str, Any]:
        """One metric as reports show it: name, label, unit ('' for AUC and F-scores), value,
        and ``more`` (e.g. ``fixed=``, the value once the file's fixes are applied)."""
        error = "mean" in name or "mpjpe" in name
        return {"metric": name, "label": self.labels.get(name, name),
                "unit": self.report_unit if error else "", "value": value, **more}  # fmt: skip


_FREIHAND_METRICS = (
    "xyz_mean3d",
    "xyz_auc3d",
    "xyz_al_mean3d",
    "xyz_al_auc3d",
    "mesh_mean3d",
    "mesh_auc3d",
    "mesh_al_mean3d",
    "mesh_al_auc3d",
    "f_score_5",
    "f_al_score_5",
    "f_score_15",
    "f_al_score_15",
)
_CENTROID_ALIGNMENT = (
    "the aligned errors: both centred on their centroid, scaled by their Frobenius norms, rotated by"
    " orthogonal Procrustes (reflections allowed), then given the ground truth's scale and"
    " centroid; joints and mesh aligned separately"
)
_LABELS = {
    "xyz_mean3d": "joint error",
    "xyz_auc3d": "joint AUC",
    "xyz_al_mean3d": "joint error, aligned",
    "xyz_al_auc3d": "joint AUC, aligned",
    "xyz_procrustes_al_mean3d": "joint error, aligned",
    "xyz_procrustes_al_auc3d": "joint AUC, aligned",
    "xyz_scale_trans_al_mean3d": "joint error, scale-translation",
    "xyz_scale_trans_al_auc3d": "joint AUC, scale-translation",
    "mesh_mean3d": "mesh error",
    "mesh_auc3d": "mesh AUC",
    "mesh_al_mean3d": "mesh error, aligned",
    "mesh_al_auc3d": "mesh AUC, aligned",
    "f_score_5": "F@5mm",
    "f_al_score_5": "F@5mm, aligned",
    "f_score_15": "F@15mm",
    "f_al_score_15": "F@15mm, aligned",
    "absolute_mpjpe": "MPJPE, absolute",
    "absolute_auc": "AUC, absolute",
    "root_relative_mpjpe": "MPJPE, root-relative",
    "root_relative_auc": "AUC, root-relative",
    "procrustes_mpjpe": "MPJPE, Procrustes",
    "procrustes_auc": "AUC, Procrustes",
}

PROTOCOLS: dict[str, Protocol] = {
    "freihand": Protocol(
        "freihand", "FreiHAND", "m", "cm", 100.0, 0.05, "opencv", "spec", True,
        _FREIHAND_METRICS, _CENTROID_ALIGNMENT, _LABELS,
    ),
    "ho3d": Protocol(
        "ho3d", "HO3D v2/v3", "m", "cm", 100.0, 0.05, "opengl", "mano", True,
        ("xyz_mean3d", "xyz_auc3d", "xyz_procrustes_al_mean3d", "xyz_procrustes_al_auc3d",
         "xyz_scale_trans_al_mean3d", "xyz_scale_trans_al_auc3d") + _FREIHAND_METRICS[4:],
        _CENTROID_ALIGNMENT + "; scale-translation: scaled by the ratio of the wrist-to-middle-"
        "base lengths (MANO joints 0 and 4), then wrist onto wrist",
        _LABELS,
    ),
    "dexycb": Protocol(
        "dexycb", "DexYCB", "mm", "mm", 1.0, 50.0, "opencv", "spec", False,
        ("absolute_mpjpe", "absolute_auc", "root_relative_mpjpe", "root_relative_auc",
         "procrustes_mpjpe", "procrustes_auc"),
        "root-relative: joint 0 subtracted from each side; Procrustes: FreiHAND's alignment",
        _LABELS,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class CentroidFit:
    """FreiHAND's alignment of ``pred`` onto ``gt``, per sample: ``aligned = ((pred - mu_p) /
    n_p) @ rotation.T * s * n_g + mu_g``. Shapes: rotation (N,3,3); s, n_g (N,); mu (N,3)."""

    rotation: np.ndarray
    s: np.ndarray
    gt_norm: np.ndarray
    gt_centroid: np.ndarray
    pred_centroid: np.ndarray
    aligned: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Other points (N, M, 3) moved by the fit as the evaluators' ``align_by_trafo`` moves a
        mesh whose vertex count is not MANO's: centred on their own centroid ``c``, rotated,
        multiplied by ``s * n_g`` (not divided by their own norm), then shifted by
        ``mu_g - mu_p + c``."""
        centre = points.mean(1, keepdims=True)
        moved = np.einsum("nmj,nij->nmi", points - centre, self.rotation)
        shift = (self.gt_centroid - self.pred_centroid)[:, None, :] + centre
        return moved * (self.s * self.gt_norm)[:, None, None] + shift


def centroid_align(gt: np.ndarray, pred: np.ndarray) -> CentroidFit:
    """Align ``pred`` (N, K, 3) onto ``gt`` (N, K, 3) as FreiHAND's ``align_w_scale`` does."""
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    mu_g, mu_p = gt.mean(1), pred.mean(1)
    g = gt - mu_g[:, None]
    p = pred - mu_p[:, None]
    n_g = np.sqrt((g**2).sum((1, 2))) + NORM_EPS
    n_p = np.sqrt((p**2).sum((1, 2))) + NORM_EPS
    g = g / n_g[:, None, None]
    p = p / n_p[:, None, None]
    # orthogonal Procrustes: R minimising |g R - p|, R = U V^T from svd(g^T p); s = sum of sigma;
    # the prediction is then mapped by p @ R^T
    u, sigma, vt = np.linalg.svd(np.einsum("nki,nkj->nij", g, p))
    rot = u @ vt
    s = sigma.sum(-1)
    aligned = np.einsum("nkj,nij->nki", p, rot) * (s * n_g)[:, None, None] + mu_g[:, None]
    return CentroidFit(rot, s, n_g, mu_g, mu_p, aligned)


def scale_translation_align(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """HO3D's ``align_sc_tr`` for (N, 21, 3) joints in MANO order: ``pred`` scaled by
    |gt[4] - gt[0]| / |pred[4] - pred[0]| (unscaled where the latter is 0), wrist onto wrist."""
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    s_pred = np.linalg.norm(pred[:, MANO_MIDDLE_BASE] - pred[:, MANO_WRIST], axis=-1)
    s_gt = np.linalg.norm(gt[:, MANO_MIDDLE_BASE] - gt[:, MANO_WRIST], axis=-1)
    divisor = np.where(s_pred > 0, s_pred, 1.0)[:, None, None]
    scaled = pred / divisor
    scaled = scaled * s_gt[:, None, None]
    return scaled - scaled[:, MANO_WRIST : MANO_WRIST + 1] + gt[:, MANO_WRIST : MANO_WRIST + 1]


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoid rule over the last axis."""
    return ((y[..., 1:] + y[..., :-1]) * 0.5 * np.diff(x)).sum(-1)


@dataclass(frozen=True)
class Measures:
    """The evaluators' ``EvalUtil.get_measures``: ``mean``/``median`` errors and ``auc`` (means
    over keypoints of per-keypoint values), the mean PCK ``curve`` at ``thresholds``."""

    mean: float
    median: float
    auc: float
    curve: np.ndarray
    thresholds: np.ndarray


def measures(errors: np.ndarray, auc_max: float, steps: int = AUC_STEPS) -> Measures:
    """Measures of per-keypoint errors (N, K): a keypoint counts as correct at threshold t when
    its error is <= t; thresholds ``linspace(0, auc_max, steps)``. Keypoints with no sample (N=0)
    give NaN."""
    err = np.asarray(errors, dtype=np.float64)
    thresholds = np.linspace(0.0, auc_max, steps)
    if err.shape[0] == 0:
        nan = float("nan")
        return Measures(nan, nan, nan, np.full(steps, np.nan), thresholds)
    pck = (err[:, :, None] <= thresholds).mean(0)  # (K, steps)
    auc = _trapezoid(pck, thresholds) / _trapezoid(np.ones_like(thresholds), thresholds)
    return Measures(
        float(err.mean(0).mean()),
        float(np.median(err, axis=0).mean()),
        float(auc.mean()),
        pck.mean(0),
        thresholds,
    )


def nearest_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each point of ``a`` (M, 3), the distance to the nearest point of ``b`` (L, 3)."""
    from scipy.spatial import cKDTree  # deferred: scipy.spatial is only needed for F-scores

    if len(a) == 0 or len(b) == 0:
        return np.zeros(0)
    return cKDTree(b).query(a, k=1)[0]


def fscores(
    gt_verts: np.ndarray, pred_verts: np.ndarray, thresholds: tuple[float, ...]
) -> np.ndarray:
    """Per sample and threshold, the F-score of ``pred_verts`` (N, L, 3) against ``gt_verts``
    (N, M, 3): precision = share of GT points within t of a prediction, recall = share of
    predicted points within t of the GT (strictly less than t), F = 2PR / (P + R), 0 when both
    are 0 or a set is empty. Returns (N, T)."""
    out = np.zeros((len(gt_verts), len(thresholds)))
    for i in range(len(gt_verts)):
        d_gt = nearest_distances(gt_verts[i], pred_verts[i])
        d_pred = nearest_distances(pred_verts[i], gt_verts[i])
        if len(d_gt) == 0 or len(d_pred) == 0:
            continue
        for k, t in enumerate(thresholds):
            precision, recall = float((d_gt < t).mean()), float((d_pred < t).mean())
            if precision + recall > 0:
                out[i, k] = 2 * precision * recall / (precision + recall)
    return out


def reorder(joints: np.ndarray, source: str, target: str) -> np.ndarray:
    """(N, 21, 3) joints from the ``source`` order to the ``target`` order (names of
    :data:`utnet_diag.joints.KNOWN_ORDERS`)."""
    return joints[:, permutation_between(KNOWN_ORDERS[source], target)]


def permutation_between(source_to_spec: tuple[int, ...], target: str) -> list[int]:
    """The indices ``Q`` with ``joints_target = joints_source[:, Q]`` for joints whose order maps
    to spec by ``source_to_spec``."""
    return [int(source_to_spec[i]) for i in invert(KNOWN_ORDERS[target])]


__all__ = [
    "PROTOCOLS",
    "Protocol",
    "centroid_align",
    "fscores",
    "measures",
    "permutation_between",
    "reorder",
    "scale_translation_align",
]
