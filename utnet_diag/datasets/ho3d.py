"""HO3D v2/v3 on disk: ``<root>/{train,evaluation}/<SEQ>/{rgb,depth,meta}/<FRAME>.*``.

Split lists ``<root>/train.txt`` / ``<root>/evaluation.txt`` hold ``SEQ/FRAME`` lines.
A meta pickle is a dict of numpy arrays: ``handJoints3D`` (21,3) metres, MANO order + tips
(thumb, index, middle, ring, pinky), ``handPose`` (48,) absolute axis-angle, ``handBeta`` (10,),
``handTrans`` (3,), ``camMat`` (3,3), all in OpenGL axes (flip y and z for OpenCV). Unannotated
frames have None values; v3 evaluation frames have only the root ``handJoints3D`` (3,) and a
``handBoundingBox``. Pickles are read with a restricted unpickler that knows numpy arrays and
nothing else; a pickle asking for any other global is refused and never executed.
Depth PNGs pack metres as ``(R + 256*G) * DEPTH_SCALE`` (the official ``img[:,:,2] +
img[:,:,1]*256`` on cv2's BGR image).
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from utnet_diag.datasets.common import (
    CanonicalChunk,
    DatasetReader,
    SampleRecord,
    depth_at_joints,
    empty_chunk,
    flip_global_orient,
    project,
    stack_rows,
)
from utnet_diag.errors import InputError, UnsafeInputError
from utnet_diag.io.safe_pickle import restricted_load
from utnet_diag.joints import MANO_TO_SPEC

try:
    from numpy._core.multiarray import _reconstruct as _RECONSTRUCT  # numpy >= 2
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _RECONSTRUCT  # type: ignore[no-redef]

DEPTH_SCALE = 0.00012498664727900177  # metres per unit of (R + 256*G)
SPLITS = ("train", "evaluation")
OPENGL_TO_OPENCV = np.array([1.0, -1.0, -1.0])
_MANO_TO_SPEC = np.array(MANO_TO_SPEC)
IMAGE_SUFFIXES = (".jpg", ".png")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Python 3 protocol-2 pickles store bytes as _codecs.encode(str, 'latin1'); nothing else.
    if encoding.lower().replace("-", "") not in ("latin1", "iso88591"):
        raise ValueError(f"encoding {encoding!r} refused")
    return codecs.encode(text, "latin1")


def meta_allow_list() -> dict[tuple[str, str], Any]:
    """Globals an HO3D meta pickle may name: numpy array reconstruction (plain ndarrays, dtypes,
    scalars) and ``_codecs.encode`` restricted to latin1 (Python 3 protocol-2 bytes)."""
    from utnet_diag.io.safe_pickle import NUMPY_GLOBALS

    allowed = {**NUMPY_GLOBALS, ("_codecs", "encode"): _latin1_encode}
    # numpy's own C _reconstruct, without safe_pickle's Python wrapper (one call per array of
    # every frame: the wrapper alone cost 0.4x a bare unpickle). Its subtype check is moot here:
    # the only ndarray type this allow-list can produce is numpy.ndarray itself, and numpy
    # rejects any other first argument.
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _RECONSTRUCT
    return allowed


def read_meta(path: str) -> Any:
    """Unpickle an HO3D meta file with the numpy-only allow-list (``encoding='latin1'``).

    Raises FileNotFoundError, UnsafeInputError (a forbidden global), InputError (corrupt).
    """
    with open(path, "rb") as handle:
        return restricted_load(handle, _ALLOWED, encoding="latin1")


_ALLOWED = meta_allow_list()


def decode_depth(rgb: np.ndarray) -> np.ndarray:
    """(H,W,3) uint8 HO3D depth PNG (R low byte, G high byte) -> (H,W) float32 metres.

    Decoded in uint32: ``R + 256*G`` overflows uint8 arithmetic on NumPy 2.
    """
    packed = rgb[..., 0].astype(np.uint32) + rgb[..., 1].astype(np.uint32) * 256
    return (packed * DEPTH_SCALE).astype(np.float32)


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """(H,W) metres -> (H,W,3) uint8 RGB as HO3D stores it (R low, G high, B 0)."""
    packed = np.clip(np.round(np.asarray(depth_m, dtype=np.float64) / DEPTH_SCALE), 0, 65535)
    packed = packed.astype(np.uint32)
    out = np.zeros(packed.shape + (3,), dtype=np.uint8)
    out[..., 0] = packed & 0xFF
    out[..., 1] = packed >> 8
    return out


def read_split_file(root: str, split: str) -> list[tuple[str, str]]:
    """``(SEQ, FRAME)`` pairs from ``<root>/<split>.txt``; InputError for a bad line."""
    path = os.path.join(root, f"{split}.txt")
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError:
        raise InputError("split list is not UTF-8 text", path=path) from None
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split("/")
        if len(parts) != 2 or not all(parts):
            raise InputError(
                f"line {number} is {line[:60]!r}; expected 'SEQ/FRAME' like 'ABF10/0000'",
                path=path,
            )
        pairs.append((parts[0], parts[1]))
    return pairs


class HO3DReader(DatasetReader):
    """Frames of one HO3D split, in the split list's order (or sorted, without a list)."""

    name = "ho3d"

    def __init__(self, root: str | os.PathLike, split: str = "train"):
        from utnet_diag.io.files import require_dir

        self.root = str(require_dir(root, "HO3D root"))
        if split not in SPLITS:
            raise InputError(
                f"unknown HO3D split '{split}'", hint=f"choose one of {', '.join(SPLITS)}"
            )
        self.split = split
        split_dir = os.path.join(self.root, split)
        if not os.path.isdir(split_dir):
            raise InputError(
                f"no '{split}' folder in the HO3D root",
                path=self.root,
                hint="expected <root>/{train,evaluation}/<SEQ>/meta/<FRAME>.pkl",
            )
        self.notes: list[str] = []
        if os.path.isfile(os.path.join(self.root, f"{split}.txt")):
            pairs = read_split_file(self.root, split)
        else:
            pairs = [
                (seq, name[:-4])
                for seq in sorted(os.listdir(split_dir))
                if os.path.isdir(os.path.join(split_dir, seq, "meta"))
                for name in sorted(os.listdir(os.path.join(split_dir, seq, "meta")))
                if name.endswith(".pkl")
            ]
            self.notes.append(f"no {split}.txt: listed the meta folders instead")
        if not pairs:
            raise InputError(f"the HO3D '{split}' split has no frames", path=split_dir)
        self.pairs = pairs
        self.sample_ids = [f"{split}/{seq}/{frame}" for seq, frame in pairs]
        # string concatenation: os.path.join per frame costs as much as the checks
        self._bases = {seq: os.path.join(split_dir, seq) + os.sep for seq, _ in pairs}
        self.rgb_suffix = self._detect_rgb_suffix()

    def _detect_rgb_suffix(self) -> str:
        seq, frame = self.pairs[0]
        for suffix in IMAGE_SUFFIXES:  # v3 stores JPEG, v2 PNG
            if os.path.isfile(os.path.join(self.root, self.split, seq, "rgb", frame + suffix)):
                return suffix
        return IMAGE_SUFFIXES[0]

    def paths(self, index: int) -> dict[str, str]:
        seq, frame = self.pairs[index]
        base = self._bases[seq]
        sep = os.sep
        return {
            "meta": f"{base}meta{sep}{frame}.pkl",
            "rgb": f"{base}rgb{sep}{frame}{self.rgb_suffix}",
            "depth": f"{base}depth{sep}{frame}.png",
        }

    def read(self, index: int, images: bool = False) -> SampleRecord:
        record = SampleRecord(index, self.sample_ids[index], self.paths(index))
        _read_meta_into(record)
        if images:
            from utnet_diag.datasets.images import read_depth_png, read_rgb

            read_rgb(record)
            read_depth_png(record, decode_depth, expect_mode="RGB")
        return record

    def canonical(self, records: Sequence[SampleRecord]) -> CanonicalChunk:
        annotated = [r for r in records if r.annotated]
        if not annotated:
            return empty_chunk()
        joints_gl = stack_rows(annotated, "handJoints3D", (21, 3))
        joints_mm = joints_gl.take(_MANO_TO_SPEC, axis=1)
        joints_mm *= OPENGL_TO_OPENCV * 1000.0
        cam_k = stack_rows(annotated, "camMat", (3, 3))
        uv_px = project(joints_mm, cam_k)
        pose = stack_rows(annotated, "handPose", (48,))
        shape = stack_rows(annotated, "handBeta", (10,))
        has_mano = np.isfinite(pose).any(axis=1) | np.isfinite(shape).any(axis=1)
        wh = np.array(
            [r.image_wh if r.image_wh is not None else (np.nan, np.nan) for r in annotated],
            dtype=float,
        )
        return CanonicalChunk(
            records=annotated,
            joints_mm=joints_mm,
            cam_k=cam_k,
            uv_px=uv_px,
            uv_given_px=np.full_like(uv_px, np.nan),
            mano_pose=flip_global_orient(pose),
            mano_shape=shape,
            image_wh=wh,
            depth_at_joints_mm=depth_at_joints(annotated, uv_px),
            has_mano=has_mano,
        )


def _read_meta_into(record: SampleRecord) -> None:
    path = record.paths["meta"]
    try:
        meta = read_meta(path)
    except FileNotFoundError:
        record.problem("meta_missing", "fail", "meta pickle not found")
        return
    except UnsafeInputError as err:
        record.problem("meta_unsafe", "fail", f"refused, not executed: {_short(err, path)}")
        return
    except (InputError, OSError, ValueError, TypeError, EOFError, UnicodeError) as err:
        record.problem("meta_unreadable", "fail", f"cannot unpickle: {_short(err, path)}")
        return
    if not isinstance(meta, dict):
        record.problem(
            "meta_schema", "fail", f"meta is a {type(meta).__name__}, expected a dict of arrays"
        )
        return
    record.raw = meta
    joints = meta.get("handJoints3D")
    if joints is None or (isinstance(joints, np.ndarray) and joints.shape == (3,)):
        # v3 evaluation frames keep only the root; older ones store None: not annotated.
        what = "only the root joint" if joints is not None else "no handJoints3D"
        record.problem("annotation_present", "info", f"unannotated frame ({what})")
        return
    bad = [
        f"{key} {_shape_of(meta.get(key))}"
        for key, shape, required in _EXPECTED
        if not _is_numeric(meta.get(key), shape, required)
    ]
    if bad:
        record.problem(
            "meta_schema", "fail", "unexpected meta values: " + ", ".join(bad), value=bad
        )
        return
    record.annotated = True


_EXPECTED = (
    ("handJoints3D", (21, 3), True),
    ("camMat", (3, 3), True),
    ("handPose", (48,), False),
    ("handBeta", (10,), False),
)


def _is_numeric(value: Any, shape: tuple[int, ...], required: bool) -> bool:
    if value is None:
        return not required
    return type(value) is np.ndarray and value.shape == shape and value.dtype.kind in "fiu"


def _shape_of(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{tuple(value.shape)}"
    return type(value).__name__


def _short(err: BaseException, path: str) -> str:
    text = " ".join(str(err).split()).replace(f"{path}: ", "")
    return text[:200] or type(err).__name__
