"""Applying the convention checks' fixes in turn converges: from a batch with several planted
faults (each a real loader's mistake), a script that reads only the checks' ``details["fix"]``
reaches a batch with no failure, no check that passed fails again later, and the samples the
faults did not rotate come back to the clean batch exactly.

The interpreter below is written from the fix vocabulary documented in
``utnet_diag.checks.fixes`` (it does not call the tool's own code for the operations)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from utnet_diag.checks.conventions import CONVENTION_CHECKS
from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.report.result import Status
from utnet_diag.synthetic import faults_convention as fc
from utnet_diag.synthetic.sample import make_sample_batch


def _rodrigues(aa: torch.Tensor) -> torch.Tensor:
    angle = aa.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = aa / angle
    x, y, z = k.unbind(-1)
    zero = torch.zeros_like(x)
    kx = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    s, c = angle.sin()[..., None], angle.cos()[..., None]
    return torch.eye(3, dtype=aa.dtype) + s * kx + (1 - c) * kx @ kx


def _log(r: torch.Tensor) -> torch.Tensor:
    cos = ((r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    vec = torch.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0],
                       r[..., 1, 0] - r[..., 0, 1]], -1)  # fmt: skip
    return vec / (2 * angle.sin()).clamp_min(1e-12)[..., None] * angle[..., None]


def apply_fix(batch: dict, fix: dict, mano) -> dict:
    """One fix of the documented vocabulary, applied to a copy of ``batch``."""
    out = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    key, op = fix["key"], fix["op"]
    rows = fix.get("samples")
    idx = slice(None) if rows is None else torch.tensor(rows)
    t = out[key]
    if op == "permute":
        t[idx] = t[idx][:, fix["perm"]]
    elif op == "scale_axes":
        factors = torch.tensor(fix["factors"], dtype=t.dtype)
        t[idx, ..., : len(factors)] = t[idx, ..., : len(factors)] * factors
    elif op == "affine_2d":
        a = torch.tensor(fix["matrix"], dtype=t.dtype)
        b = torch.tensor(fix["offset"], dtype=t.dtype).reshape(-1, 1, 2)
        t[idx, :, :2] = t[idx, :, :2] @ a.T + b
    elif op == "rotate_3d":
        t[idx, :, :3] = t[idx, :, :3] @ torch.tensor(fix["matrix"], dtype=t.dtype).T
    elif op == "rotate_global":
        m = torch.tensor(fix["matrix"], dtype=t.dtype)
        t[idx, :3] = _log(m @ _rodrigues(t[idx, :3]))
    elif op == "move_translation":
        m = torch.tensor(fix["matrix"], dtype=t.dtype)
        betas = out["mano_shape"][idx]
        with torch.no_grad():
            root = mano(torch.zeros(len(betas), 3), torch.zeros(len(betas), 45), betas)
        j0 = root.joints[:, 0] / 1000.0
        t[idx] = (t[idx] + j0) @ m.T - j0
    elif op == "mirror_pose":
        pose = t[idx].reshape(-1, 16, 3)
        pose[..., 1:] *= -1
        t[idx] = pose.reshape(-1, 48)
    elif op == "add_hands_mean":
        t[idx, 3:] += mano.hands_mean
    elif op == "pca_to_axis_angle":
        hand = t[idx, 3:] @ mano.hands_components
        t[idx, 3:] = hand + (mano.hands_mean if fix["relative"] else 0.0)
    elif op == "set":
        t[idx] = fix["value"]
    else:
        raise AssertionError(f"unknown fix {fix}")
    out[key] = t
    return out


def _run(batch: dict, mano) -> list:
    return run_checks(CONVENTION_CHECKS.specs, CheckContext(batch=batch, mano=mano))


@pytest.fixture(scope="module")
def clean(mano_layer) -> dict:
    batch = dict(make_sample_batch(8, seed=11, image_size=(16, 16)).tensors)
    return fc.with_translation(batch, mano_layer)


def _planted(clean: dict, mano_layer) -> dict:
    return fc.plant(
        clean,
        functools.partial(fc.rotate_2d, samples=[2, 5], degrees=30.0),  # augmentation, 3D kept
        functools.partial(fc.flipped_without_pose, samples=[3]),  # loader flipped, pose kept
        functools.partial(fc.pose_relative_to_mean, hands_mean=mano_layer.hands_mean),
        functools.partial(fc.pose_as_pca, hands_components=mano_layer.hands_components),
        functools.partial(fc.opengl_annotations, mano_layer=mano_layer),  # HO3D raw
        functools.partial(fc.permute_joints, order="keypointfusion"),  # the loader's order
    )


def test_the_clean_batch_passes(clean, mano_layer):
    results = _run(clean, mano_layer)
    assert [r.id for r in results if r.status is Status.FAIL] == []
    assert {r.id: r for r in results}["mano_consistency"].message.endswith(
        "mano_trans places it (mean 0.0 mm)"
    )


def test_applying_the_fixes_in_turn_converges(clean, mano_layer):
    batch = _planted(clean, mano_layer)
    history: list[tuple[str, list[dict]]] = []
    passed: set[str] = set()
    for _ in range(12):
        results = _run(batch, mano_layer)
        failing = [r for r in results if r.status is Status.FAIL]
        assert not (passed & {r.id for r in failing}), (history, [r.id for r in failing])
        passed |= {r.id for r in results if r.status is Status.PASS}
        if not failing:
            break
        first = failing[0]
        fixes = first.details.get("fix")
        assert fixes, f"{first.id} failed without a fix: {first.message}"
        assert first.hint and all(f["op"] for f in fixes)
        history.append((first.id, fixes))
        for fix in fixes:
            batch = apply_fix(batch, fix, mano_layer)
    else:
        pytest.fail(f"no convergence after {len(history)} fixes: {history}")
    order = [check for check, _ in history]
    assert order[0] == "joint_order" and order[1] == "coord_frame"
    assert "kp2d_kp3d_consistency" in order and order[-1] == "mano_consistency"
    keep = [0, 1, 3, 4, 6, 7]  # the samples whose image the augmentation did not rotate
    for key in ("keypoints_3d", "keypoints_2d", "mano_pose", "mano_trans", "mano_shape"):
        np.testing.assert_allclose(
            batch[key][keep].numpy(), clean[key][keep].numpy(), atol=2e-3, err_msg=key
        )
    # the rotated samples' 3D target now turns with their image: 30 degrees about the camera axis
    angle = torch.tensor(np.radians(30.0), dtype=torch.float32)
    rz = torch.tensor([[angle.cos(), -angle.sin(), 0], [angle.sin(), angle.cos(), 0], [0, 0, 1]])
    np.testing.assert_allclose(
        batch["keypoints_3d"][[2, 5], :, :3].numpy(),
        (clean["keypoints_3d"][[2, 5], :, :3] @ rz.T).numpy(), atol=2e-3,
    )  # fmt: skip


def _converge(batch: dict, mano_layer, rounds: int = 6) -> tuple[dict, list[str]]:
    order = []
    for _ in range(rounds):
        failing = [r for r in _run(batch, mano_layer) if r.status is Status.FAIL]
        if not failing:
            return batch, order
        order.append(failing[0].id)
        for fix in failing[0].details["fix"]:
            batch = apply_fix(batch, fix, mano_layer)
    pytest.fail(f"no convergence: {order}")


def test_left_hands_with_their_translation_become_right_hands(clean, mano_layer):
    # A left hand's annotation: MANO_LEFT(pose) + trans, where MANO_LEFT(pose) is the mirror
    # image (x -> -x) of MANO_RIGHT on the pose with y and z of every axis-angle negated.
    from utnet_diag.synthetic.sample import project

    mirror = torch.tensor([-1.0, 1.0, 1.0])
    rows = [1, 6]
    batch = {k: v.clone() for k, v in clean.items()}
    pose = clean["mano_pose"][rows].reshape(-1, 16, 3) * torch.tensor([1.0, -1.0, -1.0])
    pose = pose.reshape(-1, 48)
    with torch.no_grad():
        right = mano_layer(pose[:, :3], pose[:, 3:], clean["mano_shape"][rows]).joints
    left_trans = clean["mano_trans"][rows] * mirror  # any translation: this one keeps the crop
    left = right * mirror + left_trans[:, None] * 1000.0
    batch["keypoints_3d"][rows, :, :3] = left
    batch["keypoints_2d"][rows, :, :2] = project(left)
    batch["mano_trans"][rows] = left_trans
    fixed, order = _converge(batch, mano_layer)
    assert order == ["handedness"]
    for key in ("keypoints_3d", "keypoints_2d", "mano_trans"):
        # the mirrored left hand is the right hand of the flipped pose, translation mirrored
        expected = clean[key].clone()
        np.testing.assert_allclose(fixed[key][[0, 2]].numpy(), expected[[0, 2]].numpy())
    with torch.no_grad():
        again = mano_layer(fixed["mano_pose"][rows, :3], fixed["mano_pose"][rows, 3:],
                           fixed["mano_shape"][rows], transl=fixed["mano_trans"][rows]).joints  # fmt: skip
    np.testing.assert_allclose(again.numpy(), fixed["keypoints_3d"][rows, :, :3].numpy(), atol=1e-3)


def test_2d_mirrored_about_an_off_centre_principal_point_comes_back_exactly(clean, mano_layer):
    # the crop is not centred on the principal point: every 2D x is shifted by +0.1, and the
    # 2D of sample 4 is mirrored about that column (x -> 2 * 0.1 - x), the 3D kept
    shifted = {k: v.clone() for k, v in clean.items()}
    shifted["keypoints_2d"][..., 0] += 0.1
    batch = {k: v.clone() for k, v in shifted.items()}
    batch["keypoints_2d"][4, :, 0] = 0.2 - batch["keypoints_2d"][4, :, 0]
    fixed, order = _converge(batch, mano_layer)
    assert order == ["kp2d_kp3d_consistency"]
    np.testing.assert_allclose(fixed["keypoints_2d"].numpy(), shifted["keypoints_2d"].numpy(),
                               atol=1e-5)  # fmt: skip


def test_2d_divided_by_width_and_height_comes_back_with_the_fix(clean, mano_layer):
    # a loader normalises y by the image height (192) instead of the crop size (256): every
    # y is 256/192 times too large, x is right
    batch = {k: v.clone() for k, v in clean.items()}
    batch["keypoints_2d"][..., 1] *= 256.0 / 192.0
    fixed, order = _converge(batch, mano_layer)
    assert order == ["kp2d_kp3d_consistency"]
    np.testing.assert_allclose(fixed["keypoints_2d"].numpy(), clean["keypoints_2d"].numpy(),
                               atol=1e-5)  # fmt: skip


def test_2d_mirrored_upside_down_comes_back_exactly(clean, mano_layer):
    # the 2D of sample 4 flipped vertically (y -> -y about the crop centre), the 3D kept
    batch = {k: v.clone() for k, v in clean.items()}
    batch["keypoints_2d"][4, :, 1] *= -1.0
    fixed, order = _converge(batch, mano_layer)
    assert order == ["kp2d_kp3d_consistency"]
    np.testing.assert_allclose(fixed["keypoints_2d"].numpy(), clean["keypoints_2d"].numpy(),
                               atol=1e-5)  # fmt: skip
