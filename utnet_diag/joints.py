"""The 21 hand joints: the spec's order (OpenPose), other known orders, and the skeleton.

Spec order (spec section 7.1): 0 wrist (root); 1-4 thumb; 5-8 index; 9-12 middle; 13-16 ring;
17-20 pinky; each finger base to tip.
A permutation ``P`` "to spec" means ``joints_spec = joints_other[:, P]``.
"""

from __future__ import annotations

NUM_JOINTS = 21
ROOT_INDEX = 0
FINGERS = ("thumb", "index", "middle", "ring", "pinky")

JOINT_NAMES: tuple[str, ...] = ("wrist",) + tuple(
    f"{finger}{k}" if k < 4 else f"{finger}_tip" for finger in FINGERS for k in range(1, 5)
)

# Parent of each joint in the spec's order (-1 for the root).
PARENTS: tuple[int, ...] = (-1,) + tuple(
    0 if k == 0 else 1 + 4 * f + k - 1 for f in range(5) for k in range(4)
)

# Bones as (parent, child) pairs in the spec's order.
BONES: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in enumerate(PARENTS) if p >= 0)

# Joints of each finger, base to tip, in the spec's order.
FINGER_JOINTS: dict[str, tuple[int, ...]] = {
    finger: tuple(range(1 + 4 * f, 5 + 4 * f)) for f, finger in enumerate(FINGERS)
}

# MANO's 16 native joints (wrist, index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3) and their parents.
MANO_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)  # fmt: skip
MANO_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

# smplx's MANO fingertip vertex ids: thumb, index, middle, ring, pinky.
MANO_TIP_VERTICES: tuple[int, ...] = (744, 320, 443, 554, 671)

# MANO 16 + tips (thumb, index, middle, ring, pinky): HO3D's handJoints3D, smplx with tips.
MANO_TO_SPEC: tuple[int, ...] = (
    0,
    13,
    14,
    15,
    16,
    1,
    2,
    3,
    17,
    4,
    5,
    6,
    18,
    10,
    11,
    12,
    19,
    7,
    8,
    9,
    20,
)
# KeypointFusion: MANO 16 + tips (index, middle, pinky, ring, thumb).
KEYPOINTFUSION_TO_SPEC: tuple[int, ...] = (
    0, 13, 14, 15, 20, 1, 2, 3, 16, 4, 5, 6, 17, 10, 11, 12, 19, 7, 8, 9, 18,
)  # fmt: skip
SPEC_TO_SPEC: tuple[int, ...] = tuple(range(NUM_JOINTS))

KNOWN_ORDERS: dict[str, tuple[int, ...]] = {
    "spec": SPEC_TO_SPEC,
    "mano": MANO_TO_SPEC,
    "keypointfusion": KEYPOINTFUSION_TO_SPEC,
}


def invert(permutation: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """The inverse permutation: ``x[:, P][:, invert(P)] == x``."""
    inverse = [0] * len(permutation)
    for i, p in enumerate(permutation):
        inverse[p] = i
    return tuple(inverse)
