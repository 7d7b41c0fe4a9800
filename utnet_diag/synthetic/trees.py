"""Small synthetic HO3D and DexYCB trees in the real on-disk layouts and encodings.

Hands come from the package's MANO layer (random poses and shapes, placed 0.4-0.7 m in front of
the camera); images are the rasterized mesh on a grey background with a matching z-buffer depth
map. Faults can be planted per sample index (see ``HO3D_FAULTS`` and ``DEXYCB_FAULTS``); the
returned :class:`TreeManifest` says which sample ids carry which fault, so tests can assert that a
scan finds exactly those.

HO3D meta pickles are written byte for byte the way Python 2 with numpy 1.x wrote them
(protocol 2, ``numpy.core.multiarray._reconstruct``, array data as 8-bit strings), which is what
the real files hold and why they must be read with ``encoding='latin1'``.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from utnet_diag.datasets.ho3d import encode_depth
from utnet_diag.joints import MANO_TO_SPEC, invert
from utnet_diag.mano import ManoLayer, load_mano_data

IMAGE_WH = (640, 480)
HO3D_CAM = np.array([[614.6, 0.0, 320.4], [0.0, 614.3, 239.6], [0.0, 0.0, 1.0]])
DEXYCB_SERIALS = ("836212060125", "839512060362")
DEXYCB_INTRINSICS = {
    "836212060125": (615.9, 616.0, 318.9, 244.5),
    "839512060362": (617.4, 617.2, 322.2, 238.7),
}
BACKGROUND_M = 1.0  # depth of the flat background behind the hand
FLIP = np.array([1.0, -1.0, -1.0])  # OpenCV <-> OpenGL

HO3D_FAULTS = (
    "nan_joints",  # a NaN in handJoints3D
    "mm_joints",  # handJoints3D stored in millimetres instead of metres
    "unflipped",  # joints stored in OpenCV axes (z > 0 in OpenGL terms: behind the camera)
    "collapsed_joints",  # all 21 joints at the same point
    "huge_betas",  # handBeta x 40
    "unannotated",  # None values (an unannotated frame)
    "root_only",  # v3 evaluation style: handJoints3D (3,) only
    "missing_meta",  # meta pickle deleted
    "truncated_meta",  # meta pickle cut in half
    "unsafe_meta",  # meta pickle that would run os.system
    "truncated_rgb",  # JPEG/PNG cut in half
    "truncated_depth",  # depth PNG cut in half
    "depth_scale",  # depth stored at twice the real distance
)
DEXYCB_FAULTS = (
    "nan_joints",
    "no_hand",  # joint_3d / joint_2d all -1, pose_m zero
    "shifted_2d",  # joint_2d off by 25 px
    "missing_labels",
    "truncated_labels",
    "object_labels",  # an object array inside the npz
    "truncated_depth",
    "huge_betas",  # only sequence-wide in DexYCB (mano.yml); planted on a whole calibration
)


@dataclass
class TreeManifest:
    """What a writer produced: the root, sample ids in the reader's order, planted faults
    (fault name -> sample ids), and the written hands (sample id -> joints (21,3) mm OpenCV,
    spec order) for exact comparisons."""

    root: str
    dataset: str
    sample_ids: list[str] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=dict)
    joints_mm: dict[str, np.ndarray] = field(default_factory=dict)
    mano_pose: dict[str, np.ndarray] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Python 2 style protocol-2 pickles (what HO3D's meta files are)


class _Py2Pickler:
    """Writes a dict of numpy arrays / None / float / int / str as Python 2 + numpy 1.x did."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.memo: dict[tuple[str, str], int] = {}

    def dump(self, obj: Mapping[str, Any]) -> bytes:
        self.out.write(b"\x80\x02}")  # PROTO 2, EMPTY_DICT
        self._put_memo()
        self.out.write(b"(")  # MARK
        for key, value in obj.items():
            self._string(key.encode("ascii"))
            self._value(value)
        self.out.write(b"u.")  # SETITEMS, STOP
        return self.out.getvalue()

    def _put_memo(self) -> None:
        self.out.write(b"q\x00")  # the dict is memo 0; globals take 1, 2, 3

    def _global(self, module: str, name: str) -> None:
        key = (module, name)
        if key in self.memo:
            index = self.memo[key]
            self.out.write(
                b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)
            )
            return
        self.out.write(b"c" + module.encode() + b"\n" + name.encode() + b"\n")
        index = len(self.memo) + 1
        self.memo[key] = index
        self.out.write(b"q" + bytes([index]))

    def _string(self, data: bytes) -> None:
        if len(data) < 256:
            self.out.write(b"U" + bytes([len(data)]) + data)
        else:
            self.out.write(b"T" + struct.pack("<i", len(data)) + data)

    def _int(self, n: int) -> None:
        if 0 <= n < 256:
            self.out.write(b"K" + bytes([n]))
        else:
            self.out.write(b"J" + struct.pack("<i", n))

    def _value(self, value: Any) -> None:
        if value is None:
            self.out.write(b"N")
        elif isinstance(value, bool):
            self.out.write(b"\x88" if value else b"\x89")
        elif isinstance(value, int):
            self._int(value)
        elif isinstance(value, float):
            self.out.write(b"G" + struct.pack(">d", value))
        elif isinstance(value, str):
            self._string(value.encode("latin1"))
        elif isinstance(value, np.ndarray):
            self._array(value)
        else:
            raise TypeError(f"cannot write {type(value).__name__} into an HO3D meta pickle")

    def _array(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        self._global("numpy.core.multiarray", "_reconstruct")
        self._global("numpy", "ndarray")
        self.out.write(b"K\x00\x85")  # (0,)
        self._string(b"b")
        self.out.write(b"\x87R(K\x01")  # TUPLE3, REDUCE, MARK, version 1
        self.out.write(b"(")
        for dim in array.shape:
            self._int(int(dim))
        self.out.write(b"t")  # shape tuple
        self._global("numpy", "dtype")
        self._string(array.dtype.str[1:].encode())  # 'f8', 'f4', 'i8'...
        self.out.write(b"K\x00K\x01\x87R")  # ('f8', 0, 1) -> dtype
        order = array.dtype.str[0] if array.dtype.itemsize > 1 else "|"
        self.out.write(b"(K\x03")
        self._string(order.encode())
        self.out.write(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")  # dtype state, BUILD
        self.out.write(b"\x89")  # not Fortran order
        self._string(array.tobytes())
        self.out.write(b"tb")  # array state tuple, BUILD


def py2_meta_pickle(meta: Mapping[str, Any]) -> bytes:
    """Bytes of an HO3D meta pickle as Python 2 / numpy 1.x wrote it."""
    return _Py2Pickler().dump(meta)


def unsafe_pickle(marker_path: str) -> bytes:
    """A pickle that would run ``os.system('touch <marker_path>')`` if plainly unpickled."""
    command = f"touch {marker_path}".encode()
    return b"\x80\x02cos\nsystem\nq\x00U" + bytes([len(command)]) + command + b"\x85R."


# ----------------------------------------------------------------------------------------------
# Hands and images


def _hands(
    count: int,
    rng: np.random.Generator,
    mano: str | os.PathLike | None = None,
    same_shape: bool = False,
) -> dict[str, np.ndarray]:
    """Random right hands in OpenCV camera space: pose (N,48) absolute aa, betas (N,10),
    joints (N,21,3) mm spec order, vertices (N,778,3) mm, transl (N,3) mm, pca (N,45) coeffs.
    ``mano``: the MANO file the labels are made with (default the embedded synthetic hand);
    ``same_shape``: one person's hands (one betas for all, as DexYCB's per-subject calibration)."""
    import torch

    data = load_mano_data(mano)
    components = np.asarray(data["hands_components"], dtype=np.float64)[:45]
    mean = np.asarray(data["hands_mean"], dtype=np.float64)
    pca = rng.normal(0.0, 1.0, (count, 45))  # whitened: the components carry the spread
    hand_pose = pca @ components + mean
    global_orient = _random_rotvec(rng, count)
    betas = rng.normal(0.0, 0.8, (1 if same_shape else count, 10)).repeat(
        count if same_shape else 1, axis=0
    )
    layer = ManoLayer(path=mano, flat_hand_mean=True)
    with torch.no_grad():
        output = layer(
            torch.as_tensor(global_orient, dtype=torch.float32),
            torch.as_tensor(hand_pose, dtype=torch.float32),
            torch.as_tensor(betas, dtype=torch.float32),
        )
    joints0 = output.joints.double().numpy()
    vertices0 = output.vertices.double().numpy()
    wrist = np.stack(
        [rng.uniform(-60, 60, count), rng.uniform(-40, 40, count), rng.uniform(400, 700, count)],
        axis=1,
    )
    transl = wrist - joints0[:, 0]
    return {
        "pose": np.concatenate([global_orient, hand_pose], axis=1),
        "betas": betas,
        "joints": joints0 + transl[:, None],
        "vertices": vertices0 + transl[:, None],
        "transl": transl,
        "root_rest": joints0[:, 0],  # MANO rotates about the root: wrist = root_rest + transl
        "pca": pca,
    }


def _random_rotvec(rng: np.random.Generator, count: int) -> np.ndarray:
    axis = rng.normal(size=(count, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return axis * rng.uniform(0.2, 2.5, (count, 1))


def _mano_faces(mano: str | os.PathLike | None = None) -> np.ndarray:
    """(1538,3) int64 triangle indices of the MANO hand (default the package's synthetic one)."""

    return np.asarray(load_mano_data(mano)["f"], dtype=np.int64)


def rasterize_depth(
    vertices_mm: np.ndarray,
    faces: np.ndarray,
    cam_k: np.ndarray,
    wh: tuple[int, int] = IMAGE_WH,
) -> np.ndarray:
    """Z-buffer of a triangle mesh: (V,3) mm OpenCV vertices, (F,3) faces -> (H,W) depth in m.

    A pixel ``(row, col)`` (its centre at ``(col, row)`` px, the pixel ``np.round`` of a
    projection lands in) takes the nearest surface whose triangle covers its centre; pixels no
    triangle covers hold ``BACKGROUND_M``. Every pixel inside the silhouette is filled (no splat
    holes), so a joint inside the hand reads the hand's surface or whatever of the hand occludes it.
    Depth is interpolated linearly in the image (triangles are small: a few pixels).
    """
    w, h = wh
    depth = np.full(h * w, BACKGROUND_M)
    uvw = vertices_mm @ cam_k.T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = uvw[:, :2] / uvw[:, 2:3]
    tri = uv[faces]  # (F,3,2) px
    tri_z = vertices_mm[faces, 2] / 1000.0  # (F,3) m
    usable = (tri_z > 0).all(axis=1) & np.isfinite(tri).all(axis=(1, 2))
    tri = np.where(usable[:, None, None], tri, 0.0)
    lo = np.maximum(np.ceil(tri.min(axis=1)).astype(np.int64), 0)
    hi = np.minimum(np.floor(tri.max(axis=1)).astype(np.int64), [w - 1, h - 1])
    size = np.maximum(hi - lo + 1, 0)  # (F,2) bounding box in pixels
    count = np.where(usable, size[:, 0] * size[:, 1], 0)
    t = np.repeat(np.arange(len(faces)), count)  # one entry per (triangle, bbox pixel)
    local = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    cols = lo[t, 0] + local % size[t, 0]
    rows = lo[t, 1] + local // size[t, 0]
    a = tri[t, 0]
    e1 = tri[t, 1] - a
    e2 = tri[t, 2] - a
    dx = cols - a[:, 0]
    dy = rows - a[:, 1]
    area = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        l1 = (dx * e2[:, 1] - e2[:, 0] * dy) / area
        l2 = (e1[:, 0] * dy - dx * e1[:, 1]) / area
    l0 = 1.0 - l1 - l2
    edge = -1e-6  # pixel centres on a shared edge go to both triangles: no cracks
    inside = (l0 >= edge) & (l1 >= edge) & (l2 >= edge) & np.isfinite(l1)
    z = tri_z[t]
    z_px = l0 * z[:, 0] + l1 * z[:, 1] + l2 * z[:, 2]
    np.minimum.at(depth, (rows * w + cols)[inside], z_px[inside])
    return depth.reshape(h, w)


def render(
    vertices_mm: np.ndarray,
    cam_k: np.ndarray,
    wh: tuple[int, int] = IMAGE_WH,
    faces: np.ndarray | None = None,
):
    """Rasterize the MANO mesh (778,3) mm: (H,W,3) uint8 RGB and (H,W) float64 depth in metres.

    ``faces`` defaults to the package's MANO triangles (see :func:`rasterize_depth`).
    """
    depth = rasterize_depth(vertices_mm, _mano_faces() if faces is None else faces, cam_k, wh)
    w, h = wh
    rgb = np.full((h, w, 3), 96, dtype=np.uint8)
    hand = depth < BACKGROUND_M
    shade = np.clip(255 - (depth - depth[hand].min(initial=0.4)) * 800, 120, 255)
    rgb[hand] = np.stack([shade, shade * 0.75, shade * 0.6], axis=-1)[hand].astype(np.uint8)
    return rgb, depth


def _save_image(path: str, pixels: np.ndarray, fmt: str) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))


def _save_depth16(path: str, depth_m: np.ndarray) -> None:
    from PIL import Image

    mm = np.clip(np.round(depth_m * 1000.0), 0, 65535).astype(np.uint16)
    Image.fromarray(mm).save(path, format="PNG")  # mode I;16


def _truncate(path: str) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(max(1, size // 2))


def _fault_map(
    faults: Mapping[str, Sequence[int]] | None, known: Sequence[str], count: int
) -> dict[int, list[str]]:
    by_index: dict[int, list[str]] = {}
    for name, indices in (faults or {}).items():
        if name not in known:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(known)}")
        for index in indices:
            if not 0 <= index < count:
                raise ValueError(f"fault {name!r} at sample {index}, but there are {count}")
            by_index.setdefault(index, []).append(name)
    return by_index


# ----------------------------------------------------------------------------------------------
# HO3D


def write_ho3d_tree(
    root: str | os.PathLike,
    *,
    sequences: Sequence[str] = ("ABF10", "MC1"),
    frames_per_sequence: int = 4,
    split: str = "train",
    images: bool = True,
    rgb_format: str = "jpg",
    seed: int = 0,
    faults: Mapping[str, Sequence[int]] | None = None,
    mano: str | os.PathLike | None = None,
) -> TreeManifest:
    """Write ``<root>/<split>/<SEQ>/{rgb,depth,meta}`` and ``<root>/<split>.txt``.

    ``rgb_format`` is ``jpg`` (HO3D v3) or ``png`` (v2). ``faults``: fault name (HO3D_FAULTS) ->
    sample indices in the split list's order. ``images=False`` writes meta files only.
    ``mano``: the MANO file the hands are made with (the official one for realistic labels).
    """
    root = str(root)
    count = len(sequences) * frames_per_sequence
    planted = _fault_map(faults, HO3D_FAULTS, count)
    rng = np.random.default_rng(seed)
    hands = _hands(count, rng, mano)
    faces = _mano_faces(mano)
    manifest = TreeManifest(root, "ho3d")
    lines = []
    for n in range(count):
        seq, frame = sequences[n // frames_per_sequence], f"{n % frames_per_sequence:04d}"
        lines.append(f"{seq}/{frame}")
        sample_id = f"{split}/{seq}/{frame}"
        manifest.sample_ids.append(sample_id)
        for name in planted.get(n, []):
            manifest.faults.setdefault(name, []).append(sample_id)
        base = os.path.join(root, split, seq)
        for sub in ("meta", "rgb", "depth") if images else ("meta",):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        manifest.joints_mm[sample_id] = hands["joints"][n]
        manifest.mano_pose[sample_id] = hands["pose"][n]
        _write_ho3d_frame(base, frame, {k: v[n] for k, v in hands.items()}, planted.get(n, []),
                          images, rgb_format, faces)  # fmt: skip
    with open(os.path.join(root, f"{split}.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return manifest


def ho3d_meta(hand: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The meta dict HO3D stores for one hand given in OpenCV mm (joints spec order)."""
    joints_gl_m = hand["joints"][list(invert(MANO_TO_SPEC))] * FLIP / 1000.0
    from scipy.spatial.transform import Rotation

    global_gl = Rotation.from_matrix(
        np.diag(FLIP) @ Rotation.from_rotvec(hand["pose"][:3]).as_matrix()
    ).as_rotvec()
    root_rest = hand["root_rest"] / 1000.0
    wrist_cv = hand["joints"][0] / 1000.0
    # MANO rotates about its rest root: v_gl = R_gl (v0 - J0) + J0 + t_gl
    trans_gl = FLIP * wrist_cv - root_rest
    return {
        "handJoints3D": joints_gl_m.astype(np.float32),
        "handPose": np.concatenate([global_gl, hand["pose"][3:]]).astype(np.float32),
        "handBeta": hand["betas"].astype(np.float32),
        "handTrans": trans_gl.astype(np.float32),
        "camMat": HO3D_CAM.copy(),
        "objName": "021_bleach_cleanser",
        "objLabel": 12,
        "objRot": np.zeros((3, 1), dtype=np.float32),
        "objTrans": np.array([0.0, 0.0, -0.6], dtype=np.float32),
        "objCorners3DRest": np.zeros((8, 3), dtype=np.float32),
    }


def _write_ho3d_frame(
    base: str,
    frame: str,
    hand: Mapping[str, np.ndarray],
    faults: list[str],
    images: bool,
    rgb_format: str,
    faces: np.ndarray | None = None,
) -> None:

    meta = ho3d_meta(hand)
    if "nan_joints" in faults:
        meta["handJoints3D"][7, 1] = np.nan
    if "mm_joints" in faults:
        meta["handJoints3D"] = meta["handJoints3D"] * 1000.0
    if "unflipped" in faults:
        meta["handJoints3D"] = meta["handJoints3D"] * FLIP.astype(np.float32)
    if "collapsed_joints" in faults:
        meta["handJoints3D"][:] = meta["handJoints3D"][0]
    if "huge_betas" in faults:
        meta["handBeta"] = meta["handBeta"] * 40.0 + 15.0
    if "unannotated" in faults:
        for key in ("handJoints3D", "handPose", "handBeta", "handTrans"):
            meta[key] = None
    if "root_only" in faults:
        meta = {
            "handJoints3D": meta["handJoints3D"][0].copy(),
            "handBoundingBox": np.array([200, 150, 400, 350], dtype=np.int64),
            "camMat": meta["camMat"],
            "objName": meta["objName"],
        }
    meta_path = os.path.join(base, "meta", frame + ".pkl")
    if "unsafe_meta" in faults:
        payload = unsafe_pickle(os.path.join(base, "meta", f"PWNED_{frame}"))
    else:
        payload = py2_meta_pickle(meta)
    if "missing_meta" not in faults:
        Path(meta_path).write_bytes(payload)
        if "truncated_meta" in faults:
            _truncate(meta_path)
    if not images:
        return
    rgb, depth = render(hand["vertices"], HO3D_CAM, faces=faces)
    if "depth_scale" in faults:
        depth = depth * 2.0
    rgb_path = os.path.join(base, "rgb", f"{frame}.{rgb_format}")
    _save_image(rgb_path, rgb, "JPEG" if rgb_format == "jpg" else "PNG")
    depth_path = os.path.join(base, "depth", frame + ".png")
    _save_image(depth_path, encode_depth(depth), "PNG")
    if "truncated_rgb" in faults:
        _truncate(rgb_path)
    if "truncated_depth" in faults:
        _truncate(depth_path)


# ----------------------------------------------------------------------------------------------
# DexYCB


def _write_dexycb_intrinsics(root: str, serials: Sequence[str]) -> None:
    """``calibration/intrinsics/<serial>_640x480.yml`` for each camera."""
    import yaml

    intr_dir = os.path.join(root, "calibration", "intrinsics")
    os.makedirs(intr_dir, exist_ok=True)
    for serial in serials:
        fx, fy, ppx, ppy = DEXYCB_INTRINSICS.get(serial, (615.0, 615.0, 320.0, 240.0))
        intr = {
            "color": {"fx": fx, "fy": fy, "ppx": ppx, "ppy": ppy},
            "depth": {"fx": 385.1, "fy": 385.1, "ppx": 321.2, "ppy": 237.3},
        }
        with open(os.path.join(intr_dir, f"{serial}_640x480.yml"), "w") as handle:
            yaml.safe_dump(intr, handle)


def _write_dexycb_meta(
    root: str, subject: str, sequence: str, serials: Sequence[str], num_frames: int, calib: str
) -> str:
    """``<subject>/<sequence>/meta.yml``; returns the sequence folder."""
    import yaml

    seq_dir = os.path.join(root, subject, sequence)
    os.makedirs(seq_dir, exist_ok=True)
    meta = {
        "serials": list(serials), "num_frames": num_frames, "object_ids": [1, 12],
        "mano_sides": ["right"], "mano_calib": [calib], "ycb_ids": [2, 12], "ycb_grasp_ind": 1,
        "pcd_serials": list(serials),
    }  # fmt: skip
    with open(os.path.join(seq_dir, "meta.yml"), "w") as handle:
        yaml.safe_dump(meta, handle)
    return seq_dir


def write_dexycb_tree(
    root: str | os.PathLike,
    *,
    subjects: Sequence[str] = ("20200709-subject-01",),
    sequences: Sequence[str] = ("20200709_141754",),
    serials: Sequence[str] = DEXYCB_SERIALS,
    num_frames: int = 3,
    images: bool = True,
    seed: int = 0,
    faults: Mapping[str, Sequence[int]] | None = None,
    mano: str | os.PathLike | None = None,
) -> TreeManifest:
    """Write ``<root>/<subject>/<sequence>/{meta.yml,<serial>/...}`` and ``<root>/calibration``.

    ``mano``: the MANO file the hands are made with (the official one for realistic labels).

    Every subject gets every sequence name; samples are ordered subject, sequence, serial, frame
    (the reader's order). One hand per (subject, sequence, frame), seen by every camera; each
    serial's camera here shares the colour camera frame (labels are per camera in DexYCB, and the
    reader treats each camera's labels on their own). ``huge_betas`` fault indices name samples
    whose whole calibration gets huge betas.
    """
    import yaml

    root = str(root)
    frames_total = len(subjects) * len(sequences) * len(serials) * num_frames
    planted = _fault_map(faults, DEXYCB_FAULTS, frames_total)
    rng = np.random.default_rng(seed)
    faces = _mano_faces(mano)
    manifest = TreeManifest(root, "dexycb")
    _write_dexycb_intrinsics(root, serials)
    n = 0
    for s, subject in enumerate(subjects):
        calib = f"20200709_{s:02d}_subject-{s + 1:02d}_right"
        hands = _hands(len(sequences) * num_frames, rng, mano, same_shape=True)
        betas = hands["betas"][0]
        per_calib = range(n, n + len(sequences) * len(serials) * num_frames)
        if any("huge_betas" in planted.get(i, []) for i in per_calib):
            betas = betas * 40.0 + 15.0
        calib_dir = os.path.join(root, "calibration", f"mano_{calib}")
        os.makedirs(calib_dir, exist_ok=True)
        with open(os.path.join(calib_dir, "mano.yml"), "w") as handle:
            yaml.safe_dump({"betas": [float(b) for b in betas]}, handle)
        for q, sequence in enumerate(sequences):
            seq_dir = _write_dexycb_meta(root, subject, sequence, serials, num_frames, calib)
            for serial in serials:
                os.makedirs(os.path.join(seq_dir, serial), exist_ok=True)
                fx, fy, ppx, ppy = DEXYCB_INTRINSICS.get(serial, (615.0, 615.0, 320.0, 240.0))
                cam_k = np.array([[fx, 0, ppx], [0, fy, ppy], [0, 0, 1.0]])
                for frame in range(num_frames):
                    k = q * num_frames + frame
                    sample_id = f"{subject}/{sequence}/{serial}/{frame:06d}"
                    manifest.sample_ids.append(sample_id)
                    for name in planted.get(n, []):
                        manifest.faults.setdefault(name, []).append(sample_id)
                    hand = {key: v[k] for key, v in hands.items()}
                    manifest.joints_mm[sample_id] = hand["joints"]
                    manifest.mano_pose[sample_id] = hand["pose"]
                    _write_dexycb_frame(
                        os.path.join(seq_dir, serial), frame, hand, cam_k, planted.get(n, []),
                        images, faces,
                    )  # fmt: skip
                    n += 1
    return manifest


def dexycb_labels(hand: Mapping[str, np.ndarray], cam_k: np.ndarray) -> dict[str, np.ndarray]:
    """The label arrays DexYCB stores for one hand (OpenCV mm, spec order) seen by ``cam_k``."""
    joints_m = hand["joints"] / 1000.0
    uv = (cam_k @ joints_m.T).T
    uv = uv[:, :2] / uv[:, 2:3]
    pose_m = np.concatenate([hand["pose"][:3], hand["pca"], hand["transl"] / 1000.0])
    return {
        "seg": np.zeros((IMAGE_WH[1], IMAGE_WH[0]), dtype=np.uint8),
        "pose_y": np.zeros((2, 3, 4), dtype=np.float32),
        "pose_m": pose_m[None].astype(np.float32),
        "joint_3d": joints_m[None].astype(np.float32),
        "joint_2d": uv[None].astype(np.float32),
    }


def _write_dexycb_frame(
    folder: str,
    frame: int,
    hand: Mapping[str, np.ndarray],
    cam_k: np.ndarray,
    faults: list[str],
    images: bool,
    faces: np.ndarray | None = None,
) -> None:
    labels = dexycb_labels(hand, cam_k)
    if "nan_joints" in faults:
        labels["joint_3d"][0, 3, 2] = np.nan
    if "no_hand" in faults:
        labels["joint_3d"][:] = -1
        labels["joint_2d"][:] = -1
        labels["pose_m"][:] = 0
    if "shifted_2d" in faults:
        labels["joint_2d"] = labels["joint_2d"] + 25.0
    labels_path = os.path.join(folder, f"labels_{frame:06d}.npz")
    if "missing_labels" not in faults:
        if "object_labels" in faults:
            labels["joint_3d"] = np.array([None, "x"], dtype=object)
            buf = io.BytesIO()
            np.savez_compressed(buf, **labels)
            Path(labels_path).write_bytes(buf.getvalue())
        else:
            np.savez_compressed(labels_path, **labels)
        if "truncated_labels" in faults:
            _truncate(labels_path)
    if not images:
        return
    rgb, depth = render(hand["vertices"], cam_k, faces=faces)
    _save_image(os.path.join(folder, f"color_{frame:06d}.jpg"), rgb, "JPEG")
    depth_path = os.path.join(folder, f"aligned_depth_to_color_{frame:06d}.png")
    _save_depth16(depth_path, depth)
    if "truncated_depth" in faults:
        _truncate(depth_path)
