"""Which MANO convention do ground-truth ``mano_pose``/``mano_shape`` follow? Ask the joints.

The MANO layer is run on the parameters read under each known convention, and its root-relative
joints are compared with the ground-truth 3D joints. The canonical convention of this project is
``mano_pose`` (B, 48) = absolute axis-angle (3 global orient + 45 hand, ``flat_hand_mean=True``)
for a right hand, joints in the spec's order. Variants tried:

- pose: ``absolute``; ``relative`` to ``hands_mean`` (smplx's default ``flat_hand_mean=False``);
  ``pca`` (45 PCA coefficients, absolute) and ``pca_relative``;
- hand: ``right``; ``left`` (a left hand fed to the right model: left(theta) is the mirror of
  right(theta with y, z of every axis-angle negated)); ``mirrored`` (joints mirrored, x -> -x,
  but the pose not flipped);
- joints of the ground truth in the spec's, MANO's or KeypointFusion's order (or one found by
  the joint-order detective), in the OpenCV or the OpenGL camera frame.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from utnet_diag.joints import KNOWN_ORDERS

AGREE_MM = 10.0  # mean root-relative joint error under which parameters and joints agree
POSE_VARIANTS = ("absolute", "relative", "pca", "pca_relative")
HAND_VARIANTS = ("right", "left", "mirrored", "unflipped")

FIXES = {
    "relative": "mano_pose[:, 3:] is relative to hands_mean: add hands_mean "
    "(or build MANO with flat_hand_mean=False consistently)",
    "pca": "mano_pose[:, 3:] holds 45 PCA coefficients: convert with "
    "hand_pose = coeffs @ hands_components (or use_pca=True)",
    "pca_relative": "mano_pose[:, 3:] holds 45 PCA coefficients relative to the mean: "
    "hand_pose = coeffs @ hands_components + hands_mean",
    "left": "these are left hands fed to the right MANO model: use MANO_LEFT, or mirror the "
    "sample (x -> -x for joints and image) and flip the pose (negate y and z of every axis-angle)",
    "mirrored": "the joints were mirrored (x -> -x) but the pose was not: when flipping a sample "
    "also negate y and z of every axis-angle in mano_pose",
    "unflipped": "the sample was flipped to a right hand but its pose was not: negate y and z of "
    "every axis-angle in mano_pose",
}


@dataclass(frozen=True)
class ManoConventionResult:
    """``errors_mm``: mean root-relative joint error (mm) of each (pose, hand, order) variant;
    ``best``: the variant with the lowest median error over samples, ``best_mm`` that median;
    ``as_given_mm``: the canonical variant's mean error;
    ``per_sample_mm`` (B,): per-sample error of the canonical variant; ``sample_hands`` (B,): for
    the best pose and order, the hand variant that fits each sample best, and
    ``sample_hands_mm`` (B,) its error (a batch that mixes flipped and unflipped samples)."""

    errors_mm: dict[tuple[str, str, str], float]
    best: tuple[str, str, str]
    best_mm: float
    as_given_mm: float
    per_sample_mm: np.ndarray
    orders: dict[str, tuple[int, ...]] = field(default_factory=dict)
    sample_hands: np.ndarray | None = None
    sample_hands_mm: np.ndarray | None = None

    @property
    def agrees(self) -> bool:
        return self.as_given_mm < AGREE_MM and bool((self.per_sample_mm < AGREE_MM).all())

    def fix(self) -> str:
        """What to change, for the best variant, in words."""
        pose, hand, order = self.best
        parts = [FIXES[p] for p in (pose, hand) if p in FIXES]
        order, _, frame = order.partition("+")
        if order != "spec":
            perm = list(self.orders.get(order, ()))
            parts.append(
                f"the ground-truth joints are in {order} order: keypoints_3d[:, {perm}] "
                "gives the spec's order"
            )
        if frame == "opengl":
            parts.append("keypoints_3d is in the OpenGL camera frame: flip it with diag(1,-1,-1)")
        return "; ".join(parts)


def flip_pose(pose: Any) -> Any:
    """Mirror axis-angle poses (..., 3k): negate y and z of every rotation vector."""
    shape = pose.shape
    flipped = pose.reshape(*shape[:-1], -1, 3).clone()
    flipped[..., 1:] = -flipped[..., 1:]
    return flipped.reshape(shape)


def _absolute_layer(mano_layer: Any) -> Any:
    layer = copy.copy(mano_layer)  # shares buffers; only the two flags differ
    layer.flat_hand_mean = True
    layer.use_pca = False
    return layer


def _hand_pose_readings(layer: Any, hand: Any) -> dict[str, Any]:
    """The (B, 45) hand pose read as absolute axis-angle, relative to ``hands_mean``, and (with 45
    PCA components) as PCA coefficients, plain or relative: reading -> absolute axis-angle."""
    readings = {"absolute": hand, "relative": hand + layer.hands_mean}
    comps = layer.hands_components
    if comps.shape[0] == 45:
        readings["pca"] = hand @ comps
        readings["pca_relative"] = hand @ comps + layer.hands_mean
    return readings


def _gt_readings(
    gt: Any, w: Any, orders: dict[str, tuple[int, ...]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The root-relative ground truth (and its weights) in every joint order, each also read in
    the OpenGL camera frame (``<order>+opengl``)."""
    import torch

    opengl = torch.tensor([1.0, -1.0, -1.0], device=gt.device)
    gt_orders, w_orders = {}, {}
    for name, perm in orders.items():
        rel = gt[:, list(perm)] - gt[:, list(perm)][:, :1]
        gt_orders[name] = rel
        gt_orders[f"{name}+opengl"] = rel * opengl
        w_orders[name] = w_orders[f"{name}+opengl"] = w[:, list(perm)]
    return gt_orders, w_orders


def _hand_joints(layer: Any, full: Any, betas: Any, hand_name: str) -> Any:
    """Root-relative (B, 21, 3) MANO joints of the (B, 48) pose read as ``hand_name``: the right
    hand, a left hand (pose flipped, joints mirrored), mirrored joints, or a pose that was not
    flipped with its sample."""
    import torch

    mirror = torch.tensor([-1.0, 1.0, 1.0], device=full.device)
    if hand_name in ("left", "unflipped"):
        flipped = flip_pose(full)
        joints = layer(flipped[:, :3], flipped[:, 3:], betas).joints
        if hand_name == "left":
            joints = joints * mirror
    else:
        joints = layer(full[:, :3], full[:, 3:], betas).joints
        if hand_name == "mirrored":
            joints = joints * mirror
    return joints - joints[:, :1]


def mano_convention(
    mano_layer: Any,
    mano_pose: Any,
    mano_shape: Any,
    keypoints_3d: Any,
    weights: Any = None,
    extra_orders: dict[str, tuple[int, ...]] | None = None,
) -> ManoConventionResult:
    """Compare MANO joints of (B, 48) ``mano_pose``/(B, 10) ``mano_shape`` with (B, 21, 3) mm
    ``keypoints_3d`` under every known convention. ``weights`` (B, 21) drop unannotated joints;
    ``extra_orders`` adds permutations to spec order (e.g. the one the joint-order check found).
    The ground truth is also read in the OpenGL camera frame (``diag(1,-1,-1)``)."""
    import torch

    layer = _absolute_layer(mano_layer)
    dev = layer.v_template.device
    pose = torch.as_tensor(mano_pose, dtype=torch.float32, device=dev)
    betas = torch.as_tensor(mano_shape, dtype=torch.float32, device=dev)
    gt = torch.as_tensor(keypoints_3d, dtype=torch.float32, device=dev)[..., :3]
    w = (
        torch.ones(gt.shape[:2], device=dev)
        if weights is None
        else torch.as_tensor(weights, dtype=torch.float32, device=dev)
    )
    hand_by_variant = _hand_pose_readings(layer, pose[:, 3:])
    orders = {**KNOWN_ORDERS, **(extra_orders or {})}
    gt_orders, w_orders = _gt_readings(gt, w, orders)
    canonical = ("absolute", "right", "spec")
    errors: dict[tuple[str, str, str], float] = {}
    per_sample: dict[tuple[str, str, str], torch.Tensor] = {}

    def as_given_agrees() -> bool:
        return canonical in per_sample and bool((per_sample[canonical] < AGREE_MM).all())

    with torch.no_grad():
        for pose_name, hand_pose in hand_by_variant.items():
            full = torch.cat([pose[:, :3], hand_pose], 1)
            for hand_name in HAND_VARIANTS:
                joints = _hand_joints(layer, full, betas, hand_name)
                for order, target in gt_orders.items():
                    dist = (joints - target).norm(dim=-1)
                    ww = w_orders[order]
                    sample = (dist * ww).sum(-1) / ww.sum(-1).clamp_min(1e-9)
                    key = (pose_name, hand_name, order)
                    per_sample[key] = sample
                    errors[key] = float(sample.mean())
                if as_given_agrees():
                    break  # every sample agrees as given: no need to try other conventions
            if as_given_agrees():
                break
    # the best reading by the median sample: a few samples of another convention (a flipped
    # sample whose pose was kept) do not hide the batch's own
    medians = {k: float(v.median()) for k, v in per_sample.items()}
    best = min(medians, key=lambda k: medians[k])
    if medians[best] > medians[canonical] - 1e-6:
        best = canonical
    # per sample, the hand variant that fits best for the best pose and joint order
    hands = [h for h in HAND_VARIANTS if (best[0], h, best[2]) in per_sample]
    table = torch.stack([per_sample[(best[0], h, best[2])] for h in hands], 0)  # (H, B)
    choice = table.argmin(0)
    return ManoConventionResult(
        errors_mm=errors,
        best=best,
        best_mm=medians[best],
        as_given_mm=errors[canonical],
        per_sample_mm=per_sample[canonical].cpu().numpy(),
        orders=orders,
        sample_hands=np.array([hands[int(i)] for i in choice.cpu()]),
        sample_hands_mm=table.min(0).values.cpu().numpy(),
    )


TRANSLATION_VARIANTS = ("metres", "millimetres", "opengl")


@dataclass(frozen=True)
class TranslationResult:
    """Does ``mano_trans`` place MANO's hand on the camera-frame joints? ``errors_mm``: mean
    absolute joint error (mm) per reading of the translation (``metres`` as MANO takes it,
    ``millimetres``, ``opengl``: in the OpenGL frame while pose and joints are OpenCV);
    ``per_sample_mm`` (B,): error as given (metres)."""

    errors_mm: dict[str, float]
    best: str
    per_sample_mm: np.ndarray

    @property
    def agrees(self) -> bool:
        return bool((self.per_sample_mm < AGREE_MM).all())


def rest_root_m(mano_layer: Any, mano_shape: Any) -> Any:
    """(B, 3) MANO's root joint at rest for each betas, in metres (what MANO rotates about)."""
    import torch

    layer = _absolute_layer(mano_layer)
    betas = torch.as_tensor(mano_shape, dtype=torch.float32, device=layer.v_template.device)
    zero = torch.zeros(betas.shape[0], 3, device=betas.device)
    with torch.no_grad():
        joints = layer(zero, torch.zeros(betas.shape[0], 45, device=betas.device), betas).joints
    return joints[:, 0] / 1000.0


def translation_convention(
    mano_layer: Any, mano_pose: Any, mano_shape: Any, mano_trans: Any, keypoints_3d: Any,
    weights: Any = None,
) -> TranslationResult:  # fmt: skip
    """Compare MANO(pose, shape) + ``mano_trans`` (B, 3) with camera-frame ``keypoints_3d``
    (B, 21, 3) mm, spec order; ``mano_pose`` absolute axis-angle (B, 48) in the joints' frame."""
    import torch

    layer = _absolute_layer(mano_layer)
    dev = layer.v_template.device
    pose = torch.as_tensor(mano_pose, dtype=torch.float32, device=dev)
    betas = torch.as_tensor(mano_shape, dtype=torch.float32, device=dev)
    trans = torch.as_tensor(mano_trans, dtype=torch.float32, device=dev).reshape(-1, 3)
    gt = torch.as_tensor(keypoints_3d, dtype=torch.float32, device=dev)[..., :3]
    w = torch.ones(gt.shape[:2], device=dev) if weights is None else torch.as_tensor(
        weights, dtype=torch.float32, device=dev
    )  # fmt: skip
    root = rest_root_m(mano_layer, mano_shape)
    flip = torch.tensor([1.0, -1.0, -1.0], device=dev)
    readings = {
        "metres": trans,
        "millimetres": trans / 1000.0,
        "opengl": (trans + root) * flip - root,
    }
    errors: dict[str, float] = {}
    per_sample: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, t in readings.items():
            joints = layer(pose[:, :3], pose[:, 3:], betas, transl=t).joints
            dist = (joints - gt).norm(dim=-1)
            sample = (dist * w).sum(-1) / w.sum(-1).clamp_min(1e-9)
            per_sample[name], errors[name] = sample, float(sample.mean())
    best = min(errors, key=lambda k: errors[k])
    if errors[best] > errors["metres"] - 1e-6:
        best = "metres"
    return TranslationResult(errors, best, per_sample["metres"].cpu().numpy())
