"""A MANO layer that returns the spec's 21 joints in millimetres, built on smplx's ``lbs``.

Convention of the project: ``mano_pose`` (B, 48) is ABSOLUTE axis-angle (3 global orient +
15 x 3 hand joints), applied as is (``flat_hand_mean=True``, like HO3D's ``handPose``). With
``flat_hand_mean=False`` the hand pose is relative to ``hands_mean`` (smplx's default), which
is the classic source of a constant pose offset.

Left hands: ``ManoLayer(side="left")`` loads MANO_LEFT.pkl when ``path`` names one, else mirrors
the synthetic right hand (mesh x -> -x; a right-hand axis-angle (x, y, z) is the left hand's
(x, -y, -z)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from utnet_diag.errors import InputError
from utnet_diag.joints import MANO_TIP_VERTICES, MANO_TO_SPEC

_UNIT_SCALE = {"mm": 1000.0, "m": 1.0}


@dataclass
class ManoOutput:
    """MANO layer output. Units are the layer's ``unit`` (mm by default).

    ``vertices`` (B, 778, 3); ``joints`` (B, 21, 3) in the spec's order (OpenPose: wrist, thumb,
    index, middle, ring, pinky; tips from mesh vertices); ``joints_mano`` (B, 16, 3) in MANO's
    native order (wrist, index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    joints_mano: torch.Tensor
    unit: str = "mm"


def _as_rotmats(pose: torch.Tensor, count: int, what: str) -> torch.Tensor | None:
    """(B, count, 3, 3) from rotation matrices shaped (B, count, 3, 3), (B, 3, 3) if count=1,
    or (B, count*9); None when ``pose`` is axis-angle."""
    if pose.dim() == 4 and pose.shape[1:] == (count, 3, 3):
        return pose
    if count == 1 and pose.dim() == 3 and pose.shape[1:] == (3, 3):
        return pose.unsqueeze(1)
    if pose.dim() == 2 and pose.shape[1] == 3 * count:
        return None
    raise InputError(
        f"{what} has shape {tuple(pose.shape)}; expected (B, {3 * count}) axis-angle or "
        f"(B, {count}, 3, 3) rotation matrices"
    )


class ManoLayer(nn.Module):
    """MANO as a layer: (global_orient, hand_pose, betas[, transl]) -> :class:`ManoOutput`.

    ``path``: a MANO pickle (official v1.2, converted, or synthetic), a folder holding
    ``MANO_RIGHT.pkl``/``MANO_LEFT.pkl`` (or ``mano/`` below it), or None for the embedded
    synthetic hand. ``flat_hand_mean=True`` applies the hand pose as is (absolute);
    ``False`` adds ``hands_mean`` to axis-angle/PCA poses. ``use_pca``: ``hand_pose`` holds
    ``num_pca_comps`` PCA coefficients. ``unit``: 'mm' (default) or 'm' for the outputs.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        side: str = "right",
        flat_hand_mean: bool = True,
        use_pca: bool = False,
        num_pca_comps: int = 45,
        unit: str = "mm",
        data: dict | None = None,
    ) -> None:
        super().__init__()
        from utnet_diag.mano import load_mano_data

        if unit not in _UNIT_SCALE:
            raise InputError(f"unknown unit '{unit}'", hint="use 'mm' or 'm'")
        if not 1 <= int(num_pca_comps) <= 45:
            raise InputError(f"num_pca_comps must be in 1..45, got {num_pca_comps}")
        model = data if data is not None else load_mano_data(path, side=side)
        self.side = side
        self.flat_hand_mean = bool(flat_hand_mean)
        self.use_pca = bool(use_pca)
        self.num_pca_comps = int(num_pca_comps)
        self.unit = unit
        self._scale = _UNIT_SCALE[unit]
        f32 = torch.float32
        self.faces = np.asarray(model["f"], dtype=np.int64)
        self.register_buffer("v_template", torch.tensor(model["v_template"], dtype=f32))
        self.register_buffer("shapedirs", torch.tensor(model["shapedirs"][:, :, :10], dtype=f32))
        posedirs = np.asarray(model["posedirs"]).reshape(-1, model["posedirs"].shape[-1]).T
        self.register_buffer("posedirs", torch.tensor(posedirs, dtype=f32))
        self.register_buffer("J_regressor", torch.tensor(model["J_regressor"], dtype=f32))
        self.register_buffer("lbs_weights", torch.tensor(model["weights"], dtype=f32))
        parents = torch.tensor(np.asarray(model["kintree_table"][0]).astype(np.int64))
        parents[0] = -1
        self.register_buffer("parents", parents)
        self.register_buffer(
            "hands_components", torch.tensor(model["hands_components"][:num_pca_comps], dtype=f32)
        )
        self.register_buffer("hands_mean", torch.tensor(model["hands_mean"], dtype=f32))
        self.register_buffer("tip_vertices", torch.tensor(MANO_TIP_VERTICES, dtype=torch.long))
        self.register_buffer("to_spec", torch.tensor(MANO_TO_SPEC, dtype=torch.long))

    def forward(
        self,
        global_orient: torch.Tensor,
        hand_pose: torch.Tensor,
        betas: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> ManoOutput:
        """Pose and shape the hand.

        global_orient: (B, 3) axis-angle or (B, 1, 3, 3) / (B, 3, 3) rotation matrix.
        hand_pose: (B, 45) axis-angle, (B, num_pca_comps) PCA coefficients when ``use_pca``,
        or (B, 15, 3, 3) rotation matrices (always absolute: ``hands_mean`` is not added).
        betas: (B, 10) or None (mean shape). transl: (B, 3) in METRES (MANO's native unit,
        like HO3D's handTrans), added before the unit conversion.
        """
        from smplx.lbs import batch_rodrigues, lbs

        dtype, device = self.v_template.dtype, self.v_template.device
        global_orient = global_orient.to(device=device, dtype=dtype)
        hand_pose = hand_pose.to(device=device, dtype=dtype)
        batch = global_orient.shape[0]
        if hand_pose.shape[0] != batch:
            raise InputError(
                f"global_orient has batch {batch} but hand_pose has batch {hand_pose.shape[0]}"
            )
        global_rot = _as_rotmats(global_orient, 1, "global_orient")
        if self.use_pca and hand_pose.dim() != 4:
            if hand_pose.dim() != 2 or hand_pose.shape[1] != self.num_pca_comps:
                raise InputError(
                    f"hand_pose has shape {tuple(hand_pose.shape)}; with use_pca expected "
                    f"(B, {self.num_pca_comps}) PCA coefficients"
                )
            hand_pose = hand_pose @ self.hands_components
        hand_rot = _as_rotmats(hand_pose, 15, "hand_pose")
        if hand_rot is None and not self.flat_hand_mean:
            hand_pose = hand_pose + self.hands_mean
        elif hand_rot is not None and not self.flat_hand_mean:
            raise InputError(
                "rotation-matrix hand_pose is absolute and cannot be combined with "
                "flat_hand_mean=False",
                hint="use flat_hand_mean=True, or pass axis-angle",
            )
        if betas is None:
            betas = torch.zeros(batch, self.shapedirs.shape[-1], dtype=dtype, device=device)
        betas = betas.to(device=device, dtype=dtype)
        if betas.dim() != 2 or betas.shape[1] > self.shapedirs.shape[-1]:
            raise InputError(f"betas has shape {tuple(betas.shape)}; expected (B, 10)")
        if betas.shape[0] == 1 and batch > 1:
            betas = betas.expand(batch, -1)
        shapedirs = self.shapedirs[:, :, : betas.shape[1]]

        if global_rot is None and hand_rot is None:
            pose = torch.cat([global_orient, hand_pose], dim=1)
            pose2rot = True
        else:
            if global_rot is None:
                global_rot = batch_rodrigues(global_orient.reshape(-1, 3)).view(batch, 1, 3, 3)
            if hand_rot is None:
                hand_rot = batch_rodrigues(hand_pose.reshape(-1, 3)).view(batch, 15, 3, 3)
            pose = torch.cat([global_rot, hand_rot], dim=1)
            pose2rot = False
        vertices, joints_mano = lbs(
            betas,
            pose,
            self.v_template,
            shapedirs,
            self.posedirs,
            self.J_regressor,
            self.parents,
            self.lbs_weights,
            pose2rot=pose2rot,
        )
        if transl is not None:
            offset = transl.to(device=device, dtype=dtype).reshape(batch, 1, 3)
            vertices = vertices + offset
            joints_mano = joints_mano + offset
        vertices = vertices * self._scale
        joints_mano = joints_mano * self._scale
        joints_21 = torch.cat([joints_mano, vertices[:, self.tip_vertices]], dim=1)
        return ManoOutput(
            vertices=vertices,
            joints=joints_21[:, self.to_spec],
            joints_mano=joints_mano,
            unit=self.unit,
        )


def mano_forward_pose48(
    layer: ManoLayer,
    pose48: torch.Tensor,
    betas: torch.Tensor | None = None,
    transl: torch.Tensor | None = None,
) -> ManoOutput:
    """Run ``layer`` on a (B, 48) axis-angle pose (3 global orient + 45 hand) and (B, 10) betas."""
    if pose48.dim() != 2 or pose48.shape[1] != 48:
        raise InputError(f"mano_pose has shape {tuple(pose48.shape)}; expected (B, 48) axis-angle")
    return layer(pose48[:, :3], pose48[:, 3:], betas, transl)
