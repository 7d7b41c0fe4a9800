"""Checks on the loss terms and the raw predictions of one forward pass (``loss-breakdown``).

Thresholds are the spec's (sections 1.3, 2.3, 9.2-9.4). The spec's loss values are batch sums
for its own training batch; a batch of another size is held to the same numbers as given, and
every message states the batch size and the per-sample figure beside the sum so the reader can
rescale. ``ctx.losses`` is a :class:`utnet_diag.diagnostics.loss_table.LossSummary`;
``ctx.outputs`` the detached model outputs; ``ctx.extras['nan_origin']`` a NanOrigin or None.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from utnet_diag.checks.engine import CheckContext, CheckRegistry, Outcome
from utnet_diag.config import term_range
from utnet_diag.mano import DEGENERATE_OUTPUT_HINT
from utnet_diag.measures import HAND_SPAN_MM, UNIT_FACTORS, hand_span, unit_of
from utnet_diag.report.numbers import fmt_number
from utnet_diag.spec import (
    HINT_2D,
    HINT_3D,
    HINT_AUX,
    HINT_PRIOR,
    HINT_WEIGHTS,
    KEYPOINT_2D_LIMIT,
    RECOMMENDED_RANGES,
)
from utnet_diag.spec import HINT_NONFINITE as HINT_FINITE

LOSS_CHECKS = CheckRegistry("loss")
PREDICTION_CHECKS = CheckRegistry("prediction")

DOMINANT_SHARE = 0.9  # a term above this share of the weighted total drowns the others
KP2D_LIMIT = KEYPOINT_2D_LIMIT  # spec 1.3: normalized to [-0.5, 0.5]
KP2D_HARD_LIMIT = 1.0  # beyond this the units are wrong (pixels, [0,1] crops scaled twice)
KP2D_SPREAD_FACTOR = 10.0  # predicted vs GT 2D spread beyond this factor: a scale bug


def _summary(ctx: CheckContext) -> Any:
    return ctx.losses


def _fmt(x: float) -> str:
    return fmt_number(x, 4)


def _sum_context(row: dict[str, Any]) -> str:
    """'batch sum over 16 samples; 20.9 a sample; mean error 0.031 crop = 8.0 px@256'."""
    text = f"batch sum over {row['batch_size']} samples; {_fmt(row['per_sample'])} a sample"
    if row.get("per_element") is not None:
        text += f"; mean error {_fmt(row['per_element'])} {row['unit']}"
        if row.get("per_element_px256") is not None:
            text += f" = {_fmt(row['per_element_px256'])} px@256"
    return text


_SPEC_BATCH_NOTE = "(the spec's thresholds are for its training batch, used as given)"


@LOSS_CHECKS.check("loss_finite", hint=HINT_FINITE)
def loss_finite(ctx: CheckContext) -> Outcome:
    """Every loss term and the total are finite."""
    summary = _summary(ctx)
    bad = [r["term"] for r in summary.rows if not math.isfinite(r["logged"])]
    if not math.isfinite(summary.total):
        bad.append("total")
    if not bad:
        return Outcome.ok(f"all {len(summary.rows)} terms and the total are finite")
    origin = ctx.extras.get("nan_origin")
    where = f"; {origin.message}" if origin is not None else "; origin not found"
    values = ", ".join(f"{r['term']}={_fmt(r['logged'])}" for r in summary.rows if r["term"] in bad)
    return Outcome.fail(
        f"non-finite loss: {values or 'total=' + _fmt(summary.total)}{where}",
        value=bad,
        details={"nan_origin": origin.to_dict() if origin is not None else None},
    )


def _row(ctx: CheckContext, term: str) -> dict[str, Any] | None:
    return _summary(ctx).row(term)


# what each term reads: batch keys (mapped with diag.key_map) and model outputs (--output-map)
_TERM_INPUTS: dict[str, tuple[str, str]] = {
    "loss_2d": ("keypoints_2d", "keypoints_2d"),
    "loss_3d_joint": ("keypoints_3d", "keypoints_3d"),
    "loss_prior": ("", "mano_params.betas"),
    "loss_aux": ("mano_pose, mano_shape", "coarse_pose, coarse_shape"),
    "loss_3d_vert": ("vertices_3d (or mano_pose, mano_shape, keypoints_3d)", "vertices"),
}


def _not_computed(ctx: CheckContext, term: str, label: str) -> Outcome:
    """A spec term with no value: a skip when the weights turned it off, else a failure (its
    inputs are missing, so training would get no signal from it: nothing passes by omission)."""
    summary = _summary(ctx)
    why = summary.skipped.get(term, "not computed")
    if term in summary.off:
        return Outcome.skip(f"no {label} term: {why}")
    batch_keys, outputs = _TERM_INPUTS[term]
    if "batch" in why:
        hint = (
            f"give the batch {batch_keys}, or map your key in the config:"
            f" diag: {{key_map: {{{batch_keys.split(',')[0].split(' ')[0]}: <your key>}}}}"
        )
    else:
        hint = (f"return {outputs} from the model (utnet-diag's output protocol), or map your"
                " output with --output-map ours=theirs")  # fmt: skip
    return Outcome.fail(
        f"no {label} term: {why}; the spec's {label} loss cannot be checked (and does not train)",
        details={"missing": why},
        hint=f"{hint}; or --ignore {_check_id_of(term)} if you train without it",
    )


def _check_id_of(term: str) -> str:
    """The check id of a loss term's magnitude check."""
    return {"loss_3d_vert": "loss_vert"}.get(term, term)


def _limits(ctx: CheckContext, term: str) -> tuple[float, float | None, str, str]:
    """(healthy below, alarm at, "the spec's alarm" or the config's, a note when the config set
    the range) for ``term``: the config's ``diag: ranges:`` where given, else the spec's."""
    healthy, alarm, source = term_range(ctx.config, term)
    if source == "the spec":
        return healthy, alarm, "the spec's alarm", ""
    return healthy, alarm, f"the alarm of {source}", f" (range from {source})"


def _judged(ctx: CheckContext, term: str, v: float, text: str) -> Outcome:
    """``text`` (the value in words) held to ``term``'s range: fail at the alarm, warn at or
    above the healthy bound, pass below it."""
    healthy, alarm, alarm_text, note = _limits(ctx, term)
    if alarm is not None and v >= alarm:
        return Outcome.fail(f"{text} >= {alarm:g}, {alarm_text}", v, alarm)
    if v >= healthy:
        return Outcome.warn(f"{text} above the healthy < {healthy:g}{note}", v, healthy)
    return Outcome.ok(f"{text} < {healthy:g}{note}", v, healthy)


@LOSS_CHECKS.check("loss_2d", requires=("loss_finite",), hint=HINT_2D)
def loss_2d(ctx: CheckContext) -> Outcome:
    """L_2D (batch sum) is below 500; 10000 is the spec's alarm."""
    row = _row(ctx, "loss_2d")
    if row is None:
        return _not_computed(ctx, "loss_2d", "2D")
    v, ctxt = row["logged"], _sum_context(row)
    healthy, alarm, alarm_text, note = _limits(ctx, "loss_2d")
    batch_note = note if note else _SPEC_BATCH_NOTE
    if alarm is not None and v >= alarm:
        return Outcome.fail(
            f"L_2D = {_fmt(v)} >= {alarm:g}, {alarm_text} ({ctxt}) {batch_note}",
            value=v, threshold=alarm,
        )  # fmt: skip
    if v >= healthy:
        return Outcome.warn(
            f"L_2D = {_fmt(v)} above the healthy < {healthy:g} ({ctxt}) {batch_note}",
            value=v, threshold=healthy,
        )  # fmt: skip
    return Outcome.ok(f"L_2D = {_fmt(v)} < {healthy:g} ({ctxt}){note}", v, healthy)


@LOSS_CHECKS.check("loss_3d_joint", requires=("loss_finite",), hint=HINT_3D)
def loss_3d_joint(ctx: CheckContext) -> Outcome:
    """L_3D_joint (batch sum) is below 80000 and not exactly 0."""
    row = _row(ctx, "loss_3d_joint")
    if row is None:
        return _not_computed(ctx, "loss_3d_joint", "3D joint")
    v, ctxt = row["logged"], _sum_context(row)
    if v == 0:
        return Outcome.fail(
            "L_3D_joint is exactly 0, the spec's alarm: the root-relative predictions equal the GT"
            " exactly (MANO bypassed, GT fed back as prediction, or all conf 0)",
            value=v, threshold=0.0,
        )  # fmt: skip
    healthy, alarm, alarm_text, note = _limits(ctx, "loss_3d_joint")
    if alarm is not None and v >= alarm:
        return Outcome.fail(
            f"L_3D_joint = {_fmt(v)} >= {alarm:g}, {alarm_text} ({ctxt})", value=v, threshold=alarm
        )
    if v >= healthy:
        return Outcome.warn(
            f"L_3D_joint = {_fmt(v)} above the healthy < {healthy:g} ({ctxt})"
            f" {note if note else _SPEC_BATCH_NOTE}",
            value=v, threshold=healthy,
        )  # fmt: skip
    return Outcome.ok(f"L_3D_joint = {_fmt(v)} < {healthy:g} ({ctxt}){note}", v, healthy)


@LOSS_CHECKS.check("loss_prior", requires=("loss_finite",), hint=HINT_PRIOR)
def loss_prior(ctx: CheckContext) -> Outcome:
    """L_prior (a mean, independent of batch size) is below 100; about 5000 is the alarm."""
    row = _row(ctx, "loss_prior")
    if row is None:
        return _not_computed(ctx, "loss_prior", "prior")
    v = row["logged"]
    parts = ", ".join(f"{k}={_fmt(x)}" for k, x in row.get("parts", {}).items())
    text = f"L_prior = {_fmt(v)} ({parts}; a mean over the batch)"
    return _judged(ctx, "loss_prior", v, text)


@LOSS_CHECKS.check("loss_aux", requires=("loss_finite",), hint=HINT_AUX)
def loss_aux(ctx: CheckContext) -> Outcome:
    """L_aux (w_aux included, as the training log prints it) is below 1.0."""
    summary = _summary(ctx)
    row = summary.row("loss_aux")
    if row is None:
        return _not_computed(ctx, "loss_aux", "aux")
    v = row["logged"]
    parts = row.get("parts", {})
    mse = ", ".join(f"{k}={_fmt(x)}" for k, x in parts.items())
    if v == 0 and not parts:
        return Outcome.ok("L_aux = 0: no sample has ground-truth MANO (normal, spec 9.4)", v)
    text = f"L_aux = {_fmt(v)} (w_aux={_fmt(row['weight'])} included; unweighted {mse})"
    return _judged(ctx, "loss_aux", v, text)


@LOSS_CHECKS.check("loss_vert", requires=("loss_finite",), hint=HINT_3D)
def loss_vert(ctx: CheckContext) -> Outcome:
    """L_3D_vert (optional, batch sum) is finite and not exactly 0; the spec gives no range."""
    summary = _summary(ctx)
    row = summary.row("loss_3d_vert")
    if row is None:
        return _not_computed(ctx, "loss_3d_vert", "vertex")
    v = row["logged"]
    if v == 0:
        return Outcome.fail(
            "L_3D_vert is exactly 0: predicted vertices equal the GT (MANO bypassed?)", v, 0.0
        )
    return Outcome.ok(f"L_3D_vert = {_fmt(v)} ({_sum_context(row)}; the spec gives no range)", v)


def _dominance_reason(summary: Any, term: str) -> str:
    """Why ``term`` dominates the weighted total under the spec's recommended weights."""
    row3, row2 = summary.row(term), summary.row("loss_2d")
    if term in ("loss_3d_joint", "loss_3d_vert") and row3 is not None:
        e3 = row3.get("per_element")
        text = f"{term} sums L1 errors of coordinates in mm"
        if e3 is not None:
            text += f" (mean error {_fmt(e3)} mm)"
        if row2 is not None and row2.get("per_element") is not None:
            e2 = row2["per_element"]
            text += f" and loss_2d of crop coordinates (mean error {_fmt(e2)} crop"
            if e3 is not None and e2 > 0:
                text += f", {e3 / e2:.3g}x smaller per element"
            text += ")"
        return text + ", so the 3D term is large with any sensible 2D/3D error"
    return f"{term} is large at this point of training"


@LOSS_CHECKS.check("loss_weights", hint=HINT_WEIGHTS)
def loss_weights(ctx: CheckContext) -> Outcome:
    """Weights inside the spec's recommended ranges; which term dominates the weighted total.

    Rule: a weight outside the spec's recommended range (section 9.1; e.g. the config preset's
    w_2d=0.01, w_3d_joint=0.05, which the spec flags as too small) is a warning. A term above
    90% of the weighted total is a warning too, except when every weight is inside the
    recommended ranges: the spec recommends those weights as the starting point, and with them
    the 3D joint term (an L1 sum in mm) always outweighs the 2D term (crop units), so the
    dominance is reported as information in a passing message, with why, and the pointer to the
    gradient shares (``grad-flow``) and the weight advisor (``--target-shares``) for weights that
    balance the gradient. (Warning on the spec's own recommendation would make ``--fail-on warn``
    impossible to pass.) Value shares of a sum of terms in different units do not measure
    balance; gradient shares at the trunk do.
    """
    weights = ctx.config.weights
    problems: list[str] = []
    flagged: dict[str, Any] = {}
    for key, (low, high) in RECOMMENDED_RANGES.items():
        value = float(getattr(weights, key))
        source = weights.source.get(key, "default")
        if value < low:
            factor = f"{low / value:.3g}x " if value > 0 else ""
            problems.append(f"{key}={value:g} is {factor}below the recommended {low:g} ({source})")
            flagged[key] = value
        elif value > high:
            problems.append(f"{key}={value:g} is above the recommended {high:g} ({source})")
            flagged[key] = value
    summary = _summary(ctx)
    shares = {r["term"]: r["share"] for r in summary.rows if r["share"] is not None}
    dominant = None
    dominance = ""
    # a NaN/Inf term has no share: the others' shares would describe a total that does not exist
    nonfinite = [r["term"] for r in summary.rows if not math.isfinite(r["logged"])]
    if nonfinite:
        shares = {}
    elif len([s for s in shares.values() if s > 0]) >= 2:
        term, share = max(shares.items(), key=lambda kv: kv[1])
        if share > DOMINANT_SHARE:
            dominant = term
            dominance = f"{term} makes {share:.1%} of the weighted total"
    details = {"flagged": flagged, "shares": shares, "dominant": dominant,
               "recommended_weights": not flagged}  # fmt: skip
    no_shares = f"shares not computed: {', '.join(nonfinite)} non-finite" if nonfinite else ""
    if problems:
        text = "; ".join(problems + [x for x in (dominance, no_shares) if x])
        return Outcome.warn(text, value=flagged or shares, details=details)
    if no_shares:
        return Outcome.ok(f"weights inside the spec's recommended ranges; {no_shares}",
                          details=details)  # fmt: skip
    if dominant is not None:
        return Outcome.ok(
            f"weights inside the spec's recommended ranges; {dominance}, expected with them:"
            f" {_dominance_reason(summary, dominant)}. Value shares do not measure balance: see"
            " the gradient shares at the trunk (`utnet-diag grad-flow`) and the weight advisor"
            " (--target-shares) for weights that balance the gradient",
            value=shares, details=details,
        )  # fmt: skip
    return Outcome.ok(
        "weights inside the spec's recommended ranges; no term above "
        f"{DOMINANT_SHARE:.0%} of the total",
        details=details,
    )


# ---- predictions ---------------------------------------------------------------------------


def _pred(ctx: CheckContext, key: str) -> torch.Tensor | None:
    value = (ctx.outputs or {}).get(key)
    return value.detach().float() if isinstance(value, torch.Tensor) else None


@PREDICTION_CHECKS.check("pred_degenerate")
def pred_degenerate(ctx: CheckContext) -> Outcome:
    """Predicted joints and vertices are not all zero, collapsed, or the same for every sample."""
    findings: list[str] = []
    checked = []
    for key in ("keypoints_3d", "vertices", "keypoints_2d"):
        pred = _pred(ctx, key)
        if pred is None or not bool(torch.isfinite(pred).all()):
            continue
        checked.append(key)
        b = pred.shape[0]
        scale = float(pred.abs().max())
        if scale == 0:
            findings.append(f"{key} are all zero in {b}/{b} samples")
            continue
        spread = (pred - pred.mean(dim=1, keepdim=True)).abs().amax(dim=(1, 2))  # (B,)
        collapsed = int((spread <= 1e-6 * scale).sum())
        if collapsed:
            findings.append(f"{key} collapse to one point in {collapsed}/{b} samples")
            continue
        if b > 1 and float((pred - pred[:1]).abs().max()) <= 1e-6 * scale:
            findings.append(f"{key} are identical for all {b} samples")
    if not checked:
        return Outcome.skip("no finite keypoints_3d, vertices or keypoints_2d in the outputs")
    if findings:
        advice = ctx.extras.get("mano_advice")  # what the model's own code asked smplx for
        if advice is not None:
            what, fix = advice
            return Outcome.fail(
                "degenerate predictions: " + "; ".join(findings) + f". {what}",
                value=findings, hint=fix,
                details={"mano_requests": ctx.extras.get("mano_requests", [])},
            )  # fmt: skip
        return Outcome.fail(
            "degenerate predictions: " + "; ".join(findings), value=findings,
            hint=str(DEGENERATE_OUTPUT_HINT),
        )  # fmt: skip
    return Outcome.ok(f"{', '.join(checked)} vary across joints and samples")


def _spread_2d(points: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per sample: RMS distance of the weighted joints from their centroid, (B,) (NaN where no
    joint has weight)."""
    w = weights.clamp(min=0)[..., None]
    total = w.sum(dim=1)
    centre = (points * w).sum(dim=1) / total
    square = ((points - centre[:, None]) ** 2).sum(-1, keepdim=True)
    return ((square * w).sum(dim=1) / total).sqrt().squeeze(-1)


def _spread_ratio(ctx: CheckContext, pred: torch.Tensor) -> tuple[float, int] | None:
    """Median over samples of predicted / ground-truth 2D spread, and the samples used."""
    gt = ctx.batch.get("keypoints_2d") if ctx.batch is not None else None
    if not isinstance(gt, torch.Tensor) or gt.shape[:2] != pred.shape[:2]:
        return None
    gt = gt.detach().float().to(pred.device)
    conf = gt[..., 2] if gt.shape[-1] > 2 else torch.ones(gt.shape[:2], device=gt.device)
    conf = torch.where(torch.isfinite(gt[..., :2]).all(-1), conf, torch.zeros_like(conf))
    gt_xy = torch.nan_to_num(gt[..., :2])
    gt_spread = _spread_2d(gt_xy, conf)
    pred_spread = _spread_2d(pred, conf)  # the same joints, weighted alike
    usable = ((conf > 0).sum(1) >= 2) & (gt_spread > 0) & torch.isfinite(gt_spread)
    if not bool(usable.any()):
        return None
    ratio = (pred_spread[usable] / gt_spread[usable]).median()
    return float(ratio), int(usable.sum())


@PREDICTION_CHECKS.check("pred_kp2d_range", requires=("pred_degenerate",), hint=HINT_2D)
def pred_kp2d_range(ctx: CheckContext) -> Outcome:
    """Predicted 2D keypoints lie in the normalized crop range [-0.5, 0.5] and spread over the
    crop like the ground truth (within a factor of 10 either way)."""
    pred = _pred(ctx, "keypoints_2d")
    if pred is None:
        return Outcome.skip("no keypoints_2d in the model outputs")
    if not bool(torch.isfinite(pred).all()):
        return Outcome.skip("predicted keypoints_2d are not finite (see loss_finite)")
    mag = pred.abs().amax(dim=-1)  # (B,21)
    worst = float(mag.max())
    sample, joint = divmod(int(mag.argmax()), mag.shape[1])
    outside = int((mag > KP2D_LIMIT).any(dim=1).sum())
    where = f"max {worst:.3g} at sample {sample}, joint {joint}"
    b = pred.shape[0]
    found = _spread_ratio(ctx, pred)
    if found is not None:
        ratio, used = found
        spread = f"spread {ratio:.3g}x the ground truth's (median over {used} samples)"
        details = {"spread_ratio": ratio, "samples": used, "max_abs": worst}
        if not (1 / KP2D_SPREAD_FACTOR < ratio < KP2D_SPREAD_FACTOR):
            if ratio > 0:
                size = f"{ratio:.3g}x too large" if ratio >= 1 else f"{1 / ratio:.3g}x too small"
            else:
                size = "collapsed to one point"
            return Outcome.fail(
                f"predicted 2D is {size}: {spread}; {where}",
                value=ratio, threshold=[1 / KP2D_SPREAD_FACTOR, KP2D_SPREAD_FACTOR],
                details=details,
                hint="the projection's scale is off: focal length, camera scale/translation, or"
                " a normalisation applied twice or not at all; compare with how the ground-truth"
                " 2D is normalised (crop units, [-0.5, 0.5])",
            )  # fmt: skip
        where = f"{where}; {spread}"
    if worst > KP2D_HARD_LIMIT:
        units = " (looks like pixels)" if worst > 10 else ""
        return Outcome.fail(
            f"predicted 2D keypoints of {outside}/{b} samples exceed {KP2D_LIMIT}: {where}{units}",
            value=worst, threshold=KP2D_LIMIT,
        )  # fmt: skip
    if outside:
        return Outcome.warn(
            f"predicted 2D keypoints of {outside}/{b} samples exceed {KP2D_LIMIT}: {where}",
            value=worst, threshold=KP2D_LIMIT,
        )  # fmt: skip
    return Outcome.ok(f"predicted 2D keypoints within ±{KP2D_LIMIT} ({where})", worst, KP2D_LIMIT)


@PREDICTION_CHECKS.check("pred_kp3d_units", requires=("pred_degenerate",), hint=HINT_3D)
def pred_kp3d_units(ctx: CheckContext) -> Outcome:
    """Predicted 3D joints are in millimetres: the hand spans (largest joint distance) 50-400 mm,
    or, beside ground truth, within 5x of its span."""
    pred = _pred(ctx, "keypoints_3d")
    if pred is None:
        return Outcome.skip("no keypoints_3d in the model outputs")
    if not bool(torch.isfinite(pred).all()):
        return Outcome.skip("predicted keypoints_3d are not finite (see loss_finite)")
    span = float(np.median(hand_span(pred)))
    gt = ctx.batch.get("keypoints_3d") if ctx.batch is not None else None
    if isinstance(gt, torch.Tensor) and bool(torch.isfinite(gt).all()):
        gt_span = float(np.median(hand_span(gt[..., :3])))
        if gt_span > 0 and span > 0:
            ratio = span / gt_span
            text = (
                f"predicted hand span {_span_text(span, 'the model')} (median),"
                f" GT hand span {_span_text(gt_span, 'the batch')}: ratio {ratio:.3g}"
            )
            if ratio > 5 or ratio < 0.2:
                guess = _unit_guess(ratio)
                return Outcome.fail(f"{text}{guess}", value=ratio, threshold=[0.2, 5])
            return Outcome.ok(text, value=ratio, threshold=[0.2, 5])
    low, high = HAND_SPAN_MM
    text = f"predicted hands span {span:.4g} (median)"
    limits = [low, high]
    unit = unit_of(span)
    if unit == "millimetres":
        return Outcome.ok(f"{text} mm", value=span, threshold=limits)
    if unit is not None:
        factor = UNIT_FACTORS[unit]
        return Outcome.fail(f"{text}: {unit}, not mm? (multiply by {factor:g})", value=span,
                            threshold=limits)  # fmt: skip
    return Outcome.warn(f"{text}: outside {low:g}-{high:g} mm", value=span, threshold=limits)


def _span_text(span: float, whose: str) -> str:
    """'183.2 mm' for a span a hand has in mm (50-400), else '0.1832 (units of the batch)': the
    unit is claimed only where the number fits it."""
    if unit_of(span) == "millimetres":
        return f"{span:.4g} mm"
    return f"{span:.4g} (units of {whose})"


def _unit_guess(ratio: float) -> str:
    for factor, name in ((1000.0, "metres"), (10.0, "centimetres")):
        if abs(math.log10(ratio) + math.log10(factor)) < 0.3:
            return f" (predictions look like {name}, GT mm)"
        if abs(math.log10(ratio) - math.log10(factor)) < 0.3:
            return f" (GT looks like {name}, predictions mm)"
    return ""
