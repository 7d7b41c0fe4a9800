"""A clean FreiHAND-style ground truth and prediction, and writers for planted faults."""

from __future__ import annotations

import numpy as np
import pytest

from utnet_diag.synthetic.benchmark_files import hands, mesh, noisy, write_gt_folder


@pytest.fixture(scope="module")
def truth():
    """(xyz (24,21,3), verts (24,778,3)) metres, spec order, OpenCV frame."""
    xyz = hands(24, seed=5)
    return xyz, mesh(xyz)


@pytest.fixture(scope="module")
def clean(truth):
    """A prediction 4 mm (per coordinate) off the truth."""
    xyz, verts = truth
    return noisy(xyz, seed=6), noisy(verts, seed=7)


@pytest.fixture
def gt_dir(tmp_path, truth):
    return write_gt_folder(tmp_path / "gt", *truth)


@pytest.fixture
def mirror_x() -> np.ndarray:
    return np.array([-1.0, 1.0, 1.0])
