"""A MANO layer that returns the spec's 21 joints in millimetres: smplx's ``lbs`` (the same
operations and values), with the 5 fingertip vertices skinned on their own so that losses on the
joints do not backpropagate through the whole mesh.

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
from typing import Any

import numpy as np
import torch
from torch import nn

from utnet_diag.errors import InputError
from utnet_diag.joints import MANO_TIP_VERTICES, MANO_TO_SPEC
from utnet_diag.mano.data import load_mano_data

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

    constant_buffers = True  # forward never writes the buffers (runner.training_step skips them)

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
        tip_columns = [3 * v + c for v in MANO_TIP_VERTICES for c in range(3)]
        self.register_buffer("tip_columns", torch.tensor(tip_columns, dtype=torch.long),
                             persistent=False)  # fmt: skip
        levels, level_order = _tree_levels(parents.tolist())
        self._chain_plan = _chain_plan(levels)
        by_level = [0] + [j for ids, _ in levels for j in ids]
        self._by_level = None if by_level == sorted(by_level) else by_level
        self._level_order = None if level_order == sorted(level_order) else level_order

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
        from smplx.lbs import batch_rodrigues

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
            rot_mats = batch_rodrigues(pose.reshape(-1, 3)).view(batch, -1, 3, 3)
        else:
            if global_rot is None:
                global_rot = batch_rodrigues(global_orient.reshape(-1, 3)).view(batch, 1, 3, 3)
            if hand_rot is None:
                hand_rot = batch_rodrigues(hand_pose.reshape(-1, 3)).view(batch, 15, 3, 3)
            rot_mats = torch.cat([global_rot, hand_rot], dim=1)
        vertices, joints_mano, tips = self._skin(betas, rot_mats, shapedirs)
        if transl is not None:
            offset = transl.to(device=device, dtype=dtype).reshape(batch, 1, 3)
            vertices = vertices + offset
            joints_mano = joints_mano + offset
            tips = tips + offset
        vertices = vertices * self._scale
        joints_mano = joints_mano * self._scale
        joints_21 = torch.cat([joints_mano, tips * self._scale], dim=1)
        return ManoOutput(
            vertices=vertices,
            joints=joints_21[:, self.to_spec],
            joints_mano=joints_mano,
            unit=self.unit,
        )

    def _skin(
        self, betas: torch.Tensor, rot_mats: torch.Tensor, shapedirs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """smplx's ``lbs`` (same operations, same values) for (B, 10) betas and (B, 16, 3, 3)
        rotations -> vertices (B, 778, 3), joints (B, 16, 3) and the 5 tip vertices (B, 5, 3),
        metres.

        The tips are skinned on their own (the same per-vertex operations on 5 vertices), so the
        21 joints do not depend on the full mesh: a loss on joints alone backpropagates through
        the 16-joint kinematic chain and 5 vertices, not through 778 vertices' pose blend shapes
        and skinning. The kinematic chain is composed one tree level at a time (one batched
        matmul per level instead of one per joint)."""
        from smplx.lbs import blend_shapes, vertices2joints

        batch = rot_mats.shape[0]
        v_shaped = self.v_template + blend_shapes(betas, shapedirs)
        joints_rest = vertices2joints(self.J_regressor, v_shaped)
        ident = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
        pose_feature = (rot_mats[:, 1:] - ident).reshape(batch, -1)
        joints_posed, rel_transforms = self._rigid_transform(rot_mats, joints_rest)
        flat_transforms = rel_transforms.reshape(batch, -1, 16)

        def skin(posedirs, template, weights):
            offsets = torch.matmul(pose_feature, posedirs).view(batch, -1, 3)
            v_posed = offsets + template
            w = weights.unsqueeze(dim=0).expand([batch, -1, -1])
            t = torch.matmul(w, flat_transforms).view(batch, -1, 4, 4)
            ones = torch.ones([batch, v_posed.shape[1], 1], dtype=v_posed.dtype,
                              device=v_posed.device)  # fmt: skip
            homo = torch.matmul(t, torch.unsqueeze(torch.cat([v_posed, ones], dim=2), dim=-1))
            return homo[:, :, :3, 0]

        vertices = skin(self.posedirs, v_shaped, self.lbs_weights)
        tips = skin(self.posedirs[:, self.tip_columns], v_shaped[:, self.tip_vertices],
                    self.lbs_weights[self.tip_vertices])  # fmt: skip
        return vertices, joints_posed, tips

    def _rigid_transform(
        self, rot_mats: torch.Tensor, joints: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """smplx's ``batch_rigid_transform``: posed joints (B, 16, 3) and transforms relative to
        the rest joints (B, 16, 4, 4); the chain is composed per tree level."""
        import torch.nn.functional as F

        joints = torch.unsqueeze(joints, dim=-1)
        rel_joints = joints.clone()
        rel_joints[:, 1:] -= joints[:, self.parents[1:]]
        n = joints.shape[1]
        local = torch.cat([F.pad(rot_mats.reshape(-1, 3, 3), [0, 0, 0, 1]),
                           F.pad(rel_joints.reshape(-1, 3, 1), [0, 0, 0, 1], value=1)],
                          dim=2).reshape(-1, n, 4, 4)  # fmt: skip
        if self._by_level is not None:
            local = local[:, self._by_level]
        chain = [local[:, :1]]
        for start, stop, parents in self._chain_plan:
            previous = chain[-1] if parents is None else chain[-1][:, parents]
            chain.append(torch.matmul(previous, local[:, start:stop]))
        transforms = torch.cat(chain, dim=1)
        if self._level_order is not None:
            transforms = transforms[:, self._level_order]
        posed_joints = transforms[:, :, :3, 3]
        joints_homogen = F.pad(joints, [0, 0, 0, 1])
        rel = transforms - F.pad(torch.matmul(transforms, joints_homogen), [3, 0, 0, 0, 0, 0, 0, 0])
        return posed_joints, rel


def _tree_levels(parents: list[int]) -> tuple[list[tuple[list[int], list[int]]], list[int]]:
    """The kinematic tree by depth below the root (joint 0): per level, its joint ids and each
    one's parent's slot in the previous level; and, for each joint, its slot in the levels
    concatenated (root first)."""
    depth = [0] * len(parents)
    for joint in range(1, len(parents)):
        if not 0 <= parents[joint] < joint:
            raise InputError(f"MANO kintree: joint {joint} has parent {parents[joint]}")
        depth[joint] = depth[parents[joint]] + 1
    slots: dict[int, int] = {0: 0}
    levels: list[tuple[list[int], list[int]]] = []
    previous = [0]
    for level in range(1, max(depth) + 1):
        ids = [j for j in range(len(parents)) if depth[j] == level]
        where = {j: k for k, j in enumerate(previous)}
        levels.append((ids, [where[parents[j]] for j in ids]))
        for j in ids:
            slots[j] = len(slots)
        previous = ids
    return levels, [slots[j] for j in range(len(parents))]


def _chain_plan(levels: list[tuple[list[int], list[int]]]) -> list[tuple[int, int, Any]]:
    """Per tree level: its slice in the joints sorted by level, and how to pick each joint's
    parent transform from the previous level: None (the previous level in order), a slice
    (one shared parent, broadcast) or a list of slots."""
    plan: list[tuple[int, int, Any]] = []
    start, previous = 1, 1
    for ids, slots in levels:
        if slots == list(range(previous)) and len(ids) == previous:
            parents: Any = None
        elif len(set(slots)) == 1:
            parents = slice(slots[0], slots[0] + 1)
        else:
            parents = slots
        plan.append((start, start + len(ids), parents))
        start += len(ids)
        previous = len(ids)
    return plan


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
