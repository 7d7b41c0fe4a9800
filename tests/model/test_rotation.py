"""Rotation conversions: round trips, identity, gradients at zero and near pi."""

from __future__ import annotations

import math

import torch

from utnet_diag.model.rotation import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_axis_angle,
    rotation_6d_to_matrix,
)


def _random_axis_angle(n: int, max_angle: float = 3.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    return axis * torch.rand(n, 1, generator=gen) * max_angle


def test_axis_angle_matrix_round_trip_and_orthonormal() -> None:
    aa = _random_axis_angle(500)
    rot = axis_angle_to_matrix(aa)
    eye = torch.eye(3).expand_as(rot)
    assert torch.allclose(rot @ rot.transpose(-1, -2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(500), atol=1e-5)
    assert torch.allclose(matrix_to_axis_angle(rot), aa, atol=1e-4)


def test_known_rotation_quarter_turn_about_z() -> None:
    rot = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    # x axis goes to y axis
    assert torch.allclose(
        rot @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6
    )


def test_near_pi_and_identity() -> None:
    aa = torch.tensor([[math.pi - 1e-4, 0.0, 0.0], [0.0, 0.0, 0.0], [1e-7, 0.0, 0.0]])
    back = matrix_to_axis_angle(axis_angle_to_matrix(aa))
    assert torch.allclose(back, aa, atol=1e-3)
    assert torch.equal(axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))


def test_6d_round_trip_and_gram_schmidt() -> None:
    rot = axis_angle_to_matrix(_random_axis_angle(100))
    assert torch.allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(rot)), rot, atol=1e-5)
    # Any non-degenerate 6D vector gives a proper rotation.
    raw = torch.randn(50, 6, generator=torch.Generator().manual_seed(2))
    out = rotation_6d_to_matrix(raw)
    assert torch.allclose(torch.linalg.det(out), torch.ones(50), atol=1e-5)
    assert rotation_6d_to_axis_angle(raw).shape == (50, 3)


def test_gradients_finite_at_identity() -> None:
    aa = torch.zeros(4, 3, requires_grad=True)
    axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()
    six = torch.tensor([[1.0, 0, 0, 0, 1, 0]], requires_grad=True)
    matrix_to_axis_angle(rotation_6d_to_matrix(six)).sum().backward()
    assert torch.isfinite(six.grad).all()
