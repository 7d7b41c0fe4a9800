"""The reference UTNet: a small, correct implementation of the spec's architecture.

Stages (top-level children, in order):

* ``fusion``: RGB and depth patch embeddings fused per token (concatenate, project), plus
  position embeddings. A sample without depth (``n_i = 0`` or ``depth=None``) uses RGB alone.
* ``backbone``: a ViT (pre-norm transformer blocks, final LayerNorm) over the fused tokens.
  Its output tokens (B, N, D) are the trunk/heads boundary, kept as ``last_trunk_features``.
* ``coarse_head``: pooled tokens -> coarse MANO pose (16 joint rotations), shape (10) and a
  weak-perspective camera (s, tx, ty), as offsets from mean parameters (HaMeR/WiLoR style).
* ``refiner``: a GCN over MANO's 16-joint kinematic tree; each node starts from its coarse
  rotation and per-joint image features (learned-query attention over the tokens) and predicts
  rotation offsets; pooled nodes give shape and camera offsets.
* ``mano``: the MANO layer (no trainable parameters) -> vertices and 21 joints in mm.

Projection (WiLoR's ``perspective_projection``): with camera (s, tx, ty),
``t = (tx, ty, 2 f / (crop * s + 1e-9))`` in metres and ``keypoints_2d = (f / crop) *
(X[:2] + t[:2]) / (X[2] + t[2])`` for joints ``X`` in metres (principal point 0, focal
``focal_length`` = 5000, ``crop_size`` = 256). So ``keypoints_2d`` are normalized crop
coordinates (the crop spans [-0.5, 0.5]), the same frame as the ground truth of
:mod:`utnet_diag.synthetic.sample`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from utnet_diag.errors import InputError, ResourceError, nearest
from utnet_diag.io.files import free_memory
from utnet_diag.joints import MANO_PARENTS
from utnet_diag.mano import ManoLayer
from utnet_diag.model.rotation import (
    axis_angle_to_matrix,
    axis_angle_to_rotation_6d,
    matrix_to_axis_angle,
    rotation_6d_to_matrix,
)

NUM_MANO_JOINTS = 16  # global orient + 15 hand joints
# Keys of a UTNet model config that the reference model accepts but does not use.
IGNORED_UTNET_KEYS = ("mano_path", "mean_params_path", "num_scales", "preset", "name")
# Mean global orientation: MANO's rest hand (fingers along -x, palm facing -y, thumb +z) turned
# so that the palm faces the camera (which looks along +z, image y down), fingers point up and
# the thumb right: x -> y, y -> z, z -> x, a 120 degree turn about (1, 1, 1).
DEFAULT_MEAN_GLOBAL_ORIENT = (2 * math.pi / 3 / math.sqrt(3),) * 3


@dataclass(frozen=True)
class ReferenceConfig:
    """Size and camera of the reference model. Keys follow UTNet's ``create_model`` arguments.

    ``img_size`` (H, W) pixels; ``patch_size`` pixels; ``embed_dim``/``vit_depth``/
    ``vit_num_heads`` the ViT; ``gcn_dim``/``gcn_layers`` the refiner; ``focal_length`` and
    ``crop_size`` the WiLoR projection; ``joint_rep_type`` ``6d`` or ``aa`` (what the heads
    predict); ``hand_fill`` the fraction of the crop the mean hand spans at init.
    """

    name: str = "tiny"
    img_size: tuple[int, int] = (64, 48)
    patch_size: int = 8
    embed_dim: int = 64
    vit_depth: int = 2
    vit_num_heads: int = 4
    mlp_ratio: float = 2.0
    gcn_dim: int = 64
    gcn_layers: int = 2
    num_hand_joints: int = 21
    num_vertices: int = 778
    focal_length: float = 5000.0
    crop_size: int = 256
    joint_rep_type: str = "6d"
    hand_fill: float = 0.6
    mean_global_orient: tuple[float, float, float] = DEFAULT_MEAN_GLOBAL_ORIENT

    @classmethod
    def preset(cls, name: str) -> ReferenceConfig:
        """``tiny`` (tests, default), ``small`` (ViT-Ti, 128x96) or ``real`` (256x192, ViT-H)."""
        if name not in PRESETS:
            guess = nearest(name, PRESETS)
            raise InputError(
                f"unknown reference model preset '{name}'"
                + (f"; did you mean '{guess}'?" if guess else ""),
                hint=f"choose one of {', '.join(PRESETS)}",
            )
        return cls(name=name, **PRESETS[name])

    @classmethod
    def from_dict(cls, values: dict[str, Any], strict: bool = True) -> ReferenceConfig:
        """Build from a mapping (a checkpoint's stored config or a config.yaml ``model:`` section).

        ``preset`` (or ``name``) picks the base; other keys override it. Unknown keys raise an
        InputError with ``strict``; without it they are ignored (a user's config has many).
        """
        values = dict(values)
        base_name = str(values.get("preset") or values.get("name") or "tiny")
        base = cls.preset(base_name) if base_name in PRESETS else cls(name=base_name)
        known = {f.name for f in fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if key in IGNORED_UTNET_KEYS:
                continue
            if key not in known:
                if strict:
                    guess = nearest(key, known)
                    raise InputError(
                        f"unknown reference model config key '{key}'"
                        + (f"; did you mean '{guess}'?" if guess else "")
                    )
                continue
            clean[key] = value
        try:
            if "img_size" in clean:
                size = clean["img_size"]
                clean["img_size"] = (int(size), int(size)) if isinstance(size, int) else tuple(size)
            if "mean_global_orient" in clean:
                clean["mean_global_orient"] = tuple(float(v) for v in clean["mean_global_orient"])
            cfg = cls(**{**asdict(base), **clean})
            cfg.validate()
        except (TypeError, ValueError) as err:
            raise InputError(f"invalid reference model config ({err})") from None
        return cfg

    def validate(self) -> None:
        """InputError for sizes the model cannot be built with."""
        h, w = self.img_size
        if len(self.img_size) != 2 or h % self.patch_size or w % self.patch_size:
            raise InputError(
                f"img_size {tuple(self.img_size)} must be two multiples of patch_size {self.patch_size}"
            )
        if self.embed_dim % self.vit_num_heads:
            raise InputError(
                f"embed_dim {self.embed_dim} must be divisible by vit_num_heads {self.vit_num_heads}"
            )
        if self.joint_rep_type not in ("6d", "aa"):
            raise InputError(f"joint_rep_type must be '6d' or 'aa', got {self.joint_rep_type!r}")
        if self.num_hand_joints != 21 or self.num_vertices != 778:
            raise InputError(
                "the reference model is MANO-based: num_hand_joints must be 21 and num_vertices 778"
            )
        for name, value, top in (
            ("embed_dim", self.embed_dim, 8192), ("vit_depth", self.vit_depth, 128),
            ("vit_num_heads", self.vit_num_heads, 256), ("gcn_dim", self.gcn_dim, 8192),
            ("gcn_layers", self.gcn_layers, 128), ("patch_size", self.patch_size, 256),
            ("img_size", max(self.img_size), 4096), ("mlp_ratio", self.mlp_ratio, 16),
        ):  # fmt: skip
            if not 0 < value <= top:
                raise InputError(f"model config {name} = {value} is outside 1..{top}")
        weights = 4 * self.parameter_estimate()
        free = free_memory()
        if free is not None and 2 * weights > free:  # weights and their gradients
            raise ResourceError(
                f"this model config (embed_dim {self.embed_dim}, vit_depth {self.vit_depth}) has"
                f" about {self.parameter_estimate() / 1e6:.0f}M parameters ({weights / 2**30:.1f}"
                f" GiB); with gradients it does not fit in the {free / 2**30:.1f} GiB free",
                hint="check the config stored in the checkpoint or given by --config",
            )

    def parameter_estimate(self) -> int:
        """About how many parameters the model has, without building it: the ViT (per block
        (4 + 2 mlp_ratio) d^2, patch and position embeddings) and the GCN refiner (tiny: 255k
        estimated, 126k built; small: 3.27M, 3.13M; real: 632M, ViT-H's 632M)."""
        d, g = self.embed_dim, self.gcn_dim
        tokens = (self.img_size[0] // self.patch_size) * (self.img_size[1] // self.patch_size)
        vit = self.vit_depth * int((4 + 2 * self.mlp_ratio) * d * d) + 4 * self.patch_size**2 * d
        gcn = self.gcn_layers * 2 * g * g + self.num_vertices * 3 * g
        return vit + tokens * d + gcn + 64 * d

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists for tuples), as stored in a checkpoint."""
        out = asdict(self)
        out["img_size"] = list(self.img_size)
        out["mean_global_orient"] = list(self.mean_global_orient)
        return out


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(img_size=(64, 48), patch_size=8, embed_dim=64, vit_depth=2, vit_num_heads=4,
                 mlp_ratio=2.0, gcn_dim=64, gcn_layers=2),
    "small": dict(img_size=(128, 96), patch_size=16, embed_dim=192, vit_depth=6, vit_num_heads=3,
                  mlp_ratio=4.0, gcn_dim=128, gcn_layers=3),
    "real": dict(img_size=(256, 192), patch_size=16, embed_dim=1280, vit_depth=32,
                 vit_num_heads=16, mlp_ratio=4.0, gcn_dim=256, gcn_layers=4),
}  # fmt: skip


def _small_init(layer: nn.Linear, gain: float = 0.01) -> nn.Linear:
    """Output layers start near zero so the model starts at the mean parameters (HaMeR)."""
    nn.init.xavier_uniform_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


class RGBDFusion(nn.Module):
    """Patch tokens of RGB (B,3,H,W) and depth (B,1,H,W) fused into (B, N, D) tokens."""

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        p, d = cfg.patch_size, cfg.embed_dim
        self.patch_embed_rgb = nn.Conv2d(3, d, kernel_size=p, stride=p)
        self.patch_embed_depth = nn.Conv2d(1, d, kernel_size=p, stride=p)
        self.proj = nn.Linear(2 * d, d)
        grid = (cfg.img_size[0] // p) * (cfg.img_size[1] // p)
        self.pos_embed = nn.Parameter(torch.randn(1, grid, d) * 0.02)

    @staticmethod
    def normalize_depth(depth: torch.Tensor) -> torch.Tensor:
        """Per-sample standardised depth over valid (> 0) pixels; invalid pixels become 0.

        Makes the tokens independent of the depth unit (m or mm) and of the hand's distance.
        """
        valid = (depth > 0).to(depth.dtype)
        count = valid.sum(dim=(1, 2, 3), keepdim=True).clamp(min=1.0)
        mean = (depth * valid).sum(dim=(1, 2, 3), keepdim=True) / count
        var = (((depth - mean) * valid) ** 2).sum(dim=(1, 2, 3), keepdim=True) / count
        return (depth - mean) / (var.sqrt() + 1e-3) * valid

    def forward(
        self, rgb: torch.Tensor, depth: torch.Tensor | None, n_i: torch.Tensor
    ) -> torch.Tensor:
        rgb_tokens = self.patch_embed_rgb(rgb).flatten(2).transpose(1, 2)
        if depth is None:
            depth_tokens = torch.zeros_like(rgb_tokens)
        else:
            depth_tokens = self.patch_embed_depth(self.normalize_depth(depth))
            depth_tokens = depth_tokens.flatten(2).transpose(1, 2)
            depth_tokens = depth_tokens * n_i.reshape(-1, 1, 1).to(depth_tokens.dtype)
        return self.proj(torch.cat((rgb_tokens, depth_tokens), dim=-1)) + self.pos_embed


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block (ViT)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTBackbone(nn.Module):
    """Transformer blocks over tokens: (B, N, D) -> (B, N, D)."""

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.vit_num_heads, cfg.mlp_ratio) for _ in range(cfg.vit_depth)
        )
        self.norm = nn.LayerNorm(cfg.embed_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)


def _rep_dim(cfg: ReferenceConfig) -> int:
    return 6 if cfg.joint_rep_type == "6d" else 3


class CoarseHead(nn.Module):
    """Pooled tokens -> coarse pose (B,16,rep), shape (B,10), camera (B,3) around mean params.

    The mean parameters are buffers (saved in checkpoints): flat hand, ``mean_global_orient``,
    zero betas, and a camera that centres the mean hand and makes it span ``hand_fill`` of the
    crop (set by :class:`ReferenceUTNet` from its MANO layer).
    """

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        d, rep = cfg.embed_dim, _rep_dim(cfg)
        self.rep = rep
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.GELU())
        self.dec_pose = _small_init(nn.Linear(d, NUM_MANO_JOINTS * rep))
        self.dec_shape = _small_init(nn.Linear(d, 10))
        self.dec_cam = _small_init(nn.Linear(d, 3))
        orient = torch.tensor(cfg.mean_global_orient, dtype=torch.float32)
        mean_aa = torch.cat((orient[None], torch.zeros(NUM_MANO_JOINTS - 1, 3)))
        mean_pose = axis_angle_to_rotation_6d(mean_aa) if rep == 6 else mean_aa
        self.register_buffer("mean_pose", mean_pose.reshape(-1))
        self.register_buffer("mean_shape", torch.zeros(10))
        self.register_buffer("mean_cam", torch.tensor([1.0, 0.0, 0.0]))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat = self.mlp(tokens.mean(dim=1))
        pose = (self.mean_pose + self.dec_pose(feat)).reshape(-1, NUM_MANO_JOINTS, self.rep)
        shape = self.mean_shape + self.dec_shape(feat)
        cam = self.mean_cam + self.dec_cam(feat)
        return pose, shape, cam


def hand_graph_adjacency() -> torch.Tensor:
    """(16, 16) symmetric-normalised adjacency of MANO's kinematic tree with self loops."""
    adj = torch.eye(NUM_MANO_JOINTS)
    for child, parent in enumerate(MANO_PARENTS):
        if parent >= 0:
            adj[child, parent] = adj[parent, child] = 1.0
    inv_sqrt = adj.sum(1).rsqrt()
    return inv_sqrt[:, None] * adj * inv_sqrt[None, :]


class GraphConv(nn.Module):
    """``h + GELU(LayerNorm(A h W))`` over the hand graph."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return h + F.gelu(self.norm(adj @ self.linear(h)))


class GCNRefiner(nn.Module):
    """Refines the coarse MANO prediction with a GCN over the 16 MANO joints.

    Node input: the coarse joint rotation and per-joint image features (each joint's learned
    query attends over the trunk tokens). Output: rotation offsets per joint, and shape and
    camera offsets from the pooled nodes.
    """

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        g, d, rep = cfg.gcn_dim, cfg.embed_dim, _rep_dim(cfg)
        self.joint_queries = nn.Parameter(torch.randn(NUM_MANO_JOINTS, d) * 0.02)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, g)
        self.rot_in = nn.Linear(rep, g)
        self.layers = nn.ModuleList(GraphConv(g) for _ in range(cfg.gcn_layers))
        self.dec_pose = _small_init(nn.Linear(g, rep))
        self.dec_shape = _small_init(nn.Linear(g, 10))
        self.dec_cam = _small_init(nn.Linear(g, 3))
        self.register_buffer("adjacency", hand_graph_adjacency(), persistent=False)

    def forward(
        self, tokens: torch.Tensor, pose: torch.Tensor, shape: torch.Tensor, cam: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scores = torch.einsum("jd,bnd->bjn", self.joint_queries, self.key(tokens))
        weights = torch.softmax(scores / math.sqrt(tokens.shape[-1]), dim=-1)
        h = torch.einsum("bjn,bng->bjg", weights, self.value(tokens)) + self.rot_in(pose)
        adj = self.adjacency.to(h.dtype)
        for layer in self.layers:
            h = layer(h, adj)
        pooled = h.mean(dim=1)
        return pose + self.dec_pose(h), shape + self.dec_shape(pooled), cam + self.dec_cam(pooled)


def weak_perspective_translation(
    cam: torch.Tensor, focal_length: float, crop_size: int
) -> torch.Tensor:
    """(B,3) camera (s, tx, ty) -> (B,3) translation in metres: (tx, ty, 2 f / (crop s + 1e-9))."""
    tz = 2.0 * focal_length / (crop_size * cam[:, 0] + 1e-9)
    return torch.stack((cam[:, 1], cam[:, 2], tz), dim=-1)


def perspective_projection(
    points_m: torch.Tensor, translation_m: torch.Tensor, focal_length: float, crop_size: int
) -> torch.Tensor:
    """WiLoR projection: (B,J,3) metres + (B,3) metres -> (B,J,2) normalized crop coordinates.

    ``(f / crop) * (X[:2] + t[:2]) / (X[2] + t[2])`` with the principal point at the crop centre.
    """
    p = points_m + translation_m[:, None, :]
    return (focal_length / crop_size) * p[..., :2] / p[..., 2:3]


class ReferenceUTNet(nn.Module):
    """Reference UTNet with the user model's protocol.

    ``forward(rgb (B,3,H,W), depth (B,1,H,W) or None, n_i (B,) or None)`` returns a dict:
    ``keypoints_2d`` (B,21,2) normalized crop coords; ``keypoints_3d`` (B,21,3) mm (spec order,
    MANO frame, not translated); ``vertices`` (B,778,3) mm; ``mano_params`` {``global_orient``
    (B,1,3,3), ``hand_pose`` (B,15,3,3), ``betas`` (B,10)}; ``coarse_pose`` (B,48) axis-angle;
    ``coarse_shape`` (B,10); ``coarse_cam`` (B,3); plus ``cam`` (B,3) final (s, tx, ty) and
    ``cam_translation`` (B,3) mm (the camera-frame offset of the MANO frame).
    """

    def __init__(self, config: ReferenceConfig | dict | None = None, mano: nn.Module | None = None):
        super().__init__()
        if config is None:
            config = ReferenceConfig.preset("tiny")
        elif isinstance(config, dict):
            config = ReferenceConfig.from_dict(config)
        config.validate()
        self.config = config
        self.fusion = RGBDFusion(config)
        self.backbone = ViTBackbone(config)
        self.coarse_head = CoarseHead(config)
        self.refiner = GCNRefiner(config)
        if mano is None:
            mano = ManoLayer()
        self.mano = mano
        for param in self.mano.parameters():
            param.requires_grad_(False)
        # MANO is an input (--mano), not learned weights: keep it out of checkpoints so that
        # loading one never swaps the hand model silently.
        self.register_state_dict_post_hook(_drop_mano_keys)
        self.register_load_state_dict_post_hook(_ignore_missing_mano_keys)
        self.last_trunk_features: torch.Tensor | None = None
        self._init_mean_camera()

    @staticmethod
    def module_groups() -> dict[str, list[str]]:
        """Top-level children by role: ``trunk`` (shared by every loss) and ``heads``."""
        return {"trunk": ["fusion", "backbone"], "heads": ["coarse_head", "refiner"]}

    @torch.no_grad()
    def _init_mean_camera(self) -> None:
        """Mean camera: centre the mean hand and make it span ``hand_fill`` of the crop."""
        head, cfg = self.coarse_head, self.config
        pose = head.mean_pose.reshape(1, NUM_MANO_JOINTS, -1)
        rotmats = self._to_rotmat(pose)
        out = self.mano(rotmats[:, :1], rotmats[:, 1:], head.mean_shape[None])
        verts = out.vertices[0] / 1000.0
        lo, hi = verts[:, :2].min(0).values, verts[:, :2].max(0).values
        extent = float((hi - lo).max().clamp(min=1e-3))
        centre = (lo + hi) / 2
        scale = 2.0 * cfg.hand_fill / extent  # keypoints_2d ~ s/2 * X for a far camera
        head.mean_cam.copy_(torch.tensor([scale, -float(centre[0]), -float(centre[1])]))

    def _to_rotmat(self, pose: torch.Tensor) -> torch.Tensor:
        """(B,16,6|3) -> (B,16,3,3)."""
        if pose.shape[-1] == 6:
            return rotation_6d_to_matrix(pose)
        return axis_angle_to_matrix(pose)

    def forward(
        self,
        rgb: torch.Tensor,
        depth: torch.Tensor | None = None,
        n_i: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"rgb must be (B,3,H,W), got {tuple(rgb.shape)}")
        if tuple(rgb.shape[2:]) != tuple(self.config.img_size):
            raise ValueError(
                f"rgb is {tuple(rgb.shape[2:])} pixels but the model expects"
                f" {tuple(self.config.img_size)}"
            )
        batch = rgb.shape[0]
        if n_i is None:
            n_i = rgb.new_full((batch,), 1.0 if depth is not None else 0.0)
        tokens = self.backbone(self.fusion(rgb, depth, n_i))
        self.last_trunk_features = tokens

        coarse_pose, coarse_shape, coarse_cam = self.coarse_head(tokens)
        pose, betas, cam = self.refiner(tokens, coarse_pose, coarse_shape, coarse_cam)
        rotmats = self._to_rotmat(pose)
        global_orient, hand_pose = rotmats[:, :1], rotmats[:, 1:]
        mano_out = self.mano(global_orient, hand_pose, betas)
        joints_mm, vertices_mm = mano_out.joints, mano_out.vertices

        translation_m = weak_perspective_translation(
            cam, self.config.focal_length, self.config.crop_size
        )
        keypoints_2d = perspective_projection(
            joints_mm / 1000.0, translation_m, self.config.focal_length, self.config.crop_size
        )
        coarse_aa = (
            matrix_to_axis_angle(rotation_6d_to_matrix(coarse_pose))
            if coarse_pose.shape[-1] == 6
            else coarse_pose
        )
        return {
            "keypoints_2d": keypoints_2d,
            "keypoints_3d": joints_mm,
            "vertices": vertices_mm,
            "mano_params": {"global_orient": global_orient, "hand_pose": hand_pose, "betas": betas},
            "coarse_pose": coarse_aa.reshape(batch, -1),
            "coarse_shape": coarse_shape,
            "coarse_cam": coarse_cam,
            "cam": cam,
            "cam_translation": translation_m * 1000.0,
        }


def _drop_mano_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "mano.")]:
        del state_dict[key]


def _ignore_missing_mano_keys(module: nn.Module, incompatible: Any) -> None:
    missing = incompatible.missing_keys
    missing[:] = [k for k in missing if not k.startswith("mano.")]


def build_reference(
    config: ReferenceConfig | dict | str | None = None, mano: nn.Module | None = None, seed: int = 0
) -> ReferenceUTNet:
    """A reference model with deterministic init (``seed``) that leaves the global RNG untouched."""
    if isinstance(config, str):
        config = ReferenceConfig.preset(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ReferenceUTNet(config, mano)
