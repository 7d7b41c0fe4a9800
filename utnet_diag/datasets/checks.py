"""Per-sample checks of a dataset scan, vectorised over a chunk with per-sample attribution.

Two kinds: checks the readers apply while reading a frame (a file that is missing, does not
decode, or asks to run code) and array checks over a :class:`CanonicalChunk`. Each array check
returns the rows that offend with a specific message; :func:`run_array_checks` names the sample.
"""

from __future__ import annotations

import numpy as np

from utnet_diag.checks.engine import CheckRegistry, Row
from utnet_diag.datasets.common import CanonicalChunk, Finding
from utnet_diag.joints import BONES, JOINT_NAMES
from utnet_diag.measures import (
    HAND_SPAN_MM,
    UNIT_FACTORS,
    finite_rows,
    in_mm_range,
    unit_of,
)

MAX_BONE_MM = 150.0
MIN_BONE_MM = 1.0
KP2D_AGREE_PX = 4.0
PRINCIPAL_POINT_TOLERANCE = 0.15  # of the image size
MAX_JOINT_ANGLE = np.pi + 1e-3
BETA_WARN = 5.0
SHAPE_PRIOR_HEALTHY = 100.0  # spec 9.2: L_prior (shape) = mean(betas^2) < 100
DEPTH_WARN_MM = 50.0
DEPTH_FAIL_MM = 300.0
DEPTH_MIN_JOINTS = 5  # joints with a depth reading needed to judge a frame
DEPTH_VISIBLE_QUANTILE = 0.2  # the best-agreeing fifth of the joints is assumed visible


DATASET_CHECKS = CheckRegistry("dataset")
READER_HINT = "fix or remove the file; a bad frame in training is what turns a loss into NaN"
# applied by the readers while they read a frame
# The reader's checks of one annotation file, in the order it applies them: a file a check flags
# is not read further, so each check's ``prior`` is the checks before it in its chain.
META_FILE_CHECKS = ("meta_missing", "meta_unreadable", "meta_unsafe", "meta_schema")
LABELS_FILE_CHECKS = ("labels_missing", "labels_unreadable", "labels_unsafe", "labels_schema")
DATASET_CHECKS.declare(
    "meta_missing", "Meta file exists (HO3D meta/<frame>.pkl, DexYCB <sequence>/meta.yml)",
    READER_HINT,
)  # fmt: skip
DATASET_CHECKS.declare("meta_unreadable", "Meta pickle unpickles", READER_HINT,
                       prior=META_FILE_CHECKS[:1])  # fmt: skip
DATASET_CHECKS.declare(
    "meta_unsafe",
    "Meta pickle names only numpy globals",
    "the file asks to run code and was refused; replace it with a clean copy",
    prior=META_FILE_CHECKS[:2],
)
DATASET_CHECKS.declare("meta_schema", "Meta holds the expected arrays", READER_HINT,
                       prior=META_FILE_CHECKS[:3])  # fmt: skip
DATASET_CHECKS.declare("labels_missing", "Labels npz exists", READER_HINT)
DATASET_CHECKS.declare("labels_unreadable", "Labels npz decodes", READER_HINT,
                       prior=LABELS_FILE_CHECKS[:1])  # fmt: skip
DATASET_CHECKS.declare("labels_unsafe", "Labels npz holds no Python objects", READER_HINT,
                       prior=LABELS_FILE_CHECKS[:2])  # fmt: skip
DATASET_CHECKS.declare("labels_schema", "Labels hold joint_3d, joint_2d, pose_m", READER_HINT,
                       prior=LABELS_FILE_CHECKS[:3])  # fmt: skip
DATASET_CHECKS.declare(
    "calibration_present",
    "Camera intrinsics and MANO betas found",
    "restore calibration/intrinsics/<serial>_640x480.yml and calibration/mano_<calib>/mano.yml",
)
DATASET_CHECKS.declare(
    "annotation_present",
    "Frame has a hand annotation",
    "unannotated frames (evaluation splits, no hand in view) are skipped by the annotation checks",
    prior=META_FILE_CHECKS + LABELS_FILE_CHECKS,
)
DATASET_CHECKS.declare("rgb_readable", "RGB image decodes", READER_HINT, needs_images=True)
DATASET_CHECKS.declare("depth_readable", "Depth PNG decodes", READER_HINT, needs_images=True)


def _joint(j: int) -> str:
    return f"joint {j} ({JOINT_NAMES[j]})"


@DATASET_CHECKS.per_sample("finite", hint="drop or fix the sample: check gradients and bad samples")
def check_finite(chunk: CanonicalChunk) -> list[Row]:
    """Annotations are finite."""
    parts = {
        "3D joints": finite_rows(chunk.joints_mm),
        "camera matrix": finite_rows(chunk.cam_k),
        "MANO pose": ~chunk.has_mano | finite_rows(chunk.mano_pose),
        "MANO shape": ~chunk.has_mano | finite_rows(chunk.mano_shape),
    }
    ok = np.logical_and.reduce(list(parts.values()))
    out = []
    for row in np.flatnonzero(~ok):
        bad = [name for name, fine in parts.items() if not fine[row]]
        joints = np.flatnonzero(~np.isfinite(chunk.joints_mm[row]).all(axis=1))
        where = f" at {_joint(int(joints[0]))}" if joints.size else ""
        out.append(
            (int(row), "fail", f"NaN/Inf in {', '.join(bad)}{where}: turns the loss into NaN", bad)
        )
    return out


@DATASET_CHECKS.per_sample(
    "mano_complete",
    applies=lambda c: np.full(len(c), c.mano_present is not None),
    needs="a reader that tells a missing MANO pose from a missing shape",
    hint="fill in the missing half, or train this frame without MANO supervision (has_mano = 0);"
    " a loader that reads both pose and shape crashes on the None",
)
def check_mano_complete(chunk: CanonicalChunk) -> list[Row]:
    """MANO pose and shape are given together.

    Frames holding a MANO pose without a shape, or a shape without a pose."""
    present = chunk.mano_present
    if present is None:
        return []
    out = []
    for row in np.flatnonzero(present.any(axis=1) & ~present.all(axis=1)):
        given, missing = ("shape (betas)", "pose") if present[row, 1] else ("pose", "shape")
        out.append(
            (
                int(row),
                "warn",
                f"partially annotated frame: MANO {given} given but no MANO {missing} (None); "
                "its MANO loss has only half a target",
                f"no MANO {missing}",
            )
        )
    return out


@DATASET_CHECKS.per_sample(
    "kp3d_units",
    hint="check units (mm): the spec's 3D loss expects millimetres",
    applies=lambda c: np.isfinite(c.span_mm),
    needs="two finite 3D joints",
)
def check_kp3d_units(chunk: CanonicalChunk) -> list[Row]:
    """3D joints are in millimetres (hand span 50-400 mm).

    The hand span (:mod:`utnet_diag.measures`, the batch checks' rule) is an adult hand's in mm."""
    span = chunk.span_mm
    lo, hi = HAND_SPAN_MM
    out = []
    for row in np.flatnonzero(np.isfinite(span) & ~in_mm_range(span)):
        s = float(span[row])
        unit = unit_of(s)
        guess = f" (looks like {unit}: multiply by {UNIT_FACTORS[unit]:g})" if unit else ""
        message = f"hand span {s:.3g} mm (largest joint distance), outside {lo:g}-{hi:g} mm{guess}"
        out.append((int(row), "fail", message, s))
    return out


@DATASET_CHECKS.per_sample(
    "kp3d_in_front",
    hint="convert OpenGL to OpenCV axes (flip y and z)",
    applies=lambda c: np.isfinite(c.joints_mm[..., 2]).any(axis=1),
    needs="a finite 3D joint",
)
def check_kp3d_in_front(chunk: CanonicalChunk) -> list[Row]:
    """3D joints are in front of the camera (z > 0)."""
    z = chunk.joints_mm[..., 2]
    out = []
    with np.errstate(invalid="ignore"):
        behind = np.nan_to_num(z, nan=1.0) <= 0
    for row in np.flatnonzero(behind.any(axis=1)):
        j = int(np.argmin(np.nan_to_num(z[row], nan=np.inf)))
        out.append(
            (
                int(row),
                "fail",
                f"{int(behind[row].sum())}/21 joints behind the camera: {_joint(j)} at "
                f"z={z[row, j]:.1f} mm (OpenGL axes not flipped to OpenCV?)",
                float(z[row, j]),
            )
        )
    return out


_PARENTS = np.array([p for p, _ in BONES])
_CHILDREN = np.array([c for _, c in BONES])


@DATASET_CHECKS.per_sample(
    "bone_lengths",
    hint="the annotation is collapsed or a joint jumped; inspect the frame",
    applies=lambda c: np.isfinite(c.joints_mm).all(axis=2).sum(axis=1) >= 2,
    needs="finite 3D joints",
)
def check_bone_lengths(chunk: CanonicalChunk) -> list[Row]:
    """Bone lengths are plausible."""
    parents, children = _PARENTS, _CHILDREN
    joints = chunk.joints_mm
    lengths = np.linalg.norm(joints.take(children, axis=1) - joints.take(parents, axis=1), axis=-1)
    with np.errstate(invalid="ignore"):
        bad = (lengths < MIN_BONE_MM) | (lengths > MAX_BONE_MM)
    out = []
    for row in np.flatnonzero(bad.any(axis=1)):
        k = int(np.flatnonzero(bad[row])[0])
        out.append(
            (
                int(row),
                "warn",
                f"{int(bad[row].sum())} bones outside {MIN_BONE_MM:g}-{MAX_BONE_MM:g} mm: "
                f"{JOINT_NAMES[parents[k]]}->{JOINT_NAMES[children[k]]} is {lengths[row, k]:.1f} mm",
                float(lengths[row, k]),
            )
        )
    return out


def _image_size(chunk: CanonicalChunk) -> np.ndarray:
    """(N,2) image (W,H): decoded size, else twice the principal point."""
    guess = 2.0 * chunk.cam_k[:, :2, 2]
    return np.where(np.isfinite(chunk.image_wh), chunk.image_wh, guess)


@DATASET_CHECKS.per_sample(
    "kp2d_in_image",
    hint="check the camera matrix and that 3D joints are in this camera's frame",
    applies=lambda c: (
        np.isfinite(_image_size(c)).all(axis=1) & np.isfinite(c.uv_px).all(axis=2).any(axis=1)
    ),
    needs="a camera matrix and finite 3D joints to project",
)
def check_kp2d_in_image(chunk: CanonicalChunk) -> list[Row]:
    """Projected joints fall inside the image."""
    wh = _image_size(chunk)
    uv = chunk.uv_px
    with np.errstate(invalid="ignore"):
        outside = (
            (uv[..., 0] < 0) | (uv[..., 1] < 0) | (uv[..., 0] > wh[:, None, 0])
            | (uv[..., 1] > wh[:, None, 1])
        )  # fmt: skip
    count = outside.sum(axis=1)
    out = []
    for row in np.flatnonzero(count > 10):
        out.append(
            (
                int(row),
                "warn",
                f"{int(count[row])}/21 projected joints outside the {wh[row, 0]:.0f}x"
                f"{wh[row, 1]:.0f} image: wrist at ({uv[row, 0, 0]:.0f}, {uv[row, 0, 1]:.0f}) px",
                int(count[row]),
            )
        )
    return out


@DATASET_CHECKS.per_sample(
    "kp2d_agrees",
    hint="check 2D normalization and the camera projection",
    applies=lambda c: (
        np.isfinite(c.uv_given_px).all(axis=(1, 2)) & np.isfinite(c.uv_px).any(axis=(1, 2))
    ),
    needs="stored 2D labels and a projection to compare them with",
)
def check_kp2d_agrees(chunk: CanonicalChunk) -> list[Row]:
    """Stored 2D labels match the projected 3D joints."""
    has_2d = np.isfinite(chunk.uv_given_px).all(axis=(1, 2))
    if not has_2d.any():  # no stored 2D labels (HO3D): nothing to compare
        return []
    err = np.linalg.norm(chunk.uv_given_px - chunk.uv_px, axis=-1)
    worst = np.nanmax(np.where(np.isfinite(err), err, -1.0), axis=1)
    out = []
    for row in np.flatnonzero(has_2d & (worst > KP2D_AGREE_PX)):
        j = int(np.nanargmax(err[row]))
        out.append(
            (
                int(row),
                "fail",
                f"stored 2D labels differ from the projected 3D joints by up to {worst[row]:.1f} px"
                f" at {_joint(j)} (another camera's intrinsics, or another joint order?)",
                float(worst[row]),
            )
        )
    return out


@DATASET_CHECKS.per_sample(
    "camera_intrinsics",
    hint="check the camera projection: use the intrinsics of this image's resolution",
    applies=lambda c: np.isfinite(c.cam_k).all(axis=(1, 2)),
    needs="a camera matrix",
)
def check_camera_intrinsics(chunk: CanonicalChunk) -> list[Row]:
    """Camera matrix is a pinhole matrix centred on the image."""
    k = chunk.cam_k
    out = []
    with np.errstate(invalid="ignore"):
        bad_focal = ~((k[:, 0, 0] > 0) & (k[:, 1, 1] > 0))
        bad_row = ~np.all(np.abs(k[:, 2] - np.array([0.0, 0.0, 1.0])) < 1e-6, axis=1)
    wh = chunk.image_wh
    with np.errstate(invalid="ignore"):
        off = np.abs(k[:, :2, 2] - wh / 2) > PRINCIPAL_POINT_TOLERANCE * wh
    off_center = np.isfinite(wh).all(axis=1) & off.any(axis=1)
    for row in np.flatnonzero(bad_focal | bad_row | off_center):
        if bad_focal[row] or bad_row[row]:
            text = (
                f"camera matrix is not a pinhole intrinsic matrix: fx={k[row, 0, 0]:.4g}, "
                f"fy={k[row, 1, 1]:.4g}, last row {np.round(k[row, 2], 4).tolist()}"
            )
        else:
            text = (
                f"principal point ({k[row, 0, 2]:.0f}, {k[row, 1, 2]:.0f}) px is far from the "
                f"centre of the {wh[row, 0]:.0f}x{wh[row, 1]:.0f} image (intrinsics of another "
                "resolution?)"
            )
        out.append((int(row), "fail", text, k[row, :2, 2].tolist()))
    return out


@DATASET_CHECKS.per_sample(
    "mano_pose_range",
    applies=lambda c: np.asarray(c.has_mano, bool),
    needs="MANO parameters",
    hint="check the pose is axis-angle in radians, absolute (not PCA, not relative to hands_mean)",
)
def check_mano_pose_range(chunk: CanonicalChunk) -> list[Row]:
    """MANO joint angles are at most pi."""
    angles = np.linalg.norm(chunk.mano_pose.reshape(-1, 16, 3), axis=-1)
    with np.errstate(invalid="ignore"):
        bad = chunk.has_mano[:, None] & (angles > MAX_JOINT_ANGLE)
    out = []
    for row in np.flatnonzero(bad.any(axis=1)):
        j = int(np.nanargmax(np.where(bad[row], angles[row], -1)))
        out.append(
            (
                int(row),
                "warn",
                f"MANO pose angle {angles[row, j]:.2f} rad > pi at MANO joint {j}"
                " (PCA coefficients or degrees stored as axis-angle?)",
                float(angles[row, j]),
            )
        )
    return out


@DATASET_CHECKS.per_sample(
    "mano_shape_range",
    hint="check MANO shape parameters; lower w_prior",
    applies=lambda c: np.asarray(c.has_mano, bool),
    needs="MANO parameters",
)
def check_mano_shape_range(chunk: CanonicalChunk) -> list[Row]:
    """MANO betas are plausible."""
    betas = chunk.mano_shape
    with np.errstate(invalid="ignore"):
        prior = np.mean(betas**2, axis=1)
        largest = np.max(np.abs(betas), axis=1)
    out = []
    with np.errstate(invalid="ignore"):
        flagged = (prior > SHAPE_PRIOR_HEALTHY) | (largest > BETA_WARN)
    for row in np.flatnonzero(chunk.has_mano & np.isfinite(prior) & flagged):
        if prior[row] > SHAPE_PRIOR_HEALTHY:
            out.append(
                (
                    int(row),
                    "fail",
                    f"mean(betas^2) = {prior[row]:.4g} > {SHAPE_PRIOR_HEALTHY:g}: the shape prior"
                    " alone will dominate the loss",
                    float(prior[row]),
                )
            )
        elif largest[row] > BETA_WARN:
            out.append(
                (int(row), "warn", f"|beta| up to {largest[row]:.2f} (> {BETA_WARN:g})",
                 float(largest[row]))
            )  # fmt: skip
    return out


@DATASET_CHECKS.per_sample(
    "depth_agrees",
    hint="check the depth decoding (HO3D: (R + 256*G) * 0.000125 m in a wide integer type;"
    " DexYCB: uint16 mm) and that the depth is registered to the colour camera; a hand almost"
    " wholly hidden by an object can also trip this",
    needs_images=True,
    applies=lambda c: (
        np.isfinite(c.depth_at_joints_mm - c.joints_mm[..., 2]).sum(axis=1) >= DEPTH_MIN_JOINTS
    ),
    needs=f"a depth image with {DEPTH_MIN_JOINTS} joints on it",
)
def check_depth_agrees(chunk: CanonicalChunk) -> list[Row]:
    """Depth image agrees with the 3D joints.

    Depth image vs 3D joints, tolerant of occlusion.

    The depth under a joint is the nearest surface along its ray: the hand's skin a few mm in
    front of a visible joint, or whatever occludes it (the palm over a fingertip, a held object)
    further in front. So the depth may lie well *in front* of many joints of a clean frame, but
    (a) not *behind* most of them, and (b) not off for every joint: the ones nearest the camera
    are visible. A frame is flagged when the median of (depth - z) is more than DEPTH_WARN_MM
    behind the joints, or when even the best-agreeing fifth of the joints is DEPTH_WARN_MM off.
    A wrong depth scale or decoding moves every joint and trips one or the other.
    """
    signed = chunk.depth_at_joints_mm - chunk.joints_mm[..., 2]  # (N,21) mm; < 0: in front
    counts = np.isfinite(signed).sum(axis=1)
    out = []
    for row in np.flatnonzero(counts >= DEPTH_MIN_JOINTS):
        behind = float(np.nanmedian(signed[row]))
        best_fifth = float(np.nanquantile(np.abs(signed[row]), DEPTH_VISIBLE_QUANTILE))
        value = max(behind, best_fifth)
        if value <= DEPTH_WARN_MM:
            continue
        if behind >= best_fifth:
            what = (
                f"depth image lies {behind:.0f} mm behind the 3D joints (median over "
                f"{counts[row]} joints; occlusion puts it in front, never behind)"
            )
        else:
            what = (
                f"depth image and 3D joints disagree by {best_fifth:.0f} mm even at the "
                f"best-agreeing fifth of {counts[row]} joints (occlusion cannot explain all)"
            )
        severity = "fail" if value > DEPTH_FAIL_MM else "warn"
        out.append((int(row), severity, what + ": depth decoding or scale?", value))
    return out


CHECK_ORDER = {c.id: n for n, c in enumerate(DATASET_CHECKS)}

# Checks that do not apply to a dataset's format.
NOT_APPLICABLE = {
    "ho3d": {"labels_missing", "labels_unreadable", "labels_unsafe", "labels_schema",
             "calibration_present", "kp2d_agrees"},
    "dexycb": {"meta_unreadable", "meta_unsafe", "meta_schema", "mano_complete"},
}  # fmt: skip


ANNOTATED = "<annotated>"  # evaluated_counts' key for the annotated samples read


def evaluated_counts(chunk: CanonicalChunk, images: bool) -> dict[str, int]:
    """Per array check, how many samples of ``chunk`` it could judge (see ``applies``); under
    :data:`ANNOTATED`, how many annotated samples the chunk holds at all."""
    counts: dict[str, int] = {ANNOTATED: len(chunk)}
    for check in DATASET_CHECKS:
        if check.rows is None or (check.needs_images and not images):
            continue
        if check.applies is None or not len(chunk):
            counts[check.id] = len(chunk)
        else:
            counts[check.id] = int(np.count_nonzero(check.applies(chunk)))
    return counts


def run_array_checks(chunk: CanonicalChunk, images: bool) -> list[Finding]:
    """All array checks over ``chunk``; findings name each offending sample and its file."""
    findings: list[Finding] = []
    if not len(chunk):
        return findings
    for check in DATASET_CHECKS:
        if check.rows is None or (check.needs_images and not images):
            continue
        for row, severity, message, value in check.rows(chunk):
            record = chunk.records[row]
            findings.append(
                Finding(
                    record.index, record.sample_id, record.main_path, check.id, severity,
                    message, value,
                )
            )  # fmt: skip
    return findings


def finding_sort_key(finding: Finding) -> tuple[int, int]:
    """Order findings by sample, then by check (identical for any sharding)."""
    return (finding.index, CHECK_ORDER.get(finding.check, len(CHECK_ORDER)))
