"""Checks on the ground truth of a batch (``check-batch``).

Each check reads ``ctx.batch`` (a canonical :class:`~utnet_diag.io.batch.Batch`) and returns an
Outcome. Non-finite values are reported by ``finite`` only; the range checks ignore them, so one
NaN does not make every check fail. Thresholds live in :data:`THRESHOLDS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from utnet_diag.checks.engine import CheckContext, CheckRegistry, Outcome
from utnet_diag.joints import BONES, JOINT_NAMES, NUM_JOINTS
from utnet_diag.measures import (
    HAND_SPAN_MM,
    MIN_JOINTS_FOR_SPAN,
    UNIT_FACTORS,
    finite_rows,
    hand_span,
    unit_of,
)

BATCH_CHECKS = CheckRegistry("batch")


@dataclass(frozen=True)
class BatchThresholds:
    """Every threshold of the batch checks, with its unit."""

    kp2d_limit: float = 0.5  # normalized crop units: the spec's [-0.5, 0.5]
    kp2d_tolerance: float = 1e-3  # normalized crop units, rounding slack at the border
    kp2d_pixel_min: float = 2.0  # |coordinate| above this: pixel coordinates
    kp2d_slight_max: float = 0.75  # up to this, a few points outside are truncated hands (warn)
    kp2d_slight_fraction: float = 0.05  # ... when at most this fraction of visible points
    kp2d_unit01_mean_min: float = 0.25  # mean coordinate of a [0,1]-normalized, centred crop ~0.5
    hand_span_mm: tuple[float, float] = HAND_SPAN_MM  # utnet_diag.measures: one rule for all
    min_joints_for_span: int = MIN_JOINTS_FOR_SPAN
    rgb_normalized_abs_max: float = 5.0  # ImageNet-normalized pixels lie in about [-2.2, 2.7]
    rgb_255_max_min: float = 20.0  # a maximum above this: 0-255 pixel values
    image_padding_warn: float = 0.5  # share of a crop in the padding colour (outside the image)
    image_padding_fail: float = 0.9
    depth_agree_mm: float = 40.0  # depth at a joint vs its z: skin above the joint, occlusion
    depth_min_joints: int = 6  # joints inside the crop needed to compare depth with 3D
    depth_background_share: float = 0.5  # joints on the normalised background: not the hand
    pose_degrees_median_rad: float = math.pi  # median hand-joint angle above this: degrees
    pose_angle_max_rad: float = 2 * math.pi  # any joint angle above this: not radians
    pose_hand_joint_warn_rad: float = 2.5  # hand joints bend less than this (anatomy)
    pose_global_warn_rad: float = math.pi + 1e-2  # canonical axis-angle is at most pi
    # median |value| of the 45 hand numbers (median over samples): whitened PCA coefficients lie
    # about 0.43-1.0, axis-angle hand poses 0.11-0.36 (batches of 8 of MANO's own 1554 poses)
    pose_pca_median_abs: float = 0.45
    pose_pca_ambiguous: float = 0.38
    pose_pca_min_samples: int = 4  # fewer samples: a warning at most, and only from ...
    pose_pca_few_samples: float = 0.55  # ... this (one pose: axis-angle up to 0.46, PCA 0.34-1.15)
    beta_warn_abs: float = 3.0  # MANO betas are about N(0, 1): |beta| > 3 is rare
    beta_fail_abs: float = 10.0
    shape_prior_alarm: float = 100.0  # spec 9.3: shape prior mean(beta^2) healthy below 100


THRESHOLDS = BatchThresholds()

# Batch keys the spec's loss terms read.
LOSS_KEYS = ("keypoints_2d", "keypoints_3d", "mano_pose", "mano_shape")


def _shape(t: torch.Tensor) -> str:
    return "(" + ",".join(str(s) for s in t.shape) + ")"


def _joint(j: int) -> str:
    return f"joint {j} ({JOINT_NAMES[j]})" if 0 <= j < NUM_JOINTS else f"joint {j}"


def _sample(ctx: CheckContext, b: int) -> str:
    ids = getattr(ctx.batch, "sample_ids", None)
    if ids and b < len(ids) and ids[b] != str(b):
        return f"sample {b} (id {ids[b]})"
    return f"sample {b}"


def _tensor(ctx: CheckContext, key: str) -> torch.Tensor | None:
    batch = ctx.batch
    if batch is None or key not in batch:
        return None
    return batch[key].detach().float().cpu()


def _split(t: torch.Tensor, dims: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Coordinates (B,J,dims) and conf (B,J) or None when there is no conf column."""
    if t.shape[-1] == dims + 1:
        return t[..., :dims], t[..., dims]
    return t, None


def _visible(coords: torch.Tensor, conf: torch.Tensor | None) -> torch.Tensor:
    """(B,J) mask: conf > 0 (or no conf) and all coordinates finite."""
    mask = torch.isfinite(coords).all(dim=-1)
    if conf is not None:
        mask &= torch.nan_to_num(conf, nan=0.0) > 0
    return mask


def _mano_rows(ctx: CheckContext) -> torch.Tensor | None:
    """(B,) mask of samples with ground-truth MANO (all, without ``has_mano``)."""
    has = _tensor(ctx, "has_mano")
    if has is None:
        return None
    return torch.nan_to_num(has.reshape(-1), nan=0.0) > 0


def _count(n: int, total: int, what: str) -> str:
    return f"{n}/{total} {what}"


@BATCH_CHECKS.check(
    "schema",
    hint="save the batch as a dict of float32 tensors with the canonical keys and shapes "
    "(see utnet_diag.io.batch), or map your names with diag.key_map in --config",
)
def check_schema(ctx: CheckContext) -> Outcome:
    """Keys, shapes, dtypes and one batch size across keys."""
    problems = list(ctx.extras.get("schema_problems", ()))
    batch = ctx.batch
    if problems:
        shown = "; ".join(problems[:4]) + (
            f"; and {len(problems) - 4} more" if len(problems) > 4 else ""
        )
        return Outcome.fail(
            f"{len(problems)} schema problem(s): {shown}",
            value=len(problems),
            threshold=0,
            details={"problems": problems},
        )
    shapes = {k: list(v.shape) for k, v in batch.tensors.items()}
    listing = ", ".join(f"{k} {_shape(v)}" for k, v in batch.tensors.items())
    flags = {}
    for key in ("has_mano", "n_i"):
        t = _tensor(ctx, key)
        if t is not None:
            odd = ~((t == 0) | (t == 1))
            if bool(odd.any()):
                b = int(odd.nonzero()[0, 0])
                flags[key] = (
                    f"'{key}' holds {int(odd.sum())} value(s) other than 0/1 (first {t[b].item():g} at {_sample(ctx, b)})"
                )
    missing = [k for k in LOSS_KEYS if k not in batch.tensors]
    details = {"shapes": shapes, "missing_loss_keys": missing, "size": batch.size}
    if flags:
        return Outcome.warn(
            "; ".join(flags.values()),
            value=len(flags),
            hint="has_mano and n_i are per-sample 0/1 flags",
            details=details,
        )
    if missing:
        return Outcome.warn(
            f"{batch.size} samples, but no {', '.join(missing)}: the loss terms that need them "
            f"cannot be checked (found {listing})",
            value=missing,
            hint="add the missing keys, or map your names with diag.key_map in --config",
            details=details,
        )
    return Outcome.ok(
        f"{batch.size} samples; {len(shapes)} keys with valid shapes and dtypes "
        f"({', '.join(shapes)})",
        value=batch.size,
        details=details,
    )


def _locate(key: str, t: torch.Tensor, index: tuple[int, ...]) -> str:
    b = index[0]
    if key in ("keypoints_2d", "keypoints_3d") and len(index) == 3:
        return f"sample {b}, {_joint(index[1])}, column {index[2]}"
    if key == "vertices_3d" and len(index) == 3:
        return f"sample {b}, vertex {index[1]}"
    if key in ("rgb", "depth") and len(index) == 4:
        return f"sample {b}, channel {index[1]}, pixel y={index[2]} x={index[3]}"
    if key == "mano_pose" and len(index) == 2:
        return f"sample {b}, MANO joint {index[1] // 3} (value {index[1]})"
    if len(index) == 2:
        return f"sample {b}, index {index[1]}"
    return f"sample {b}"


@BATCH_CHECKS.check(
    "finite",
    hint="find the bad samples in the dataset (division by zero in normalization, missing "
    "annotations stored as NaN) and drop or fix them",
)
def check_finite(ctx: CheckContext) -> Outcome:
    """No NaN or Inf in any tensor; names the key, the sample and the joint."""
    found: list[str] = []
    details: dict[str, dict] = {}
    total = 0
    for key, value in ctx.batch.tensors.items():
        if bool(torch.isfinite(value).all()):
            continue
        bad = ~torch.isfinite(value)
        n_bad = int(bad.sum())
        if not n_bad:
            continue
        total += n_bad
        first = tuple(int(i) for i in bad.nonzero()[0])
        kinds = []
        if bool(torch.isnan(value).any()):
            kinds.append("NaN")
        if bool(torch.isinf(value).any()):
            kinds.append("Inf")
        samples = [int(i) for i in np.flatnonzero(~finite_rows(value))]
        found.append(
            f"{key} has {n_bad} {'/'.join(kinds)} in {_count(len(samples), ctx.batch.size, 'samples')},"
            f" first at {_locate(key, value, first)}"
        )
        details[key] = {"count": n_bad, "samples": samples, "first": list(first), "kinds": kinds}
    if found:
        return Outcome.fail("; ".join(found), value=total, threshold=0, details=details)
    return Outcome.ok(f"all {len(ctx.batch.tensors)} tensors are finite", value=0, threshold=0)


@BATCH_CHECKS.check(
    "conf_range",
    hint="confidences must lie in [0, 1]: 0 drops a joint from the loss, values between weight it",
)
def check_conf_range(ctx: CheckContext) -> Outcome:
    """Keypoint confidences lie in [0, 1]; warns on samples without any valid joint."""
    bad: list[str] = []
    empty: list[str] = []
    details: dict[str, dict] = {}
    looked = []
    for key, dims in (("keypoints_2d", 2), ("keypoints_3d", 3)):
        t = _tensor(ctx, key)
        if t is None:
            continue
        _, conf = _split(t, dims)
        if conf is None:
            continue
        looked.append(key)
        finite = torch.isfinite(conf)
        out = finite & ((conf < 0) | (conf > 1))
        if bool(out.any()):
            b, j = (int(i) for i in out.nonzero()[0])
            values = conf[out]
            bad.append(
                f"{key} has {int(out.sum())} conf value(s) outside [0,1] (range "
                f"{values.min().item():g}..{values.max().item():g}), first {conf[b, j].item():g} "
                f"at {_sample(ctx, b)}, {_joint(j)}"
            )
        no_joint = ~((torch.nan_to_num(conf, nan=0.0) > 0).any(dim=1))
        if bool(no_joint.any()):
            samples = [int(i) for i in no_joint.nonzero()[:, 0]]
            empty.append(
                f"{key}: {_count(len(samples), ctx.batch.size, 'samples')} have conf 0 on every joint "
                f"(first {_sample(ctx, samples[0])})"
            )
        details[key] = {"min": conf[finite].min().item() if bool(finite.any()) else None,
                        "max": conf[finite].max().item() if bool(finite.any()) else None}  # fmt: skip
    if not looked:
        return Outcome.skip("no conf column in keypoints_2d/keypoints_3d (conf 1 assumed)")
    if bad:
        return Outcome.fail("; ".join(bad), threshold=[0, 1], details=details)
    if empty:
        return Outcome.warn(
            "; ".join(empty),
            threshold=[0, 1],
            hint="samples without a valid joint add nothing to the keypoint losses; check that "
            "every joint has valid ground truth",
            details=details,
        )
    return Outcome.ok(f"confidences of {', '.join(looked)} lie in [0, 1]", threshold=[0, 1],
                      details=details)  # fmt: skip


@BATCH_CHECKS.check(
    "kp2d_range",
    hint="2D keypoints must be normalized crop coordinates in [-0.5, 0.5] (WiLoR style): "
    "(pixel - crop_center) / crop_size; check the 2D normalization and the camera projection",
)
def check_kp2d_range(ctx: CheckContext) -> Outcome:
    """Visible 2D keypoints lie in [-0.5, 0.5]; recognises pixels, [0,1] and [-1,1]."""
    th = THRESHOLDS
    t = _tensor(ctx, "keypoints_2d")
    if t is None:
        return Outcome.skip("no keypoints_2d in batch")
    coords, conf = _split(t, 2)
    visible = _visible(coords, conf)
    if not bool(visible.any()):
        return Outcome.skip("no visible 2D keypoint (every conf is 0 or coordinate non-finite)")
    values = coords[visible]  # (N, 2)
    vmin, vmax = values.min().item(), values.max().item()
    mean = values.mean().item()
    absval = coords.abs().amax(dim=-1).masked_fill(~visible, 0.0)  # (B, J)
    absmax = absval.max().item()
    limit = th.kp2d_limit + th.kp2d_tolerance
    details = {"min": vmin, "max": vmax, "mean": mean, "visible_points": int(visible.sum())}
    if absmax <= limit:
        if values.std().item() == 0.0:
            return Outcome.warn(
                f"all {int(visible.sum())} visible 2D keypoints equal {vmin:g}: placeholder ground truth?",
                value=absmax, threshold=th.kp2d_limit, details=details,
                hint="check that every joint has valid 2D ground truth",
            )  # fmt: skip
        return Outcome.ok(
            f"visible 2D keypoints lie in [-0.5, 0.5] (range {vmin:.3f}..{vmax:.3f})",
            value=absmax,
            threshold=th.kp2d_limit,
            details=details,
        )
    out = absval > limit
    samples = out.any(dim=1)
    b, j = (int(i) for i in (absval == absval.max()).nonzero()[0])
    fraction = int(out.sum()) / int(visible.sum())
    where = (
        f"2D keypoints of {_count(int(samples.sum()), ctx.batch.size, 'samples')} exceed 0.5: "
        f"max |x| {absmax:.3g} at {_sample(ctx, b)}, {_joint(j)} (range {vmin:.3g}..{vmax:.3g})"
    )
    details.update(samples_out=[int(i) for i in samples.nonzero()[:, 0]], fraction_out=fraction)
    if absmax > th.kp2d_pixel_min:
        details["looks_like"] = "pixels"
        return Outcome.fail(
            f"{where}; looks like pixel coordinates",
            value=absmax, threshold=th.kp2d_limit, details=details,
            hint="subtract the crop center and divide by the crop size: (uv - center) / size",
        )  # fmt: skip
    if (
        vmin >= -th.kp2d_tolerance
        and vmax <= 1 + th.kp2d_tolerance
        and mean > th.kp2d_unit01_mean_min
    ):
        details["looks_like"] = "[0,1]"
        return Outcome.fail(
            f"{where}; looks like [0,1] normalization (mean {mean:.2f})",
            value=absmax, threshold=th.kp2d_limit, details=details,
            hint="subtract 0.5 from x and y to get [-0.5, 0.5]",
        )  # fmt: skip
    slight = fraction <= th.kp2d_slight_fraction and absmax <= th.kp2d_slight_max
    if slight:
        details["looks_like"] = "[-0.5,0.5] with points outside the crop"
        return Outcome.warn(
            f"{where}; {fraction:.1%} of visible points lie outside the crop (truncated hands?)",
            value=absmax, threshold=th.kp2d_limit, details=details,
            hint="set conf 0 for joints outside the crop, or enlarge the crop",
        )  # fmt: skip
    if absmax <= 1 + th.kp2d_tolerance:
        details["looks_like"] = "[-1,1]"
        return Outcome.fail(
            f"{where}; looks like [-1,1] normalization",
            value=absmax, threshold=th.kp2d_limit, details=details,
            hint="divide x and y by 2 to get [-0.5, 0.5]",
        )  # fmt: skip
    details["looks_like"] = "unknown"
    return Outcome.fail(
        f"{where}; not pixels, [0,1] or [-1,1]", value=absmax, threshold=th.kp2d_limit,
        details=details,
    )  # fmt: skip


def hand_spans(coords: torch.Tensor, visible: torch.Tensor, min_joints: int) -> torch.Tensor:
    """(B,) :func:`utnet_diag.measures.hand_span` of each sample as a tensor."""
    return torch.from_numpy(hand_span(coords, visible, min_joints))


@BATCH_CHECKS.check(
    "kp3d_units",
    hint="3D joints must be in millimetres (spec 2.3); convert when building the batch",
)
def check_kp3d_units(ctx: CheckContext) -> Outcome:
    """3D joints are millimetres, judged from hand size (largest joint distance), not one value."""
    th = THRESHOLDS
    t = _tensor(ctx, "keypoints_3d")
    if t is None:
        return Outcome.skip("no keypoints_3d in batch")
    coords, conf = _split(t, 3)
    visible = _visible(coords, conf)
    spans = hand_spans(coords, visible, th.min_joints_for_span)
    measured = spans[torch.isfinite(spans)]
    if measured.numel() == 0:
        return Outcome.skip(f"no sample has {th.min_joints_for_span} visible finite 3D joints")
    median = measured.median().item()
    low, high = th.hand_span_mm
    details: dict = {"median_span": median, "spans": spans.tolist(), "span_range_mm": [low, high]}
    if coords.shape[1] == NUM_JOINTS:
        ok = visible[:, [p for p, _ in BONES]] & visible[:, [c for _, c in BONES]]
        bone = (coords[:, [c for _, c in BONES]] - coords[:, [p for p, _ in BONES]]).norm(dim=-1)
        if bool(ok.any()):
            details["median_bone"] = bone[ok].median().item()
    if median == 0.0:
        return Outcome.fail(
            f"3D joints of the batch coincide (hand span 0 in {measured.numel()} samples): "
            "the 3D loss would be exactly 0",
            value=median, threshold=[low, high], details=details,
            hint="check that the 3D ground truth is filled in (not zeros) and in millimetres",
        )  # fmt: skip
    unit = unit_of(median)
    details["looks_like"] = unit
    if unit is None:
        return Outcome.fail(
            f"median hand span {median:.4g} is not an adult hand in mm ({low:g}-{high:g}), cm or m",
            value=median, threshold=[low, high], details=details,
        )  # fmt: skip
    if unit != "millimetres":
        factor = UNIT_FACTORS[unit]
        details["factor"] = factor
        return Outcome.fail(
            f"3D joints look like {unit}: median hand span {median:.4g} "
            f"(an adult hand spans {low:g}-{high:g} mm); multiply by {factor:g}",
            value=median, threshold=[low, high], details=details,
            hint=f"multiply keypoints_3d x, y, z by {factor:g} to get millimetres",
        )  # fmt: skip
    finite = torch.isfinite(spans)
    odd = finite & ((spans < low) | (spans > high))
    if bool(odd.any()):
        idx = [int(i) for i in odd.nonzero()[:, 0]]
        units = {i: unit_of(spans[i].item()) for i in idx}
        mixed = [i for i, u in units.items() if u not in (None, "millimetres")]
        first = idx[0]
        text = (
            f"hand span of {_count(len(idx), ctx.batch.size, 'samples')} is outside {low:g}-{high:g} mm "
            f"(first {spans[first].item():.4g} at {_sample(ctx, first)})"
        )
        details["samples_out"] = idx
        if mixed:
            return Outcome.fail(
                f"mixed units: {text}; samples {mixed[:8]} look like {units[mixed[0]]}",
                value=median, threshold=[low, high], details=details,
                hint="some samples are not in millimetres; convert them in the dataset",
            )  # fmt: skip
        return Outcome.warn(
            f"{text}; the batch median {median:.4g} mm is plausible",
            value=median, threshold=[low, high], details=details,
            hint="check those samples' 3D annotations (collapsed or exploded joints)",
        )  # fmt: skip
    return Outcome.ok(
        f"3D joints look like millimetres: median hand span {median:.1f} mm"
        + (f", median bone {details['median_bone']:.1f} mm" if "median_bone" in details else ""),
        value=median,
        threshold=[low, high],
        details=details,
    )


@BATCH_CHECKS.check(
    "image_range",
    hint="the ViT backbone expects normalized images: rgb / 255, then (x - mean) / std with the "
    "ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)",
)
def check_image_range(ctx: CheckContext) -> Outcome:
    """rgb looks normalized (catches 0-255 images and blank images)."""
    th = THRESHOLDS
    t = _tensor(ctx, "rgb")
    if t is None:
        return Outcome.skip("no rgb in batch")
    flat = t.reshape(t.shape[0], -1)
    finite = torch.isfinite(flat)
    count = finite.sum(dim=1)  # (B,) finite pixels per sample
    if int(count.sum()) == 0:
        return Outcome.skip("rgb has no finite value")
    if bool(finite.all()):  # the common case: no masking, one pass a statistic
        per_min, per_max = flat.amin(dim=1), flat.amax(dim=1)
        mean, std = flat.mean().item(), flat.std().item()
    else:  # non-finite pixels (reported by ``finite``) are left out
        zeroed = torch.where(finite, flat, torch.zeros(()))
        per_max = torch.where(finite, flat, torch.full((), float("-inf"))).amax(dim=1)
        per_min = torch.where(finite, flat, torch.full((), float("inf"))).amin(dim=1)
        mean = (zeroed.sum() / count.sum()).item()
        spread = torch.where(finite, (flat - mean) ** 2, torch.zeros(())).sum() / count.sum()
        std = spread.sqrt().item()
    vmin, vmax = per_min.min().item(), per_max.max().item()
    details = {"min": vmin, "max": vmax, "mean": mean, "std": std}
    if vmax > th.rgb_255_max_min:
        samples = [int(i) for i in (per_max > th.rgb_255_max_min).nonzero()[:, 0]]
        details["samples_out"] = samples
        return Outcome.fail(
            f"rgb of {_count(len(samples), ctx.batch.size, 'samples')} looks like 0-255 pixel values "
            f"(range {vmin:.4g}..{vmax:.4g}, first {_sample(ctx, samples[0])})",
            value=vmax, threshold=th.rgb_normalized_abs_max, details=details,
        )  # fmt: skip
    if max(abs(vmin), abs(vmax)) > th.rgb_normalized_abs_max:
        return Outcome.fail(
            f"rgb range {vmin:.4g}..{vmax:.4g} is outside a normalized image's "
            f"(|x| <= {th.rgb_normalized_abs_max:g})",
            value=max(abs(vmin), abs(vmax)), threshold=th.rgb_normalized_abs_max, details=details,
        )  # fmt: skip
    if vmin >= 0.0 and vmax <= 1.0:
        return Outcome.warn(
            f"rgb lies in [0, 1] ({vmin:.3g}..{vmax:.3g}): not mean/std normalized",
            value=vmax, threshold=th.rgb_normalized_abs_max, details=details,
            hint="normalize with the ImageNet mean/std unless your backbone expects [0, 1]",
        )  # fmt: skip
    return Outcome.ok(
        f"rgb looks mean/std normalized (range {vmin:.3g}..{vmax:.3g}, mean {details['mean']:.3g})",
        value=max(abs(vmin), abs(vmax)),
        threshold=th.rgb_normalized_abs_max,
        details=details,
    )


def _depth_samples(ctx: CheckContext) -> torch.Tensor:
    """(B,) samples whose depth the model uses: ``n_i`` > 0 (all without ``n_i``)."""
    n_i = _tensor(ctx, "n_i")
    size = ctx.batch.size
    if n_i is None:
        return torch.ones(size, dtype=torch.bool)
    return torch.nan_to_num(n_i.reshape(-1), nan=0.0) > 0


def _listing(items: list[str], limit: int = 4) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; ... ({len(items)} in all)" if len(items) > limit else "")


@BATCH_CHECKS.check(
    "image_content",
    hint="the crop missed the hand: check the crop centre and size the loader computes (from "
    "joints in the right frame and units), and the image files it reads",
)
def check_image_content(ctx: CheckContext) -> Outcome:
    """Every rgb crop shows something: not one colour, not mostly padding (a crop that lies
    outside its image)."""
    th = THRESHOLDS
    t = _tensor(ctx, "rgb")
    if t is None:
        return Outcome.skip("no rgb in batch")
    flat = t.reshape(t.shape[0], t.shape[1], -1)
    if not bool(torch.isfinite(flat).all()):
        return Outcome.skip("rgb has non-finite values (see finite)")
    low = flat.amin(dim=2, keepdim=True)
    span = flat.amax(dim=2) - low[..., 0]  # (B, C)
    scale = max(float(flat.abs().max()), 1.0)
    one_colour = (span <= 1e-6 * scale).all(dim=1)
    padding = (flat - low <= 1e-6 * scale).all(dim=1).float().mean(dim=1)  # (B,)
    padding = torch.where(one_colour, torch.ones_like(padding), padding)
    found: list[str] = []
    failing, warning = [], []
    for b in range(t.shape[0]):
        if bool(one_colour[b]):
            colour = ", ".join(f"{v:.3g}" for v in low[b, :, 0].tolist())
            found.append(f"{_sample(ctx, b)}: one colour ({colour}){_colour_name(low[b, :, 0])}")
            failing.append(b)
        elif float(padding[b]) >= th.image_padding_warn:
            found.append(f"{_sample(ctx, b)}: {float(padding[b]):.0%} padding")
            (failing if float(padding[b]) >= th.image_padding_fail else warning).append(b)
    details = {"padding_fraction": [round(float(p), 3) for p in padding],
               "one_colour": [int(b) for b in one_colour.nonzero()[:, 0]]}  # fmt: skip
    if failing or warning:
        status = Outcome.fail if failing else Outcome.warn
        n = len(failing) + len(warning)
        return status(
            f"{_count(n, t.shape[0], 'crops')} show no image: {_listing(found)}",
            value=float(padding.max()), threshold=th.image_padding_fail, details=details,
        )  # fmt: skip
    return Outcome.ok(
        f"every crop shows an image (padding at most {float(padding.max()):.0%})",
        value=float(padding.max()), threshold=th.image_padding_fail, details=details,
    )  # fmt: skip


def _colour_name(colour: torch.Tensor) -> str:
    """', black after ImageNet normalisation' for the colour 0 normalised, else ''."""
    black = torch.tensor([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225])
    if colour.shape == black.shape and bool((colour - black).abs().max() < 1e-2):
        return ", black after ImageNet normalisation"
    if bool((colour == 0).all()):
        return ", black"
    return ""


def _depth_convention(values: torch.Tensor) -> str:
    """'normalised' ([-1, 1] around the hand, background 1), 'metres', 'millimetres' or
    'unknown', from the depth values of the samples in use (flat)."""
    vmin, vmax = float(values.min()), float(values.max())
    if vmin >= -1.0001 and vmax <= 1.0001 and float((values >= vmax - 1e-6).float().mean()) > 0.2:
        return "normalised"
    positive = values[values > 0]
    if len(positive) == 0:
        return "unknown"
    typical = float(positive.median())
    if 0.05 <= typical <= 10.0:
        return "metres"
    if 50.0 <= typical <= 10000.0:
        return "millimetres"
    return "unknown"


def _depth_at_joints(ctx: CheckContext, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth (B, 21) at each joint's 2D pixel (nearest; NaN outside the crop or unannotated) and
    the joints' z (B, 21) mm. 2D is read as crop units with both axes scaled by the height (the
    spec's normalisation; the usual (x + 0.5) * size for square crops)."""
    kp2d, conf2 = _split(_tensor(ctx, "keypoints_2d"), 2)
    kp3d, conf3 = _split(_tensor(ctx, "keypoints_3d"), 3)
    h, w = depth.shape[-2:]
    cols = torch.round(kp2d[..., 0] * h + w / 2 - 0.5).long()
    rows = torch.round(kp2d[..., 1] * h + h / 2 - 0.5).long()
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    inside &= _visible(kp2d, conf2) & _visible(kp3d, conf3)
    b = torch.arange(depth.shape[0])[:, None].expand_as(cols)
    values = depth[b, 0, rows.clamp(0, h - 1), cols.clamp(0, w - 1)]
    return torch.where(inside, values, torch.nan), torch.where(inside, kp3d[..., 2], torch.nan)


@BATCH_CHECKS.check(
    "depth_content",
    hint="check the depth decoding (units, the loader's normalisation) and that the depth crop "
    "is cut with the same centre and transform as the rgb crop and the 2D",
)
def check_depth_content(ctx: CheckContext) -> Outcome:
    """The depth crops of the samples that use depth (n_i > 0) are not constant, and their depth
    at the joints follows the 3D joints' depth; the convention (metres, millimetres, normalised
    to [-1, 1] around the hand) is named."""
    t = _tensor(ctx, "depth")
    if t is None:
        return Outcome.skip("no depth in batch")
    used = _depth_samples(ctx)
    if not bool(used.any()):
        return Outcome.skip("no sample uses its depth (n_i is 0 everywhere)")
    flat = t.reshape(t.shape[0], -1)
    if not bool(torch.isfinite(flat[used]).all()):
        return Outcome.skip("depth has non-finite values (see finite)")
    span = flat.amax(dim=1) - flat.amin(dim=1)
    constant = used & (span <= 1e-6 * max(float(flat.abs().max()), 1.0))
    convention = (
        _depth_convention(flat[used & ~constant]) if bool((used & ~constant).any()) else "unknown"
    )
    details: dict = {
        "convention": convention,
        "constant": [int(b) for b in constant.nonzero()[:, 0]],
    }
    found = [
        f"{_sample(ctx, int(b))}: constant ({float(flat[b, 0]):.4g})"
        for b in constant.nonzero()[:, 0]
    ]
    measured = ""
    placed = not (ctx.failed("kp2d_range") or ctx.failed("kp3d_units"))
    if not placed:
        measured = "; not compared with the joints (see kp2d_range, kp3d_units)"
    elif "keypoints_2d" in ctx.batch and "keypoints_3d" in ctx.batch and convention != "unknown":
        at_joints, z = _depth_at_joints(ctx, t)
        off = _depth_disagreement(at_joints, z, convention, used & ~constant)
        details["disagree"] = {str(b): text for b, text in off.items()}
        found += [f"{_sample(ctx, b)}: {text}" for b, text in off.items()]
        agree = [b for b in range(t.shape[0]) if bool(used[b] & ~constant[b]) and b not in off]
        measured = f"; the depth at the joints follows their 3D depth in {len(agree)} samples"
    meaning = {
        "metres": "metres (the tool's canonical depth)",
        "millimetres": "millimetres (the tool's canonical depth is metres: divide by 1000)",
        "normalised": "normalised to [-1, 1] around the hand, background 1 (as UTNet's loaders"
        " give it; the tool's canonical depth is metres: train and diagnose with the same)",
        "unknown": "of an unknown convention"
        + (" (no depth crop in use shows anything)" if not bool((used & ~constant).any()) else ""),
    }[convention]
    if found:
        return Outcome.fail(
            f"{_count(len(found), int(used.sum()), 'depth crops in use')} do not show the hand's"
            f" depth: {_listing(found)}; the depth is {meaning}",
            value=len(found), threshold=0, details=details,
        )  # fmt: skip
    return Outcome.ok(f"depth is {meaning}{measured}", value=0, threshold=0, details=details)


def _depth_disagreement(
    at_joints: torch.Tensor, z: torch.Tensor, convention: str, used: torch.Tensor
) -> dict[int, str]:
    """Per sample: how the depth at the joints disagrees with the joints' depth z (mm)."""
    th = THRESHOLDS
    out: dict[int, str] = {}
    for b in range(at_joints.shape[0]):
        ok = torch.isfinite(at_joints[b]) & torch.isfinite(z[b])
        if not bool(used[b]) or int(ok.sum()) < th.depth_min_joints:
            continue
        d, zz = at_joints[b][ok].double(), z[b][ok].double()
        if convention in ("metres", "millimetres"):
            d_mm = d * (1000.0 if convention == "metres" else 1.0)
            camera_frame = bool((zz > 0).all()) and float(zz.median()) > 100
            gap = (d_mm - zz) if camera_frame else (d_mm - d_mm.median()) - (zz - zz.median())
            miss = float(gap.abs().median())
            if miss > th.depth_agree_mm:
                out[b] = (
                    f"depth at the joints is {float(d_mm.median()):.0f} mm (median) against"
                    f" joints at {float(zz.median()):.0f} mm ({miss:.0f} mm off)"
                    if camera_frame
                    else f"depth at the joints does not follow their relative depth ({miss:.0f} mm off)"
                )
            continue
        # normalised around the hand, background 1: the joints must land on the hand (which
        # finger's surface a joint's pixel shows depends on occlusion, so no finer test)
        background = float((d >= 1.0 - 1e-6).float().mean())
        if background > th.depth_background_share:
            out[b] = f"{background:.0%} of the joints fall on the background (1.0)"
    return out


@BATCH_CHECKS.check(
    "mano_pose",
    hint="mano_pose must be (B,48) axis-angle in radians: 3 global orient + 15 joints x 3",
)
def check_mano_pose(ctx: CheckContext) -> Outcome:
    """(B,48) axis-angle with plausible per-joint angles (catches degrees)."""
    th = THRESHOLDS
    t = _tensor(ctx, "mano_pose")
    if t is None:
        return Outcome.skip("no mano_pose in batch")
    rows = _mano_rows(ctx)
    if rows is not None:
        if not bool(rows.any()):
            return Outcome.skip("no sample has ground-truth MANO (has_mano is 0 everywhere)")
        t = t.clone()
        t[~rows] = float("nan")
    angles = t.reshape(t.shape[0], 16, 3).norm(dim=-1)  # (B, 16) radians if axis-angle
    ok = torch.isfinite(angles)
    if not bool(ok[:, 1:].any()):
        return Outcome.skip("mano_pose has no finite value")
    hand = angles[:, 1:]
    hand_ok = hand[ok[:, 1:]]
    median = hand_ok.median().item()
    vmax = angles[ok].max().item()
    details = {"median_hand_joint_angle": median, "max_angle": vmax,
               "max_global_angle": angles[:, 0][ok[:, 0]].max().item() if bool(ok[:, 0].any()) else None}  # fmt: skip
    where = angles.nan_to_num(-1.0)
    b, j = (int(i) for i in (where == where.max()).nonzero()[0])
    at = f"{_sample(ctx, b)}, MANO joint {j}"
    if median > th.pose_degrees_median_rad:
        details["looks_like"] = "degrees"
        return Outcome.fail(
            f"mano_pose looks like degrees: median hand-joint angle {median:.3g} "
            f"(max {vmax:.4g} at {at}); multiply by pi/180",
            value=median, threshold=th.pose_degrees_median_rad, details=details,
            hint="convert to radians: mano_pose * pi / 180",
        )  # fmt: skip
    if vmax > th.pose_angle_max_rad:
        return Outcome.fail(
            f"mano_pose angle {vmax:.4g} rad at {at} exceeds 2*pi: not axis-angle in radians",
            value=vmax, threshold=th.pose_angle_max_rad, details=details,
        )  # fmt: skip
    if float(hand_ok.abs().max()) == 0.0 and float(angles[:, 0][ok[:, 0]].abs().max()) == 0.0:
        return Outcome.warn(
            "mano_pose is 0 for every sample with MANO ground truth: a placeholder?",
            value=0.0, threshold=th.pose_degrees_median_rad, details=details,
            hint="set has_mano 0 for samples without MANO ground truth",
        )  # fmt: skip
    numbers = t[:, 3:][torch.isfinite(t[:, 3:]).all(dim=1)]
    if len(numbers):
        pca_like = _pca_like(ctx, numbers)
        if pca_like is not None:
            return pca_like
    big_hand = hand.nan_to_num(0.0) > th.pose_hand_joint_warn_rad
    big_global = angles[:, 0].nan_to_num(0.0) > th.pose_global_warn_rad
    if bool(big_hand.any()) or bool(big_global.any()):
        parts = []
        if bool(big_hand.any()):
            hb, hj = (int(i) for i in big_hand.nonzero()[0])
            parts.append(
                f"{int(big_hand.sum())} hand-joint angle(s) above {th.pose_hand_joint_warn_rad:g} rad "
                f"(first {hand[hb, hj].item():.3g} at {_sample(ctx, hb)}, MANO joint {hj + 1})"
            )
        if bool(big_global.any()):
            gb = int(big_global.nonzero()[0, 0])
            parts.append(
                f"global orient angle above pi in {int(big_global.sum())} sample(s) "
                f"(first {angles[gb, 0].item():.3g} at {_sample(ctx, gb)})"
            )
        return Outcome.warn(
            "; ".join(parts), value=vmax, threshold=th.pose_hand_joint_warn_rad, details=details,
            hint="check the pose convention (axis-angle radians, no PCA coefficients, mean pose "
            "not added twice)",
        )  # fmt: skip
    typical = float(numbers.abs().median(dim=1).values.median()) if len(numbers) else None
    details["median_abs_hand_value"] = typical
    return Outcome.ok(
        f"mano_pose looks like axis-angle in radians: median hand-joint angle {median:.3g}, "
        f"max {vmax:.3g}"
        + (f"; median |value| {typical:.2f} (PCA coefficients: about 0.5-1)" if typical else ""),
        value=median,
        threshold=th.pose_degrees_median_rad,
        details=details,
    )


def _pca_like(ctx: CheckContext, hand: torch.Tensor) -> Outcome | None:
    """An Outcome when the 45 hand numbers (S, 45) look like PCA coefficients, else None.

    MANO's PCA components carry the spread of each component, so the coefficients of natural
    poses are whitened (about N(0, 1)): their typical magnitude is several times that of a hand
    pose in axis-angle, where most of the 45 numbers are small rotations about minor axes."""
    th = THRESHOLDS
    per_sample = hand.abs().median(dim=1).values
    typical = float(per_sample.median())
    n = hand.shape[0]
    few = n < th.pose_pca_min_samples
    if typical < (th.pose_pca_few_samples if few else th.pose_pca_ambiguous):
        return None
    details = {"median_abs_hand_value": typical, "samples": n,
               "axis_angle_range": [0.11, 0.36], "pca_range": [0.43, 1.0]}  # fmt: skip
    text = (
        f"mano_pose[:, 3:] looks like 45 PCA coefficients, not axis-angle: median |value| "
        f"{typical:.2f} over {n} samples (axis-angle hand poses: 0.11-0.36; whitened PCA"
        f" coefficients: 0.43-1.0; decided at {th.pose_pca_median_abs:g})"
    )
    hint = (
        "convert to absolute axis-angle: hand_pose = coeffs @ hands_components (+ hands_mean"
        " when the coefficients are relative to the mean, as DexYCB's are); give --mano to"
        " decide which"
    )
    if typical < th.pose_pca_median_abs and not few:
        return Outcome.warn(
            f"mano_pose[:, 3:] lies between axis-angle and PCA coefficients: median |value| "
            f"{typical:.2f} (axis-angle: 0.11-0.36, PCA: 0.43-1.0)",
            value=typical, threshold=th.pose_pca_median_abs, details=details, hint=hint,
        )  # fmt: skip
    if ctx.mano is not None:  # mano_consistency decides, with the model's own components
        return Outcome.warn(
            text + "; mano_consistency decides with the MANO model",
            value=typical, threshold=th.pose_pca_median_abs, details=details, hint=hint,
        )  # fmt: skip
    if few:
        return Outcome.warn(
            text + f" (only {n} samples)", value=typical, threshold=th.pose_pca_median_abs,
            details=details, hint=hint,
        )  # fmt: skip
    return Outcome.fail(
        text, value=typical, threshold=th.pose_pca_median_abs, details=details, hint=hint
    )


@BATCH_CHECKS.check(
    "mano_shape",
    hint="check the MANO shape parameters (betas are about N(0,1)); a huge shape prior "
    "(spec: about 5000) comes from betas like these; lower w_prior only after fixing the data",
)
def check_mano_shape(ctx: CheckContext) -> Outcome:
    """MANO betas lie in a plausible range (the spec's shape-prior alarm)."""
    th = THRESHOLDS
    t = _tensor(ctx, "mano_shape")
    if t is None:
        return Outcome.skip("no mano_shape in batch")
    rows = _mano_rows(ctx)
    if rows is not None:
        if not bool(rows.any()):
            return Outcome.skip("no sample has ground-truth MANO (has_mano is 0 everywhere)")
    else:
        rows = torch.ones(t.shape[0], dtype=torch.bool)
    finite = torch.isfinite(t).all(dim=1) & rows
    if not bool(finite.any()):
        return Outcome.skip("mano_shape has no finite row")
    absval = t.abs().masked_fill(~finite[:, None], 0.0)
    prior = (t**2).mean(dim=1).masked_fill(~finite, 0.0)  # (B,) shape prior per sample
    vmax = absval.max().item()
    b, k = (int(i) for i in (absval == absval.max()).nonzero()[0])
    details = {"max_abs_beta": vmax, "max_shape_prior": prior.max().item(),
               "mean_shape_prior": prior[finite].mean().item()}  # fmt: skip
    bad = (prior >= th.shape_prior_alarm) | (absval.amax(dim=1) > th.beta_fail_abs)
    if bool(bad.any()):
        n = int(bad.sum())
        return Outcome.fail(
            f"betas of {_count(n, int(finite.sum()), 'samples')} are implausible: max |beta| "
            f"{vmax:.4g} at {_sample(ctx, b)}, beta {k}; shape prior mean(beta^2) up to "
            f"{prior.max().item():.4g} (spec: healthy < {th.shape_prior_alarm:g})",
            value=vmax, threshold=th.beta_fail_abs, details=details,
        )  # fmt: skip
    if vmax > th.beta_warn_abs:
        n = int((absval.amax(dim=1) > th.beta_warn_abs).sum())
        return Outcome.warn(
            f"betas of {_count(n, int(finite.sum()), 'samples')} exceed {th.beta_warn_abs:g}: max "
            f"|beta| {vmax:.3g} at {_sample(ctx, b)}, beta {k}",
            value=vmax, threshold=th.beta_warn_abs, details=details,
        )  # fmt: skip
    return Outcome.ok(
        f"betas look plausible: max |beta| {vmax:.3g}, mean(beta^2) {details['mean_shape_prior']:.3g}",
        value=vmax,
        threshold=th.beta_warn_abs,
        details=details,
    )
