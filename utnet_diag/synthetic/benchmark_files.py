"""Benchmark-style files of synthetic hands, written the way each benchmark stores them (for the
tests of ``eval`` and ``examples/make_eval_files.py``).

Hands come from the detection template (curled and spread so that they are not planar: a
planar hand's mirror image is a rotation of it), turned at random, placed 0.5-0.8 m in front of
an OpenCV camera (z > 0), in metres and the spec's joint order. Meshes are 778 points on the
bones, so a mesh moves with its joints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from utnet_diag.geometry.joint_order import template_hand
from utnet_diag.joints import BONES

VERTS = 778


def hands(n: int, seed: int = 0) -> np.ndarray:
    """(n, 21, 3) metres, spec order, OpenCV camera frame."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        hand = template_hand(curl=tuple(rng.uniform(0.1, 0.7, 5)), spread=rng.uniform(0, 0.3))
        rot = Rotation.from_rotvec(rng.normal(0, 0.6, 3))
        out.append(
            rot.apply(hand / 1000.0)
            + [rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), rng.uniform(0.5, 0.8)]
        )
    return np.stack(out)


def mesh(xyz: np.ndarray, seed: int = 1) -> np.ndarray:
    """(n, 778, 3): points spread along the bones of each hand (same layout for every hand)."""
    rng = np.random.default_rng(seed)
    bone = rng.integers(0, len(BONES), VERTS)
    t = rng.uniform(0, 1, VERTS)[None, :, None]
    parent = xyz[:, [BONES[b][0] for b in bone]]
    child = xyz[:, [BONES[b][1] for b in bone]]
    return parent + t * (child - parent)


def noisy(xyz: np.ndarray, sigma_m: float = 0.004, seed: int = 2) -> np.ndarray:
    """Joints (or vertices) with Gaussian noise of ``sigma_m`` metres per coordinate."""
    return xyz + np.random.default_rng(seed).normal(0, sigma_m, xyz.shape)


def write_pred(path: Path, xyz: np.ndarray, verts: np.ndarray | None) -> Path:
    """FreiHAND/HO3D ``pred.json``: [xyz, verts] (empty meshes when ``verts`` is None)."""
    vs = [[] for _ in xyz] if verts is None else np.asarray(verts).tolist()
    path.write_text(json.dumps([np.asarray(xyz).tolist(), vs]))
    return path


def write_gt_folder(folder: Path, xyz: np.ndarray, verts: np.ndarray) -> Path:
    """A FreiHAND/HO3D ground-truth folder: evaluation_xyz.json and evaluation_verts.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evaluation_xyz.json").write_text(json.dumps(np.asarray(xyz).tolist()))
    (folder / "evaluation_verts.json").write_text(json.dumps(np.asarray(verts).tolist()))
    return folder


def write_lines(path: Path, ids, xyz_mm: np.ndarray) -> Path:
    """DexYCB result lines: image id and 63 numbers (mm)."""
    with open(path, "w") as handle:
        for i, joints in zip(ids, xyz_mm):
            handle.write(
                ",".join([str(int(i))] + [repr(float(v)) for v in np.ravel(joints)]) + "\n"
            )
    return path
