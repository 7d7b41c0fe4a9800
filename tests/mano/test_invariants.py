"""The MANO file invariants on arrays edited here: rows of J_regressor and of the skinning
weights sum to 1 within 1e-4, and the kinematic tree is MANO's."""

from __future__ import annotations

import numpy as np

from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.mano import synthetic_mano_data
from utnet_diag.mano.convert import MANO_CHECKS
from utnet_diag.report.result import Status


def invariants(data: dict):
    (result,) = run_checks([s for s in MANO_CHECKS.specs if s.id == "mano_invariants"],
                           CheckContext(extras={"data": data}))  # fmt: skip
    return result


def test_row_sums_within_1e4_pass_and_beyond_fail():
    data = synthetic_mano_data()
    assert invariants(data).status is Status.PASS
    for key, row, text in (("J_regressor", 7, "J_regressor row 7"),
                           ("weights", 100, "skinning weights of vertex 100")):  # fmt: skip
        for excess, status in ((0.9e-4, Status.PASS), (1.5e-4, Status.FAIL)):
            edited = dict(data)
            array = np.array(data[key], dtype=np.float64)
            array[row] *= (1.0 + excess) / array[row].sum()
            edited[key] = array
            result = invariants(edited)
            assert result.status is status, (key, excess)
            assert abs(result.value - excess) < 1e-9
            if status is Status.FAIL:
                assert result.message.startswith(text) and result.threshold == 1e-4


def test_a_kinematic_tree_that_is_not_manos_fails():
    data = dict(synthetic_mano_data())
    tree = np.array(data["kintree_table"]).copy()
    tree[0, 4] = 1  # joint 4 (middle1) hung from index1 instead of the wrist
    data["kintree_table"] = tree
    result = invariants(data)
    assert result.status is Status.FAIL and "are not MANO's" in result.message
