"""Joint-order identification from geometry: known orders, any permutation, no false alarms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from utnet_diag.geometry.joint_order import (
    PLAUSIBLE_COST,
    hand_cost,
    identify_joint_order,
    template_hand,
)
from utnet_diag.joints import KNOWN_ORDERS, invert
from utnet_diag.synthetic.faults_convention import data_order


def _store(joints: np.ndarray, order) -> np.ndarray:
    """Joints as a dataset in ``order`` would store them."""
    return joints[:, list(data_order(order, seed=11))]


def test_clean_mano_hands_never_raise_a_false_alarm(many_mano_hands):
    for seed, hands in enumerate(many_mano_hands):
        result = identify_joint_order(hands)
        assert result.order == "spec", f"seed {seed}: {result}"
        assert result.root_index == 0
        assert result.cost < PLAUSIBLE_COST
        assert result.chirality == "right"


def test_clean_procedural_skeletons_pass_over_many_seeds():
    from utnet_diag.synthetic.skeleton import make_skeleton_batch

    for seed in range(20):
        joints = make_skeleton_batch(8, seed)["keypoints_3d"][..., :3].double().numpy()
        result = identify_joint_order(joints)
        assert result.order == "spec", f"seed {seed}: {result}"


@pytest.mark.parametrize("order", ["mano", "keypointfusion"])
def test_known_orders_are_named_with_the_permutation_to_spec(many_mano_hands, order):
    for hands in many_mano_hands[:20]:
        result = identify_joint_order(_store(hands, order))
        assert result.order == order
        assert result.permutation == tuple(KNOWN_ORDERS[order])
        stored = _store(hands, order)
        np.testing.assert_allclose(stored[:, list(result.permutation)], hands)


@pytest.mark.slow
def test_random_permutation_is_recovered(many_mano_hands):
    hits = 0
    for k in range(6):
        hands = many_mano_hands[k]
        order = data_order("random", seed=k)
        result = identify_joint_order(hands[:, list(order)])
        hits += result.permutation == invert(order)
        assert result.order == "other"
        assert result.root_index == order.index(0)
    assert hits >= 5


@pytest.mark.slow
def test_root_not_at_zero_is_found(many_mano_hands):
    order = list(range(1, 21))
    order.insert(7, 0)
    result = identify_joint_order(many_mano_hands[0][:, order])
    assert result.root_index == 7
    assert result.permutation == invert(order)


def test_single_sample_and_untrained_mean_pose(make_hands):
    mean_pose = make_hands(4, seed=3, pose_std=0.0)  # untrained predictions
    for order in ("spec", "mano", "keypointfusion"):
        stored = mean_pose if order == "spec" else _store(mean_pose, order)
        assert identify_joint_order(stored).order == order
        assert identify_joint_order(stored[:1]).order == order


def test_robust_to_rotation_scale_and_curl():
    rng = np.random.default_rng(0)
    for curl in (0.0, 0.5, 0.9):
        hand = template_hand(curl) * rng.uniform(0.5, 2.0)
        hands = np.stack([Rotation.random(random_state=i).apply(hand) for i in range(5)])
        assert identify_joint_order(hands).order == "spec"
        assert identify_joint_order(_store(hands, "mano")).order == "mano"


def test_left_hands_are_recognised_as_left_in_the_spec_order():
    hands = np.stack([template_hand(c, left=True) for c in (0.1, 0.4, 0.7)])
    result = identify_joint_order(hands)
    assert result.order == "spec" and result.chirality == "left"


def test_wrong_order_costs_more_than_the_true_one(many_mano_hands):
    hands = many_mano_hands[0]
    true = hand_cost(hands).total
    swapped = hands[:, [0, 1, 2, 3, 4, 9, 6, 7, 8, 5] + list(range(10, 21))]
    assert (hand_cost(swapped).total > true).all()


@pytest.mark.slow
def test_not_a_hand_is_implausible():
    noise = np.random.default_rng(1).normal(0, 50, (6, 21, 3))
    assert not identify_joint_order(noise).plausible


def test_degenerate_all_zero_joints_raise_no_numpy_warning() -> None:
    """All-zero predictions (MANO bypassed) must not emit 'divide by zero' RuntimeWarnings."""
    import warnings

    import numpy as np

    from utnet_diag.geometry.joint_order import identify_joint_order

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        identify_joint_order(np.zeros((4, 21, 3)))
