"""A procedural right hand: 21 joints in the spec's order, in millimetres, seen by a pinhole camera.

No MANO model is needed: the hand is built from adult bone lengths (wrist to middle1 about
90 mm) with random finger flexion and abduction, a random global rotation and a camera-frame
translation 400-700 mm in front of the camera (OpenCV: +x right, +y down, +z forward). The 2D
keypoints are the projection into a square crop around the hand, normalized to [-0.5, 0.5].

``make_skeleton_batch`` returns a clean batch with every canonical key; ``plant_fault`` returns a
copy with one known fault, so tests can assert that the right check fails.

Note: ``mano_pose``/``mano_shape`` are plausible MANO parameters (small axis-angles in radians,
|beta| < 2) but they are not the parameters of this skeleton; no MANO layer produced the joints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from utnet_diag.joints import FINGER_JOINTS, FINGERS, NUM_JOINTS

# Wrist-relative base joint of each finger in the hand frame (mm): x toward the thumb side,
# y from the wrist toward the fingers, z = x cross y out of the palm (a right hand).
FINGER_BASES_MM: dict[str, tuple[float, float, float]] = {
    "thumb": (20.0, 24.0, 10.0),  # CMC
    "index": (24.0, 85.0, 0.0),  # MCP
    "middle": (2.0, 90.0, 0.0),
    "ring": (-18.0, 84.0, 0.0),
    "pinky": (-35.0, 75.0, 0.0),
}
# Bone lengths from the base joint to the tip, three bones a finger (mm).
FINGER_BONES_MM: dict[str, tuple[float, float, float]] = {
    "thumb": (42.0, 32.0, 27.0),
    "index": (40.0, 24.0, 21.0),
    "middle": (45.0, 28.0, 23.0),
    "ring": (42.0, 27.0, 23.0),
    "pinky": (33.0, 20.0, 20.0),
}
# Rest direction of each finger's first bone, and the direction its flexion curls toward.
_REST_DIRECTION = {
    "thumb": (0.75, 0.55, 0.35),
    "index": (0.12, 1.0, 0.0),
    "middle": (0.0, 1.0, 0.0),
    "ring": (-0.1, 1.0, 0.0),
    "pinky": (-0.22, 1.0, 0.0),
}
_CURL_TOWARD = {
    "thumb": (-0.6, 0.2, 0.8),
    "index": (0.0, 0.0, 1.0),
    "middle": (0.0, 0.0, 1.0),
    "ring": (0.0, 0.0, 1.0),
    "pinky": (0.0, 0.0, 1.0),
}
MAX_FLEXION_RAD = (1.2, 1.5, 1.0)  # MCP, PIP, DIP (thumb: CMC, MCP, IP)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SkeletonSample:
    """Procedural hands and their camera.

    ``joints_cam``: (B,21,3) mm camera frame; ``pixels``: (B,21,2) image pixels;
    ``crop_center``: (B,2) px; ``crop_size``: (B,) px (square crop side);
    ``keypoints_2d``: (B,21,2) normalized crop coordinates in [-0.5, 0.5];
    ``rotation``: (B,3,3) hand-to-camera rotation; ``focal``: px; ``principal``: (2,) px.
    """

    joints_cam: torch.Tensor
    pixels: torch.Tensor
    crop_center: torch.Tensor
    crop_size: torch.Tensor
    keypoints_2d: torch.Tensor
    rotation: torch.Tensor
    focal: float
    principal: tuple[float, float]


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True)


def _rotate(v: torch.Tensor, axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: rotate (B,3) vectors about (B,3) unit axes by (B,) radians."""
    cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    dot = (axis * v).sum(-1, keepdim=True)
    return v * cos + torch.linalg.cross(axis, v) * sin + axis * dot * (1 - cos)


def random_rotations(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n,3,3) rotation matrices, uniform on SO(3) (normalized Gaussian quaternions)."""
    q = _unit(torch.randn(n, 4, generator=generator, dtype=torch.float64))
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def matrix_to_axis_angle(rotation: torch.Tensor) -> torch.Tensor:
    """(N,3,3) rotation matrices -> (N,3) axis-angle in radians (angle in [0, pi])."""
    r = rotation.double()
    cos = ((r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    skew = torch.stack(
        [r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]], -1
    )
    sin = torch.sin(angle)
    axis = torch.where(
        (sin > 1e-6)[:, None], skew / (2 * sin.clamp_min(1e-12))[:, None], torch.zeros_like(skew)
    )
    # Near pi the skew part vanishes: take the axis from the diagonal of (R + I) / 2.
    near_pi = angle > math.pi - 1e-3
    if bool(near_pi.any()):
        sym = (r[near_pi] + torch.eye(3, dtype=r.dtype)) / 2
        col = sym.diagonal(dim1=-2, dim2=-1).argmax(-1)
        pick = sym[torch.arange(len(col)), :, col]
        axis[near_pi] = _unit(pick)
    return (axis * angle[:, None]).to(rotation.dtype)


def hand_local_joints(n: int, generator: torch.Generator, flexion_scale: float = 1.0):
    """(n,21,3) mm joints of right hands in the hand frame, wrist at the origin, spec order."""
    joints = torch.zeros(n, NUM_JOINTS, 3, dtype=torch.float64)
    for finger in FINGERS:
        ids = FINGER_JOINTS[finger]
        base = torch.tensor(FINGER_BASES_MM[finger], dtype=torch.float64)
        # Small per-hand variation of the palm: +-6% scale on base positions.
        joints[:, ids[0]] = base * (1 + 0.06 * (2 * torch.rand(n, 1, generator=generator) - 1))
        rest = _unit(torch.tensor(_REST_DIRECTION[finger], dtype=torch.float64)).expand(n, 3)
        toward = torch.tensor(_CURL_TOWARD[finger], dtype=torch.float64).expand(n, 3)
        curl_axis = _unit(torch.linalg.cross(rest, toward))
        # Abduction: a small swing of the whole finger about the palm normal.
        spread = 0.15 * (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1)
        palm_normal = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(n, 3)
        direction = _rotate(rest, palm_normal, spread)
        curl_axis = _rotate(curl_axis, palm_normal, spread)
        grip = torch.rand(n, generator=generator, dtype=torch.float64)  # how closed the hand is
        bones = FINGER_BONES_MM[finger]
        for k in range(3):
            jitter = torch.rand(n, generator=generator, dtype=torch.float64)
            angle = flexion_scale * MAX_FLEXION_RAD[k] * (0.7 * grip + 0.3 * jitter)
            direction = _rotate(direction, curl_axis, angle if k else angle * 0.8)
            length = bones[k] * (1 + 0.05 * (2 * torch.rand(n, generator=generator) - 1))
            joints[:, ids[k + 1]] = joints[:, ids[k]] + direction * length.reshape(n, 1)
    return joints


def make_skeleton(
    n: int = 8,
    seed: int = 0,
    focal: float = 600.0,
    principal: tuple[float, float] = (320.0, 240.0),
    depth_range_mm: tuple[float, float] = (400.0, 700.0),
    crop_scale: tuple[float, float] = (1.3, 1.6),
) -> SkeletonSample:
    """``n`` procedural right hands in the camera frame, projected and cropped (see module doc)."""
    gen = torch.Generator().manual_seed(seed)
    local = hand_local_joints(n, gen)
    centre = local.mean(dim=1, keepdim=True)
    rotation = random_rotations(n, gen)
    z = depth_range_mm[0] + (depth_range_mm[1] - depth_range_mm[0]) * torch.rand(
        n, generator=gen, dtype=torch.float64
    )
    xy = (2 * torch.rand(n, 2, generator=gen, dtype=torch.float64) - 1) * 0.15 * z[:, None]
    translation = torch.cat([xy, z[:, None]], dim=1)
    joints_cam = (local - centre) @ rotation.transpose(1, 2) + translation[:, None, :]
    pp = torch.tensor(principal, dtype=torch.float64)
    pixels = focal * joints_cam[..., :2] / joints_cam[..., 2:3] + pp
    low, high = pixels.amin(dim=1), pixels.amax(dim=1)
    crop_center = (low + high) / 2
    scale = crop_scale[0] + (crop_scale[1] - crop_scale[0]) * torch.rand(
        n, generator=gen, dtype=torch.float64
    )
    crop_size = (high - low).amax(dim=1) * scale
    keypoints_2d = (pixels - crop_center[:, None, :]) / crop_size[:, None, None]
    return SkeletonSample(
        joints_cam=joints_cam.float(),
        pixels=pixels.float(),
        crop_center=crop_center.float(),
        crop_size=crop_size.float(),
        keypoints_2d=keypoints_2d.float(),
        rotation=rotation.float(),
        focal=focal,
        principal=principal,
    )


def _render(sample: SkeletonSample, image_size: tuple[int, int], gen: torch.Generator):
    """A tiny RGB (ImageNet-normalized) and depth (metres) image: joints as blobs on a background."""
    n = sample.keypoints_2d.shape[0]
    h, w = image_size
    side = max(h, w)
    ys = torch.arange(h, dtype=torch.float32)[:, None]
    xs = torch.arange(w, dtype=torch.float32)[None, :]
    # Crop coordinates -> pixels of a (side x side) square centred on the (h, w) image.
    px = (sample.keypoints_2d[..., 0] + 0.5) * side - (side - w) / 2
    py = (sample.keypoints_2d[..., 1] + 0.5) * side - (side - h) / 2
    sigma = side / 40
    d2 = (xs[None, None] - px[..., None, None]) ** 2 + (ys[None, None] - py[..., None, None]) ** 2
    blobs = torch.exp(-d2 / (2 * sigma**2)).amax(dim=1)  # (n, h, w)
    background = 0.2 + 0.1 * torch.rand(n, 3, 1, 1, generator=gen)
    skin = torch.tensor([0.85, 0.65, 0.55])[None, :, None, None]
    noise = 0.03 * torch.rand(n, 3, h, w, generator=gen)
    rgb01 = (background * (1 - blobs[:, None]) + skin * blobs[:, None] + noise).clamp(0, 1)
    mean = torch.tensor(IMAGENET_MEAN)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD)[None, :, None, None]
    rgb = (rgb01 - mean) / std
    hand_depth_m = sample.joints_cam[..., 2].mean(dim=1) / 1000
    background_m = 1.2 + 0.3 * torch.rand(n, generator=gen)
    depth = torch.where(blobs > 0.3, hand_depth_m[:, None, None], background_m[:, None, None])
    return rgb, depth[:, None]


def make_skeleton_batch(
    n: int = 8,
    seed: int = 0,
    image_size: tuple[int, int] = (64, 48),
    with_conf: bool = True,
) -> dict[str, torch.Tensor]:
    """A clean canonical batch of ``n`` procedural right hands.

    Keys: ``rgb`` (n,3,H,W) ImageNet-normalized; ``depth`` (n,1,H,W) metres; ``n_i`` (n,) ones;
    ``keypoints_2d`` (n,21,3) crop-normalized x, y and conf 1; ``keypoints_3d`` (n,21,4) mm camera
    frame and conf 1; ``mano_pose`` (n,48) axis-angle radians; ``mano_shape`` (n,10), |beta| < 2;
    ``has_mano`` (n,) ones. ``with_conf=False`` gives (n,21,2) and (n,21,3) keypoints.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    sample = make_skeleton(n, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    rgb, depth = _render(sample, image_size, gen)
    ones = torch.ones(n, NUM_JOINTS, 1)
    kp2d, kp3d = sample.keypoints_2d, sample.joints_cam
    if with_conf:
        kp2d, kp3d = torch.cat([kp2d, ones], -1), torch.cat([kp3d, ones], -1)
    global_orient = matrix_to_axis_angle(sample.rotation)
    hand_pose = (0.25 * torch.randn(n, 45, generator=gen)).clamp(-0.8, 0.8)
    return {
        "rgb": rgb,
        "depth": depth,
        "n_i": torch.ones(n),
        "keypoints_2d": kp2d,
        "keypoints_3d": kp3d,
        "mano_pose": torch.cat([global_orient, hand_pose], dim=1),
        "mano_shape": (0.6 * torch.randn(n, 10, generator=gen)).clamp(-1.9, 1.9),
        "has_mano": torch.ones(n),
    }


def _copy(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _nan_kp3d(b: dict[str, torch.Tensor]) -> None:
    b["keypoints_3d"][min(1, len(b["keypoints_3d"]) - 1), 5, 2] = float("nan")


def _inf_rgb(b: dict[str, torch.Tensor]) -> None:
    b["rgb"][0, 1, 3, 4] = float("inf")


def _conf_out_of_range(b: dict[str, torch.Tensor]) -> None:
    b["keypoints_2d"][0, 8, 2] = 2.0
    b["keypoints_3d"][-1, 3, 3] = -1.0


def _kp2d_pixels(b: dict[str, torch.Tensor]) -> None:
    b["keypoints_2d"][..., :2] = (b["keypoints_2d"][..., :2] + 0.5) * 256.0


def _kp2d_unit01(b: dict[str, torch.Tensor]) -> None:
    b["keypoints_2d"][..., :2] += 0.5


def _kp2d_pm1(b: dict[str, torch.Tensor]) -> None:
    b["keypoints_2d"][..., :2] *= 2.0


def _kp3d_scale(factor: float) -> Callable[[dict[str, torch.Tensor]], None]:
    def plant(b: dict[str, torch.Tensor]) -> None:
        b["keypoints_3d"][..., :3] *= factor

    return plant


def _rgb_0_255(b: dict[str, torch.Tensor]) -> None:
    mean = torch.tensor(IMAGENET_MEAN)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD)[None, :, None, None]
    b["rgb"] = ((b["rgb"] * std + mean) * 255.0).round()


def _mano_pose_degrees(b: dict[str, torch.Tensor]) -> None:
    b["mano_pose"] = torch.rad2deg(b["mano_pose"])


def _betas_huge(b: dict[str, torch.Tensor]) -> None:
    b["mano_shape"] = b["mano_shape"] * 40.0


FAULTS: dict[str, Callable[[dict[str, torch.Tensor]], None]] = {
    "nan_kp3d": _nan_kp3d,
    "inf_rgb": _inf_rgb,
    "conf_out_of_range": _conf_out_of_range,
    "kp2d_pixels": _kp2d_pixels,
    "kp2d_unit01": _kp2d_unit01,
    "kp2d_pm1": _kp2d_pm1,
    "kp3d_metres": _kp3d_scale(0.001),
    "kp3d_centimetres": _kp3d_scale(0.1),
    "rgb_0_255": _rgb_0_255,
    "mano_pose_degrees": _mano_pose_degrees,
    "betas_huge": _betas_huge,
}
# The batch check each fault must trip.
FAULT_CHECK: dict[str, str] = {
    "nan_kp3d": "finite",
    "inf_rgb": "finite",
    "conf_out_of_range": "conf_range",
    "kp2d_pixels": "kp2d_range",
    "kp2d_unit01": "kp2d_range",
    "kp2d_pm1": "kp2d_range",
    "kp3d_metres": "kp3d_units",
    "kp3d_centimetres": "kp3d_units",
    "rgb_0_255": "image_range",
    "mano_pose_degrees": "mano_pose",
    "betas_huge": "mano_shape",
}


def plant_fault(batch: Mapping[str, torch.Tensor], fault: str) -> dict[str, torch.Tensor]:
    """A copy of ``batch`` (canonical keys, with conf columns) with one known fault planted.

    Faults: see ``FAULTS`` (``FAULT_CHECK`` names the check each one must trip).
    """
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    out = _copy(batch)
    FAULTS[fault](out)
    return out
