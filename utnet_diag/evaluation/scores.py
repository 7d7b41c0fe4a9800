"""Every metric of a protocol for one prediction set, as its official evaluator computes it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from utnet_diag.evaluation.protocols import (
    FSCORE_THRESHOLDS_M,
    Protocol,
    centroid_align,
    fscores,
    measures,
    scale_translation_align,
)


@dataclass(frozen=True)
class Scores:
    """``metrics``: metric name -> value (errors in the protocol's report unit, AUC and F-scores
    unitless; None: not computed, see ``notes``); ``per_sample``: name -> (N,) per-sample mean
    errors in the report unit (and aligned F-scores)."""

    metrics: dict[str, float | None]
    per_sample: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)


def _errors(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return np.linalg.norm(gt - pred, axis=-1)  # (N, K)


def _put(out: dict, name: str, errors: np.ndarray, proto: Protocol) -> None:
    """``<name>_mean3d`` (report unit) and ``<name>_auc3d`` from per-keypoint errors (N, K)."""
    m = measures(errors, proto.auc_max)
    out[f"{name}_mean3d"] = m.mean * proto.report_factor
    out[f"{name}_auc3d"] = m.auc


def score_dexycb(proto: Protocol, gt: np.ndarray, pred: np.ndarray) -> Scores:
    """DexYCB: absolute, root-relative and Procrustes MPJPE (mm) and AUC over 0-50 mm."""
    errors = {
        "absolute": _errors(gt, pred),
        "root_relative": _errors(gt - gt[:, :1], pred - pred[:, :1]),
        "procrustes": _errors(gt, centroid_align(gt, pred).aligned),
    }
    metrics: dict[str, float | None] = {}
    for name, err in errors.items():
        m = measures(err, proto.auc_max)
        metrics[f"{name}_mpjpe"] = m.mean
        metrics[f"{name}_auc"] = m.auc
    return Scores(metrics, {name: err.mean(1) for name, err in errors.items()})


def score_freihand(
    proto: Protocol,
    gt: np.ndarray,
    pred: np.ndarray,
    gt_verts: np.ndarray,
    pred_verts: np.ndarray,
) -> Scores:
    """FreiHAND and HO3D: joint and mesh errors (cm), aligned and not, AUC over 0-5 cm,
    F-scores at 5 and 15 mm; HO3D adds the scale-translation aligned joint error."""
    metrics: dict[str, float | None] = {}
    notes: list[str] = []
    fit = centroid_align(gt, pred)
    joint_err = _errors(gt, pred)
    aligned_err = _errors(gt, fit.aligned)
    _put(metrics, "xyz", joint_err, proto)
    aligned_name = "xyz_procrustes_al" if proto.name == "ho3d" else "xyz_al"
    _put(metrics, aligned_name, aligned_err, proto)
    per_sample = {
        "joint_error": joint_err.mean(1) * proto.report_factor,
        "joint_error_aligned": aligned_err.mean(1) * proto.report_factor,
    }
    if proto.name == "ho3d":
        sc_tr_err = _errors(gt, scale_translation_align(gt, pred))
        _put(metrics, "xyz_scale_trans_al", sc_tr_err, proto)
        per_sample["joint_error_scale_trans"] = sc_tr_err.mean(1) * proto.report_factor
    mesh_names = ("mesh_mean3d", "mesh_auc3d", "mesh_al_mean3d", "mesh_al_auc3d")
    f_names = [f"f{al}_score_{round(t * 1000)}" for t in FSCORE_THRESHOLDS_M for al in ("", "_al")]
    if gt_verts.shape[1] == 0:
        metrics.update(dict.fromkeys(mesh_names + tuple(f_names)))
        notes.append("the ground truth has no mesh: mesh errors and F-scores are not computed")
        return Scores({m: metrics.get(m) for m in proto.metrics}, per_sample, notes)
    if pred_verts.shape[1] == gt_verts.shape[1]:
        verts_aligned = centroid_align(gt_verts, pred_verts).aligned
        mesh_err = _errors(gt_verts, pred_verts)
        mesh_al_err = _errors(gt_verts, verts_aligned)
        _put(metrics, "mesh", mesh_err, proto)
        _put(metrics, "mesh_al", mesh_al_err, proto)
        per_sample["mesh_error_aligned"] = mesh_al_err.mean(1) * proto.report_factor
    else:
        metrics.update(dict.fromkeys(mesh_names))
        verts_aligned = fit.apply(pred_verts) if pred_verts.shape[1] else pred_verts
        notes.append(
            f"the predicted mesh has {pred_verts.shape[1]} vertices, not the ground truth's"
            f" {gt_verts.shape[1]}: no mesh errors; F-scores use the joints' alignment, as the"
            " official evaluator does"
        )
    plain = fscores(gt_verts, pred_verts, FSCORE_THRESHOLDS_M)  # both protocols are in metres
    aligned = fscores(gt_verts, verts_aligned, FSCORE_THRESHOLDS_M)
    for k, t in enumerate(FSCORE_THRESHOLDS_M):
        mm = round(t * 1000)
        metrics[f"f_score_{mm}"] = float(plain[:, k].mean()) if len(plain) else float("nan")
        metrics[f"f_al_score_{mm}"] = float(aligned[:, k].mean()) if len(aligned) else float("nan")
        per_sample[f"f_al_score_{mm}"] = aligned[:, k]
    return Scores({m: metrics.get(m) for m in proto.metrics}, per_sample, notes)


def score(
    proto: Protocol,
    gt: np.ndarray,
    pred: np.ndarray,
    gt_verts: np.ndarray | None = None,
    pred_verts: np.ndarray | None = None,
) -> Scores:
    """Every metric of ``proto`` for joints (N, 21, 3) (and meshes (N, V, 3)) in its units,
    order and frame."""
    if proto.name == "dexycb":
        return score_dexycb(proto, gt, pred)
    n = len(gt)
    empty = np.zeros((n, 0, 3))
    return score_freihand(
        proto,
        gt,
        pred,
        empty if gt_verts is None else gt_verts,
        empty if pred_verts is None else pred_verts,
    )
