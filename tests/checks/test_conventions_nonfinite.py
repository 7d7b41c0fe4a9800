"""One sample with a NaN no longer hides the rest of the batch from the convention checks."""

from __future__ import annotations

import torch

from utnet_diag.checks.conventions import nonfinite_samples
from utnet_diag.diagnostics.check_batch import check_batch
from utnet_diag.report.result import Status
from utnet_diag.synthetic.skeleton import make_skeleton_batch


def _batch(nan_sample: int | None, opengl_sample: int | None) -> dict[str, torch.Tensor]:
    batch = make_skeleton_batch(8, seed=0)
    kp3d = batch["keypoints_3d"].clone()
    if nan_sample is not None:
        kp3d[nan_sample, 5, 0] = float("nan")
    if opengl_sample is not None:
        kp3d[opengl_sample, :, 1:3] *= -1  # y and z flipped: OpenGL axes, behind the camera
    batch["keypoints_3d"] = kp3d
    return batch


def test_nonfinite_samples_lists_each_sample_with_a_nan_or_inf_annotation():
    batch = _batch(None, None)
    assert nonfinite_samples(batch) == []
    batch["keypoints_2d"] = batch["keypoints_2d"].clone()
    batch["keypoints_2d"][6, 0, 1] = float("inf")
    batch["mano_shape"] = batch["mano_shape"].clone()
    batch["mano_shape"][2, 3] = float("nan")
    assert nonfinite_samples(batch) == [2, 6]


def test_a_nan_sample_next_to_an_opengl_sample_still_finds_the_frame_flip():
    report = check_batch(_batch(nan_sample=0, opengl_sample=3))
    assert report.check("finite").status is Status.FAIL
    frame = report.check("coord_frame")
    assert frame.status is Status.FAIL and "sample 3" in frame.message
    assert "NaN/Inf values left out: sample 0; see finite" in frame.message
    assert frame.details["nonfinite_samples"] == [0]


def test_a_nan_sample_alone_leaves_the_conventions_passing_on_the_rest():
    report = check_batch(_batch(nan_sample=0, opengl_sample=None))
    for check_id in ("joint_order", "root_index", "coord_frame", "handedness",
                     "kp2d_kp3d_consistency"):  # fmt: skip
        result = report.check(check_id)
        assert result.status is Status.PASS, (check_id, result.message)
        assert result.details["nonfinite_samples"] == [0]
    clean = check_batch(_batch(None, None))
    assert "nonfinite_samples" not in clean.check("coord_frame").details
