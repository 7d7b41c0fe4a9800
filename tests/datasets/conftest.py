"""Synthetic HO3D and DexYCB trees with one planted fault per sample (written once per module)."""

from __future__ import annotations

import pytest
from planted_faults import DEXYCB_PLANTED, HO3D_PLANTED


@pytest.fixture(scope="module")
def ho3d_tree(tmp_path_factory):
    from utnet_diag.synthetic.trees import write_ho3d_tree

    root = tmp_path_factory.mktemp("ho3d")
    return write_ho3d_tree(
        root, sequences=("ABF10", "MC1"), frames_per_sequence=8, faults=HO3D_PLANTED, seed=1
    )


@pytest.fixture(scope="module")
def dexycb_tree(tmp_path_factory):
    from utnet_diag.synthetic.trees import write_dexycb_tree

    root = tmp_path_factory.mktemp("dexycb")
    return write_dexycb_tree(
        root,
        subjects=("20200709-subject-01", "20200813-subject-02"),
        sequences=("20200709_141754",),
        num_frames=3,
        faults=DEXYCB_PLANTED,
        seed=2,
    )
