"""The joint tables against joint names listed the way each source documents them, not against the
tables themselves: a permutation to spec is rebuilt here from names."""

from __future__ import annotations

import pytest

from utnet_diag import joints as J

# spec 7.1 (OpenPose): wrist, then thumb, index, middle, ring, pinky, each base to tip
SPEC_NAMES = ["wrist"] + [f"{f}{k}" for f in ("thumb", "index", "middle", "ring", "pinky")
                          for k in ("_mcp", "_pip", "_dip", "_tip")]  # fmt: skip
# MANO's 16 joints (smplx / the MANO paper's kintree: wrist, index, middle, pinky, ring, thumb,
# each three joints base to end), then the five tips smplx appends in thumb, index, middle, ring,
# pinky order (HO3D's handJoints3D is the same)
MANO_NAMES = ["wrist"] + [f"{f}{k}" for f in ("index", "middle", "pinky", "ring", "thumb")
                          for k in ("_mcp", "_pip", "_dip")]  # fmt: skip
MANO_NAMES += [f"{f}_tip" for f in ("thumb", "index", "middle", "ring", "pinky")]
# KeypointFusion (DexYCB/NYU loaders): MANO's 16, then tips in index, middle, pinky, ring, thumb
KF_NAMES = MANO_NAMES[:16] + [f"{f}_tip" for f in ("index", "middle", "pinky", "ring", "thumb")]


def to_spec(names: list[str]) -> tuple[int, ...]:
    """P with spec[i] = other[P[i]]."""
    return tuple(names.index(n) for n in SPEC_NAMES)


@pytest.mark.parametrize(
    ("table", "names"),
    [(J.SPEC_TO_SPEC, SPEC_NAMES), (J.MANO_TO_SPEC, MANO_NAMES),
     (J.KEYPOINTFUSION_TO_SPEC, KF_NAMES)],
)  # fmt: skip
def test_order_tables_match_the_documented_names(table, names):
    assert table == to_spec(names)


def test_known_orders_are_the_three_tables():
    assert {"spec": to_spec(SPEC_NAMES), "mano": to_spec(MANO_NAMES),
                              "keypointfusion": to_spec(KF_NAMES)} == J.KNOWN_ORDERS  # fmt: skip


def test_mano_read_thumb_first():
    # The bug: MANO's joints 1-15 (index, middle, pinky, ring, thumb) copied in their own order
    # into spec slots 1-3, 5-7, 9-11, 13-15, 17-19, tips correct. So slot 1 (thumb base) holds
    # index_mcp, slot 5 (index base) holds middle_mcp, slot 9 (middle) pinky, 13 (ring) ring,
    # 17 (pinky) thumb.
    spec_slots = [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19]
    buggy = list(SPEC_NAMES)
    for slot, name in zip(spec_slots, MANO_NAMES[1:16]):
        buggy[slot] = name
    assert to_spec(buggy) == J.MANO_READ_THUMB_FIRST_TO_SPEC
    assert J.describe_slots(J.MANO_READ_THUMB_FIRST_TO_SPEC)[0] == (
        "slots 1-3 (thumb1-3) hold index1-3"
    )


def test_names_parents_and_bones():
    assert J.JOINT_NAMES[0] == "wrist" and J.JOINT_NAMES[4] == "thumb_tip"
    assert J.JOINT_NAMES[17:] == ("pinky1", "pinky2", "pinky3", "pinky_tip")
    # each finger's base hangs from the wrist, every other joint from the one before it
    assert [J.PARENTS[b] for b in (1, 5, 9, 13, 17)] == [0] * 5
    assert all(J.PARENTS[j] == j - 1 for j in range(1, 21) if j not in (1, 5, 9, 13, 17))
    assert len(J.BONES) == 20 and (0, 1) in J.BONES and (19, 20) in J.BONES
    # MANO's kintree: fingers of three joints each from the wrist
    assert J.MANO_PARENTS == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)


def test_invert_and_describe_slots():
    perm = (0, 2, 1) + tuple(range(3, 21))
    assert J.invert(perm) == perm
    rotate = tuple(range(1, 21)) + (0,)
    assert [rotate[i] for i in J.invert(rotate)] == list(range(21))
    assert J.describe_slots(J.SPEC_TO_SPEC) == []
    swapped = list(range(21))
    swapped[4], swapped[8] = 8, 4  # thumb and index tips exchanged
    assert J.describe_slots(swapped) == [
        "slot 4 (thumb_tip) holds index_tip",
        "slot 8 (index_tip) holds thumb_tip",
    ]
