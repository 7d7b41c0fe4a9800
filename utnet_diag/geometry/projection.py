"""Does a set of 2D keypoints come from projecting these 3D joints? Per-sample linear fits.

Two camera models, each linear in its unknowns for a fixed depth offset ``tz``:

- perspective: ``x = a_x . (X, Y) / (Z + tz) + b_x / (Z + tz) + c_x`` (and the same for y), for
  ``tz`` on a grid (0 when the 3D is already in the camera frame; positive or negative otherwise,
  so root-relative joints with an unknown camera translation fit too);
- weak perspective (affine camera): ``x = m_x . (X, Y, Z) + c_x``.

The residual is relative to the spread of the 2D keypoints (dimensionless), so it does not care
whether the 2D are in pixels or normalized crop units. The x and y scales are the norms of the
coefficient rows on the image-plane coordinates; their ratio exposes a projection that divides
x and y by different image sizes.

These general models absorb any in-plane rotation or reflection of the 2D. :func:`fit_crop_projection`
fits only what a crop can do to a projection (a scale per axis and a shift), so a 2D rotated or
mirrored relative to its 3D does not fit it; :func:`rotation_of` names the angle or the mirror
from the general fit's image-plane linear part.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# depth offsets tried for the perspective model, in mm (camera-frame data use tz = 0)
DEPTH_OFFSETS_MM = np.concatenate([[0.0], np.geomspace(150.0, 30000.0, 14)])
MIN_DEPTH_MM = 20.0  # a joint closer than this to the assumed camera plane is left out
MIN_POINTS = 6


@dataclass(frozen=True)
class ProjectionFit:
    """Per-sample fit of 2D keypoints from 3D joints.

    ``residual`` (B,) RMS error / RMS spread of the 2D (dimensionless); ``model`` (B,) 'perspective'
    or 'weak_perspective'; ``scale_x``, ``scale_y`` (B,) 2D units per unit of normalized image
    coordinate; ``anisotropy`` (B,) scale_x / scale_y; ``points`` (B,) joints used;
    ``depth_offset`` (B,) the tz of the perspective fit (mm); ``linear`` (B, 2, 2) the image-plane
    linear part (rows x and y; columns X/Z and Y/Z, or X and Y for weak perspective).
    """

    residual: np.ndarray
    model: np.ndarray
    scale_x: np.ndarray
    scale_y: np.ndarray
    anisotropy: np.ndarray
    points: np.ndarray
    depth_offset: np.ndarray
    linear: np.ndarray | None = None


def _weighted_lstsq(
    features: np.ndarray, target: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Solve per system: features (..., N, F), target (..., N, 2), w (..., N). -> coef, residual RMS."""
    sw = np.sqrt(w)[..., None]
    a = features * sw
    b = target * sw
    ata = np.einsum("...nf,...ng->...fg", a, a) + 1e-9 * np.eye(features.shape[-1])
    atb = np.einsum("...nf,...nk->...fk", a, b)
    coef = np.linalg.solve(ata, atb)
    err = ((features @ coef - target) ** 2).sum(-1)
    rms = np.sqrt((w * err).sum(-1) / np.maximum(w.sum(-1), 1e-12))
    return coef, rms


def _depth_offsets(
    x3: np.ndarray, w: np.ndarray
) -> Iterator[tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """For each depth offset ``tz`` of the grid (and its negatives): ``(tz, depth (..., J) mm,
    weights (..., J) with the joints too close to the camera plane dropped, ok (...,) enough
    joints left, 1/depth (..., J, 1) (0 where dropped))``."""
    for tz in np.concatenate([DEPTH_OFFSETS_MM, -DEPTH_OFFSETS_MM[1:]]):
        depth = x3[..., 2] + tz
        usable = np.abs(depth) > MIN_DEPTH_MM
        wz = np.where(usable, w, 0.0)
        ok = (wz > 0).sum(-1) >= MIN_POINTS
        inv = np.where(usable, 1.0 / np.where(usable, depth, 1.0), 0.0)[..., None]
        yield float(tz), depth, wz, ok, inv


def fit_projection(
    keypoints_3d: np.ndarray,
    keypoints_2d: np.ndarray,
    weights: np.ndarray | None = None,
    models: tuple[str, ...] = ("perspective", "weak_perspective"),
) -> ProjectionFit:
    """Fit each sample's 2D ``keypoints_2d`` (B, J, 2) from its ``keypoints_3d`` (B, J, 3) mm.

    ``weights`` (B, J) >= 0 (confidences; 0 drops a joint). The better of ``models`` wins per
    sample. Broadcasts over extra leading dims (e.g. (B, B, J, .) to pair every 2D with every 3D).
    """
    x3 = np.asarray(keypoints_3d, dtype=np.float64)
    x2 = np.asarray(keypoints_2d, dtype=np.float64)
    lead = np.broadcast_shapes(x3.shape[:-1], x2.shape[:-1])
    x3 = np.broadcast_to(x3, lead + (3,))
    x2 = np.broadcast_to(x2, lead + (2,))
    w = np.ones(lead) if weights is None else np.broadcast_to(np.asarray(weights, float), lead)
    w = np.where(np.isfinite(x3).all(-1) & np.isfinite(x2).all(-1), w, 0.0)
    x3 = np.nan_to_num(x3)
    x2 = np.nan_to_num(x2)
    centre = (w[..., None] * x2).sum(-2) / np.maximum(w.sum(-1), 1e-12)[..., None]
    spread = np.sqrt(
        (w * ((x2 - centre[..., None, :]) ** 2).sum(-1)).sum(-1) / np.maximum(w.sum(-1), 1e-12)
    )
    spread = np.maximum(spread, 1e-12)
    ones = np.ones(lead + (1,))
    best_res = np.full(lead[:-1], np.inf)
    best_model = np.full(lead[:-1], "none", dtype=object)
    best_sx = np.full(lead[:-1], np.nan)
    best_sy = np.full(lead[:-1], np.nan)
    best_tz = np.full(lead[:-1], np.nan)
    best_lin = np.full(lead[:-1] + (2, 2), np.nan)
    if "weak_perspective" in models:
        feats = np.concatenate([x3, ones], -1)
        coef, rms = _weighted_lstsq(feats, x2, w)
        res = rms / spread
        better = res < best_res
        best_res = np.where(better, res, best_res)
        best_model = np.where(better, "weak_perspective", best_model)
        # rows of the affine camera restricted to the image plane (X, Y)
        best_sx = np.where(better, np.linalg.norm(coef[..., :3, 0], axis=-1), best_sx)
        best_sy = np.where(better, np.linalg.norm(coef[..., :3, 1], axis=-1), best_sy)
        best_tz = np.where(better, np.inf, best_tz)
        best_lin = np.where(
            better[..., None, None], np.swapaxes(coef[..., :2, :], -1, -2), best_lin
        )
    if "perspective" in models:
        for tz, _, wz, ok, inv in _depth_offsets(x3, w):
            feats = np.concatenate([x3[..., :2] * inv, inv, ones], -1)
            coef, rms = _weighted_lstsq(feats, x2, wz)
            res = np.where(ok, rms / spread, np.inf)
            better = res < best_res
            best_res = np.where(better, res, best_res)
            best_model = np.where(better, "perspective", best_model)
            best_sx = np.where(better, np.linalg.norm(coef[..., :2, 0], axis=-1), best_sx)
            best_sy = np.where(better, np.linalg.norm(coef[..., :2, 1], axis=-1), best_sy)
            best_tz = np.where(better, tz, best_tz)
            lin = np.swapaxes(coef[..., :2, :], -1, -2)
            best_lin = np.where(better[..., None, None], lin, best_lin)
    with np.errstate(divide="ignore", invalid="ignore"):
        aniso = best_sx / best_sy
    return ProjectionFit(
        residual=best_res,
        model=best_model,
        scale_x=best_sx,
        scale_y=best_sy,
        anisotropy=aniso,
        points=(w > 0).sum(-1),
        depth_offset=best_tz,
        linear=best_lin,
    )


@dataclass(frozen=True)
class CropFit:
    """Per-sample fit of 2D from 3D with only what a crop does: ``x = s_x X/(Z+tz) + b_x/(Z+tz) +
    c_x`` and ``y = s_y Y/(Z+tz) + b_y/(Z+tz) + c_y`` (or the weak-perspective ``x = s_x X + c_x``).

    ``residual`` (B,) relative to the 2D spread; ``scale`` (B, 2) signed s_x, s_y (a negative one
    is a mirror); ``centre`` (B, 2) the 2D of the optical axis (c); ``behind`` (B,) the fitted
    depths Z + tz are negative (the 2D was projected from points behind the camera);
    ``depth_offset`` (B,) tz (mm, inf for weak perspective); ``model`` (B,).
    """

    residual: np.ndarray
    scale: np.ndarray
    centre: np.ndarray
    behind: np.ndarray
    depth_offset: np.ndarray
    model: np.ndarray


def fit_crop_projection(
    keypoints_3d: np.ndarray, keypoints_2d: np.ndarray, weights: np.ndarray | None = None
) -> CropFit:
    """Fit each sample's 2D (B, J, 2) from its 3D (B, J, 3) mm with per-axis scales and shifts only.

    In-plane rotation and skew are not in the model: 2D rotated relative to its 3D leaves a
    residual of about the angle in radians. Weights (B, J) >= 0."""
    x3 = np.asarray(keypoints_3d, dtype=np.float64)
    x2 = np.asarray(keypoints_2d, dtype=np.float64)
    w = np.ones(x3.shape[:-1]) if weights is None else np.asarray(weights, dtype=np.float64)
    w = np.where(np.isfinite(x3).all(-1) & np.isfinite(x2).all(-1), w, 0.0)
    x3, x2 = np.nan_to_num(x3), np.nan_to_num(x2)
    total = np.maximum(w.sum(-1), 1e-12)
    centre2d = (w[..., None] * x2).sum(-2) / total[..., None]
    spread = np.sqrt((w * ((x2 - centre2d[..., None, :]) ** 2).sum(-1)).sum(-1) / total)
    spread = np.maximum(spread, 1e-12)
    ones = np.ones(x3.shape[:-1] + (1,))
    lead = x3.shape[:-2]
    best = {
        "res": np.full(lead, np.inf), "scale": np.full(lead + (2,), np.nan),
        "centre": np.full(lead + (2,), np.nan), "behind": np.zeros(lead, bool),
        "tz": np.full(lead, np.nan), "model": np.full(lead, "none", dtype=object),
    }  # fmt: skip

    def consider(res, scale, centre, behind, tz, model):
        better = res < best["res"]
        best["res"] = np.where(better, res, best["res"])
        best["scale"] = np.where(better[..., None], scale, best["scale"])
        best["centre"] = np.where(better[..., None], centre, best["centre"])
        best["behind"] = np.where(better, behind, best["behind"])
        best["tz"] = np.where(better, tz, best["tz"])
        best["model"] = np.where(better, model, best["model"])

    # weak perspective: x = s_x X + c_x, y = s_y Y + c_y
    cx, rx = _weighted_lstsq(np.concatenate([x3[..., :1], ones], -1), x2[..., :1], w)
    cy, ry = _weighted_lstsq(np.concatenate([x3[..., 1:2], ones], -1), x2[..., 1:], w)
    res = np.sqrt(rx**2 + ry**2) / spread
    scale = np.stack([cx[..., 0, 0], cy[..., 0, 0]], -1)
    centre = np.stack([cx[..., 1, 0], cy[..., 1, 0]], -1)
    consider(res, scale, centre, np.zeros(lead, bool), np.inf, "weak_perspective")
    for tz, depth, wz, ok, inv in _depth_offsets(x3, w):
        fx, rx = _weighted_lstsq(
            np.concatenate([x3[..., :1] * inv, inv, ones], -1), x2[..., :1], wz
        )
        fy, ry = _weighted_lstsq(
            np.concatenate([x3[..., 1:2] * inv, inv, ones], -1), x2[..., 1:], wz
        )
        res = np.where(ok, np.sqrt(rx**2 + ry**2) / spread, np.inf)
        scale = np.stack([fx[..., 0, 0], fy[..., 0, 0]], -1)
        centre = np.stack([fx[..., 2, 0], fy[..., 2, 0]], -1)
        behind = (np.where(wz > 0, depth, 0.0).sum(-1) / np.maximum(wz.sum(-1), 1e-12)) < 0
        consider(res, scale, centre, behind, tz, "perspective")
    return CropFit(
        residual=best["res"], scale=best["scale"], centre=best["centre"], behind=best["behind"],
        depth_offset=best["tz"], model=best["model"],
    )  # fmt: skip


def rotation_of(linear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The in-plane rotation in a fit's image-plane linear part (..., 2, 2): (angle in degrees,
    mirrored). The closest rotation (or reflection) to it, from its SVD; for a reflection the
    angle is that of the mirror axis (0: x -> -x, 90: y -> -y)."""
    u, _, vt = np.linalg.svd(np.nan_to_num(linear))
    r = u @ vt
    mirrored = np.linalg.det(r) < 0
    angle = np.degrees(np.arctan2(r[..., 1, 0], r[..., 0, 0]))
    # a reflection R = rot(a) diag(-1, 1): its mirror axis is at a/2 from the y axis
    axis = np.degrees(np.arctan2(-r[..., 0, 1], -r[..., 0, 0])) / 2.0
    return np.where(mirrored, axis, angle), mirrored
