"""Checks of a prediction file against the ground truth, before its numbers are trusted.

Each check measures one convention on the prediction as corrected by the checks before it
(units, then joint order, then frame, then mirrored samples), and, when it finds a fault, says
the fix and hands the corrected arrays on (``ctx.extras['fixed']``), so the report can show the
metrics the file would score once fixed beside what it scores as it is.

Context extras: ``protocol`` (:class:`~utnet_diag.evaluation.protocols.Protocol`), ``gt`` and
``pred`` (:class:`Matched`), ``fixed`` (a :class:`Matched` of the prediction, updated), and
``fixes`` (list of str, what to do).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from utnet_diag.checks.engine import CheckContext, CheckRegistry, Outcome
from utnet_diag.evaluation.protocols import (
    OPENGL_FLIP,
    Protocol,
    centroid_align,
    permutation_between,
)
from utnet_diag.geometry.procrustes import similarity_align
from utnet_diag.joints import KNOWN_ORDERS, MISREAD_ORDERS, ORDER_TEXT
from utnet_diag.measures import UNIT_FACTORS, hand_span, unit_of

EVAL_CHECKS = CheckRegistry("eval")

BETTER_BY = 0.5  # a correction must at least halve the error to be called the fix
MIRROR_FLOOR = 0.05  # a sample's error must exceed this share of its hand span to be judged
ROOT_AT_ORIGIN = 0.9  # share of samples with the wrist at 0 that makes a set root-relative
SPAN_SAMPLES = 512  # samples used to measure a mesh's size
SPAN_VERTICES = 64  # vertices per sample used to measure a mesh's size
UNIT_NAMES = {"m": "metres", "mm": "millimetres"}
HAND_SIZE = "hand span 50-400 mm"
FRAME_NAMES = {"opencv": "OpenCV", "opengl": "OpenGL"}


@dataclass(frozen=True)
class Matched:
    """Joints (N, 21, 3) and meshes (N, V, 3) of one side, sample i matching the other's i."""

    xyz: np.ndarray
    verts: np.ndarray


def _fixed(ctx: CheckContext) -> Matched:
    return ctx.extras["fixed"]


def _fix(ctx: CheckContext, fixed: Matched, text: str) -> None:
    ctx.extras["fixed"] = fixed
    ctx.extras["fixes"].append(text)


def _median_span(points: np.ndarray) -> float:
    """Median over samples of a point set's span (largest distance between two points)."""
    if points.shape[1] == 0 or len(points) == 0:
        return float("nan")
    rows = np.linspace(0, len(points) - 1, min(SPAN_SAMPLES, len(points))).round().astype(int)
    cols = np.linspace(0, points.shape[1] - 1, min(SPAN_VERTICES, points.shape[1]))
    sub = points[rows][:, cols.round().astype(int)]
    return float(np.nanmedian(hand_span(sub, min_joints=2)))


def _unit_problem(span: float, expected: str) -> tuple[str | None, float]:
    """(the unit the span fits, factor to multiply by to reach ``expected``), or (None, nan)."""
    found = unit_of(span) if np.isfinite(span) else None
    if found is None:
        return None, float("nan")
    return found, UNIT_FACTORS[found] / UNIT_FACTORS[UNIT_NAMES[expected]]


@EVAL_CHECKS.check(
    "eval_units",
    hint="scale the prediction to the protocol's unit before writing the file",
)
def check_units(ctx: CheckContext) -> Outcome:
    """Joints and mesh of the prediction (and the ground truth) are hand-sized in the protocol's
    unit: an adult hand spans 50-400 mm."""
    proto: Protocol = ctx.extras["protocol"]
    expected = UNIT_NAMES[proto.unit]
    gt_unit, _ = _unit_problem(_median_span(ctx.extras["gt"].xyz), proto.unit)
    if gt_unit != expected:
        return Outcome.fail(
            f"the ground truth's hands are not hand-sized in {expected} (read as {gt_unit or 'no'}"
            f" unit); {proto.title}'s files are in {expected}",
            hint="check --gt: it should be the benchmark's own annotation files",
        )
    fixed, wrong = _fixed(ctx), {}
    spans = {"joints": _median_span(fixed.xyz), "mesh": _median_span(fixed.verts)}
    for part, span in spans.items():
        if not np.isfinite(span):
            continue
        unit, factor = _unit_problem(span, proto.unit)
        if unit is None:
            return Outcome.fail(
                f"the predicted {part} span a median {span:.4g} (file units), not a hand's size in"
                " mm, cm or m",
                value=span,
                threshold=HAND_SIZE,
            )
        if unit != expected:
            wrong[part] = (unit, factor)
            key = "xyz" if part == "joints" else "verts"
            fixed = replace(fixed, **{key: getattr(fixed, key) * factor})
    if wrong:
        text = "; ".join(
            f"{' and '.join(p for p in wrong if wrong[p] == found)} are in {found[0]}: multiply"
            f" by {found[1]:g}"
            for found in dict.fromkeys(wrong.values())
        )
        _fix(ctx, fixed, text)
        return Outcome.fail(
            f"{proto.title} expects {expected}; the predicted {text}",
            value=spans["joints"],
            threshold=HAND_SIZE,
        )
    parts = "joints and mesh" if fixed.verts.shape[1] else "joints"
    return Outcome.ok(
        f"{parts} in {expected} (median joint span {spans['joints']:.3g})",
        value=spans["joints"],
        threshold=HAND_SIZE,
    )


def _aligned_error(gt: np.ndarray, pred: np.ndarray) -> float:
    """Median per-sample mean error after the protocols' centroid alignment (file units)."""
    aligned = centroid_align(gt, pred).aligned
    return float(np.median(np.linalg.norm(aligned - gt, axis=-1).mean(1)))


VOTE_SAMPLES = 256  # samples whose joint-to-joint matching votes for a permutation
MATCH_ROUNDS = 6


def _matched_permutation(gt: np.ndarray, pred: np.ndarray, perm: list[int]) -> list[int]:
    """Refine ``perm`` (``pred[:, perm]`` ~ ``gt``) by matching joints to the ground truth, per
    sample: align (first by scale and translation only, as both are in the camera frame, then
    with a proper rotation (a reflection would let a hand with swapped fingers fit
    its mirror image), assign each aligned joint to a GT joint (Hungarian), repeat; then the
    permutation most samples agree on."""
    from scipy.optimize import linear_sum_assignment  # deferred: only this check uses it

    rows = np.linspace(0, len(gt) - 1, min(VOTE_SAMPLES, len(gt))).round().astype(int)
    g, p = gt[rows], pred[rows]
    perms = np.tile(np.asarray(perm), (len(rows), 1))  # (n, 21)
    for round_ in range(MATCH_ROUNDS):
        current = np.take_along_axis(p, perms[..., None], axis=1)
        if round_ == 0:  # both sides are in the camera frame: start without a rotation
            aligned = similarity_align(current, g, with_rotation=False).aligned
        else:
            aligned = similarity_align(current, g).aligned
        cost = np.linalg.norm(aligned[:, :, None] - g[:, None], axis=-1)  # (n, pred i, gt j)
        refined = perms.copy()
        for k, sample in enumerate(cost):
            i, j = linear_sum_assignment(sample)
            refined[k, j] = perms[k, i]
        if np.array_equal(refined, perms):
            break
        perms = refined
    votes, counts = np.unique(perms, axis=0, return_counts=True)
    return [int(v) for v in votes[int(np.argmax(counts))]]


@EVAL_CHECKS.check(
    "eval_joint_order",
    hint="reorder the joints to the protocol's order before writing the file",
)
def check_joint_order(ctx: CheckContext) -> Outcome:
    """The predicted joints are in the protocol's order: neither a known joint order nor the
    order found by matching joints to the ground truth fits it twice as well after the
    protocol's alignment."""
    proto: Protocol = ctx.extras["protocol"]
    gt, fixed = ctx.extras["gt"].xyz, _fixed(ctx)
    as_is = _aligned_error(gt, fixed.xyz)
    tried = {}
    for name, to_spec in {**KNOWN_ORDERS, **MISREAD_ORDERS}.items():
        perm = permutation_between(to_spec, proto.order)
        tried[name] = (perm, _aligned_error(gt, fixed.xyz[:, perm]))
    best = min(tried, key=lambda n: tried[n][1])
    matched = _matched_permutation(gt, fixed.xyz, tried[best][0])
    if matched not in [perm for perm, _ in tried.values()]:
        tried["matched"] = (matched, _aligned_error(gt, fixed.xyz[:, matched]))
        best = min(tried, key=lambda n: tried[n][1])
    perm, error = tried[best]
    factor = proto.report_factor
    details = {name: err * factor for name, (_, err) in tried.items()}
    if perm != list(range(len(perm))) and error < BETTER_BY * as_is:
        found = ORDER_TEXT.get(best, "an order of no known convention")
        text = f"reorder the joints with xyz[:, {perm}] ({found} -> {proto.order})"
        _fix(ctx, replace(fixed, xyz=fixed.xyz[:, perm]), text)
        return Outcome.fail(
            f"the joints are in {found}, {proto.title} expects {ORDER_TEXT[proto.order]}:"
            f" aligned error {as_is * factor:.3g} {proto.report_unit} as is,"
            f" {error * factor:.3g} {proto.report_unit} reordered; {text}",
            value=as_is * factor,
            threshold=f"another order {BETTER_BY:g}x lower",
            details={"aligned_error_by_order": details, "permutation": perm},
        )
    return Outcome.ok(
        f"{ORDER_TEXT[proto.order]}: aligned error {as_is * factor:.3g} {proto.report_unit};"
        " no other order fits better",
        value=as_is * factor,
        details={"aligned_error_by_order": details},
    )


def _root_relative_error(gt: np.ndarray, pred: np.ndarray) -> float:
    g = gt - gt[:, :1]
    p = pred - pred[:, :1]
    return float(np.median(np.linalg.norm(g - p, axis=-1).mean(1)))


@EVAL_CHECKS.check(
    "eval_frame",
    hint="convert between OpenCV and OpenGL camera frames by negating y and z",
)
def check_frame(ctx: CheckContext) -> Outcome:
    """The prediction is in the protocol's camera frame (OpenCV: y down, z forward; OpenGL: y up,
    z backward): negating y and z does not halve its root-relative error."""
    proto: Protocol = ctx.extras["protocol"]
    gt, fixed = ctx.extras["gt"].xyz, _fixed(ctx)
    as_is = _root_relative_error(gt, fixed.xyz)
    flipped = _root_relative_error(gt, fixed.xyz * OPENGL_FLIP)
    factor = proto.report_factor
    other = "OpenCV" if proto.frame == "opengl" else "OpenGL"
    if flipped < BETTER_BY * as_is:
        text = "negate y and z of the joints and mesh (x, -y, -z)"
        _fix(ctx, Matched(fixed.xyz * OPENGL_FLIP, fixed.verts * OPENGL_FLIP), text)
        return Outcome.fail(
            f"the prediction is in the {other} frame, {proto.title} expects"
            f" {FRAME_NAMES[proto.frame]}: root-relative error"
            f" {as_is * factor:.3g} {proto.report_unit} as is, {flipped * factor:.3g} with y and"
            f" z negated; {text}",
            value=as_is * factor,
            threshold=f"flipped {BETTER_BY:g}x lower",
        )
    return Outcome.ok(
        f"{FRAME_NAMES[proto.frame]} frame: root-relative error {as_is * factor:.3g} {proto.report_unit}"
        f" ({flipped * factor:.3g} with y and z negated)",
        value=as_is * factor,
    )


@EVAL_CHECKS.check(
    "eval_mirrored",
    hint="flip predictions of left hands back (x -> -x) after predicting on a mirrored crop",
)
def check_mirrored(ctx: CheckContext) -> Outcome:
    """No predicted hand is the mirror image of its ground truth (a left hand mirrored to a right
    one for the network and never flipped back): per sample, a similarity fit without
    reflections of the x-mirrored prediction is not twice as good as of the prediction."""
    proto: Protocol = ctx.extras["protocol"]
    gt, fixed = ctx.extras["gt"].xyz, _fixed(ctx)
    mirror = np.array([-1.0, 1.0, 1.0])
    plain = similarity_align(fixed.xyz, gt).rms
    mirrored = similarity_align(fixed.xyz * mirror, gt).rms
    span = hand_span(gt)
    judged = plain > MIRROR_FLOOR * span
    bad = np.flatnonzero(judged & (mirrored < BETTER_BY * plain))
    if len(bad):
        ids = ctx.extras["ids"][bad]
        xyz, verts = fixed.xyz.copy(), fixed.verts.copy()
        xyz[bad] *= mirror
        if verts.shape[1]:
            verts[bad] *= mirror
        listed = ", ".join(str(int(i)) for i in ids[:8]) + (" ..." if len(ids) > 8 else "")
        text = f"negate x (x -> -x, camera frame) of {len(bad)} sample(s): {listed}"
        _fix(ctx, Matched(xyz, verts), text)
        return Outcome.fail(
            f"{len(bad)} of {len(gt)} predicted hands are mirror images of their ground truth"
            f" (samples {listed}); {proto.title}'s aligned score hides this"
            f"{' (its alignment allows reflections)' if proto.name != 'dexycb' else ''}",
            value=len(bad),
            threshold=0,
            details={"samples": [int(i) for i in ids]},
        )
    return Outcome.ok(f"no mirrored hand among {len(gt)} samples", value=0, threshold=0)


@EVAL_CHECKS.check(
    "eval_mesh",
    hint="write the 778 MANO vertices of each sample as the file's second list",
)
def check_mesh(ctx: CheckContext) -> Outcome:
    """Where the protocol scores a mesh, the prediction has one with the ground truth's vertex
    count (778 for MANO)."""
    proto: Protocol = ctx.extras["protocol"]
    if not proto.mesh:
        return Outcome.skip(f"{proto.title} scores joints only")
    need = ctx.extras["gt"].verts.shape[1]
    have = ctx.extras["pred"].verts.shape[1]
    if need == 0:
        return Outcome.skip("the ground truth has no mesh")
    if have == 0:
        return Outcome.warn(
            f"no predicted mesh: {proto.title}'s mesh errors are not computed and its F-scores"
            " are 0",
            value=0,
            threshold=need,
        )
    if have != need:
        return Outcome.warn(
            f"the predicted mesh has {have} vertices, not {need}: no mesh errors, and the"
            " F-scores use the joints' alignment",
            value=have,
            threshold=need,
        )
    return Outcome.ok(f"{have} vertices per sample", value=have, threshold=need)


@EVAL_CHECKS.check(
    "eval_root_relative",
    hint="add each hand's camera-frame root position before writing the file if the unaligned"
    " error matters to you; the aligned errors do not change",
)
def check_root_relative(ctx: CheckContext) -> Outcome:
    """The prediction is in camera coordinates, as the protocol's unaligned error assumes, not
    root-relative (wrist at the origin in nearly every sample)."""
    proto: Protocol = ctx.extras["protocol"]
    pred = _fixed(ctx).xyz
    span = hand_span(pred)
    at_origin = np.linalg.norm(pred[:, 0], axis=-1) < 1e-3 * np.nan_to_num(span, nan=1.0)
    share = float(at_origin.mean()) if len(pred) else 0.0
    gt_share = float((np.linalg.norm(ctx.extras["gt"].xyz[:, 0], axis=-1) < 1e-9).mean())
    if share >= ROOT_AT_ORIGIN and gt_share < ROOT_AT_ORIGIN:
        return Outcome.warn(
            f"the wrist is at the origin in {share:.0%} of the samples: {proto.title}'s unaligned"
            " (absolute) error compares camera-frame positions and will be large",
            value=share,
            threshold=ROOT_AT_ORIGIN,
        )
    return Outcome.ok(f"wrist at the origin in {share:.0%} of the samples", value=share)


@EVAL_CHECKS.check("eval_ids", hint="write one line per image id")
def check_ids(ctx: CheckContext) -> Outcome:
    """Every result line has its own image id (a repeated id keeps its last line, as the official
    evaluator reads it)."""
    duplicates = ctx.extras.get("duplicates", ())
    if ctx.extras["protocol"].name != "dexycb":
        return Outcome.skip("only DexYCB result files carry image ids")
    if duplicates:
        listed = ", ".join(str(i) for i in duplicates[:8])
        return Outcome.warn(
            f"{len(duplicates)} image id(s) appear more than once ({listed}); the last line of each"
            " is scored",
            value=len(duplicates),
            threshold=0,
        )
    return Outcome.ok("one line per image id", value=0, threshold=0)


__all__ = ["EVAL_CHECKS", "Matched"]
