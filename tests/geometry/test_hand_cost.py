"""hand_cost and batch_cost on hands bent by hand: the flex limits per finger, and the spread of
bone lengths across samples from three samples on."""

from __future__ import annotations

import numpy as np
import pytest

from utnet_diag.geometry.joint_order import batch_cost, hand_cost, template_hand

THUMB_IP, INDEX_PIP = 3, 6  # spec order: thumb 1-4, index 5-8 (wrist 0)


def _rotate_about(points: np.ndarray, centre: np.ndarray, axis: np.ndarray, angle: float):
    """Rodrigues rotation of ``points`` about the line through ``centre`` along ``axis``."""
    k = axis / np.linalg.norm(axis)
    p = points - centre
    rotated = (p * np.cos(angle) + np.cross(k, p) * np.sin(angle)
               + k * (p @ k)[:, None] * (1 - np.cos(angle)))  # fmt: skip
    return rotated + centre


def _bent(joint: int, degrees: float) -> np.ndarray:
    """The flat template hand with the finger bent at ``joint`` by ``degrees``, toward the palm
    (about the hinge axis in the palm's plane), the joints after it carried along."""
    hand = template_hand()
    direction = hand[joint] - hand[joint - 1]
    axis = np.cross(direction, [0.0, 0.0, -1.0])  # palm faces -z: the hinge lies in the palm
    tail = [joint + 1] if joint in (THUMB_IP,) else [joint + 1, joint + 2]
    hand[tail] = _rotate_about(hand[tail], hand[joint], axis, np.deg2rad(degrees))
    return hand


def test_the_flat_template_costs_no_bend():
    assert hand_cost(template_hand()).bends == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("degrees", [110.0, 130.0, 150.0])
def test_flex_beyond_the_finger_limit_125_and_the_thumb_limit_140_degrees_costs(degrees):
    index = hand_cost(_bent(INDEX_PIP, degrees)).bends
    thumb = hand_cost(_bent(THUMB_IP, degrees)).bends
    assert index == pytest.approx(np.deg2rad(max(degrees - 125.0, 0.0)), abs=1e-6)
    assert thumb == pytest.approx(np.deg2rad(max(degrees - 140.0, 0.0)), abs=1e-6)


def test_bone_length_spread_across_samples_counts_from_three_samples_on():
    hands = np.stack([template_hand(), template_hand(), template_hand()])
    longer = hands.copy()
    # sample 2's index finger bones 1.5x longer (its palm unchanged)
    base = longer[2, 5]
    longer[2, 6:9] = base + (longer[2, 6:9] - base) * 1.5
    identity = np.arange(21)[None]
    cost, per_sample = batch_cost(longer, identity)
    assert cost[0] > np.median(per_sample[0]) + 1e-3  # the spread of bone lengths is added
    two_cost, two_per_sample = batch_cost(longer[1:], identity)
    assert two_cost[0] == pytest.approx(np.median(two_per_sample[0]))  # two samples: no spread
    same_cost, same_per_sample = batch_cost(hands, identity)
    assert same_cost[0] == pytest.approx(np.median(same_per_sample[0]), abs=1e-12)


def test_a_sideways_bend_costs_what_exceeds_the_hinge_slack():
    """PIP and DIP are hinges in the palm's plane: a 60-degree sideways bend (about the palm's
    normal) costs sin(60 deg) - 0.3 (the slack); one toward the palm costs nothing."""
    hand = template_hand()
    hand[[7, 8]] = _rotate_about(hand[[7, 8]], hand[INDEX_PIP], np.array([0.0, 0.0, 1.0]),
                                 np.deg2rad(60.0))  # fmt: skip
    assert hand_cost(hand).bends == pytest.approx(np.sin(np.deg2rad(60.0)) - 0.3, abs=1e-6)
    assert hand_cost(_bent(INDEX_PIP, 60.0)).bends == pytest.approx(0.0, abs=1e-9)


def test_pip_and_dip_bent_opposite_ways_cost_a_zigzag():
    """A finger's PIP toward the palm and its DIP away from it: the cosine between the two bend
    normals is -1, and the zig-zag cost is its negative, 1 (per finger)."""
    hand = _bent(INDEX_PIP, 40.0)
    direction = hand[8] - hand[7]
    axis = np.cross(direction, [0.0, 0.0, -1.0])
    hand[[8]] = _rotate_about(hand[[8]], hand[7], axis, np.deg2rad(-40.0))
    sin40 = np.sin(np.deg2rad(40.0))
    # the normals' lengths are the sines of the bends: -(n1 . n2) = sin(40)^2
    assert hand_cost(hand).bends == pytest.approx(sin40**2, abs=1e-6)


def test_spread_fans_index_and_pinky_apart_by_twice_the_spread():
    """``spread`` turns each finger about the palm normal by spread x (its offset from the hand's
    centre line) / 1.5: index by +spread, pinky by -spread, so their first bones part by 2x."""

    def angle(hand: np.ndarray) -> float:
        a, b = hand[6] - hand[5], hand[18] - hand[17]
        return float(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))

    flat, fanned = template_hand(), template_hand(spread=0.1)
    assert angle(fanned) - angle(flat) == pytest.approx(0.2, abs=1e-9)


def _straightened(folded: bool) -> np.ndarray:
    """The template hand with every finger a straight line from its base, along a random
    direction (or, ``folded``, doubling back on itself at every joint)."""
    from utnet_diag.geometry.joint_order import _CHAINS, template_hand

    rng = np.random.default_rng(0)
    joints = np.asarray(template_hand(), dtype=np.float64).copy()
    for chain in _CHAINS:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        at = joints[chain[0]].copy()
        for k, length in enumerate(rng.uniform(15.0, 40.0, size=4)):
            step = direction * length * (-1.0 if folded and k % 2 else 1.0)
            at = at + step
            joints[chain[k + 1]] = at
    return joints


def test_a_straight_finger_bends_by_nothing_even_where_rounding_says_cos_above_1():
    from utnet_diag.geometry.joint_order import _CHAINS

    joints = _straightened(folded=False)
    seg = np.diff(joints[np.array(_CHAINS)], axis=1)
    unit = seg / np.linalg.norm(seg, axis=-1, keepdims=True)
    assert ((unit[:, 1:] * unit[:, :-1]).sum(-1) > 1.0).any()  # the case the clip is for
    cost = hand_cost(joints)
    assert np.isfinite(cost.total) and cost.bends < 1e-12


def test_a_finger_folded_back_on_itself_costs_a_finite_bend():
    from utnet_diag.geometry.joint_order import MAX_FLEX_RAD, MAX_THUMB_FLEX_RAD

    cost = hand_cost(_straightened(folded=True))
    # every joint bent by pi: beyond its limit by pi - limit (the zig-zag and hinge terms add)
    over = 4 * 3 * (np.pi - MAX_FLEX_RAD) + 3 * (np.pi - MAX_THUMB_FLEX_RAD)
    assert np.isfinite(cost.total) and cost.bends >= over - 1e-6  # arccos near -1: ~1e-8 rad
