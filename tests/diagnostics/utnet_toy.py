"""A tiny UTNet-shaped model that follows the output protocol, with switches to plant faults.

trunk ``backbone`` (conv + BatchNorm + dropout) -> ``coarse_head`` (pose 48, shape 10, cam 3) ->
``refine`` (GCN stand-in) -> ``mano`` (a fixed random linear hand: 778 vertices, 21 joints, mm).
Faults: ``poison`` (a module path that outputs NaN: "refine" or "backbone"), ``backward_nan``
(refine's backward makes NaN), ``detach_coarse`` (the coarse head's output is detached),
``mano_bypass`` (zeros instead of MANO output), ``protocol`` (module_groups/last_trunk_features),
``checkpoint`` ("reentrant" or "non-reentrant": the backbone after its conv, or with
``checkpoint_head`` the refine head, runs under ``torch.utils.checkpoint``).
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import torch
from torch import nn

from utnet_diag.io.batch import Batch
from utnet_diag.model.rotation import axis_angle_to_matrix

FOCAL = 2.0  # weak perspective: normalized 2D = FOCAL * xy[m] + t


class ToyMano(nn.Module):
    """Rotation matrices (B,16,3,3) and betas (B,10) -> vertices (B,778,3), joints (B,21,3) mm."""

    def __init__(self, seed: int = 7):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("template", torch.randn(778, 3, generator=g) * 50.0)
        self.register_buffer("pose_dirs", torch.randn(15 * 9, 778 * 3, generator=g) * 2.0)
        self.register_buffer("shape_dirs", torch.randn(10, 778 * 3, generator=g) * 3.0)
        picks = torch.randperm(778, generator=g)[:21]
        self.register_buffer("regressor", torch.eye(778)[picks])

    def forward(self, rotmats: torch.Tensor, betas: torch.Tensor):
        b = rotmats.shape[0]
        eye = torch.eye(3, device=rotmats.device)
        pose_feat = (rotmats[:, 1:] - eye).reshape(b, -1)
        offsets = (pose_feat @ self.pose_dirs + betas @ self.shape_dirs).reshape(b, 778, 3)
        verts = (self.template + offsets) @ rotmats[:, 0].transpose(1, 2)
        joints = torch.einsum("jv,bvc->bjc", self.regressor, verts)
        return verts, joints


class NaNLayer(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


class _NaNGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class NaNGradLayer(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _NaNGrad.apply(x)


class ToyUTNet(nn.Module):
    def __init__(
        self,
        poison=None,
        backward_nan=False,
        detach_coarse=False,
        mano_bypass=False,
        protocol=True,
        seed=0,
        checkpoint=None,
        checkpoint_head=False,
    ):
        super().__init__()
        self.checkpoint = checkpoint
        self.checkpoint_head = checkpoint_head
        torch.manual_seed(seed)
        self.protocol = protocol
        self.detach_coarse = detach_coarse
        self.mano_bypass = mano_bypass
        self.backbone = nn.Sequential(
            nn.Conv2d(4, 8, 8, stride=8),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(8 * 16, 32),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.Dropout(0.1),
        )
        if poison == "backbone":
            self.backbone.append(NaNLayer())
        self.coarse_head = nn.Linear(32, 48 + 10 + 3)
        refine = [nn.Linear(32 + 58, 58)]
        if poison == "refine":
            refine.append(NaNLayer())
        if backward_nan:
            refine.append(NaNGradLayer())
        self.refine = nn.Sequential(*refine)
        with torch.no_grad():
            self.coarse_head.weight.mul_(0.05)
            self.coarse_head.bias.zero_()
            self.refine[0].weight.mul_(0.05)
            self.refine[0].bias.zero_()
        self.mano = ToyMano()
        self.last_trunk_features = None

    def module_groups(self):
        return {"trunk": ["backbone"], "heads": ["coarse_head", "refine", "mano"]}

    def _checkpointed(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        from torch.utils.checkpoint import checkpoint

        return checkpoint(module, x, use_reentrant=self.checkpoint == "reentrant")

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, n_i=None) -> dict:
        x = torch.cat([rgb, depth], 1)
        if self.checkpoint and not self.checkpoint_head:
            x = self.backbone[0](x)  # the checkpointed segment's input then needs gradient
            rest = nn.Sequential(*self.backbone[1:])
            feats = self._checkpointed(rest, x)
        else:
            feats = self.backbone(x)
        self.last_trunk_features = feats
        coarse = self.coarse_head(feats)
        if self.detach_coarse:
            coarse = coarse.detach()
        pose_c, shape_c, cam = coarse[:, :48], coarse[:, 48:58], coarse[:, 58:]
        refine_in = torch.cat([feats, coarse[:, :58]], 1)
        if self.checkpoint and self.checkpoint_head:
            delta = self._checkpointed(self.refine, refine_in)
        else:
            delta = self.refine(refine_in)
        pose = pose_c + delta[:, :48]
        betas = shape_c + delta[:, 48:]
        rotmats = axis_angle_to_matrix(pose.reshape(-1, 16, 3))
        verts, joints = self.mano(rotmats, betas)
        if self.mano_bypass:
            verts, joints = torch.zeros_like(verts), torch.zeros_like(joints)
        scale = FOCAL * (1 + 0.1 * torch.tanh(cam[:, :1]))
        kp2d = scale[:, :, None] * joints[..., :2] / 1000.0 + 0.05 * torch.tanh(cam[:, None, 1:])
        return {
            "keypoints_2d": kp2d,
            "keypoints_3d": joints,
            "vertices": verts,
            "mano_params": {
                "global_orient": rotmats[:, :1],
                "hand_pose": rotmats[:, 1:],
                "betas": betas,
            },
            "coarse_pose": pose_c,
            "coarse_shape": shape_c,
            "coarse_cam": cam,
        }


class NoProtocol(ToyUTNet):
    """The same model without module_groups(): the boundary must be guessed."""

    module_groups = None  # type: ignore[assignment]


def make_batch(n: int = 4, seed: int = 1, size: int = 32) -> Batch:
    """GT from the toy MANO with random parameters (keypoints in the spec's units)."""
    g = torch.Generator().manual_seed(seed)
    pose = torch.randn(n, 48, generator=g) * 0.15
    shape = torch.randn(n, 10, generator=g) * 0.5
    with torch.no_grad():
        verts, joints = ToyMano()(axis_angle_to_matrix(pose.reshape(-1, 16, 3)), shape)
    kp2d = FOCAL * joints[..., :2] / 1000.0
    ones = torch.ones(n, 21, 1)
    tensors = {
        "rgb": torch.rand(n, 3, size, size, generator=g),
        "depth": torch.rand(n, 1, size, size, generator=g),
        "keypoints_2d": torch.cat([kp2d, ones], -1),
        "keypoints_3d": torch.cat([joints, ones], -1),
        "mano_pose": pose,
        "mano_shape": shape,
        "has_mano": torch.ones(n),
        "vertices_3d": verts,
    }
    return Batch(tensors, [str(i) for i in range(n)], "toy")


def loaded(model: nn.Module | None = None, **faults) -> SimpleNamespace:
    """A stand-in for utnet_diag.model.sources.LoadedModel around a toy model."""
    model = model if model is not None else ToyUTNet(**faults)
    return SimpleNamespace(
        model=model,
        device=torch.device("cpu"),
        source="toy",
        checks=[],
        warnings=[],
        mano=None,
        forward=lambda batch: model(batch["rgb"], batch["depth"]),
    )


def build(**faults) -> ToyUTNet:
    """Model factory (``--model-factory utnet_toy:build``)."""
    return ToyUTNet(**faults)


def build_mano_bypass() -> ToyUTNet:
    return ToyUTNet(mano_bypass=True)


def build_detached() -> ToyUTNet:
    return ToyUTNet(detach_coarse=True)


def build_nan() -> ToyUTNet:
    return ToyUTNet(poison="refine")


def state_hash(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer, by name: equal before and after means unchanged."""
    digest = hashlib.sha256()
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
