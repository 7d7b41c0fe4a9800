"""Batched similarity Procrustes: the rotation, scale and translation that best map one point set
onto another (least squares, optional per-point weights).

Another module (``utnet_diag.diagnostics.metrics``) computes PA-MPJPE; this one serves the
geometry of convention detection and works on any leading batch shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SimilarityFit:
    """``aligned = scale * source @ rotation.T + translation``; ``rms`` in target units."""

    rotation: np.ndarray  # (..., 3, 3)
    scale: np.ndarray  # (...,)
    translation: np.ndarray  # (..., 3)
    aligned: np.ndarray  # (..., N, 3)
    rms: np.ndarray  # (...,)


def similarity_align(
    source: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray | None = None,
    allow_reflection: bool = False,
    with_scale: bool = True,
    with_rotation: bool = True,
) -> SimilarityFit:
    """Align ``source`` (..., N, 3) onto ``target`` (..., N, 3) (Umeyama).

    ``weights`` (..., N) >= 0 weight the points (e.g. confidences). Without ``allow_reflection``
    the rotation is proper (det +1), so a mirrored hand does not fit a right-hand template.
    ``with_rotation=False`` fits scale and translation only (rotation the identity).
    """
    src = np.asarray(source, dtype=np.float64)
    tgt = np.asarray(target, dtype=np.float64)
    src, tgt = np.broadcast_arrays(src, tgt)
    if weights is None:
        w = np.ones(src.shape[:-1])
    else:
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64), src.shape[:-1])
    wsum = np.maximum(w.sum(-1, keepdims=True), 1e-12)  # (..., 1)
    wn = (w / wsum)[..., None]  # (..., N, 1)
    mu_s = (wn * src).sum(-2)
    mu_t = (wn * tgt).sum(-2)
    s0 = src - mu_s[..., None, :]
    t0 = tgt - mu_t[..., None, :]
    cov = np.einsum("...ni,...nj->...ij", wn * t0, s0)  # (..., 3, 3)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(sig.shape)
    if not allow_reflection:
        d[..., -1] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
        d[..., -1][d[..., -1] == 0] = 1.0
    rot = np.einsum("...ij,...j,...jk->...ik", u, d, vt)
    var_s = (wn[..., 0] * (s0**2).sum(-1)).sum(-1)
    if not with_rotation:
        rot = np.broadcast_to(np.eye(3), cov.shape).copy()
        sig, d = np.einsum("...ii->...i", cov), np.ones(sig.shape)
    if with_scale:
        scale = (sig * d).sum(-1) / np.maximum(var_s, 1e-12)
    else:
        scale = np.ones(var_s.shape)
    trans = mu_t - scale[..., None] * np.einsum("...ij,...j->...i", rot, mu_s)
    aligned = (
        scale[..., None, None] * np.einsum("...ij,...nj->...ni", rot, src) + trans[..., None, :]
    )
    rms = np.sqrt((wn[..., 0] * ((aligned - tgt) ** 2).sum(-1)).sum(-1))
    return SimilarityFit(rot, scale, trans, aligned, rms)
