"""A synthetic sample batch from MANO, rendered to RGB-D crops, and the ``make-sample`` folder.

Ground truth, exactly (another check relies on it):

* ``mano_pose`` (B,48): absolute axis-angle, global orient (3) + 15 hand joints (45), for a
  ``ManoLayer(flat_hand_mean=True)``; ``mano_shape`` (B,10).
* ``keypoints_3d`` (B,21,4) and ``vertices_3d`` (B,778,3): MANO output plus a camera-frame
  translation ``t`` (mm), i.e. camera-frame millimetres, spec joint order, conf 1.
  ``t`` puts the hand's bounding-box centre on the optical axis (plus a small jitter) at the
  depth that makes it span a random 45-60 % of the crop.
* ``keypoints_2d`` (B,21,3): the pinhole projection of those camera-frame joints with the
  WiLoR constants, principal point at the crop centre and conf 1:
  ``keypoints_2d[..., :2] = (focal_length / crop_size) * X[..., :2] / X[..., 2:3]``
  (``focal_length`` 5000, ``crop_size`` 256). This equals the reference model's projection
  with camera translation ``t`` (:func:`utnet_diag.model.reference.perspective_projection`).
* Images (H, W): crop coordinate ``x`` in [-0.5, 0.5] maps to pixel column ``x * H + W / 2``
  and row ``y * H + H / 2`` (the 256 crop is H pixels tall; a W < H image shows its centre).
  ``depth`` (B,1,H,W) is in metres: a z-buffer splat of the mesh vertices on a background
  plane 0.4 m behind the hand. ``rgb`` (B,3,H,W) is shaded skin on a random smooth background,
  normalized with the ImageNet mean and std. ``n_i`` and ``has_mano`` are ones.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from utnet_diag.errors import InputError
from utnet_diag.io.batch import Batch, load_batch, save_batch
from utnet_diag.mano import ManoLayer, write_synthetic_mano
from utnet_diag.model.checkpoint import key_report, load_checkpoint, save_checkpoint
from utnet_diag.model.reference import DEFAULT_MEAN_GLOBAL_ORIENT, ReferenceConfig, build_reference
from utnet_diag.model.rotation import axis_angle_to_matrix, matrix_to_axis_angle
from utnet_diag.report.result import Report
from utnet_diag.report.sections import SampleSection
from utnet_diag.spec import DEFAULT_PRESET, PRESETS

FOCAL_LENGTH = 5000.0
CROP_SIZE = 256
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SKIN = (0.87, 0.66, 0.55)
BACKGROUND_OFFSET_M = 0.4
SAMPLE_FILES = ("MANO_RIGHT.pkl", "reference.pt", "batch.pt", "config.yaml")


def _uniform(gen: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen)


def random_mano_params(
    n: int, gen: torch.Generator, pose_std: float = 0.2, shape_std: float = 0.8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plausible MANO parameters: (n,48) absolute axis-angle and (n,10) betas.

    Global orient: the reference model's mean orientation (palm to the camera) turned by a
    random rotation of up to 0.6 rad. Hand joints: Gaussian axis-angle, std ``pose_std`` rad,
    clipped to +-0.6 rad. Betas: Gaussian, std ``shape_std``, clipped to +-2.
    """
    base = axis_angle_to_matrix(torch.tensor(DEFAULT_MEAN_GLOBAL_ORIENT))
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    angle = _uniform(gen, (n, 1), 0.0, 0.6)
    orient = matrix_to_axis_angle(axis_angle_to_matrix(axis * angle) @ base)
    hand = (torch.randn(n, 45, generator=gen) * pose_std).clamp(-0.6, 0.6)
    betas = (torch.randn(n, 10, generator=gen) * shape_std).clamp(-2.0, 2.0)
    return torch.cat((orient, hand), dim=1), betas


def project(
    points_mm: torch.Tensor, focal_length: float = FOCAL_LENGTH, crop_size: int = CROP_SIZE
) -> torch.Tensor:
    """(..., 3) camera-frame points -> (..., 2) normalized crop coordinates (pinhole, centre 0)."""
    return (focal_length / crop_size) * points_mm[..., :2] / points_mm[..., 2:3]


def place_in_crop(
    vertices_mm: torch.Tensor,
    gen: torch.Generator,
    image_size: tuple[int, int],
    focal_length: float = FOCAL_LENGTH,
    crop_size: int = CROP_SIZE,
    fill: tuple[float, float] = (0.45, 0.6),
    jitter: float = 0.04,
) -> torch.Tensor:
    """(B,3) mm translations that put each hand in view, spanning ``fill`` of the crop height.

    The image is ``W/H`` of the crop wide, so the width is held to ``fill * W / H``.
    """
    h, w = image_size
    n = vertices_mm.shape[0]
    lo, hi = vertices_mm.min(dim=1).values, vertices_mm.max(dim=1).values
    centre, extent = (lo + hi) / 2, hi - lo
    target = _uniform(gen, (n,), *fill)
    # projected extent ~ (f / crop) * extent / Z  ->  Z that meets both the height and the width
    z = (focal_length / crop_size) * torch.maximum(
        extent[:, 1] / target, extent[:, 0] / (target * w / h)
    )
    offset = _uniform(gen, (n, 2), -jitter, jitter) * z[:, None] * crop_size / focal_length
    return torch.stack(
        (offset[:, 0] - centre[:, 0], offset[:, 1] - centre[:, 1], z - centre[:, 2]), dim=-1
    )


def render_rgbd(
    vertices_mm: torch.Tensor,
    image_size: tuple[int, int],
    gen: torch.Generator,
    focal_length: float = FOCAL_LENGTH,
    crop_size: int = CROP_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-buffer splat of camera-frame vertices (B,V,3) mm.

    Returns rgb (B,3,H,W) in [0, 1] and depth (B,1,H,W) metres (hand, else background plane).
    """
    h, w = image_size
    b = vertices_mm.shape[0]
    radius = max(1, round(h / 48))
    uv = project(vertices_mm, focal_length, crop_size)
    cols = (uv[..., 0] * h + w / 2).floor().long()
    rows = (uv[..., 1] * h + h / 2).floor().long()
    z_m = vertices_mm[..., 2] / 1000.0
    dr, dc = torch.meshgrid(
        torch.arange(-radius, radius + 1), torch.arange(-radius, radius + 1), indexing="ij"
    )
    disc = (dr**2 + dc**2) <= radius**2 + radius
    dr, dc = dr[disc], dc[disc]
    r = rows[..., None] + dr
    c = cols[..., None] + dc
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    flat = (torch.arange(b)[:, None, None] * h * w + r * w + c)[inside]
    zs = z_m[..., None].expand_as(r)[inside]
    zbuf = torch.full((b * h * w,), float("inf"))
    zbuf = zbuf.scatter_reduce(0, flat, zs, reduce="amin").reshape(b, 1, h, w)
    hand = torch.isfinite(zbuf)

    centre_z = z_m.mean(dim=1).reshape(b, 1, 1, 1)
    ys = torch.linspace(-1, 1, h).reshape(1, 1, h, 1)
    xs = torch.linspace(-1, 1, w).reshape(1, 1, 1, w)
    tilt = _uniform(gen, (b, 2, 1, 1), -0.05, 0.05)
    background = centre_z + BACKGROUND_OFFSET_M + tilt[:, :1] * xs + tilt[:, 1:] * ys
    depth = torch.where(hand, zbuf, background)

    base = _uniform(gen, (b, 3, 1, 1), 0.15, 0.85)
    grad = _uniform(gen, (b, 3, 1, 1), -0.2, 0.2)
    rgb_bg = base + grad * (xs + ys) / 2 + 0.03 * torch.randn(b, 3, h, w, generator=gen)
    z_hand = torch.where(hand, zbuf, centre_z)
    z_near = z_hand.amin(dim=(2, 3), keepdim=True)
    z_far = torch.where(hand, zbuf, z_near).amax(dim=(2, 3), keepdim=True)
    shade = 1.0 - 0.4 * (z_hand - z_near) / (z_far - z_near).clamp(min=1e-6)
    skin = torch.tensor(SKIN).reshape(1, 3, 1, 1) * shade
    rgb = torch.where(hand, skin + 0.02 * torch.randn(b, 3, h, w, generator=gen), rgb_bg)
    return rgb.clamp(0.0, 1.0), depth


def normalize_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) in [0,1] -> ImageNet-normalized."""
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    return (rgb - mean) / std


def _default_mano():

    return ManoLayer()


def make_sample_batch(
    n: int = 8,
    seed: int = 0,
    image_size: tuple[int, int] = (64, 48),
    mano: Any = None,
    focal_length: float = FOCAL_LENGTH,
    crop_size: int = CROP_SIZE,
    pose_std: float = 0.2,
    shape_std: float = 0.8,
) -> Batch:
    """A consistent synthetic batch of ``n`` hands (see the module docstring for the frames).

    Deterministic for a given ``seed``; leaves the global RNG untouched.
    """
    if n < 1:
        raise InputError(f"the sample batch needs at least 1 sample, got {n}")
    gen = torch.Generator().manual_seed(seed)
    mano = mano if mano is not None else _default_mano()
    pose, betas = random_mano_params(n, gen, pose_std, shape_std)
    with torch.no_grad():
        out = mano(pose[:, :3], pose[:, 3:], betas)
    joints, vertices = out.joints.float().cpu(), out.vertices.float().cpu()
    translation = place_in_crop(vertices, gen, image_size, focal_length, crop_size)
    joints_cam = joints + translation[:, None]
    vertices_cam = vertices + translation[:, None]
    keypoints_2d = project(joints_cam, focal_length, crop_size)
    rgb, depth = render_rgbd(vertices_cam, image_size, gen, focal_length, crop_size)
    ones = torch.ones(n)
    tensors = {
        "rgb": normalize_rgb(rgb),
        "depth": depth,
        "n_i": ones.clone(),
        "keypoints_2d": torch.cat((keypoints_2d, torch.ones(n, 21, 1)), dim=-1),
        "keypoints_3d": torch.cat((joints_cam, torch.ones(n, 21, 1)), dim=-1),
        "mano_pose": pose,
        "mano_shape": betas,
        "has_mano": ones.clone(),
        "vertices_3d": vertices_cam,
    }
    notes = [
        f"synthetic MANO batch: seed {seed}, {n} samples, {image_size[0]}x{image_size[1]} RGB-D,"
        f" 2D = ({focal_length:g}/{crop_size}) * X/Z of camera-frame joints"
    ]
    ids = [f"synthetic-{seed}-{i}" for i in range(n)]
    return Batch(tensors, ids, source=f"synthetic (seed {seed})", notes=notes, format="canonical")


@functools.lru_cache(maxsize=1)
def _default_tensors() -> tuple[dict[str, torch.Tensor], list[str], list[str]]:

    batch = make_sample_batch(8, 0, tuple(ReferenceConfig.preset("tiny").img_size))
    return batch.tensors, batch.sample_ids, batch.notes


def default_batch() -> Batch:
    """The embedded default batch: 8 synthetic hands (seed 0) at the tiny reference model's size.

    Built once per process; each call returns fresh tensors (callers may modify them).
    """
    tensors, ids, notes = _default_tensors()
    return Batch(
        {k: v.clone() for k, v in tensors.items()},
        list(ids),
        source="embedded default batch",
        notes=list(notes),
    )


CONFIG_TEMPLATE = """\
# UTNet-style config written by `utnet-diag make-sample`.
# model: the reference UTNet's size (keys as UTNet's create_model); mano_path is relative here.
model:
{model}
# loss: the tool's default weights (the spec's shipped config/config.yaml; `utnet-diag gate`
# without --config uses the same). The spec flags w_2d and w_3d_joint as too small and
# recommends 1.0 for both (sections 5.2 / 9.1): the loss_weights check says so.
loss:
{loss}
  shape_weight: 1.0
  pose_weight: 0.0
"""


def _yaml_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return repr(value)


def make_sample(
    out_dir: str | Path, n: int = 8, seed: int = 0, preset: str = "tiny", force: bool = False
):
    """Write ``MANO_RIGHT.pkl``, ``reference.pt``, ``batch.pt`` and ``config.yaml`` into ``out_dir``.

    Refuses to overwrite existing files unless ``force``. Everything is written into a
    temporary folder first and moved into place at the end, so a failure leaves no partial
    file. Returns a Report with the files written and a ``checkpoint_keys`` check of the
    checkpoint read back.
    """

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("output folder is a file", path=str(out))
    existing = [name for name in SAMPLE_FILES if (out / name).exists()]
    if existing and not force:
        raise InputError(
            f"refusing to overwrite {', '.join(existing)}",
            path=str(out),
            hint="choose an empty folder or pass --force",
        )
    config = ReferenceConfig.preset(preset)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".make-sample-", dir=out))
    try:
        write_synthetic_mano(staging / "MANO_RIGHT.pkl")
        mano = ManoLayer(path=staging / "MANO_RIGHT.pkl")
        model = build_reference(config, mano=mano, seed=seed)
        save_checkpoint(model, staging / "reference.pt", config.to_dict(), seed=seed)
        batch = make_sample_batch(n, seed, tuple(config.img_size), mano=mano)
        save_batch({**batch.tensors, "sample_id": list(batch.sample_ids)}, staging / "batch.pt")
        model_lines = [f"  {k}: {_yaml_value(v)}" for k, v in config.to_dict().items()]
        model_lines.append("  mano_path: 'MANO_RIGHT.pkl'")
        (staging / "config.yaml").write_text(
            CONFIG_TEMPLATE.format(
                model="\n".join(model_lines),
                loss="\n".join(
                    f"  {k}: {_yaml_value(v)}" for k, v in PRESETS[DEFAULT_PRESET].items()
                ),
            ),
            encoding="utf-8",
        )
        # Read back what was written, as a user would.
        check = key_report(model, load_checkpoint(staging / "reference.pt").state_dict)
        reloaded = load_batch(staging / "batch.pt")
        files = {}
        for name in SAMPLE_FILES:
            target = out / name
            (staging / name).replace(target)
            files[name] = {"path": str(target), "bytes": target.stat().st_size}
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Report(
        command="make-sample",
        checks=[check],
        sections={
            "sample": SampleSection(
                folder=str(out),
                samples=reloaded.size,
                seed=seed,
                image_size=list(config.img_size),
                model=f"reference UTNet ({preset})",
                parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
                files=files,
            )
        },
    )
