"""Every dataset check says how many samples it judged; one that judged none is a skip with the
reason, never a pass (a camera check with no camera matrix passes nothing)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from utnet_diag.datasets.checks import ANNOTATED, DATASET_CHECKS, evaluated_counts
from utnet_diag.datasets.ho3d import HO3DReader
from utnet_diag.datasets.scan import _check_result, scan_dataset
from utnet_diag.report.result import Status


@pytest.fixture(scope="module")
def clean_chunk(tmp_path_factory):
    from utnet_diag.synthetic.trees import write_ho3d_tree

    root = tmp_path_factory.mktemp("ho3d_clean")
    write_ho3d_tree(root, sequences=("A",), frames_per_sequence=6, seed=3)
    reader = HO3DReader(root)
    return reader.canonical([reader.read(i, images=False) for i in range(len(reader))])


def test_each_array_check_counts_the_samples_it_can_judge(clean_chunk):
    n = len(clean_chunk)
    assert n == 6
    counts = evaluated_counts(clean_chunk, images=False)
    assert counts.pop(ANNOTATED) == 6
    array_checks = {c.id for c in DATASET_CHECKS if c.rows is not None and not c.needs_images}
    assert set(counts) == array_checks  # depth_agrees needs decoded images
    # HO3D stores no 2D labels: kp2d_agrees judges nothing; everything else every sample
    assert counts["kp2d_agrees"] == 0
    assert {k: v for k, v in counts.items() if k != "kp2d_agrees"} == dict.fromkeys(
        array_checks - {"kp2d_agrees"}, 6
    )
    cam_k = clean_chunk.cam_k.copy()
    cam_k[[1, 4]] = np.nan  # two frames without a camera matrix
    has_mano = clean_chunk.has_mano.copy()
    has_mano[[0, 2, 5]] = False  # three without MANO
    joints = clean_chunk.joints_mm.copy()
    joints[3] = np.nan  # one without 3D joints (and so without their projection)
    uv = clean_chunk.uv_px.copy()
    uv[3] = np.nan
    holes = dataclasses.replace(
        clean_chunk, cam_k=cam_k, has_mano=has_mano, joints_mm=joints, uv_px=uv
    )
    counts = evaluated_counts(holes, images=False)
    assert counts["camera_intrinsics"] == 4
    assert counts["mano_pose_range"] == counts["mano_shape_range"] == 3
    assert counts["kp3d_units"] == counts["kp3d_in_front"] == counts["bone_lengths"] == 5
    assert counts["kp2d_in_image"] == 3  # needs the camera (rows 1, 4) and the joints (row 3)
    assert counts["finite"] == 6


def test_a_check_that_judged_no_sample_skips_and_one_that_judged_some_says_so():
    none = _check_result("camera_intrinsics", {}, [], done=20, images=False, evaluated=0)
    assert none.status is Status.SKIP
    assert none.message == "not evaluated: no sample has a camera matrix (0 of 20 samples)"
    some = _check_result("camera_intrinsics", {}, [], done=20, images=False, evaluated=15)
    assert some.status is Status.PASS and some.details["evaluated"] == 15
    assert "all 15 samples; 5 without a camera matrix left out" in some.message
    flagged = _check_result("camera_intrinsics", {"fail": 3}, [], done=20, images=False,
                            evaluated=15)  # fmt: skip
    assert flagged.status is Status.FAIL and flagged.message.startswith("3/15 samples")
    stopped = _check_result("meta_schema", {}, [], done=4, images=False, evaluated=0)
    assert stopped.status is Status.SKIP
    assert "every sample stopped before it (meta_missing, meta_unreadable, meta_unsafe)" in (
        stopped.message
    )


def test_a_tree_whose_meta_files_are_all_missing_passes_nothing(tmp_path):
    from utnet_diag.synthetic.trees import write_ho3d_tree

    write_ho3d_tree(tmp_path, sequences=("A",), frames_per_sequence=4, seed=4,
                    faults={"missing_meta": range(4)})  # fmt: skip
    report = scan_dataset(HO3DReader(tmp_path), images=False)
    by_id = {c.id: c for c in report.checks}
    assert by_id["meta_missing"].status is Status.FAIL
    assert by_id["meta_missing"].message.startswith("4/4 samples")
    passed = [c.id for c in report.checks if c.status is Status.PASS]
    assert passed == [], passed
    for check_id in ("meta_unreadable", "meta_schema", "finite", "camera_intrinsics"):
        assert by_id[check_id].status is Status.SKIP, check_id
        assert by_id[check_id].message.startswith("not evaluated:"), by_id[check_id].message
    assert by_id["camera_intrinsics"].message == (
        "not evaluated: no annotated sample was read (see the file checks above) (0 of 4 samples)"
    )
