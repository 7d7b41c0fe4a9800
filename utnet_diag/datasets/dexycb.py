"""DexYCB on disk: ``<root>/<subject>/<sequence>/<serial>/{color_%06d.jpg,
aligned_depth_to_color_%06d.png, labels_%06d.npz}``.

Each sequence has ``meta.yml`` (``serials``, ``num_frames``, ``mano_sides``, ``mano_calib``, ...);
``<root>/calibration/mano_<calib>/mano.yml`` holds ``betas`` (10,) and
``<root>/calibration/intrinsics/<serial>_640x480.yml`` holds ``color: {fx, fy, ppx, ppy}``.
``labels_*.npz``: ``joint_3d`` (1,21,3) metres, OpenCV camera frame, spec order; ``joint_2d``
(1,21,2) pixels; ``pose_m`` (1,51) = 3 global axis-angle + 45 PCA coefficients + 3 translation,
the PCA part relative to ``hands_mean`` (the toolkit's use_pca=True, flat_hand_mean=False):
absolute hand pose = ``coeffs @ hands_components + hands_mean``. Frames without a hand store -1
joints and a zero pose. Depth is uint16 millimetres.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from utnet_diag.config import safe_load_yaml
from utnet_diag.datasets.common import (
    CanonicalChunk,
    DatasetReader,
    Finding,
    SampleRecord,
    depth_at_joints,
    empty_chunk,
    project,
    stack_rows,
)
from utnet_diag.datasets.images import read_depth_png, read_rgb
from utnet_diag.errors import InputError, UnsafeInputError
from utnet_diag.io.files import require_dir
from utnet_diag.io.npz import load_npz
from utnet_diag.mano import load_mano_data

LABEL_KEYS = ("joint_3d", "joint_2d", "pose_m")
LABELS_MAX_BYTES = 1 << 20  # the three label arrays of a frame hold about 1 KB
NOT_SUBJECTS = ("calibration", "models", "bop")


def decode_depth(pixels: np.ndarray) -> np.ndarray:
    """(H,W) uint16 millimetres -> (H,W) float32 metres."""
    return pixels.astype(np.float32) / 1000.0


def _yaml(path: str) -> Any:

    return safe_load_yaml(path)


def read_intrinsics(path: str) -> np.ndarray:
    """(3,3) colour-camera matrix from an intrinsics yml (``color: {fx, fy, ppx, ppy}``)."""
    data = _yaml(path)
    try:
        color = data["color"]
        fx, fy, ppx, ppy = (float(color[k]) for k in ("fx", "fy", "ppx", "ppy"))
    except (TypeError, KeyError, ValueError):
        raise InputError("intrinsics must have color: {fx, fy, ppx, ppy}", path=path) from None
    return np.array([[fx, 0.0, ppx], [0.0, fy, ppy], [0.0, 0.0, 1.0]])


class DexYCBReader(DatasetReader):
    """Frames of DexYCB: every subject, sequence, camera and frame, in sorted order.

    ``split`` is ``all`` or a path prefix (``20200709-subject-01``, ``<subject>/<sequence>``, or
    ``<subject>/<sequence>/<serial>``): the official s0-s3 splits are defined in the toolkit's
    code, so pick the subjects or cameras you train on. ``mano_path`` is the MANO pickle whose
    PCA basis decodes ``pose_m`` (default: the package's synthetic MANO; pass the official
    MANO_RIGHT.pkl for real data).
    """

    name = "dexycb"

    def __init__(self, root: str | os.PathLike, split: str = "all", mano_path: str | None = None):

        self.root = str(require_dir(root, "DexYCB root"))
        self.split = split or "all"
        self.mano_path = mano_path
        self.notes: list[str] = []
        self.index_findings: list[Finding] = []
        self.sequences: list[dict[str, Any]] = []
        self.frames: list[tuple[int, str, int]] = []  # (sequence number, serial, frame)
        self.intrinsics: dict[str, np.ndarray | str] = {}  # serial -> K, or the error text
        self.betas: dict[str, np.ndarray | str] = {}
        self._mano_basis: dict[str, tuple[np.ndarray, np.ndarray] | str] = {}
        prefix = "" if self.split == "all" else self.split.strip("/")
        subjects = sorted(
            d
            for d in os.listdir(self.root)
            if d not in NOT_SUBJECTS and os.path.isdir(os.path.join(self.root, d))
        )
        for subject in subjects:
            for sequence in sorted(os.listdir(os.path.join(self.root, subject))):
                seq_dir = os.path.join(self.root, subject, sequence)
                rel = f"{subject}/{sequence}"
                if not os.path.isdir(seq_dir) or not _matches(rel, prefix):
                    continue
                self._add_sequence(subject, sequence, seq_dir, prefix)
        if not self.frames and self.index_findings:
            first = self.index_findings[0]
            raise InputError(
                f"no DexYCB frames: all {len(self.index_findings)} sequence(s) were skipped; the"
                f" first, {first.path}: {first.message.removeprefix('sequence skipped: ')}",
                path=self.root,
            )
        if not self.frames:
            raise InputError(
                f"no DexYCB frames found{'' if not prefix else f' under {prefix!r}'}",
                path=self.root,
                hint="expected <root>/<subject>/<sequence>/meta.yml and <serial>/labels_*.npz",
            )
        self.sample_ids = [
            f"{self.sequences[s]['rel']}/{serial}/{frame:06d}" for s, serial, frame in self.frames
        ]

    def _add_sequence(self, subject: str, sequence: str, seq_dir: str, prefix: str) -> None:

        rel = f"{subject}/{sequence}"
        meta_path = os.path.join(seq_dir, "meta.yml")
        try:
            meta = _yaml(meta_path)
            serials = [str(s) for s in meta["serials"]]
            num_frames = int(meta["num_frames"])
            side = str(meta.get("mano_sides", ["right"])[0])
            calib = str(meta["mano_calib"][0])
        except (InputError, KeyError, TypeError, ValueError, IndexError) as err:
            text = err.detail if isinstance(err, InputError) else f"missing or bad key {err}"
            check = "meta_unsafe" if isinstance(err, UnsafeInputError) else "meta_missing"
            self.index_findings.append(
                Finding(-1, rel, meta_path, check, "fail", f"sequence skipped: {text}")
            )
            return
        if calib not in self.betas:
            self.betas[calib] = self._read_betas(calib)
        number = len(self.sequences)
        self.sequences.append(
            {"rel": rel, "dir": seq_dir, "side": side, "calib": calib, "meta": meta_path}
        )
        for serial in serials:
            if not _matches(f"{rel}/{serial}", prefix):
                continue
            if serial not in self.intrinsics:
                path = os.path.join(self.root, "calibration", "intrinsics", f"{serial}_640x480.yml")
                try:
                    self.intrinsics[serial] = read_intrinsics(path)
                except InputError as err:
                    self.intrinsics[serial] = str(err)
            self.frames.extend((number, serial, f) for f in range(num_frames))

    def _read_betas(self, calib: str) -> np.ndarray | str:
        path = os.path.join(self.root, "calibration", f"mano_{calib}", "mano.yml")
        try:
            betas = np.asarray(_yaml(path)["betas"], dtype=float)
        except (InputError, KeyError, TypeError, ValueError) as err:
            return str(err)
        if betas.shape != (10,):
            return f"{path}: betas has shape {betas.shape}, expected (10,)"
        return betas

    def paths(self, index: int) -> dict[str, str]:
        number, serial, frame = self.frames[index]
        base = os.path.join(self.sequences[number]["dir"], serial)
        return {
            "labels": os.path.join(base, f"labels_{frame:06d}.npz"),
            "rgb": os.path.join(base, f"color_{frame:06d}.jpg"),
            "depth": os.path.join(base, f"aligned_depth_to_color_{frame:06d}.png"),
        }

    def read(self, index: int, images: bool = False) -> SampleRecord:
        number, serial, _ = self.frames[index]
        sequence = self.sequences[number]
        record = SampleRecord(index, self.sample_ids[index], self.paths(index))
        _read_labels_into(record)
        cam_k = self.intrinsics[serial]
        betas = self.betas[sequence["calib"]]
        record.raw["side"] = sequence["side"]
        if isinstance(cam_k, str):
            record.problem("calibration_present", "fail", f"no intrinsics: {cam_k}")
            record.annotated = False
        else:
            record.raw["cam_k"] = cam_k
        if isinstance(betas, str):
            record.problem("calibration_present", "warn", f"no MANO betas: {betas}")
        else:
            record.raw["betas"] = betas
        if images:
            read_rgb(record)
            read_depth_png(record, decode_depth, expect_mode="I;16")
        return record

    def mano_basis(self, side: str) -> tuple[np.ndarray, np.ndarray] | str:
        """(hands_components (45,45), hands_mean (45,)) of ``side``, or why they are missing."""
        if side not in self._mano_basis:
            try:
                data = load_mano_data(self.mano_path, side=side)
                self._mano_basis[side] = (
                    np.asarray(data["hands_components"], dtype=float)[:45],
                    np.asarray(data["hands_mean"], dtype=float),
                )
            except (InputError, ImportError, KeyError, TypeError) as err:
                self._mano_basis[side] = f"no {side} MANO PCA basis ({err})"
        return self._mano_basis[side]

    def canonical(self, records: Sequence[SampleRecord]) -> CanonicalChunk:
        annotated = [r for r in records if r.annotated]
        if not annotated:
            return empty_chunk()
        joints_mm = stack_rows(annotated, "joint_3d", (21, 3)) * 1000.0
        cam_k = stack_rows(annotated, "cam_k", (3, 3))
        pose_m = stack_rows(annotated, "pose_m", (51,))
        pose = np.full((len(annotated), 48), np.nan)
        pose[:, :3] = pose_m[:, :3]
        for side in {r.raw.get("side", "right") for r in annotated}:
            rows = np.array([r.raw.get("side", "right") == side for r in annotated])
            basis = self.mano_basis(side)
            if not isinstance(basis, str):
                components, mean = basis
                pose[rows, 3:] = pose_m[rows, 3:48] @ components + mean
        shape = stack_rows(annotated, "betas", (10,))
        has_mano = np.isfinite(pose).all(axis=1) & np.isfinite(shape).all(axis=1)
        uv_px = project(joints_mm, cam_k)
        wh = np.array(
            [r.image_wh if r.image_wh is not None else (np.nan, np.nan) for r in annotated],
            dtype=float,
        )
        return CanonicalChunk(
            records=annotated,
            joints_mm=joints_mm,
            cam_k=cam_k,
            uv_px=uv_px,
            uv_given_px=stack_rows(annotated, "joint_2d", (21, 2)),
            mano_pose=pose,
            mano_shape=shape,
            image_wh=wh,
            depth_at_joints_mm=depth_at_joints(annotated, uv_px),
            has_mano=has_mano,
        )


def _matches(rel: str, prefix: str) -> bool:
    """True when ``rel`` lies under ``prefix`` or ``prefix`` lies under ``rel`` (a parent)."""
    if not prefix:
        return True
    return rel == prefix or rel.startswith(prefix + "/") or prefix.startswith(rel + "/")


def _read_labels_into(record: SampleRecord) -> None:
    path = record.paths["labels"]
    try:
        raw = load_npz(path, "labels npz", max_bytes=LABELS_MAX_BYTES, keys=LABEL_KEYS)
    except UnsafeInputError as err:
        record.problem("labels_unsafe", "fail", f"refused: {str(err)[:160]}")
        return
    except InputError as err:
        missing = "not found" in str(err)
        record.problem("labels_missing" if missing else "labels_unreadable", "fail",
                       "labels npz not found" if missing else str(err)[:200])  # fmt: skip
        return
    absent = [k for k in LABEL_KEYS if k not in raw]
    if absent:
        record.problem("labels_schema", "fail", f"labels lack {', '.join(absent)}", value=absent)
        return
    shapes = {"joint_3d": (1, 21, 3), "joint_2d": (1, 21, 2), "pose_m": (1, 51)}
    bad = [
        f"{k} {raw[k].dtype}{tuple(raw[k].shape)}"
        for k, want in shapes.items()
        if raw[k].shape != want or raw[k].dtype.kind not in "fiu"
    ]
    if bad:
        record.problem("labels_schema", "fail", "unexpected label arrays: " + ", ".join(bad))
        return
    record.raw = {k: raw[k][0].astype(np.float64) for k in LABEL_KEYS}
    if np.all(raw["joint_3d"] == -1):
        record.problem("annotation_present", "info", "no hand in this frame (joint_3d all -1)")
        return
    record.annotated = True
