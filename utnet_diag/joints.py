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


def _mano_read_thumb_first() -> tuple[int, ...]:
    """The permutation to spec of a classic mapping bug: MANO's 15 finger joints (index, middle,
    pinky, ring, thumb, base to end) copied into the spec's slots 1-3, 5-7, ... in their own
    order, as if MANO listed the thumb first, with the tips (taken from vertices) in place."""
    holds = list(range(NUM_JOINTS))  # the spec joint each slot holds
    slots = [j for finger in FINGERS for j in FINGER_JOINTS[finger][:3]]
    native = [j for finger in MANO_FINGER_ORDER for j in FINGER_JOINTS[finger][:3]]
    for slot, joint in zip(slots, native):
        holds[slot] = joint
    return invert(holds)


MANO_FINGER_ORDER = ("index", "middle", "pinky", "ring", "thumb")  # MANO's joints 1-15
MANO_READ_THUMB_FIRST_TO_SPEC: tuple[int, ...] = _mano_read_thumb_first()
# Wrong orders seen in real code, named so a finding can say what happened.
MISREAD_ORDERS: dict[str, tuple[int, ...]] = {
    "mano_read_thumb_first": MANO_READ_THUMB_FIRST_TO_SPEC
}
ORDER_TEXT: dict[str, str] = {
    "spec": "the spec's order",
    "mano": "MANO's order (16 + tips)",
    "keypointfusion": "KeypointFusion's order",
    "mano_read_thumb_first": "MANO's 16 joints read as if thumb-first (MANO lists wrist, index,"
    " middle, pinky, ring, thumb; tips in place)",
}


def _ranges(values: list[int]) -> str:
    """'1-3, 17' for [1, 2, 3, 17]."""
    out: list[str] = []
    for v in values:
        if out and isinstance(out[-1], list) and out[-1][1] == v - 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in out)


def describe_slots(permutation: tuple[int, ...] | list[int]) -> list[str]:
    """What each wrong slot holds, grouped by finger: for ``joints_spec = joints[:, P]``,
    e.g. ``["slots 1-3 (thumb1-3) hold index1-3", "slot 4 (thumb_tip) holds index_tip"]``."""
    holds = invert(tuple(int(p) for p in permutation))
    lines: list[str] = []
    groups: dict[tuple[str, str], list[int]] = {}
    for slot, joint in enumerate(holds):
        if slot == joint:
            continue
        mine, theirs = JOINT_NAMES[slot], JOINT_NAMES[joint]
        key = (_finger_of(slot), _finger_of(joint))
        if mine.endswith("_tip") or theirs.endswith("_tip") or "wrist" in (mine, theirs):
            key = (mine, theirs)
        groups.setdefault(key, []).append(slot)
    for (mine, theirs), slots in groups.items():
        if len(slots) == 1:
            slot = slots[0]
            lines.append(f"slot {slot} ({JOINT_NAMES[slot]}) holds {JOINT_NAMES[holds[slot]]}")
            continue
        lo, hi = JOINT_NAMES[slots[0]][-1], JOINT_NAMES[slots[-1]][-1]
        jlo, jhi = JOINT_NAMES[holds[slots[0]]][-1], JOINT_NAMES[holds[slots[-1]]][-1]
        lines.append(f"slots {_ranges(slots)} ({mine}{lo}-{hi}) hold {theirs}{jlo}-{jhi}")
    return lines


def _finger_of(joint: int) -> str:
    return "wrist" if joint == 0 else FINGERS[(joint - 1) // 4]
