"""Plant convention faults into a canonical batch (a mapping of tensors); returns a new dict.

Each fault is what a real pipeline gets wrong while every tensor still looks fine:
joint order (``mano``, ``keypointfusion``, ``random``), the wrist not at index 0, 2D from another
sample or in another order, 2D divided by different x and y sizes, OpenGL-style camera frame,
MANO pose relative to ``hands_mean``, PCA coefficients, a left hand fed to the right model, a
mirrored sample whose pose was not flipped, HO3D-style OpenGL annotations (joints, global
orientation and translation), 2D rotated by an augmentation that left the 3D alone, a left
hand flipped by the loader without its pose. :func:`plant` applies several in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from utnet_diag.geometry.mano_conventions import flip_pose, rest_root_m
from utnet_diag.joints import KNOWN_ORDERS, NUM_JOINTS, invert
from utnet_diag.model.rotation import axis_angle_to_matrix, matrix_to_axis_angle


def _copy(batch: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def data_order(order: str | Sequence[int], seed: int = 0) -> tuple[int, ...]:
    """The index list ``D`` with ``joints_in_that_order = joints_spec[:, D]``.

    ``order``: 'mano', 'keypointfusion', 'random' (seeded) or an explicit list.
    """
    if isinstance(order, str):
        if order == "random":
            gen = torch.Generator().manual_seed(seed)
            return tuple(int(i) for i in torch.randperm(NUM_JOINTS, generator=gen))
        return invert(KNOWN_ORDERS[order])
    return tuple(int(i) for i in order)


def permute_joints(
    batch: Mapping[str, Any],
    order: str | Sequence[int],
    keys: Sequence[str] = ("keypoints_2d", "keypoints_3d"),
    seed: int = 0,
) -> dict[str, Any]:
    """Store the joints of ``keys`` in another order (see :func:`data_order`)."""
    out = _copy(batch)
    idx = list(data_order(order, seed))
    for key in keys:
        if key in out:
            out[key] = out[key][:, idx]
    return out


def move_root(batch: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The wrist stored at ``index`` instead of 0 (the other joints keep their relative order)."""
    order = list(range(1, NUM_JOINTS))
    order.insert(index, 0)
    return permute_joints(batch, order)


def kp2d_from_other_sample(
    batch: Mapping[str, Any], samples: Sequence[int] | None = None
) -> dict[str, Any]:
    """2D keypoints of ``samples`` (default: all) rotated by one sample: sample i gets i+1's 2D."""
    out = _copy(batch)
    kp2d = out["keypoints_2d"]
    idx = list(range(kp2d.shape[0])) if samples is None else list(samples)
    out["keypoints_2d"][idx] = batch["keypoints_2d"][idx[1:] + idx[:1]].clone()
    return out


def kp2d_in_order(batch: Mapping[str, Any], order: str | Sequence[int]) -> dict[str, Any]:
    """Only the 2D keypoints in another joint order (3D stays in the spec's)."""
    return permute_joints(batch, order, keys=("keypoints_2d",))


def anisotropic_2d(
    batch: Mapping[str, Any], width: float = 256.0, height: float = 192.0, crop: float = 256.0
) -> dict[str, Any]:
    """2D normalized by an image ``width`` x ``height`` instead of the square ``crop``."""
    out = _copy(batch)
    out["keypoints_2d"][..., 0] *= crop / width
    out["keypoints_2d"][..., 1] *= crop / height
    return out


def opengl_frame(batch: Mapping[str, Any]) -> dict[str, Any]:
    """Camera-frame 3D in OpenGL convention (y up, camera looking down -z): ``diag(1,-1,-1)``."""
    out = _copy(batch)
    for key in ("keypoints_3d", "vertices_3d"):
        if key in out:
            out[key][..., 1:3] *= -1.0
    return out


def pose_relative_to_mean(batch: Mapping[str, Any], hands_mean: torch.Tensor) -> dict[str, Any]:
    """``mano_pose`` stored relative to ``hands_mean`` (smplx's ``flat_hand_mean=False``)."""
    out = _copy(batch)
    out["mano_pose"][:, 3:] -= hands_mean.to(out["mano_pose"])
    return out


def pose_as_pca(batch: Mapping[str, Any], hands_components: torch.Tensor) -> dict[str, Any]:
    """``mano_pose[:, 3:]`` stored as 45 PCA coefficients (``coeffs @ components = hand_pose``)."""
    out = _copy(batch)
    comps = hands_components.to(out["mano_pose"])
    out["mano_pose"][:, 3:] = out["mano_pose"][:, 3:] @ torch.linalg.inv(comps)
    return out


def _camera_consistent(
    out: dict[str, Any],
    joints_cam: torch.Tensor,
    projection: Callable[[torch.Tensor], torch.Tensor] | None,
) -> None:
    out["keypoints_3d"][..., :3] = joints_cam
    if projection is not None and "keypoints_2d" in out:
        out["keypoints_2d"][..., :2] = projection(joints_cam)


def left_hand(
    batch: Mapping[str, Any],
    mano_layer: Any,
    projection: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """The joints of a LEFT hand with this ``mano_pose`` (left(theta) = mirror of right(theta with
    y, z negated)), placed where the old wrist was; 2D re-projected with ``projection``."""

    out = _copy(batch)
    pose = flip_pose(out["mano_pose"])
    with torch.no_grad():
        joints = mano_layer(pose[:, :3], pose[:, 3:], out["mano_shape"]).joints.float()
    joints = joints * torch.tensor([-1.0, 1.0, 1.0])
    root = batch["keypoints_3d"][:, :1, :3]
    _camera_consistent(out, joints - joints[:, :1] + root, projection)
    return out


def mirrored_without_pose_flip(
    batch: Mapping[str, Any], projection: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> dict[str, Any]:
    """A horizontally flipped sample (3D x -> -x, 2D re-projected) whose ``mano_pose`` was kept."""
    out = _copy(batch)
    joints = batch["keypoints_3d"][..., :3] * torch.tensor([-1.0, 1.0, 1.0])
    _camera_consistent(out, joints, projection)
    if projection is None and "keypoints_2d" in out:
        out["keypoints_2d"][..., 0] *= -1.0
    return out


def plant(
    batch: Mapping[str, Any], *faults: Callable[[Mapping[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """Apply several faults in order (each a one-argument callable, e.g. a ``functools.partial``)."""
    out = _copy(batch)
    for fault in faults:
        out = fault(out)
    return out


def with_translation(batch: Mapping[str, Any], mano_layer: Any) -> dict[str, Any]:
    """Add ``mano_trans`` (B, 3) metres such that MANO(pose, shape) + trans lands on the batch's
    camera-frame joints (absolute ``mano_pose``, spec order)."""
    out = _copy(batch)
    pose = out["mano_pose"]
    with torch.no_grad():
        joints = mano_layer(pose[:, :3], pose[:, 3:], out["mano_shape"]).joints
    out["mano_trans"] = (out["keypoints_3d"][:, 0, :3] - joints[:, 0]) / 1000.0
    return out


def opengl_annotations(batch: Mapping[str, Any], mano_layer: Any) -> dict[str, Any]:
    """Raw HO3D-style annotations: joints, global orientation and ``mano_trans`` in the OpenGL
    frame (``diag(1,-1,-1)``), and the 2D projected from those joints (z < 0): mirrored in x
    through the principal point (the crop centre here)."""

    out = opengl_frame(batch)
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    rot = axis_angle_to_matrix(out["mano_pose"][:, :3])
    out["mano_pose"][:, :3] = matrix_to_axis_angle(flip @ rot)
    if "mano_trans" in out:
        root = rest_root_m(mano_layer, out["mano_shape"]).to(out["mano_trans"])
        out["mano_trans"] = (out["mano_trans"] + root) @ flip.T - root
    if "keypoints_2d" in out:
        out["keypoints_2d"][..., 0] *= -1.0
    return out


def rotate_2d(batch: Mapping[str, Any], samples: Sequence[int], degrees: float) -> dict[str, Any]:
    """The 2D of ``samples`` rotated by ``degrees`` about the crop centre (x toward y), as an
    augmentation that rotates the image and its 2D but leaves keypoints_3d and the pose."""
    out = _copy(batch)
    angle = torch.tensor(degrees * torch.pi / 180.0)
    rot = torch.stack([torch.cos(angle), -torch.sin(angle), torch.sin(angle), torch.cos(angle)])
    rot = rot.reshape(2, 2).to(out["keypoints_2d"])
    idx = list(samples)
    out["keypoints_2d"][idx, :, :2] = out["keypoints_2d"][idx, :, :2] @ rot.T
    return out


def flipped_without_pose(batch: Mapping[str, Any], samples: Sequence[int]) -> dict[str, Any]:
    """``samples`` are left hands the loader flipped to right ones (image, 2D, 3D) but whose
    ``mano_pose`` it kept: the pose is the left hand's (y, z of every axis-angle negated) and
    ``is_right`` is 0."""

    out = _copy(batch)
    idx = list(samples)
    out["mano_pose"][idx] = flip_pose(out["mano_pose"][idx])
    is_right = torch.ones(out["mano_pose"].shape[0])
    is_right[idx] = 0.0
    out["is_right"] = is_right
    return out
