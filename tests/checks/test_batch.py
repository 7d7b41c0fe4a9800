"""Batch checks on batches built here by hand, one number at a time: the limits of the spec (2D in
[-0.5, 0.5], betas and the shape prior) and the 0/1 flags."""

from __future__ import annotations

import torch

from utnet_diag.checks.batch import BATCH_CHECKS
from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.config import DiagConfig
from utnet_diag.io.batch import Batch
from utnet_diag.report.result import Status


def run(check_id: str, **tensors: torch.Tensor):
    b = next(iter(tensors.values())).shape[0]
    batch = Batch(tensors=dict(tensors), sample_ids=[f"s{i}" for i in range(b)])
    ctx = CheckContext(batch=batch, config=DiagConfig())
    (result,) = run_checks([s for s in BATCH_CHECKS.specs if s.id == check_id], ctx)
    return result


def spread_2d(b: int = 2) -> torch.Tensor:
    """(b, 21, 3) 2D keypoints spread over [-0.4, 0.4] with conf 1."""
    xy = torch.linspace(-0.4, 0.4, 21)[None, :, None].repeat(b, 1, 2)
    return torch.cat([xy, torch.ones(b, 21, 1)], -1)


def test_shape_prior_alarm_is_the_specs_100():
    # spec 9.3: the shape prior mean(beta^2) is healthy below 100. Betas of 10 exactly give 100
    # without any beta above the |beta| > 10 limit; 9.99 gives 99.8: only |beta| > 3 warns.
    at = run("mano_shape", mano_shape=torch.full((2, 10), 10.0))
    assert at.status is Status.FAIL and "up to 100" in at.message
    below = run("mano_shape", mano_shape=torch.full((2, 10), 9.99))
    assert below.status is Status.WARN
    assert run("mano_shape", mano_shape=torch.full((2, 10), 3.0)).status is Status.PASS
    one = torch.zeros(2, 10)
    one[1, 4] = 10.01  # one beta beyond 10: implausible whatever the mean
    result = run("mano_shape", mano_shape=one)
    assert (
        result.status is Status.FAIL and "sample 1" in result.message and "beta 4" in result.message
    )


def test_kp2d_limits():
    kp = spread_2d()
    assert run("kp2d_range", keypoints_2d=kp).status is Status.PASS
    kp[0, 3, 0] = 0.501  # within the rounding tolerance of 1e-3
    assert run("kp2d_range", keypoints_2d=kp).status is Status.PASS
    kp[0, 3, 0] = 0.502
    assert run("kp2d_range", keypoints_2d=kp).status is not Status.PASS
    # [-1, 1] normalisation: up to 1 + 1e-3 is [-1, 1]; beyond, not a known convention
    wide = spread_2d()
    wide[..., :2] *= 2.5  # [-1, 1]
    result = run("kp2d_range", keypoints_2d=wide)
    assert result.status is Status.FAIL and "[-1,1]" in result.message
    wide[1, 7, 1] = 1.0009
    assert "[-1,1]" in run("kp2d_range", keypoints_2d=wide).message
    wide[1, 7, 1] = 1.2
    assert "not pixels, [0,1] or [-1,1]" in run("kp2d_range", keypoints_2d=wide).message
    # a hidden joint (conf 0) may lie anywhere
    hidden = spread_2d()
    hidden[0, 5] = torch.tensor([40.0, 40.0, 0.0])
    assert run("kp2d_range", keypoints_2d=hidden).status is Status.PASS


def test_flags_must_be_zero_or_one():
    kp = spread_2d()
    ok = run("schema", keypoints_2d=kp, has_mano=torch.tensor([0.0, 1.0]))
    assert "other than 0/1" not in ok.message
    bad = run("schema", keypoints_2d=kp, has_mano=torch.tensor([1.0, 0.5]))
    assert bad.status is Status.WARN
    assert "'has_mano' holds 1 value(s) other than 0/1 (first 0.5 at sample 1" in bad.message
    n_i = run("schema", keypoints_2d=kp, n_i=torch.tensor([2.0, 1.0]))
    assert "'n_i' holds 1 value(s)" in n_i.message


def test_finite_names_where_the_first_nan_sits_in_each_kind_of_tensor():
    kp = torch.zeros(3, 21, 4)
    kp[1, 5, 2] = float("nan")
    verts = torch.zeros(3, 778, 3)
    verts[2, 100, 0] = float("inf")
    rgb = torch.zeros(3, 3, 4, 5)
    rgb[0, 1, 2, 3] = float("nan")
    result = run("finite", keypoints_3d=kp, vertices_3d=verts, rgb=rgb)
    assert result.status is Status.FAIL
    assert "sample 1, joint 5 (index1), column 2" in result.message
    assert "sample 2, vertex 100" in result.message
    assert "sample 0, channel 1, pixel y=2 x=3" in result.message


def test_a_non_finite_value_is_located_by_sample_joint_and_column():
    import torch

    from utnet_diag.checks.batch import _locate

    t = torch.zeros(2, 21, 3)
    assert _locate("keypoints_3d", t, (1, 0, 2)) == "sample 1, joint 0 (wrist), column 2"
    assert _locate("keypoints_3d", t, (0, 20, 0)).startswith("sample 0, joint 20 (")
    assert _locate("mano_pose", torch.zeros(2, 48), (1, 7)) == (
        "sample 1, MANO joint 2 (value 7)")  # fmt: skip
    assert _locate("rgb", torch.zeros(1, 3, 4, 4), (0, 2, 1, 3)) == (
        "sample 0, channel 2, pixel y=1 x=3")  # fmt: skip
    assert _locate("mano_shape", torch.zeros(2, 10), (1, 3)) == "sample 1, index 3"


def test_kp2d_counts_only_the_samples_beyond_the_limit():
    # one sample at 0.7; another exactly at the limit, 0.5 plus the 1e-3 rounding tolerance
    kp = spread_2d(3)
    kp[0, 2, 0] = 0.7
    kp[2, 5, 1] = 0.501
    result = run("kp2d_range", keypoints_2d=kp)
    assert result.status is Status.WARN  # a point outside the crop, the rest inside
    assert "2D keypoints of 1/3 samples exceed 0.5" in result.message


def test_a_large_global_orient_names_its_first_sample():
    pose = torch.full((4, 48), 0.1)
    pose[1, :3] = torch.tensor([3.3, 0.0, 0.0])  # above pi: the same rotation the other way round
    pose[3, :3] = torch.tensor([0.0, 3.5, 0.0])
    result = run("mano_pose", mano_pose=pose)
    assert result.status is Status.WARN
    assert "global orient angle above pi in 2 sample(s) (first 3.3 at sample 1" in result.message


def test_depth_far_from_the_joints_z_disagrees_beyond_40_mm():
    from utnet_diag.checks.batch import _depth_disagreement

    z = torch.linspace(400.0, 600.0, 21)[None].repeat(3, 1)  # camera frame, mm
    offsets = torch.tensor([30.0, 60.0, -45.0])[:, None]
    at_joints = (z + offsets) / 1000.0  # the depth image in metres
    used = torch.ones(3, dtype=torch.bool)
    off = _depth_disagreement(at_joints, z, "metres", used)
    assert sorted(off) == [1, 2] and "(60 mm off)" in off[1] and "(45 mm off)" in off[2]
    # a root-relative z: only the relative depth is compared
    assert _depth_disagreement(at_joints, z - 500.0, "metres", used) == {}
    bent = at_joints.clone()
    bent[0] = (z[0].flip(0) + 30.0) / 1000.0  # the depth runs the other way: 100 mm off, median
    off = _depth_disagreement(bent, z - 500.0, "metres", used)
    assert sorted(off) == [0] and "does not follow their relative depth (100 mm off)" in off[0]
