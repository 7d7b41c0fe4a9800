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

import os
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np

from utnet_diag.datasets.common import (
    CanonicalChunk,
    DatasetReader,
    Finding,
    LazyRecords,
    SampleRecord,
    depth_at_joints,
    empty_chunk,
    flip_global_orient,
    project,
    stack_values,
)
from utnet_diag.datasets.images import read_depth_png, read_rgb
from utnet_diag.errors import InputError, UnsafeInputError
from utnet_diag.io.files import open_regular, require_dir
from utnet_diag.io.safe_pickle import BYTES_GLOBALS, NUMPY_GLOBALS, restricted_load
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
MAX_SPLIT_LINE = 256  # 'SEQ/FRAME' ids are a few dozen characters


def meta_allow_list() -> dict[tuple[str, str], Any]:
    """Globals an HO3D meta pickle may name: numpy array reconstruction (plain ndarrays, dtypes,
    scalars) and ``_codecs.encode`` restricted to latin1 (Python 3 protocol-2 bytes)."""

    allowed = {**NUMPY_GLOBALS, **BYTES_GLOBALS}
    # numpy's own C _reconstruct, without safe_pickle's Python wrapper (one call per array of
    # every frame: the wrapper alone cost 0.4x a bare unpickle). Its subtype check is moot here:
    # the only ndarray type this allow-list can produce is numpy.ndarray itself, and numpy
    # rejects any other first argument.
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _RECONSTRUCT
    # and the plain ndarray type for it (the readers check `type(v) is np.ndarray`); a meta file
    # that calls numpy.ndarray(huge shape) gets lazily mapped pages that nothing touches: every
    # value is checked for its shape before use
    allowed[("numpy", "ndarray")] = np.ndarray
    # and numpy's own dtype: with the C _reconstruct, an array's bytes come from the file, so a
    # dtype cannot make it claim more memory than the file holds
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


def read_meta(path: str) -> Any:
    """Unpickle an HO3D meta file with the numpy-only allow-list (``encoding='latin1'``).

    Raises FileNotFoundError, UnsafeInputError (a forbidden global), InputError (corrupt).
    """
    with os.fdopen(open_regular(path), "rb") as handle:
        return restricted_load(handle, _ALLOWED, encoding="latin1")


_ALLOWED = meta_allow_list()


class _MetaUnpickler(pickle.Unpickler):
    """The C unpickler resolving globals only through the meta allow-list (``_ALLOWED``, the
    same dict :func:`read_meta` uses): no Python ``__init__``, three ``find_class`` calls per
    meta file (the pickle's memo holds the globals after their first use)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeInputError(
                f"pickle refers to '{module}.{name}', which is not allowed here"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeInputError("pickle uses persistent ids, which are not allowed here")


class _PeekableBytes:
    """A read-only file over bytes with ``peek``: the C unpickler then parses the whole buffer
    in place (one ``peek``, one ``read``) instead of calling ``read`` per opcode."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def peek(self, size: int = 0) -> bytes:
        return self.data[self.pos :] if self.pos else self.data

    def read(self, size: int = -1) -> bytes:
        start = self.pos
        self.pos = end = len(self.data) if size is None or size < 0 else start + size
        return self.data[start:end]  # past the end: b"" (slices clamp)

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def readline(self, size: int = -1) -> bytes:
        end = self.data.find(b"\n", self.pos)
        end = len(self.data) if end < 0 else end + 1
        if size is not None and size >= 0:
            end = min(end, self.pos + size)
        start, self.pos = self.pos, end
        return self.data[start:end]


_READ_SIZE = 1 << 16


def _read_bytes(path: str) -> bytes:
    """The whole file, with os-level calls (no io stack: half the cost of ``open().read()``)."""
    fd = open_regular(path)
    try:
        data = os.read(fd, _READ_SIZE)
        if len(data) == _READ_SIZE:
            parts = [data]
            while part := os.read(fd, _READ_SIZE):
                parts.append(part)
            data = b"".join(parts)
    finally:
        os.close(fd)
    return data


def load_meta_fast(path: str) -> Any:
    """Unpickle a meta file with the allow-list of :func:`read_meta`, at the cost of a bare
    ``pickle.load``. Raises whatever the file causes (OSError, UnsafeInputError, pickle errors):
    callers re-read such a file with :func:`read_meta` to describe the problem."""
    return _MetaUnpickler(_PeekableBytes(_read_bytes(path)), encoding="latin1",
                          fix_imports=False).load()  # fmt: skip


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
        with os.fdopen(open_regular(path), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError:
        raise InputError("split list is not UTF-8 text", path=path) from None
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_SPLIT_LINE:
            raise InputError(
                f"line {number} is {len(line)} characters long; a split line is 'SEQ/FRAME' like"
                " 'ABF10/0000'",
                path=path,
            )
    pairs = [line.partition("/")[::2] for line in map(str.strip, lines) if line]
    if all(seq and frame and "/" not in frame for seq, frame in pairs):
        return pairs  # type: ignore[return-value]
    for number, line in enumerate(lines, start=1):  # name the first bad line
        line = line.strip()
        seq, _, frame = line.partition("/")
        if line and not (seq and frame and "/" not in frame):
            raise InputError(
                f"line {number} is {line[:60]!r}; expected 'SEQ/FRAME' like 'ABF10/0000'",
                path=path,
            )
    raise AssertionError("unreachable")  # pragma: no cover


class HO3DReader(DatasetReader):
    """Frames of one HO3D split, in the split list's order (or sorted, without a list)."""

    name = "ho3d"

    def __init__(self, root: str | os.PathLike, split: str = "train"):

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
        self._bases = {seq: os.path.join(split_dir, seq) + os.sep for seq in dict(pairs)}
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
            read_rgb(record)
            read_depth_png(record, decode_depth, expect_mode="RGB")
        return record

    def canonical(self, records: Sequence[SampleRecord]) -> CanonicalChunk:
        annotated = [r for r in records if r.annotated]
        if not annotated:
            return empty_chunk()
        values = {key: [r.raw.get(key) for r in annotated] for key, _, _ in _EXPECTED}
        wh = np.array(
            [r.image_wh if r.image_wh is not None else (np.nan, np.nan) for r in annotated],
            dtype=float,
        )
        return _canonical(
            annotated, values, wh, lambda uv_px: depth_at_joints(annotated, uv_px), False
        )

    def read_annotations(self, indices: Sequence[int]) -> tuple[list[Finding], CanonicalChunk]:
        """Annotation-only fast path of ``read`` + ``canonical`` over ``indices``: the reading
        findings (unsorted) and the canonical chunk of the annotated frames, identical to the
        per-sample path but with no per-sample objects for regular frames.

        A frame is regular when its meta unpickles (same allow-list) to a dict holding
        ``handJoints3D`` (21,3), ``camMat`` (3,3), ``handPose`` (48,) and ``handBeta`` (10,)
        numeric arrays, or is unannotated (no joints, or only the root); every other frame
        (missing, refused, corrupt, odd values) is re-read by :meth:`read`, which describes it.
        """
        pairs, bases, ids, sep = self.pairs, self._bases, self.sample_ids, os.sep
        ndarray = np.ndarray
        findings: list[Finding] = []
        rows: list[int] = []
        checked = True  # every value is a numeric array of the expected shape
        values: dict[str, list[Any]] = {key: [] for key, _, _ in _EXPECTED}
        joints_v, cam_v, pose_v, beta_v = (values[key] for key, _, _ in _EXPECTED)
        for index in indices:
            seq, frame = pairs[index]
            path = f"{bases[seq]}meta{sep}{frame}.pkl"
            try:
                meta = load_meta_fast(path)
            except Exception:  # described by the per-sample path below
                meta = None
            if type(meta) is dict:
                joints = meta.get("handJoints3D")
                cam = meta.get("camMat")
                pose = meta.get("handPose")
                beta = meta.get("handBeta")
                if (
                    type(joints) is ndarray and joints.shape == (21, 3)
                    and type(cam) is ndarray and cam.shape == (3, 3)
                    and type(pose) is ndarray and pose.shape == (48,)
                    and type(beta) is ndarray and beta.shape == (10,)
                    and joints.dtype.kind in "fiu" and cam.dtype.kind in "fiu"
                    and pose.dtype.kind in "fiu" and beta.dtype.kind in "fiu"
                ):  # fmt: skip
                    rows.append(index)
                    joints_v.append(joints)
                    cam_v.append(cam)
                    pose_v.append(pose)
                    beta_v.append(beta)
                    continue
                if joints is None or (type(joints) is ndarray and joints.shape == (3,)):
                    findings.append(
                        Finding(index, ids[index], path, *_unannotated(joints))
                    )  # fmt: skip
                    continue
            record = self.read(index)
            findings.extend(record.problems)
            if record.annotated:
                checked = False
                rows.append(index)
                for key, into in values.items():
                    into.append(record.raw.get(key))
        if not rows:
            return findings, empty_chunk()
        n = len(rows)
        nan = np.full((n, 21), np.nan)
        chunk = _canonical(
            LazyRecords(self, rows), values, np.full((n, 2), np.nan), lambda _: nan, checked
        )
        return findings, chunk


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
        record.problem(*_unannotated(joints))
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


def _unannotated(joints: Any) -> tuple[str, str, str]:
    """(check, severity, message) of a frame without hand annotation."""
    # v3 evaluation frames keep only the root; older ones store None: not annotated.
    what = "only the root joint" if joints is not None else "no handJoints3D"
    return "annotation_present", "info", f"unannotated frame ({what})"


def _canonical(
    records: Sequence[SampleRecord],
    values: dict[str, list[Any]],
    image_wh: np.ndarray,
    depth_fn: Any,
    checked: bool,
) -> CanonicalChunk:
    """Canonical chunk from the annotated frames' meta values (``_EXPECTED`` key -> one value per
    record, None where absent), (N,2) image sizes and ``depth_fn(uv_px) -> (N,21)`` mm;
    ``checked``: every value is a numeric array of its expected shape."""
    joints_gl = stack_values(values["handJoints3D"], (21, 3), checked)
    joints_mm = joints_gl.take(_MANO_TO_SPEC, axis=1)
    joints_mm *= OPENGL_TO_OPENCV * 1000.0
    cam_k = stack_values(values["camMat"], (3, 3), checked)
    uv_px = project(joints_mm, cam_k)
    pose = stack_values(values["handPose"], (48,), checked)
    shape = stack_values(values["handBeta"], (10,), checked)
    # present = stored as an array (None: absent). Both present: the frame has MANO, and any
    # NaN in it is a NaN (check "finite"); one of the two: a partial annotation ("mano_complete")
    if checked:
        present = np.ones((len(pose), 2), dtype=bool)
    else:
        present = np.array(
            [
                (p is not None, b is not None)
                for p, b in zip(values["handPose"], values["handBeta"])
            ],
            dtype=bool,
        ).reshape(-1, 2)
    has_mano = present.all(axis=1)
    return CanonicalChunk(
        records=records,  # type: ignore[arg-type]
        joints_mm=joints_mm,
        cam_k=cam_k,
        uv_px=uv_px,
        uv_given_px=np.full_like(uv_px, np.nan),
        mano_pose=flip_global_orient(pose),
        mano_shape=shape,
        image_wh=image_wh,
        depth_at_joints_mm=depth_fn(uv_px),
        has_mano=has_mano,
        mano_present=present,
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
    raw = err.detail if isinstance(err, InputError) else str(err)
    text = " ".join(raw.split()).replace(f"{path}: ", "")
    return text[:200] or type(err).__name__
