"""``evaluate``: a prediction file checked and scored against the ground truth under one
benchmark's official protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.errors import InputError
from utnet_diag.evaluation.checks import EVAL_CHECKS, Matched
from utnet_diag.evaluation.files import (
    DEFAULT_MAX_MB,
    PoseFile,
    no_hand,
    read_pose_file,
)
from utnet_diag.evaluation.protocols import PROTOCOLS, Protocol
from utnet_diag.evaluation.scores import Scores, score
from utnet_diag.io.files import check_output_path
from utnet_diag.report.result import Report
from utnet_diag.report.sections import EvaluationSection

WORST_SHOWN = 5
# the per-sample error that orders samples worst first, per protocol
RANK_BY = {"freihand": "joint_error_aligned", "ho3d": "joint_error_aligned", "dexycb": "procrustes"}


def _match(proto: Protocol, gt: PoseFile, pred: PoseFile) -> tuple[np.ndarray, np.ndarray, dict]:
    """Rows of ``gt`` and ``pred`` that score against each other, and what was left aside."""
    if proto.name != "dexycb":
        if len(pred.xyz) != len(gt.xyz):
            raise InputError(
                f"{len(pred.xyz)} predictions for {len(gt.xyz)} ground-truth samples",
                path=pred.path,
                hint="the official evaluator needs one prediction per sample, in the GT's order",
            )
        rows = np.arange(len(gt.xyz))
        return rows, rows, {"left_out": 0, "ignored": 0}
    keep = np.flatnonzero(~no_hand(gt.xyz))
    where = {int(i): k for k, i in enumerate(pred.ids)}
    missing = [int(gt.ids[k]) for k in keep if int(gt.ids[k]) not in where]
    if missing:
        raise InputError(
            f"no result line for {len(missing)} of {len(keep)} ground-truth images (first: image"
            f" id {missing[0]})",
            path=pred.path,
            hint="the official evaluator stops at the first missing id; predict every image",
        )
    pred_rows = np.array([where[int(gt.ids[k])] for k in keep], dtype=np.int64)
    extra = len(set(pred.ids.tolist()) - set(gt.ids.tolist()))
    return keep, pred_rows, {"left_out": len(gt.xyz) - len(keep), "ignored": extra}


def _rows(proto: Protocol, scores: Scores, ids: np.ndarray) -> list[dict]:
    """Per-sample rows, worst first."""
    names = list(scores.per_sample)
    order = np.argsort(-np.nan_to_num(scores.per_sample[RANK_BY[proto.name]], nan=np.inf))
    return [
        {"sample": int(ids[i]), **{n: float(scores.per_sample[n][i]) for n in names}} for i in order
    ]


def _write_rows(path: Path, rows: list[dict]) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    except OSError as err:
        raise InputError(
            f"cannot write the per-sample file: {err.strerror}", path=str(path)
        ) from None


def evaluate(
    pred: str | Path,
    gt: str | Path,
    protocol: str,
    per_sample: str | Path | None = None,
    max_file_mb: float = DEFAULT_MAX_MB,
) -> Report:
    """Check ``pred`` against ``gt`` and score it as ``protocol``'s official evaluator does.

    Args:
        pred: FreiHAND/HO3D ``pred.json`` ([xyz (N,21,3), verts (N,778,3)], metres) or DexYCB
            result lines (image id + 63 numbers, mm).
        gt: the protocol's ground truth (a folder with ``evaluation_xyz.json`` and
            ``evaluation_verts.json``, a JSON in the prediction's form, or DexYCB lines).
        protocol: 'freihand', 'ho3d' or 'dexycb'.
        per_sample: write every sample's errors here (JSON lines, worst first).
        max_file_mb: refuse input files larger than this.
    Returns:
        Report ``eval`` with the prediction checks (``eval_*``) and section ``evaluation``.
    """
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    proto = PROTOCOLS[protocol]
    out = check_output_path(per_sample, "--per-sample", (pred, gt)) if per_sample else None
    max_bytes = int(max_file_mb * 2**20)
    gt_file = read_pose_file(gt, protocol, "ground truth", max_bytes)
    pred_file = read_pose_file(pred, protocol, "prediction", max_bytes)
    gt_rows, pred_rows, counts = _match(proto, gt_file, pred_file)
    if len(gt_rows) == 0:
        raise InputError("the ground truth has no sample to score", path=gt_file.path)
    truth = Matched(gt_file.xyz[gt_rows], gt_file.verts[gt_rows])
    given = Matched(pred_file.xyz[pred_rows], pred_file.verts[pred_rows])
    ids = gt_file.ids[gt_rows]
    ctx = CheckContext(extras={"protocol": proto, "gt": truth, "pred": given, "fixed": given,
                               "fixes": [], "ids": ids,
                               "duplicates": pred_file.duplicates})  # fmt: skip
    checks = run_checks(EVAL_CHECKS.specs, ctx)
    scores = score(proto, truth.xyz, given.xyz, truth.verts, given.verts)
    fixed: Matched = ctx.extras["fixed"]
    fixed_scores = (
        score(proto, truth.xyz, fixed.xyz, truth.verts, fixed.verts)
        if ctx.extras["fixes"]
        else None
    )
    rows = _rows(proto, scores, ids)
    if out is not None:
        _write_rows(out, rows)
    section = EvaluationSection(
        protocol=proto.name,
        title=proto.title,
        unit=proto.unit,
        report_unit=proto.report_unit,
        alignment=proto.alignment,
        frame=proto.frame,
        joint_order=proto.order,
        prediction=pred_file.path,
        ground_truth=gt_file.path,
        samples=len(gt_rows),
        left_out=counts["left_out"],
        ignored=counts["ignored"],
        metrics=[_metric_row(proto, name, scores, fixed_scores) for name in proto.metrics],
        fixes=list(ctx.extras["fixes"]),
        notes=list(scores.notes),
        worst=rows[:WORST_SHOWN],
        per_sample=str(out) if out is not None else None,
    )
    return Report(command="eval", checks=checks, sections={"evaluation": section})


def _metric_row(proto: Protocol, name: str, scores: Scores, fixed: Scores | None) -> dict:
    """One metric row, with its value once the fixes are applied when there are fixes."""
    extra = {} if fixed is None else {"fixed": fixed.metrics.get(name)}
    return proto.metric_row(name, scores.metrics.get(name), **extra)
