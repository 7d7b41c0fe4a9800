"""The fixes the convention checks ask for, as data and as words.

A check that knows the exact change that makes the batch right returns it as a list of
:class:`Fix` in ``details["fix"]`` (machine-readable, ``to_dict``) and as its hint (``text``), one
source for both, so a person and a script read the same instruction. Operations, on canonical
batch keys, for ``samples`` (all when None):

- ``permute`` ``{"perm": P}``: ``key = key[:, P]`` (joints reordered to the spec's order);
- ``scale_axes`` ``{"factors": f}``: ``key[..., :len(f)] *= f`` (a frame flip, a mirror, a unit);
- ``affine_2d`` ``{"matrix": A, "offset": b}``: ``xy = xy @ A.T + b`` on ``keypoints_2d`` (``b``
  one (2,) per sample listed, or one for all);
- ``rotate_3d`` ``{"matrix": M}``: ``xyz = xyz @ M.T`` on ``keypoints_3d`` (about the camera);
- ``rotate_global`` ``{"matrix": M}``: the global orientation in ``mano_pose[:, :3]`` becomes
  ``axis_angle(M @ R(mano_pose[:, :3]))``;
- ``move_translation`` ``{"matrix": M}``: ``mano_trans = (mano_trans + J0) @ M.T - J0``, J0 being
  MANO's rest root joint for the sample's betas (a rigid motion of the whole hand about the
  camera; ``mano_trans`` in metres as MANO's);
- ``mirror_pose``: every axis-angle (x, y, z) of ``mano_pose`` becomes (x, -y, -z);
- ``add_hands_mean``: ``mano_pose[:, 3:] += hands_mean`` (a pose relative to the mean made
  absolute);
- ``set`` ``{"value": v}``: ``key[samples] = v`` (a flag such as ``is_right``);
- ``pca_to_axis_angle`` ``{"relative": bool}``: ``mano_pose[:, 3:] = coeffs @ hands_components
  (+ hands_mean when relative)`` with the MANO model's arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from utnet_diag.report.numbers import fmt_number

FLIP_OPENGL = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))  # OpenGL <-> OpenCV


def _num(value: float) -> str:
    return fmt_number(value, 6)


def _matrix_text(matrix: Sequence[Sequence[float]]) -> str:
    m = np.asarray(matrix, dtype=np.float64)
    if np.allclose(m, np.diag(np.diag(m))):
        return "diag(" + ",".join(_num(v) for v in np.diag(m)) + ")"
    return "[" + ", ".join("[" + ", ".join(f"{v:.4f}" for v in row) + "]" for row in m) + "]"


def _plain(value: Any) -> Any:
    """Lists and floats for matrices and numbers given as tuples or numpy values (JSON-ready)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def rotation_z(degrees: float) -> list[list[float]]:
    """The rotation by ``degrees`` about the camera's z axis (x toward y)."""
    a = np.radians(degrees)
    c, s = float(np.cos(a)), float(np.sin(a))
    return [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]


@dataclass(frozen=True)
class Fix:
    """One change to one batch key (see the module docstring for the operations)."""

    key: str
    op: str
    args: dict[str, Any] = field(default_factory=dict)
    samples: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "op": self.op}
        out.update({k: _plain(v) for k, v in self.args.items()})
        if self.samples is not None:
            out["samples"] = list(self.samples)
        return out

    def text(self) -> str:
        """The fix in code-like words."""
        rows = "" if self.samples is None else f"[{list(self.samples)}]"
        sel = f"{self.key}{rows}" if rows else self.key
        args = self.args
        if self.op == "permute":
            return f"{sel} = {sel}[:, {list(args['perm'])}]"
        if self.op == "scale_axes":
            factors = ", ".join(_num(f) for f in args["factors"])
            return f"{sel}[..., :{len(args['factors'])}] *= ({factors})"
        if self.op == "affine_2d":
            offset = np.round(np.asarray(args["offset"], dtype=np.float64), 4).tolist()
            return f"{sel}[..., :2] = {sel}[..., :2] @ {_matrix_text(args['matrix'])}.T + {offset}"
        if self.op == "rotate_3d":
            return f"{sel}[..., :3] = {sel}[..., :3] @ {_matrix_text(args['matrix'])}.T"
        if self.op == "rotate_global":
            return (
                f"{sel}[:, :3] = axis_angle({_matrix_text(args['matrix'])} @ R({sel}[:, :3]))"
                " (the global orientation in the same frame)"
            )
        if self.op == "move_translation":
            return (
                f"{sel} = ({sel} + J0) @ {_matrix_text(args['matrix'])}.T - J0 (J0: MANO's rest"
                " root joint for the sample's betas)"
            )
        if self.op == "mirror_pose":
            return f"{sel}: every axis-angle (x, y, z) -> (x, -y, -z)"
        if self.op == "add_hands_mean":
            return f"{sel}[:, 3:] += hands_mean"
        if self.op == "set":
            return f"{sel} = {args['value']!r}"
        if self.op == "pca_to_axis_angle":
            mean = " + hands_mean" if args.get("relative") else ""
            return f"{sel}[:, 3:] = {sel}[:, 3:] @ hands_components{mean}"
        raise ValueError(f"unknown fix operation {self.op!r}")


def fix_hint(fixes: Iterable[Fix], why: str = "") -> str:
    """The hint for a list of fixes: ``why`` then each fix, in order."""
    text = "; ".join(f.text() for f in fixes)
    return f"{why}: {text}" if why else text


def fix_details(fixes: Iterable[Fix]) -> list[dict[str, Any]]:
    return [f.to_dict() for f in fixes]
