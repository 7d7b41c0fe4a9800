"""The shared hand-size and finiteness measures against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from utnet_diag.measures import finite_rows, hand_span, in_mm_range, unit_of


def brute_span(joints: np.ndarray, visible: np.ndarray) -> float:
    points = [p for p, v in zip(joints, visible) if v]
    return max(math.dist(a, b) for a, b in itertools.combinations(points, 2))


def test_span_is_the_largest_distance_between_visible_joints():
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(5, 21, 3)) * 40.0
    visible = rng.random((5, 21)) > 0.3
    visible[:, :6] = True
    spans = hand_span(joints, visible)
    for b in range(5):
        assert spans[b] == pytest.approx(brute_span(joints[b], visible[b]))
    # a torch tensor gives the same, and the joint order does not matter
    perm = rng.permutation(21)
    again = hand_span(torch.tensor(joints[:, perm]), torch.tensor(visible[:, perm]))
    np.testing.assert_allclose(again, spans)


def test_non_finite_and_too_few_joints():
    joints = np.zeros((2, 21, 3))
    joints[:, 1, 0] = 80.0
    joints[0, 2] = np.nan  # never counts, even when marked visible
    joints[1, 5:] = np.inf
    spans = hand_span(joints)
    assert spans[0] == 80.0
    assert hand_span(joints, min_joints=21)[0] != hand_span(joints, min_joints=21)[0]  # NaN
    assert spans[1] == 80.0  # joints 0-4 finite: five, enough
    assert math.isnan(hand_span(joints, min_joints=6)[1])


@pytest.mark.parametrize(
    ("span", "unit"),
    [(50.0, "millimetres"), (400.0, "millimetres"), (49.0, None), (40.0, "centimetres"),
     (5.0, "centimetres"), (0.4, "metres"), (0.05, "metres"), (401.0, None), (0.01, None)],
)  # fmt: skip
def test_unit_of(span: float, unit: str | None):
    assert unit_of(span) == unit
    assert bool(in_mm_range(np.array([span]))[0]) is (unit == "millimetres")


def test_finite_rows():
    a = np.zeros((3, 4))
    b = np.zeros((3, 2, 2))
    a[1, 2] = np.nan
    b[2, 1, 0] = -np.inf
    np.testing.assert_array_equal(finite_rows(a, b), [True, False, False])
    np.testing.assert_array_equal(finite_rows(torch.zeros(2, 3)), [True, True])
