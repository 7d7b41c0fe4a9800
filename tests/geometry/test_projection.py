"""Projection fits on points projected here with a known camera: what the fit recovers is the
camera that made them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from utnet_diag.geometry.projection import fit_crop_projection, fit_projection, rotation_of


def hand_points(b: int = 3, seed: int = 0) -> np.ndarray:
    """(b, 21, 3) mm, camera frame, about 500 mm in front of the camera."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-60.0, 60.0, size=(b, 21, 3))
    pts[..., 2] += 500.0
    return pts


def project(pts: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.stack([fx * pts[..., 0] / pts[..., 2] + cx, fy * pts[..., 1] / pts[..., 2] + cy], -1)


def rotate2d(x: np.ndarray, degrees: float, about: np.ndarray) -> np.ndarray:
    a = math.radians(degrees)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (x - about) @ r.T + about


def test_perspective_camera_is_recovered_exactly():
    pts = hand_points()
    uv = project(pts, 600.0, 450.0, 128.0, 96.0)
    fit = fit_projection(pts, uv)
    assert (fit.model == "perspective").all()
    assert fit.residual.max() < 1e-6
    np.testing.assert_allclose(fit.scale_x, 600.0, rtol=1e-6)
    np.testing.assert_allclose(fit.scale_y, 450.0, rtol=1e-6)
    np.testing.assert_allclose(fit.anisotropy, 600.0 / 450.0, rtol=1e-6)
    np.testing.assert_array_equal(fit.depth_offset, 0.0)
    np.testing.assert_array_equal(fit.points, 21)
    np.testing.assert_allclose(fit.linear[0], [[600.0, 0.0], [0.0, 450.0]], atol=1e-4)


def test_root_relative_joints_fit_with_a_depth_offset_from_the_grid():
    pts = hand_points()
    # the grid: 0 and 14 offsets from 150 mm to 30 m, evenly spaced in log; the 6th is
    # 150 * 200 ** (5 / 13) mm
    tz = 150.0 * 200.0 ** (5.0 / 13.0)
    root_relative = pts - pts[:, :1]
    camera = root_relative + np.array([0.0, 0.0, tz])
    uv = project(camera, 500.0, 500.0, 0.0, 0.0)
    fit = fit_projection(root_relative, uv, models=("perspective",))
    np.testing.assert_allclose(fit.depth_offset, tz, rtol=1e-9)
    assert fit.residual.max() < 1e-6


def test_weak_perspective_fits_an_orthographic_projection():
    pts = hand_points()
    uv = pts[..., :2] * np.array([0.004, 0.002]) + 0.1
    fit = fit_projection(pts, uv)
    assert (fit.model == "weak_perspective").all() and fit.residual.max() < 1e-6
    np.testing.assert_allclose(fit.anisotropy, 2.0, rtol=1e-6)
    np.testing.assert_array_equal(fit.depth_offset, np.inf)


def test_the_residual_is_relative_to_the_2d_spread_whatever_the_units():
    pts = hand_points(b=2)
    uv = project(pts, 600.0, 600.0, 128.0, 128.0)
    noise = np.random.default_rng(1).normal(size=uv.shape)
    in_pixels = fit_projection(pts, uv + noise).residual
    in_crop = fit_projection(pts, (uv + noise) / 256.0 - 0.5).residual
    np.testing.assert_allclose(in_pixels, in_crop, rtol=1e-6)
    assert (in_pixels > 0.005).all()


def test_zero_weights_and_nan_joints_are_left_out():
    pts = hand_points(b=2)
    uv = project(pts, 600.0, 600.0, 0.0, 0.0)
    uv[0, 5] += 300.0  # a wild joint
    uv[1, 7] = np.nan
    weights = np.ones((2, 21))
    weights[0, 5] = 0.0
    fit = fit_projection(pts, uv, weights)
    assert fit.residual.max() < 1e-6
    np.testing.assert_array_equal(fit.points, [20, 20])
    assert fit_projection(pts, np.nan_to_num(uv)).residual[0] > 0.1


def test_every_2d_against_every_3d_by_broadcasting():
    pts = hand_points(b=3)
    uv = project(pts, 600.0, 600.0, 0.0, 0.0)
    fit = fit_projection(pts[None, :], uv[:, None])  # (3, 3): 2D i against 3D j
    assert fit.residual.shape == (3, 3)
    assert np.diag(fit.residual).max() < 1e-6
    assert (fit.residual[~np.eye(3, dtype=bool)] > 0.05).all()


@pytest.mark.parametrize("degrees", [30.0, -100.0, 175.0])
def test_rotation_of_names_the_in_plane_angle(degrees: float):
    pts = hand_points()
    uv = rotate2d(project(pts, 500.0, 500.0, 0.0, 0.0), degrees, np.zeros(2))
    fit = fit_projection(pts, uv)
    assert fit.residual.max() < 1e-6  # the general fit absorbs the rotation
    angle, mirrored = rotation_of(fit.linear)
    np.testing.assert_allclose(angle, degrees, atol=1e-6)
    assert not mirrored.any()
    # the crop model cannot rotate, except by 180 degrees (both scales negative): the residual
    # grows with the angle to the nearest of 0 and 180 (about that angle in radians)
    crop = fit_crop_projection(pts, uv)
    off = math.radians(min(abs(degrees), 180.0 - abs(degrees)))
    assert (crop.residual > 0.5 * math.sin(off)).all() and (crop.residual < 1.5 * off).all()
    if off < math.radians(45.0):  # near 0 or 180: the scales' signs say which
        assert (np.sign(crop.scale) == (1 if abs(degrees) < 90 else -1)).all()


def test_rotation_of_names_the_mirror_axis():
    pts = hand_points()
    uv = project(pts, 500.0, 500.0, 0.0, 0.0)
    for flip, axis in (([-1.0, 1.0], 0.0), ([1.0, -1.0], 90.0)):
        fit = fit_projection(pts, uv * np.array(flip))
        angle, mirrored = rotation_of(fit.linear)
        assert mirrored.all()
        np.testing.assert_allclose(np.abs(angle), axis, atol=1e-6)


def test_crop_fit_recovers_signed_scales_centre_and_a_camera_behind():
    pts = hand_points()
    uv = project(pts, 300.0, 280.0, 0.5, -0.25)
    crop = fit_crop_projection(pts, uv)
    assert crop.residual.max() < 1e-6 and (crop.model == "perspective").all()
    np.testing.assert_allclose(crop.scale, [[300.0, 280.0]] * 3, rtol=1e-6)
    np.testing.assert_allclose(crop.centre, [[0.5, -0.25]] * 3, atol=1e-6)
    assert not crop.behind.any()
    mirrored = fit_crop_projection(pts, uv * np.array([-1.0, 1.0]))
    assert (mirrored.scale[:, 0] < 0).all() and (mirrored.scale[:, 1] > 0).all()
    # 2D projected from the points' mirror image through the camera (Z -> -Z): behind it
    behind = project(pts * np.array([1.0, 1.0, -1.0]), 300.0, 300.0, 0.0, 0.0)
    fit = fit_crop_projection(pts * np.array([1.0, 1.0, -1.0]), behind)
    assert fit.behind.all() and fit.residual.max() < 1e-6


@pytest.mark.parametrize("a", [60.0, -60.0, 150.0])
def test_rotation_of_a_reflection_gives_its_mirror_axis(a: float):
    # R = rot(a) diag(-1, 1): x -> -x, then a rotation by a; its mirror axis is at a/2 from y
    t = math.radians(a)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    linear = 3.0 * rot @ np.diag([-1.0, 1.0])  # with a scale, as a fit has
    angle, mirrored = rotation_of(linear[None])
    assert mirrored[0]
    np.testing.assert_allclose(angle[0], a / 2.0, atol=1e-9)
    # the axis is what the reflection keeps: the direction at a/2 from +y
    axis = np.array([-math.sin(t / 2.0), math.cos(t / 2.0)])
    np.testing.assert_allclose(rot @ np.diag([-1.0, 1.0]) @ axis, axis, atol=1e-12)


def test_weak_perspective_linear_part_names_an_in_plane_rotation():
    """2D = s R(30 deg) (X, Y) + c: the weak fit's image-plane linear part is s R, so
    rotation_of reads +30 degrees (its transpose would read -30)."""
    pts = hand_points()
    uv = rotate2d(pts[..., :2] * 0.003, 30.0, np.zeros(2)) + np.array([0.05, -0.02])
    fit = fit_projection(pts, uv, models=("weak_perspective",))
    assert fit.residual.max() < 1e-6
    angle, mirrored = rotation_of(fit.linear)
    np.testing.assert_allclose(angle, 30.0, atol=1e-6)
    assert not mirrored.any()


def test_crop_fit_recovers_an_orthographic_projection_per_axis():
    """x = s_x X + c_x and y = s_y Y + c_y with different scales and shifts: the crop fit's
    weak-perspective model gives them back exactly."""
    pts = hand_points()
    uv = pts[..., :2] * np.array([0.004, -0.0025]) + np.array([0.1, -0.05])
    fit = fit_crop_projection(pts, uv, np.ones(pts.shape[:2]))
    assert (fit.model == "weak_perspective").all() and fit.residual.max() < 1e-6
    np.testing.assert_allclose(fit.scale, np.tile([0.004, -0.0025], (3, 1)), rtol=1e-9)
    np.testing.assert_allclose(fit.centre, np.tile([0.1, -0.05], (3, 1)), atol=1e-9)


def test_the_crop_fits_weak_perspective_residual_is_the_rms_of_both_axes():
    # a noisy orthographic crop of joints at one depth: x = 0.004 X + 0.1, y = -0.005 Y - 0.05;
    # the residual is the RMS distance left by the two per-axis line fits, over the 2D spread
    rng = np.random.default_rng(4)
    xy = rng.uniform(-60.0, 60.0, size=(1, 21, 2))
    pts = np.concatenate([xy, np.full((1, 21, 1), 500.0)], -1)
    uv = np.stack([0.004 * xy[..., 0] + 0.1, -0.005 * xy[..., 1] - 0.05], -1)
    uv = uv + rng.normal(scale=0.01, size=uv.shape)
    fit = fit_crop_projection(pts, uv)
    assert fit.model[0] == "weak_perspective"
    left = []
    for axis in range(2):
        design = np.stack([xy[0, :, axis], np.ones(21)], -1)
        coef, *_ = np.linalg.lstsq(design, uv[0, :, axis], rcond=None)
        left.append(uv[0, :, axis] - design @ coef)
    rms = math.sqrt(np.mean(left[0] ** 2 + left[1] ** 2))
    spread = math.sqrt(np.mean(((uv[0] - uv[0].mean(0)) ** 2).sum(-1)))
    assert math.isclose(float(fit.residual[0]), rms / spread, rel_tol=1e-6)
