"""Convention detectives: joint order, root, 2D/3D agreement, coordinate frame, MANO conventions.

Every tensor can look fine while data and predictions disagree on a convention. These checks say
which convention the data actually follow and give the fix (the permutation, the factor, the
flip). Geometry lives in :mod:`utnet_diag.geometry`; this module only words the outcomes.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from utnet_diag.checks.engine import CheckContext, CheckRegistry, Outcome
from utnet_diag.checks.fixes import FLIP_OPENGL, Fix, fix_details, fix_hint, rotation_z
from utnet_diag.geometry.joint_order import (
    CHIRALITY_MARGIN,
    PLAUSIBLE_COST,
    identify_joint_order,
    palm_chirality,
)
from utnet_diag.geometry.mano_conventions import (
    AGREE_MM,
    FIXES,
    mano_convention,
    translation_convention,
)
from utnet_diag.geometry.projection import fit_crop_projection, fit_projection, rotation_of
from utnet_diag.joints import KNOWN_ORDERS, NUM_JOINTS, ORDER_TEXT, describe_slots, invert
from utnet_diag.report.result import Status

# Checks on ground truth (run by check-batch and gate).
CONVENTION_CHECKS = CheckRegistry("convention")
# Checks of predictions against ground truth (run by loss-breakdown and gate).
PREDICTION_CONVENTION_CHECKS = CheckRegistry("prediction convention")

# --- thresholds ------------------------------------------------------------------------------
PROJ_OK = 0.05  # relative 2D residual (RMS error / RMS 2D spread) of a consistent sample
PROJ_FAIL = 0.10  # above this a sample's 2D is not the projection of its 3D
ANISO_TOL = 0.03  # |log(scale_x / scale_y)| tolerated (3 %)
ROOT_RELATIVE_MM = 1.0  # a wrist within this of the origin in every sample: root-relative 3D
CAMERA_MIN_DEPTH_MM = 50.0  # camera-frame joints are at least this far from the camera plane
FRAME_OFFSET_TOL = 0.45  # predicted and GT 2D centres may differ this much (crop units, median
# over samples, Euclidean): a [0, 1] frame is 0.71 off; an untrained model's hand up to ~0.35
FRAME_SCALE_TOL = 4.0  # ... and their spreads by this factor (median)
OPENGL_FLIP = [[1, 0, 0], [0, -1, 0], [0, 0, -1]]

PERMUTATION_HINT = (
    "reorder the joints once, where the data are loaded: joints_spec = joints[:, P] with the "
    "permutation P in the message (the spec's order is wrist, thumb, index, middle, ring, pinky, "
    "base to tip)"
)


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def _keypoints(ctx_source: Any, key: str, dims: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(coordinates (B,21,dims), weights (B,21)) of a keypoint tensor with optional conf."""
    if ctx_source is None or key not in ctx_source:
        return None
    arr = _array(ctx_source[key])
    if arr.ndim != 3 or arr.shape[1] != NUM_JOINTS or arr.shape[2] < dims:
        return None
    conf = arr[..., dims] if arr.shape[2] > dims else np.ones(arr.shape[:2])
    coords = arr[..., :dims]
    finite = np.isfinite(coords).all(-1) & np.isfinite(conf)
    # a non-finite joint carries no weight and a harmless 0, so every sum over joints stays finite
    conf = np.where(finite, conf, 0.0)
    return np.where(finite[..., None], coords, 0.0), np.clip(conf, 0.0, None)


def _order_text(result: Any) -> str:
    if result.order == "other":
        return f"an unknown order (wrist at index {result.root_index})"
    return ORDER_TEXT.get(result.order, result.order)


def _gt_order(ctx: CheckContext) -> Any:
    def compute() -> Any:

        found = _keypoints(ctx.batch, "keypoints_3d", 3)
        if found is None:
            return None
        coords, conf = found
        complete = (conf > 0).all(-1) & np.isfinite(coords).all((-1, -2))
        if not complete.any():
            return None
        return identify_joint_order(coords[complete])

    return ctx.cached("convention.gt_joint_order", compute)


def _kp2d_same_order(ctx: CheckContext) -> bool:
    """Whether the batch's 2D is in the same joint order as its 3D (their projection fits as
    given), so that one permutation fixes both."""
    found2 = _keypoints(ctx.batch, "keypoints_2d", 2)
    found3 = _keypoints(ctx.batch, "keypoints_3d", 3)
    if found2 is None or found3 is None:
        return False

    (kp2d, w2), (kp3d, w3) = found2, found3
    fit = fit_projection(kp3d, kp2d, np.minimum(w2, w3))
    usable = fit.points >= 6
    return bool(usable.any() and np.median(fit.residual[usable]) < PROJ_OK)


@CONVENTION_CHECKS.check("joint_order", requires=("kp3d_units",), hint=PERMUTATION_HINT)
def joint_order(ctx: CheckContext) -> Outcome:
    """The ground-truth joints are in the spec's order (identified from hand geometry)."""
    if ctx.batch is None or "keypoints_3d" not in ctx.batch:
        return Outcome.skip("no keypoints_3d in batch")
    result = _gt_order(ctx)
    if result is None:
        return Outcome.skip("no sample has all 21 joints annotated")
    details: dict[str, Any] = {
        "order": result.order,
        "permutation": list(result.permutation),
        "cost": round(result.cost, 4),
        "agreement": round(result.agreement, 3),
        "chirality": result.chirality,
        "known_costs": {k: round(v, 4) for k, v in result.known_costs.items()},
        "samples": result.samples_used,
    }
    if result.order == "spec":
        return Outcome.ok(
            f"joints are in the spec's order (hand cost {result.cost:.2f}, {result.chirality} "
            f"hand, {result.samples_used} samples)",
            value=result.order, details=details,
        )  # fmt: skip
    if not result.plausible:
        return Outcome.warn(
            f"could not recognise a hand in any joint order (best cost {result.cost:.2f}, "
            f"plausible < {PLAUSIBLE_COST}); best guess P = {list(result.permutation)}",
            value=result.order, details=details,
            hint="check that keypoints_3d holds 21 hand joints in mm (not vertices, not 2D)",
        )  # fmt: skip
    keys = ["keypoints_3d"] + (["keypoints_2d"] if _kp2d_same_order(ctx) else [])
    fixes = [Fix(key, "permute", {"perm": list(result.permutation)}) for key in keys]
    details["fix"] = fix_details(fixes)
    return Outcome.fail(
        f"joints are in {_order_text(result)}, not the spec's: joints_spec = joints[:, P] with "
        f"P = {list(result.permutation)} (agreement {result.agreement:.0%} of "
        f"{result.samples_used} samples)",
        value=result.order, threshold="spec", details=details,
        hint=fix_hint(fixes, "reorder once, where the data are loaded"),
    )  # fmt: skip


@CONVENTION_CHECKS.check(
    "root_index",
    requires=("kp3d_units",),
    hint="the losses take index 0 as the root: move the wrist to index 0 (or set diag.root_id)",
)
def root_index(ctx: CheckContext) -> Outcome:
    """The wrist (root joint) is at the root index the losses use (``diag.root_id``, default 0)."""
    if ctx.batch is None or "keypoints_3d" not in ctx.batch:
        return Outcome.skip("no keypoints_3d in batch")
    result = _gt_order(ctx)
    if result is None:
        return Outcome.skip("no sample has all 21 joints annotated")
    if not result.plausible:
        return Outcome.skip("the joint order was not recognised (see joint_order)")
    expected = int(getattr(ctx.config, "root_id", 0) or 0)
    if result.root_index == expected:
        source = " (diag.root_id)" if expected != 0 else ""
        return Outcome.ok(
            f"the wrist is at index {expected}{source}", value=expected, threshold=expected
        )
    return Outcome.fail(
        f"the wrist is at index {result.root_index}, not {expected}: root-relative losses "
        "subtract the wrong joint",
        value=result.root_index, threshold=expected,
        details={"root_index": result.root_index, "permutation": list(result.permutation)},
    )  # fmt: skip


def _has(ctx: CheckContext, key: str) -> bool:
    return ctx.batch is not None and key in ctx.batch


def _frame_fixes(ctx: CheckContext, matrix: Any, samples: tuple[int, ...] | None) -> list[Fix]:
    """The global orientation and translation moved with the joints by ``matrix``."""
    fixes = []
    if _has(ctx, "mano_pose"):
        fixes.append(Fix("mano_pose", "rotate_global", {"matrix": matrix}, samples))
    if _has(ctx, "mano_trans"):
        fixes.append(Fix("mano_trans", "move_translation", {"matrix": matrix}, samples))
    return fixes


def _pose_in_joint_frame(ctx: CheckContext) -> bool | None:
    """Whether MANO(mano_pose) lies in the same camera frame as keypoints_3d as given (True), in
    the OpenGL-flipped one (False), or unknown (None: no MANO model or no agreement either way)."""
    result = _mano_result(ctx)
    if result is None or result.best_mm >= 10.0:
        return None
    return not result.best[2].endswith("+opengl")


@CONVENTION_CHECKS.check(
    "coord_frame",
    requires=("kp3d_units",),
    hint=f"convert OpenGL-style camera coordinates with diag(1,-1,-1): keypoints_3d @ {OPENGL_FLIP}",
)
def coord_frame(ctx: CheckContext) -> Outcome:
    """Camera-frame 3D is OpenCV-style (z forward, in front of the camera); an OpenGL-style frame
    is fixed with the MANO global orientation and translation that come with the joints."""
    found = _keypoints(ctx.batch, "keypoints_3d", 3)
    if found is None:
        return Outcome.skip("no keypoints_3d in batch")
    kp3d, w = found
    root = kp3d[:, 0]
    if np.all(np.linalg.norm(root, axis=-1) < ROOT_RELATIVE_MM):
        return Outcome.skip("3D is root-relative: the camera frame cannot be told from it")
    z = np.where(w > 0, kp3d[..., 2], np.nan)
    behind = np.nanmax(z, axis=-1) < -CAMERA_MIN_DEPTH_MM
    front = np.nanmin(z, axis=-1) > CAMERA_MIN_DEPTH_MM
    details: dict[str, Any] = {
        "samples_behind": int(behind.sum()), "samples_in_front": int(front.sum()),
        "root_z_median_mm": float(np.nanmedian(root[:, 2])),
    }  # fmt: skip
    if behind.any():
        first = int(np.flatnonzero(behind)[0])
        samples = None if behind.all() else tuple(int(i) for i in np.flatnonzero(behind))
        fixes = [Fix("keypoints_3d", "scale_axes", {"factors": [1, -1, -1]}, samples)]
        with_joints = _pose_in_joint_frame(ctx)
        note = ""
        if with_joints:  # MANO(pose) agrees with the OpenGL joints: its frame is OpenGL too
            fixes += _frame_fixes(ctx, FLIP_OPENGL, samples)
            note = "; mano_pose's global orientation is in the same frame (MANO agrees)"
        elif with_joints is None and _has(ctx, "mano_pose"):
            note = (
                "; if mano_pose's global orientation (and mano_trans) come with these joints"
                " (HO3D's handPose/handTrans), convert them too (--mano decides)"
            )
        details.update(flip=OPENGL_FLIP, fix=fix_details(fixes))
        return Outcome.fail(
            f"{behind.sum()}/{len(z)} samples lie behind the camera (z < 0, e.g. sample {first} "
            f"root z = {root[first, 2]:.0f} mm): OpenGL-style frame (HO3D's raw annotations);"
            f" flip with diag(1,-1,-1){note}",
            value=int(behind.sum()), threshold=0, details=details,
            hint=fix_hint(fixes, "convert to OpenCV where the data are loaded, before anything is"
                          " projected or cropped from them"),
        )  # fmt: skip
    if front.all():
        return Outcome.ok(
            f"camera frame, OpenCV-style: every sample in front of the camera (median root z "
            f"{details['root_z_median_mm']:.0f} mm)",
            value=0, threshold=0, details=details,
        )  # fmt: skip
    straddle = int((~front & ~behind).sum())
    return Outcome.warn(
        f"{straddle}/{len(z)} samples have joints on both sides of z = 0 and are not "
        "root-relative: neither a camera frame nor root-relative coordinates",
        value=straddle, threshold=0, details=details,
        hint="store 3D either root-relative or in the camera frame (z forward, mm)",
    )  # fmt: skip


FLIP_HINT = (
    "UTNet's MANO is a right hand: flip left hands where the data are loaded (image and 2D:"
    " x -> -x about the crop centre; 3D: x -> -x; mano_pose: every axis-angle (x, y, z) ->"
    " (x, -y, -z)), or train them with MANO_LEFT"
)


@CONVENTION_CHECKS.check("handedness", requires=("kp3d_units",), hint=FLIP_HINT)
def handedness(ctx: CheckContext) -> Outcome:
    """Every sample is a right hand (the right-hand MANO predicts right hands; left hands are
    flipped by the loader), and the batch's is_right / hand_type flags agree with the geometry."""

    found = _keypoints(ctx.batch, "keypoints_3d", 3)
    result = _gt_order(ctx)
    if found is None or result is None:
        return Outcome.skip("no sample has all 21 joints annotated")
    if not result.plausible:
        return Outcome.skip("the joint order was not recognised (see joint_order)")
    coords, conf = found
    complete = (conf > 0).all(-1) & np.isfinite(coords).all((-1, -2))
    margin = np.full(len(coords), np.nan)
    margin[complete] = palm_chirality(coords[complete][:, list(result.permutation)])
    left = np.flatnonzero(margin < -CHIRALITY_MARGIN)
    right = np.flatnonzero(margin > CHIRALITY_MARGIN)
    flags = ctx.batch.get("is_right")
    marked_left = (
        np.flatnonzero(_array(flags) < 0.5) if flags is not None else np.array([], dtype=int)
    )
    details: dict[str, Any] = {
        "left": left.tolist(), "right": right.tolist(), "marked_left": marked_left.tolist(),
        "margin": np.round(np.nan_to_num(margin), 4).tolist(),
    }  # fmt: skip
    used = int(complete.sum())
    if len(left):
        samples = tuple(int(i) for i in left)
        fixes = [Fix("keypoints_3d", "scale_axes", {"factors": [-1, 1, 1]}, samples)]
        if _has(ctx, "keypoints_2d"):
            fixes.append(Fix("keypoints_2d", "scale_axes", {"factors": [-1, 1]}, samples))
        if _has(ctx, "mano_pose"):
            fixes.append(Fix("mano_pose", "mirror_pose", {}, samples))
        if _has(ctx, "mano_trans"):
            fixes.append(Fix("mano_trans", "scale_axes", {"factors": [-1, 1, 1]}, samples))
        if _has(ctx, "is_right"):
            fixes.append(Fix("is_right", "set", {"value": 1.0}, samples))
        details["fix"] = fix_details(fixes)
        marked = "" if flags is None else (
            " (the batch marks them left: the loader did not flip them)"
            if np.isin(left, marked_left).all()
            else " (the batch marks them right)"
        )  # fmt: skip
        return Outcome.fail(
            f"{len(left)}/{used} samples are left hands, mirror images of a right hand"
            f"{marked}: samples {_sample_list(left)}",
            value=len(left), threshold=0, details=details,
            hint=fix_hint(fixes, "UTNet's MANO is a right hand: flip these samples where the data"
                          " are loaded (the image too), or train them with MANO_LEFT"),
        )  # fmt: skip
    note = ""
    if len(marked_left):
        note = (
            f"; {len(marked_left)} samples marked left are right hands (flipped by the loader:"
            " their mano_pose must be mirrored too, see mano_consistency)"
        )
    undecided = used - len(right)
    text = f"all {len(right)} decided samples are right hands"
    if undecided:
        text += f" ({undecided} too flat to tell)"
    return Outcome.ok(text + note, value=0, threshold=0, details=details)


def _sample_list(indices: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    return shown + (f", ... ({len(indices)} in all)" if len(indices) > limit else "")


MAX_CROSS_SAMPLES = 8  # bad samples whose 2D is tried against every other sample's 3D


def _diagnose_projection(
    kp3d: np.ndarray, w3: np.ndarray, kp2d: np.ndarray, w2: np.ndarray, bad: np.ndarray
) -> dict[int, tuple[str, Fix | None]]:
    """For each bad sample: does its 2D belong to another sample, or to another joint order?"""

    weights = np.minimum(w3, w2)
    # each bad sample's 2D against every sample's 3D: bad x B fits, so only the first
    # MAX_CROSS_SAMPLES bad samples are tried against the others (the cost stays linear in B)
    crossed = bad[:MAX_CROSS_SAMPLES]
    cross = fit_projection(kp3d[None], kp2d[crossed][:, None],
                           np.minimum(w3[None], w2[crossed][:, None]))  # fmt: skip
    # each bad sample's 2D in the other known orders, all samples in one fit per order
    order_fits = {
        name: fit_projection(kp3d[bad], kp2d[bad][:, list(perm)], weights[bad][:, list(perm)])
        for name, perm in KNOWN_ORDERS.items()
        if name != "spec"
    }
    diagnosis: dict[int, tuple[str, Fix | None]] = {}
    for row, b in enumerate(bad):
        if row < len(crossed):
            own = cross.residual[row, b]
            others = cross.residual[row].copy()
            others[b] = np.inf
            j = int(np.argmin(others))
            if others[j] < PROJ_OK and others[j] < own / 4:
                diagnosis[int(b)] = (f"its 2D is the projection of sample {j}'s 3D", None)
                continue
        for name, fit in order_fits.items():
            if fit.residual[row] < PROJ_OK:
                perm = KNOWN_ORDERS[name]
                fix = Fix("keypoints_2d", "permute", {"perm": list(perm)}, (int(b),))
                diagnosis[int(b)] = (f"its 2D is in {name} order ({fix.text()})", fix)
                break
    return diagnosis


KP2D_HINT = (
    "2D must be the projection of the same sample's 3D, in the same joint order, with one scale "
    "for x and y (normalize both by the crop size); an augmentation that rotates or flips the "
    "image must move the 3D target (and the MANO global orientation) with it"
)


@dataclasses.dataclass(frozen=True)
class _ProjectionFit:
    """Both projection fits of 2D to 3D per sample and what they say: which samples are usable
    (6 joints in both), fit the crop model, are rotated (with the angle), mirrored, projected
    from behind the camera, or fit nothing."""

    crop: Any
    usable: np.ndarray
    residual: np.ndarray
    fits_crop: np.ndarray
    rotated: np.ndarray
    flipped: np.ndarray
    behind: np.ndarray
    bad: np.ndarray
    angle: np.ndarray

    @classmethod
    def of(cls, kp3d: np.ndarray, kp2d: np.ndarray, weights: np.ndarray) -> _ProjectionFit:
        crop = fit_crop_projection(kp3d, kp2d, weights)
        general = fit_projection(kp3d, kp2d, weights)
        usable = general.points >= 6
        residual = np.where(usable, crop.residual, 0.0)
        angle, mirrored = rotation_of(general.linear)
        fits_crop = usable & (residual <= PROJ_FAIL)
        fits_general = usable & (general.residual <= PROJ_OK)
        sx, sy = crop.scale[:, 0], crop.scale[:, 1]
        both_negative = fits_crop & (sx < 0) & (sy < 0)  # a 180-degree turn
        rotated = (usable & ~fits_crop & fits_general & ~mirrored) | both_negative
        flipped = (usable & ~fits_crop & fits_general & mirrored) | (
            fits_crop & ((sx < 0) ^ (sy < 0))
        )
        behind = fits_crop & crop.behind & (crop.depth_offset == 0) & ~flipped & ~rotated
        return cls(crop, usable, residual, fits_crop, rotated, flipped, behind,
                   usable & ~fits_crop & ~fits_general,
                   np.where(both_negative, 180.0, angle))  # fmt: skip


def _rotation_finding(fit: _ProjectionFit, n: int) -> str:
    listed = ", ".join(
        f"sample {i}: {fit.angle[i]:+.0f} deg" for i in np.flatnonzero(fit.rotated)[:6]
    )
    return (
        f"2D is rotated relative to 3D in {fit.rotated.sum()}/{n} samples ({listed}): a rotation"
        " augmentation turned the image and 2D but not keypoints_3d"
    )


def _mirror_fix(fit: _ProjectionFit, i: int) -> Fix:
    """Mirror sample ``i``'s 2D back: about the principal point's column (or row)."""
    crop = fit.crop
    axis_x = not fit.fits_crop[i] or crop.scale[i, 0] < 0
    matrix = [[-1.0, 0.0], [0.0, 1.0]] if axis_x else [[1.0, 0.0], [0.0, -1.0]]
    centre = np.nan_to_num(crop.centre[i]) if fit.fits_crop[i] else np.zeros(2)
    offset = [2 * centre[0], 0.0] if axis_x else [0.0, 2 * centre[1]]
    return Fix("keypoints_2d", "affine_2d", {"matrix": matrix, "offset": offset}, (i,))


@CONVENTION_CHECKS.check(
    "kp2d_kp3d_consistency",
    requires=("kp3d_units",),  # a perspective fit needs 3D in mm (depth offsets)
    hint=KP2D_HINT,
    after=("coord_frame", "handedness"),  # their fixes move the 3D this fit compares with
)
def kp2d_kp3d_consistency(ctx: CheckContext) -> Outcome:
    """Each sample's 2D keypoints are its 3D joints projected and cropped: per axis a scale and
    a shift, nothing else (a rotation or a mirror between them is named per sample)."""

    found2 = _keypoints(ctx.batch, "keypoints_2d", 2)
    found3 = _keypoints(ctx.batch, "keypoints_3d", 3)
    if found2 is None or found3 is None:
        missing = "keypoints_2d" if found2 is None else "keypoints_3d"
        return Outcome.skip(f"no {missing} in batch")
    (kp2d, w2), (kp3d, w3) = found2, found3
    weights = np.minimum(w2, w3)
    fit = _ProjectionFit.of(kp3d, kp2d, weights)
    if not fit.usable.any():
        return Outcome.skip("no sample has 6 joints annotated in both 2D and 3D")
    crop, residual, fits_crop = fit.crop, fit.residual, fit.fits_crop
    rotated, flipped, behind, bad, angle = fit.rotated, fit.flipped, fit.behind, fit.bad, fit.angle
    models = sorted(set(crop.model[fits_crop].tolist()))
    details: dict[str, Any] = {
        "residual_per_sample": np.round(residual, 4).tolist(),
        "model": models,
        "rotation_deg": {str(i): round(float(angle[i]), 1) for i in np.flatnonzero(rotated)},
        "mirrored": np.flatnonzero(flipped).tolist(),
        "behind_camera": np.flatnonzero(behind).tolist(),
    }
    n = len(residual)
    findings: list[str] = []
    fixes: list[Fix] = []
    if rotated.any():
        findings.append(_rotation_finding(fit, n))
        for i in np.flatnonzero(rotated):
            matrix = rotation_z(float(angle[i]))
            fixes.append(Fix("keypoints_3d", "rotate_3d", {"matrix": matrix}, (int(i),)))
            fixes += _frame_fixes(ctx, matrix, (int(i),))
    if flipped.any():
        rows = np.flatnonzero(flipped)
        findings.append(
            f"2D is mirrored relative to 3D in {len(rows)}/{n} samples ({_sample_list(rows)}):"
            " the 2D was flipped without the 3D, or projected from the wrong side of the camera"
        )
        fixes += [_mirror_fix(fit, int(i)) for i in rows]
    if behind.any():
        findings.append(
            f"2D was projected from points behind the camera (z < 0) in {behind.sum()}/{n}"
            " samples: it is mirrored through the principal point; project from OpenCV-frame 3D"
        )
    if bad.any():
        worst = int(np.argmax(np.where(bad, residual, -1)))
        diagnosis = _diagnose_projection(kp3d, w3, kp2d, w2, np.flatnonzero(bad))
        details["diagnosis"] = {str(k): v[0] for k, v in diagnosis.items()}
        fixes += [fix for _, fix in diagnosis.values() if fix is not None]
        shown = "; ".join(f"sample {b}: {diagnosis[b][0]}" for b in list(diagnosis)[:3])
        findings.append(
            f"2D is not a projection of 3D in {bad.sum()}/{n} samples: worst residual "
            f"{residual[worst]:.2f} of the 2D spread at sample {worst}"
            + (f" ({shown})" if shown else "")
        )
    if findings:
        details["fix"] = fix_details(fixes)
        worst = float(residual.max())
        return Outcome.fail(
            "; ".join(findings), value=worst, threshold=PROJ_FAIL, details=details,
            hint=fix_hint(fixes, KP2D_HINT) if fixes else None,
        )  # fmt: skip
    return _projection_verdict(fit, models, details)


def _projection_verdict(fit: _ProjectionFit, models: list[str], details: dict[str, Any]) -> Outcome:
    """Every sample fits the crop projection: fail on x/y anisotropy, else pass (warn when the
    worst residual is above the clean level)."""
    fits_crop, residual = fit.fits_crop, fit.residual
    sx, sy = fit.crop.scale[:, 0], fit.crop.scale[:, 1]
    ratio = float(np.median(np.abs(sx[fits_crop] / sy[fits_crop])))
    details["anisotropy_median"] = ratio
    if abs(np.log(ratio)) > ANISO_TOL:
        fix = Fix("keypoints_2d", "scale_axes", {"factors": [1.0, round(ratio, 6)]})
        details["fix"] = fix_details([fix])
        return Outcome.fail(
            f"x and y have different scales: x/y = {ratio:.4f} (median over {fits_crop.sum()} "
            f"samples); the projection divides x and y by different sizes: multiply "
            f"keypoints_2d[..., 1] by {ratio:.4f} (or x by {1 / ratio:.4f})",
            value=ratio, threshold=f"1 +- {ANISO_TOL}", details=details, hint=fix.text(),
        )  # fmt: skip
    worst = int(np.argmax(residual))
    status = Outcome.warn if residual[worst] > PROJ_OK else Outcome.ok
    return status(
        f"2D is the {'/'.join(models)} projection of 3D in every sample: max residual "
        f"{residual[worst]:.3f} of the 2D spread (sample {worst}), x/y scale {ratio:.4f}",
        value=float(residual[worst]), threshold=PROJ_FAIL, details=details,
    )  # fmt: skip


def _mano_result(ctx: CheckContext) -> Any:
    def compute() -> Any:

        found = _keypoints(ctx.batch, "keypoints_3d", 3)
        pose, shape = ctx.batch.get("mano_pose"), ctx.batch.get("mano_shape")
        if found is None or pose is None or shape is None or ctx.mano is None:
            return None
        kp3d, w = found
        has = _mano_rows(ctx, len(kp3d))
        if not has.any():
            return None
        order = _gt_order(ctx)
        extra = {"detected": order.permutation} if order is not None and order.plausible else {}
        return mano_convention(
            ctx.mano, _array(pose)[has], _array(shape)[has], kp3d[has], w[has], extra
        )

    return ctx.cached("convention.mano", compute)


def _mano_rows(ctx: CheckContext, count: int) -> np.ndarray:
    """(B,) samples with ground-truth MANO (all without ``has_mano``)."""
    if "has_mano" in ctx.batch:
        return _array(ctx.batch["has_mano"]) > 0
    return np.ones(count, bool)


def _pose_fixes(pose: str) -> list[Fix]:
    """The fix that makes ``mano_pose[:, 3:]`` absolute axis-angle, for a pose variant."""
    if pose == "relative":
        return [Fix("mano_pose", "add_hands_mean")]
    if pose in ("pca", "pca_relative"):
        return [Fix("mano_pose", "pca_to_axis_angle", {"relative": pose == "pca_relative"})]
    return []


@CONVENTION_CHECKS.check(
    "mano_consistency",
    requires=("kp3d_units", "mano_pose", "mano_shape"),
    hint="make mano_pose absolute axis-angle for the right MANO model, matching keypoints_3d",
    after=("joint_order", "coord_frame", "handedness"),  # their fixes change the joints
)
def mano_consistency(ctx: CheckContext) -> Outcome:
    """MANO on the ground-truth pose and shape reproduces the ground-truth 3D joints, sample by
    sample, in the same camera frame; with ``mano_trans``, at the same place."""
    if ctx.batch is None or "mano_pose" not in ctx.batch or "mano_shape" not in ctx.batch:
        return Outcome.skip("no mano_pose/mano_shape in batch")
    if "keypoints_3d" not in ctx.batch:
        return Outcome.skip("no keypoints_3d in batch")
    if ctx.mano is None:
        return Outcome.skip(
            "no MANO model given (--mano MANO_RIGHT.pkl: the model the labels were made with)"
        )
    result = _mano_result(ctx)
    if result is None:
        return Outcome.skip("no sample has MANO parameters (has_mano)")

    rows = np.flatnonzero(_mano_rows(ctx, ctx.batch["keypoints_3d"].shape[0]))
    details: dict[str, Any] = {
        "as_given_mm": round(result.as_given_mm, 2),
        "best": list(result.best),
        "best_mm": round(result.best_mm, 2),
        "errors_mm": {
            "/".join(k): round(v, 2)
            for k, v in sorted(result.errors_mm.items(), key=lambda kv: kv[1])[:8]
        },
    }
    if result.agrees:
        return _translation_outcome(ctx, rows, result, details)
    pose, hand, order = result.best
    unflipped = rows[(result.sample_hands == "unflipped") & (result.sample_hands_mm < AGREE_MM)]
    plain = pose == "absolute" and order in ("spec", "detected")
    if len(unflipped) and plain:
        fixes = [Fix("mano_pose", "mirror_pose", {}, tuple(int(i) for i in unflipped))]
        details.update(unflipped=unflipped.tolist(), fix=fix_details(fixes))
        return Outcome.fail(
            f"{len(unflipped)} samples were flipped to right hands but their mano_pose was not"
            f" (samples {_sample_list(unflipped)}): MANO on the pose with y and z of every"
            " axis-angle negated matches their joints",
            value=len(unflipped), threshold=0, details=details,
            hint=fix_hint(fixes, "when the loader flips a sample, flip its pose too"),
        )  # fmt: skip
    if result.best_mm < AGREE_MM:
        fixes = _pose_fixes(pose)
        words = [FIXES[pose]] if pose in FIXES else []
        if order.endswith("+opengl"):  # the joints are OpenCV (coord_frame passed)
            fixes += _frame_fixes(ctx, FLIP_OPENGL, None)
            words.append(
                "mano_pose's global orientation is in the OpenGL frame while keypoints_3d is"
                " OpenCV: rotate it (and mano_trans) by diag(1,-1,-1)"
            )
        if order.split("+")[0] not in ("spec", "detected"):
            words.append(f"the joints read in {order.split('+')[0]} order")
        details["fix"] = fix_details(fixes)
        return Outcome.fail(
            f"MANO(mano_pose) is {result.as_given_mm:.1f} mm from keypoints_3d as given, "
            f"{result.best_mm:.1f} mm read as pose={pose}, hand={hand}, joints={order}: "
            + "; ".join(words),
            value=result.as_given_mm, threshold=AGREE_MM, details=details,
            hint=fix_hint(fixes) if fixes else result.fix(),
        )  # fmt: skip
    return Outcome.fail(
        f"MANO(mano_pose, mano_shape) is {result.as_given_mm:.1f} mm from keypoints_3d and no "
        f"known convention explains it (best {'/'.join(result.best)}: {result.best_mm:.1f} mm)",
        value=result.as_given_mm, threshold=AGREE_MM, details=details,
        hint="check that mano_pose/mano_shape belong to the same samples as keypoints_3d, and the "
        "MANO model file",
    )  # fmt: skip


def _translation_outcome(
    ctx: CheckContext, rows: np.ndarray, result: Any, details: dict[str, Any]
) -> Outcome:
    """mano_consistency once the pose agrees: does mano_trans place the hand (camera-frame 3D)?"""

    text = (
        f"MANO(mano_pose, mano_shape) matches keypoints_3d: mean root-relative error "
        f"{result.as_given_mm:.1f} mm"
    )
    kp3d, w = _keypoints(ctx.batch, "keypoints_3d", 3)  # type: ignore[misc]
    trans = ctx.batch.get("mano_trans")
    root_relative = np.all(np.linalg.norm(kp3d[:, 0], axis=-1) < ROOT_RELATIVE_MM)
    if trans is None or root_relative:
        return Outcome.ok(text, value=result.as_given_mm, threshold=AGREE_MM, details=details)
    found = translation_convention(
        ctx.mano, _array(ctx.batch["mano_pose"])[rows], _array(ctx.batch["mano_shape"])[rows],
        _array(trans)[rows], kp3d[rows], w[rows],
    )  # fmt: skip
    details["translation_mm"] = {k: round(v, 2) for k, v in found.errors_mm.items()}
    if found.agrees:
        return Outcome.ok(
            f"{text}; mano_trans places it (mean {found.errors_mm['metres']:.1f} mm)",
            value=result.as_given_mm, threshold=AGREE_MM, details=details,
        )  # fmt: skip
    fixes: list[Fix] = []
    why = "no reading of mano_trans places the hand (check it belongs to these samples)"
    if found.best == "opengl" and found.errors_mm["opengl"] < AGREE_MM:
        fixes = [Fix("mano_trans", "move_translation", {"matrix": FLIP_OPENGL})]
        why = "mano_trans is in the OpenGL frame while the joints and pose are OpenCV"
    elif found.best == "millimetres" and found.errors_mm["millimetres"] < AGREE_MM:
        fixes = [Fix("mano_trans", "scale_axes", {"factors": [0.001, 0.001, 0.001]})]
        why = "mano_trans is in millimetres; MANO takes metres"
    details["fix"] = fix_details(fixes)
    return Outcome.fail(
        f"{text}, but MANO placed with mano_trans is {found.errors_mm['metres']:.1f} mm from the"
        f" camera-frame joints: {why}",
        value=found.errors_mm["metres"], threshold=AGREE_MM, details=details,
        hint=fix_hint(fixes) if fixes else why,
    )  # fmt: skip


# --- predictions against ground truth ----------------------------------------------------------
PRED_ORDER_HINT = (
    "fix the model's 21-joint mapping: MANO's 16 joints come as wrist, index, middle, pinky, ring,"
    " thumb (base to end) and smplx adds no tips (take them from vertices 744, 320, 443, 554,"
    " 671); or reorder its output once with the permutation in the message"
)


@PREDICTION_CONVENTION_CHECKS.check(
    "pred_joint_order", requires=("pred_degenerate",), hint=PRED_ORDER_HINT
)
def pred_joint_order(ctx: CheckContext) -> Outcome:
    """Predicted joints are in the same order as the ground truth; a wrong order is described
    slot by slot."""

    pred = _keypoints(ctx.outputs, "keypoints_3d", 3)
    if pred is None:
        return Outcome.skip("no keypoints_3d in the model outputs")
    coords = pred[0]
    finite = np.isfinite(coords).all((-1, -2))
    if not finite.any():
        return Outcome.skip("no finite predicted keypoints_3d")
    gt = _gt_order(ctx)
    if gt is None or not gt.plausible:  # a skeleton that is no hand: nothing to compare with
        return Outcome.skip("the ground truth's joint order is unknown")
    reference = tuple(gt.permutation)
    result = ctx.cached("convention.pred_joint_order", lambda: identify_joint_order(coords[finite]))
    details = {"pred_order": result.order, "gt_order": gt.order,
               "pred_permutation": list(result.permutation), "cost": round(result.cost, 4),
               "margin": round(result.margin, 4)}  # fmt: skip
    if not result.plausible:
        return Outcome.warn(
            f"predicted joints do not look like a hand in any order (cost {result.cost:.2f},"
            f" plausible < {PLAUSIBLE_COST}); best guess P = {list(result.permutation)}",
            value=result.order, details=details,
            hint="untrained predictions far from any hand, or a broken MANO layer; check again"
            " after a few training steps (utnet-diag overfit)",
        )  # fmt: skip
    if result.permutation == reference:
        return Outcome.ok(
            f"predictions and ground truth are both in {_order_text(gt)}",
            value=result.order, threshold=gt.order, details=details,
        )  # fmt: skip
    pred_to_gt = [result.permutation[i] for i in invert(reference)]
    details["pred_to_gt"] = pred_to_gt
    slots = describe_slots(result.permutation)
    details["wrong_slots"] = slots
    text = f"predictions are in {_order_text(result)}: " + "; ".join(slots)
    if gt.order != "spec":
        text += f"; ground truth in {_order_text(gt)}: pred_in_gt_order = pred[:, {pred_to_gt}]"
    else:
        text += f": pred_spec = pred[:, {list(result.permutation)}]"
    return Outcome.fail(text, value=result.order, threshold=gt.order, details=details)


@PREDICTION_CONVENTION_CHECKS.check(
    "pred_projection",
    requires=("pred_degenerate",),
    hint="project the predicted 3D with the same camera, crop normalization and x/y scale as "
    "the ground-truth 2D",
)
def pred_projection(ctx: CheckContext) -> Outcome:
    """Predicted 2D is the projection of predicted 3D, in the ground truth's crop frame."""

    p2 = _keypoints(ctx.outputs, "keypoints_2d", 2)
    p3 = _keypoints(ctx.outputs, "keypoints_3d", 3)
    if p2 is None or p3 is None:
        return Outcome.skip("no keypoints_2d/keypoints_3d in the model outputs")
    (kp2d, _), (kp3d, _) = p2, p3
    fit = fit_projection(kp3d, kp2d)
    usable = np.isfinite(fit.residual)
    if not usable.any():
        return Outcome.skip("no finite predictions")
    residual = fit.residual[usable]
    worst = int(np.argmax(residual))
    ratio = float(np.median(fit.anisotropy[usable]))
    details: dict[str, Any] = {"residual_max": float(residual.max()), "anisotropy_median": ratio}
    if residual.max() > PROJ_FAIL:
        return Outcome.fail(
            f"predicted 2D is not a projection of predicted 3D in {(residual > PROJ_FAIL).sum()}"
            f"/{len(residual)} samples: residual {residual[worst]:.2f} of the 2D spread at "
            f"sample {worst}",
            value=float(residual.max()), threshold=PROJ_FAIL, details=details,
        )  # fmt: skip
    if abs(np.log(ratio)) > ANISO_TOL:
        return Outcome.fail(
            f"predicted 2D scales x and y differently: x/y = {ratio:.4f}"
            f"{_aspect_reason(ratio, ctx.extras.get('image_size'))}; use one size for both",
            value=ratio, threshold=f"1 +- {ANISO_TOL}", details=details,
        )  # fmt: skip
    gt = _keypoints(ctx.batch, "keypoints_2d", 2)
    seen = (gt[1] > 0).sum(1) > 1 if gt is not None and len(gt[0]) == len(kp2d) else None
    if seen is not None and seen.any():  # samples with two or more annotated 2D joints
        gt2d, keep, pred2d = gt[0][seen], gt[1][seen] > 0, kp2d[seen]
        gt_centre = np.array([np.median(g[k], 0) for g, k in zip(gt2d, keep)])
        pred_centre = np.median(pred2d, axis=1)
        offset = np.median(pred_centre - gt_centre, axis=0)
        gt_spread = np.median([np.ptp(g[k], 0).max() for g, k in zip(gt2d, keep)])
        pred_spread = float(np.median(np.ptp(pred2d, axis=1).max(-1)))
        scale = pred_spread / gt_spread if gt_spread > 0 else float("nan")
        details.update(offset=offset.tolist(), spread_ratio=scale)
        if np.linalg.norm(offset) > FRAME_OFFSET_TOL or not (
            1 / FRAME_SCALE_TOL < scale < FRAME_SCALE_TOL
        ):
            return Outcome.fail(
                f"predicted 2D is in another frame than the ground truth: median centre offset "
                f"({offset[0]:+.2f}, {offset[1]:+.2f}), spread ratio {scale:.2f} (pred/GT)",
                value=float(np.linalg.norm(offset)), threshold=FRAME_OFFSET_TOL, details=details,
                hint="ground-truth 2D is normalized to the crop ([-0.5, 0.5], centre 0); make the "
                "model's projection produce the same (not pixels, not [0, 1])",
            )  # fmt: skip
    return Outcome.ok(
        f"predicted 2D is the projection of predicted 3D (max residual {residual.max():.3f}, "
        f"x/y scale {ratio:.4f})",
        value=float(residual.max()), threshold=PROJ_FAIL, details=details,
    )  # fmt: skip


def _aspect_reason(ratio: float, image_size: Any) -> str:
    """Why x/y = ``ratio`` when it is the model's image aspect: a projection that divides x and y
    by two different sizes (x/W, y/H gives x/y = H/W); else ''."""
    if not image_size:
        return ""
    h, w = (int(v) for v in image_size)
    if h != w and abs(np.log(ratio) - np.log(h / w)) < ANISO_TOL:
        return f" = {h}/{w}, the model's image aspect: x is divided by the width {w}, y by the height {h}"
    if h != w and abs(np.log(ratio) - np.log(w / h)) < ANISO_TOL:
        return f" = {w}/{h}, the model's image aspect: x is divided by the height {h}, y by the width {w}"
    return ""


def _model_mano_settings(ctx: CheckContext) -> tuple[bool, bool] | None:
    """(flat_hand_mean, use_pca) of the MANO layer the model itself uses: what its code built
    with smplx (``ctx.extras['model_mano']``, recorded while it was built), else ``ctx.mano``
    (the reference model's own layer); None when unknown."""
    if "model_mano" in ctx.extras:  # the user's model: only what it built itself counts
        settings = ctx.extras["model_mano"]
        if settings is None or settings.get("flat_hand_mean") is None:
            return None
        return bool(settings["flat_hand_mean"]), bool(settings.get("use_pca"))
    mano = ctx.mano
    if mano is None or not hasattr(mano, "flat_hand_mean"):
        return None
    return bool(mano.flat_hand_mean), bool(getattr(mano, "use_pca", False))


def _model_pose_space(ctx: CheckContext) -> str | None:
    """The convention of the model's coarse MANO pose: 'absolute', 'relative' or 'pca'."""
    settings = _model_mano_settings(ctx)
    if settings is None:
        return None
    flat, pca = settings
    if pca:
        return "pca" if flat else "pca_relative"
    return "absolute" if flat else "relative"


@PREDICTION_CONVENTION_CHECKS.check(
    "aux_target_convention",
    hint="express the auxiliary target in the model's coarse pose space (or change the MANO "
    "layer's flat_hand_mean/use_pca to match the data)",
)
def aux_target_convention(ctx: CheckContext) -> Outcome:
    """The auxiliary loss compares coarse_pose with a target in the same MANO convention."""
    if ctx.outputs is None or "coarse_pose" not in ctx.outputs:
        return Outcome.skip("no coarse_pose in the model outputs")
    if ctx.batch is None or "mano_pose" not in ctx.batch:
        return Outcome.skip("no mano_pose in batch")
    coarse, target = ctx.outputs["coarse_pose"], ctx.batch["mano_pose"]
    if tuple(coarse.shape[1:]) != tuple(target.shape[1:]):
        return Outcome.fail(
            f"coarse_pose has shape {tuple(coarse.shape)} but mano_pose {tuple(target.shape)}",
            value=list(coarse.shape), threshold=list(target.shape),
        )  # fmt: skip
    space = _model_pose_space(ctx)
    if space is None:
        return Outcome.skip("the model's MANO layer (flat_hand_mean/use_pca) is unknown")
    result = _mano_result(ctx)
    if result is None or result.best_mm >= 10.0:
        return Outcome.skip("the ground truth's MANO convention is unknown (see mano_consistency)")
    data_space = result.best[0]
    details = {"model_space": space, "target_space": data_space}
    if data_space == space:
        return Outcome.ok(
            f"coarse_pose and the aux target are both {space} axis-angle", value=space,
            threshold=data_space, details=details,
        )  # fmt: skip
    flat, pca = _model_mano_settings(ctx)  # type: ignore[misc]
    return Outcome.fail(
        f"the model's coarse pose is {space} (its MANO: flat_hand_mean={flat}, use_pca={pca})"
        f" but mano_pose is {data_space}: L_aux pulls coarse_pose toward the wrong target",
        value=space, threshold=data_space, details=details,
    )  # fmt: skip


# ---- samples with NaN/Inf ---------------------------------------------------------------------

_ANNOTATION_KEYS = ("keypoints_2d", "keypoints_3d", "mano_pose", "mano_shape")


def nonfinite_samples(batch: Any) -> list[int]:
    """Indices of the samples whose annotations (2D/3D keypoints, MANO) hold a NaN or Inf."""
    bad: np.ndarray | None = None
    for key in _ANNOTATION_KEYS:
        if batch is None or key not in batch:
            continue
        arr = _array(batch[key])
        if arr.ndim == 0 or not arr.size:
            continue
        rows = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
        bad = rows if bad is None else (bad | rows if bad.shape == rows.shape else bad)
    return [] if bad is None else np.flatnonzero(bad).tolist()


def _leaving_out_nonfinite(spec: Any) -> Any:
    """``spec`` whose check runs on every finite value (its non-finite joints weigh nothing) and
    says which samples held NaN/Inf (the ``finite`` check reports them): one bad sample no longer
    hides the rest of the batch."""
    inner = spec.fn

    @functools.wraps(inner)
    def check(ctx: CheckContext) -> Outcome:
        outcome = inner(ctx)
        left = ctx.cached("nonfinite_samples", lambda: nonfinite_samples(ctx.batch))
        if not left or outcome.status is Status.SKIP:
            return outcome
        shown = ", ".join(map(str, left[:6])) + (", …" if len(left) > 6 else "")
        return dataclasses.replace(
            outcome,
            message=f"{outcome.message} (NaN/Inf values left out: sample {shown}; see finite)",
            details={**outcome.details, "nonfinite_samples": left},
        )

    return dataclasses.replace(spec, fn=check)


CONVENTION_CHECKS.specs[:] = [_leaving_out_nonfinite(s) for s in CONVENTION_CHECKS.specs]
