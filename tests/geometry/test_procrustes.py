"""The package's similarity Procrustes (geometry.procrustes) on cases solved by hand."""

from __future__ import annotations

import numpy as np

from utnet_diag.geometry.procrustes import similarity_align


def test_scale_and_translation_only_fit_keeps_the_identity_rotation():
    rng = np.random.default_rng(3)
    source = rng.normal(size=(2, 21, 3))
    target = 2.0 * source + np.array([1.0, -2.0, 0.5])
    fit = similarity_align(source, target, with_rotation=False)
    assert np.allclose(fit.rotation, np.eye(3)) and np.allclose(fit.scale, 2.0)
    assert np.allclose(fit.rms, 0.0, atol=1e-12)
    # least squares scale without rotation: <t0, s0> / |s0|^2, by hand
    turned = source @ np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).T
    fit = similarity_align(source, turned, with_rotation=False)
    s0 = source - source.mean(1, keepdims=True)
    t0 = turned - turned.mean(1, keepdims=True)
    assert np.allclose(fit.scale, (s0 * t0).sum((1, 2)) / (s0**2).sum((1, 2)))
