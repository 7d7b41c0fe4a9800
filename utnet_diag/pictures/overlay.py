"""``--overlay PATH.png``: a contact sheet of a batch, worst samples first.

Per sample: the RGB crop as a person would see it (the normalization undone), the ground-truth
2D skeleton, and when a model ran, its predicted 2D and its predicted 3D joints projected
through the sample's own camera (a per-axis scale and shift fitted from the ground truth's
root-relative 3D to its 2D, so the prediction's size, mirroring and orientation show against
the hand in the image); the depth map with the ground truth; the root-relative 3D of both from
the camera and from the side at one scale; the sample's failing checks and per-sample losses.

Which samples: those named by the most failing or warning checks first, then (with a model)
the largest weighted per-sample loss ``w_2d * L_2D + w_3d_joint * L_3D_joint`` (the spec's
terms for one sample).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from utnet_diag.errors import InputError
from utnet_diag.io.files import check_output_path, write_bytes_atomic
from utnet_diag.pictures.draw import SampleView, draw_sheet
from utnet_diag.report.result import CheckResult, Status

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
DEFAULT_SAMPLES = 8
MAX_SAMPLES = 64


def check_overlay_path(path: str | Path, samples: int = DEFAULT_SAMPLES) -> Path:
    """The ``--overlay`` file, checked before any work: a ``.png`` in a writable folder."""
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise InputError("--overlay writes a PNG: give a file name ending in .png", path=str(out))
    if not 1 <= samples <= MAX_SAMPLES:
        raise InputError(f"--overlay-samples must be 1..{MAX_SAMPLES}, got {samples}")
    return check_output_path(out, "--overlay")


def display_rgb(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) as the batch holds it -> (H, W, 3) uint8 as a person would see it: ImageNet
    mean/std normalization undone when values go below 0; else 0-255 values (above 1.5)
    divided by 255; [0, 1] as it is. Non-finite pixels black."""
    x = np.nan_to_num(np.asarray(rgb, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    x = np.moveaxis(x, 0, -1)
    if x.min(initial=0.0) < 0.0:
        x = x * IMAGENET_STD + IMAGENET_MEAN
    elif x.max(initial=0.0) > 1.5:
        x = x / 255.0
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def camera_fit(gt3d: np.ndarray, gt2d: np.ndarray, conf: np.ndarray) -> np.ndarray | None:
    """Per-axis scale and shift (2, 2) [[s_x, t_x], [s_y, t_y]] with ``x2 = s * X3 + t`` from
    root-relative 3D (21, 3) mm to 2D (21, 2) crop units, least squares over the joints with
    confidence; None with fewer than 3 such joints."""
    use = (conf > 0) & np.isfinite(gt3d).all(-1) & np.isfinite(gt2d).all(-1)
    if use.sum() < 3:
        return None
    fit = np.zeros((2, 2))
    for axis in (0, 1):
        a = np.stack([gt3d[use, axis], np.ones(int(use.sum()))], -1)
        fit[axis] = np.linalg.lstsq(a, gt2d[use, axis], rcond=None)[0]
    return fit


def per_sample_losses(pred2d: np.ndarray | None, gt2d: np.ndarray, conf2d: np.ndarray,
                      pred3d: np.ndarray | None, gt3d: np.ndarray, conf3d: np.ndarray,
                      root: int) -> dict[str, np.ndarray]:  # fmt: skip
    """The spec's L_2D and L_3D_joint for each sample alone (B,): conf-weighted L1 sums, 3D
    root-relative; a term whose inputs are missing is left out."""
    out: dict[str, np.ndarray] = {}
    if pred2d is not None:
        out["L2D"] = np.nansum(conf2d[..., None] * np.abs(pred2d - gt2d), axis=(1, 2))
    if pred3d is not None:
        p = pred3d - pred3d[:, root : root + 1]
        g = gt3d - gt3d[:, root : root + 1]
        out["L3D"] = np.nansum(conf3d[..., None] * np.abs(p - g), axis=(1, 2))
    return out


def flagged_samples(checks: Iterable[CheckResult]) -> dict[int, list[str]]:
    """Sample index -> ids of the failing or warning checks whose details name it (any details
    key with 'sample' in it holding a list of indices)."""
    named: dict[int, list[str]] = {}
    for check in checks:
        if check.status not in (Status.FAIL, Status.WARN):
            continue
        for key, value in (check.details or {}).items():
            if "sample" not in key or not isinstance(value, (list, tuple)):
                continue  # a list of indices ('samples_behind': 3 is a count)
            for item in value:
                if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                    ids = named.setdefault(int(item), [])
                    if check.id not in ids:
                        ids.append(check.id)
    return named


def _numpy(batch: Any, key: str) -> np.ndarray | None:
    value = batch.get(key) if hasattr(batch, "get") else None
    if value is None:
        return None
    return value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def batch_views(batch: Any, outputs: dict[str, Any] | None = None,
                checks: Iterable[CheckResult] = (), weights: Any = None, root: int = 0,
                samples: int = DEFAULT_SAMPLES) -> list[SampleView]:  # fmt: skip
    """The views of the ``samples`` worst samples of ``batch`` (a Batch: tensors by canonical
    key and ``ids``), with the model's ``outputs`` when given."""
    size = batch.size
    rgb, depth = _numpy(batch, "rgb"), _numpy(batch, "depth")
    kp2d, kp3d = _numpy(batch, "keypoints_2d"), _numpy(batch, "keypoints_3d")
    gt2d = kp2d[..., :2] if kp2d is not None else None
    conf2d = kp2d[..., 2] if kp2d is not None and kp2d.shape[-1] == 3 else (
        np.ones(kp2d.shape[:2]) if kp2d is not None else None)  # fmt: skip
    gt3d = kp3d[..., :3] if kp3d is not None else None
    conf3d = kp3d[..., 3] if kp3d is not None and kp3d.shape[-1] == 4 else (
        np.ones(kp3d.shape[:2]) if kp3d is not None else None)  # fmt: skip
    outputs = outputs or {}
    pred2d = _numpy(outputs, "keypoints_2d")
    pred3d = _numpy(outputs, "keypoints_3d")
    pred2d = pred2d[..., :2] if pred2d is not None and pred2d.shape[:2] == (size, 21) else None
    pred3d = pred3d[..., :3] if pred3d is not None and pred3d.shape[:2] == (size, 21) else None
    losses: dict[str, np.ndarray] = {}
    if gt2d is not None and gt3d is not None:
        losses = per_sample_losses(pred2d, gt2d, conf2d, pred3d, gt3d, conf3d, root)
    score = np.zeros(size)
    if weights is not None:
        score += weights.w_2d * losses.get("L2D", np.zeros(size))
        score += weights.w_3d_joint * losses.get("L3D", np.zeros(size))
    flagged = flagged_samples(checks)
    order = sorted(range(size), key=lambda b: (-len(flagged.get(b, [])), -np.nan_to_num(score[b])))
    ids = list(getattr(batch, "sample_ids", None) or [str(b) for b in range(size)])
    views = []
    for b in order[:samples]:
        rel_gt = rel_pred = proj = None
        if gt3d is not None:
            rel_gt = gt3d[b] - gt3d[b, root]
        if pred3d is not None:
            rel_pred = pred3d[b] - pred3d[b, root]
        if rel_pred is not None and rel_gt is not None and gt2d is not None:
            fit = camera_fit(rel_gt, gt2d[b], conf2d[b])
            if fit is not None:
                proj = rel_pred[:, :2] * fit[:, 0] + fit[:, 1]
        caption = []
        if losses:
            caption.append("  ".join(
                f"{name} {losses[name][b]:.4g}" + (" mm" if name == "L3D" else "")
                for name in losses))  # fmt: skip
        else:
            caption.append("ground truth only")
        if flagged.get(b):
            caption.append("flagged by " + ", ".join(flagged[b]))
        views.append(SampleView(
            sample_id=f"sample {b} (id {ids[b]})" if ids[b] != str(b) else f"sample {b}",
            rgb=display_rgb(rgb[b]) if rgb is not None and rgb.ndim == 4 else None,
            depth=depth[b, 0] if depth is not None and depth.ndim == 4 else None,
            gt2d=gt2d[b] if gt2d is not None else None,
            gt_conf=conf2d[b] if conf2d is not None else None,
            pred2d=pred2d[b] if pred2d is not None else None,
            proj3d=proj, gt3d=rel_gt, pred3d=rel_pred, caption=caption, index=b,
        ))  # fmt: skip
    return views


def write_overlay(path: str | Path, batch: Any, outputs: dict[str, Any] | None = None,
                  checks: Iterable[CheckResult] = (), weights: Any = None, root: int = 0,
                  samples: int = DEFAULT_SAMPLES, title: str = "") -> dict[str, Any]:  # fmt: skip
    """Draw the sheet of ``batch`` (see :func:`batch_views`) and write it atomically as PNG.
    Returns the report's record of it: ``kind``, ``path``, ``samples`` (the indices shown)."""
    import io

    out = check_overlay_path(path, samples)
    checks = list(checks)
    views = batch_views(batch, outputs, checks, weights, root, samples)
    heading = title or f"utnet-diag overlay: {len(views)} of {batch.size} samples, worst first"
    failed = [c.id for c in checks if c.status is Status.FAIL]
    if failed and not title:
        shown = ", ".join(failed[:6]) + (f" (+{len(failed) - 6})" if len(failed) > 6 else "")
        heading += f"  ·  failing: {shown}"
    image = draw_sheet(views, heading)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_bytes_atomic(out, buffer.getvalue())
    return {"kind": "overlay", "path": str(out), "samples": [v.index for v in views]}
