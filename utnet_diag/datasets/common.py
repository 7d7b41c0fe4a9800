"""What the dataset readers share: the per-sample record, findings, crops and 2D normalisation.

A reader turns one frame on disk into a :class:`SampleRecord` (raw values as stored, plus the
problems met while reading) and a list of records into a :class:`CanonicalChunk`: stacked arrays
in the project's conventions, computed in a few vectorised numpy operations so that a scan of
hundreds of thousands of frames costs little more than reading the files.

Canonical conventions (the batch schema of ``utnet_diag.io.batch``):
- 3D joints: camera frame, OpenCV axes (x right, y down, z forward), millimetres, spec order.
- 2D keypoints: pixels projected with the camera matrix, then normalised to the hand crop:
  ``(uv - crop_center) / crop_size``, so a joint inside the crop lies in [-0.5, 0.5].
- MANO pose: (48,) absolute axis-angle (flat_hand_mean=True), global orient in OpenCV axes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from utnet_diag.measures import hand_span
from utnet_diag.report.result import jsonable

# Severity of a finding: "fail" breaks training, "warn" is suspicious, "info" is expected
# (an unannotated evaluation frame) and only recorded.
SEVERITIES = ("fail", "warn", "info")

# Crop side relative to the larger side of the 2D keypoint box (hand plus context).
CROP_SCALE = 1.5
MIN_CROP_PX = 32.0


@dataclass(frozen=True)
class Finding:
    """One offending sample: which check, how bad, and where on disk.

    ``index`` is the sample's position in the reader's order (findings sort by it).
    """

    index: int
    sample_id: str
    path: str
    check: str
    severity: str
    message: str
    value: Any = None

    def to_dict(self) -> dict[str, Any]:

        return {
            "index": self.index,
            "sample_id": self.sample_id,
            "path": self.path,
            "check": self.check,
            "severity": self.severity,
            "message": self.message,
            "value": jsonable(self.value),
        }


@dataclass(slots=True)
class SampleRecord:
    """One frame as read from disk, before conversion.

    ``raw``: the stored annotation values (e.g. HO3D's meta dict, DexYCB's label arrays);
    ``annotated``: False when the frame carries no hand annotation; ``problems``: findings met
    while reading (unreadable file, refused pickle, ...); ``image_wh``: (W, H) of the RGB image
    when it was decoded; ``rgb`` (H, W, 3) uint8 and ``depth_m`` (H, W) metres when images were
    read.
    """

    index: int
    sample_id: str
    paths: dict[str, str]
    raw: dict[str, Any] = field(default_factory=dict)
    annotated: bool = False
    problems: list[Finding] = field(default_factory=list)
    image_wh: tuple[int, int] | None = None
    rgb: np.ndarray | None = None
    depth_m: np.ndarray | None = None

    @property
    def main_path(self) -> str:
        """The annotation file (meta pickle or labels npz): what a finding points at."""
        return self.paths.get("meta") or self.paths.get("labels") or next(iter(self.paths.values()))

    def problem(
        self, check: str, severity: str, message: str, value: Any = None, path: str | None = None
    ) -> None:
        self.problems.append(
            Finding(
                self.index, self.sample_id, path or self.main_path, check, severity, message, value
            )
        )


@dataclass
class CanonicalChunk:
    """Annotated samples of a chunk in canonical form, stacked (N annotated samples).

    ``records``: the annotated records in order; ``joints_mm`` (N,21,3) camera frame OpenCV mm,
    spec order; ``cam_k`` (N,3,3) pixels; ``uv_px`` (N,21,2) projection of the joints;
    ``uv_given_px`` (N,21,2) the dataset's own 2D labels (NaN where it has none);
    ``mano_pose`` (N,48) absolute axis-angle; ``mano_shape`` (N,10); ``image_wh`` (N,2) (NaN when
    not decoded); ``depth_at_joints_mm`` (N,21) depth image at the projected joints (NaN when no
    depth was read or the pixel is off the image or empty); ``has_mano`` (N,) bool: the frame has
    MANO parameters (``mano_pose``/``mano_shape`` rows are NaN otherwise); ``mano_present``
    (N,2) bool or None: the annotation holds a MANO pose / a MANO shape at all (a frame with one
    but not the other is partially annotated; None where the reader has no such notion).
    """

    records: list[SampleRecord]
    joints_mm: np.ndarray
    cam_k: np.ndarray
    uv_px: np.ndarray
    uv_given_px: np.ndarray
    mano_pose: np.ndarray
    mano_shape: np.ndarray
    image_wh: np.ndarray
    depth_at_joints_mm: np.ndarray
    has_mano: np.ndarray
    mano_present: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.records)

    @functools.cached_property
    def span_mm(self) -> np.ndarray:
        """(N,) each hand's span in mm (:func:`utnet_diag.measures.hand_span`), computed once for
        the checks that judge sizes and the counts of what they could judge."""
        return hand_span(self.joints_mm)


def project(points_mm: np.ndarray, cam_k: np.ndarray) -> np.ndarray:
    """Pinhole projection: (N,J,3) camera-frame points, (N,3,3) intrinsics -> (N,J,2) pixels."""
    # batched matmul (faster than einsum here), on a contiguous K^T (twice as fast again)
    homog = points_mm @ np.ascontiguousarray(cam_k.transpose(0, 2, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return homog[..., :2] / homog[..., 2:3]


def hand_crop_boxes(uv_px: np.ndarray, scale: float = CROP_SCALE) -> np.ndarray:
    """Square crop boxes around the 2D keypoints: (N,21,2) px -> (N,3) (center_x, center_y, side).

    The side is ``scale`` times the larger side of the keypoints' bounding box, at least
    ``MIN_CROP_PX``; UTNet crops around the hand the same way before resizing.
    """
    lo = np.nanmin(uv_px, axis=1)
    hi = np.nanmax(uv_px, axis=1)
    center = (lo + hi) / 2.0
    side = np.maximum(np.max(hi - lo, axis=1) * scale, MIN_CROP_PX)
    return np.concatenate([center, side[:, None]], axis=1)


def normalize_to_crop(uv_px: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,J,2) pixels -> (N,J,2) crop coordinates in [-0.5, 0.5] for points inside the crop."""
    return (uv_px - boxes[:, None, :2]) / boxes[:, None, 2:3]


def sample_at(image: np.ndarray, uv_px: np.ndarray) -> np.ndarray:
    """Nearest-pixel values of an (H,W) image at (J,2) pixel positions; NaN off the image."""
    h, w = image.shape[:2]
    out = np.full(uv_px.shape[0], np.nan)
    finite = np.isfinite(uv_px).all(axis=1)
    cols = np.round(np.where(finite, uv_px[:, 0], -1)).astype(np.int64)
    rows = np.round(np.where(finite, uv_px[:, 1], -1)).astype(np.int64)
    inside = finite & (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    out[inside] = image[rows[inside], cols[inside]]
    return out


def depth_at_joints(records: Sequence[SampleRecord], uv_px: np.ndarray) -> np.ndarray:
    """(N,21) depth in mm under each projected joint; NaN without depth, off image, or empty (0)."""
    out = np.full(uv_px.shape[:2], np.nan)
    for n, record in enumerate(records):
        if record.depth_m is not None:
            values = sample_at(record.depth_m, uv_px[n]) * 1000.0
            values[values <= 0] = np.nan
            out[n] = values
    return out


def crop_image(image: np.ndarray, box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop a square ``box`` (cx, cy, side) px from an (H,W[,C]) image and resize to ``size``
    (H', W'); pixels outside the image are 0. Nearest-neighbour sampling, so depth is not blended.
    """
    out_h, out_w = size
    cx, cy, side = (float(v) for v in box)
    xs = cx - side / 2 + (np.arange(out_w) + 0.5) * side / out_w
    ys = cy - side / 2 + (np.arange(out_h) + 0.5) * side / out_h
    cols = np.floor(xs).astype(np.int64)
    rows = np.floor(ys).astype(np.int64)
    h, w = image.shape[:2]
    col_ok = (cols >= 0) & (cols < w)
    row_ok = (rows >= 0) & (rows < h)
    out = np.zeros((out_h, out_w) + image.shape[2:], dtype=image.dtype)
    picked = image[np.clip(rows, 0, h - 1)][:, np.clip(cols, 0, w - 1)]
    mask = row_ok[:, None] & col_ok[None, :]
    out[mask] = picked[mask]
    return out


class LazyRecords(Sequence[SampleRecord]):
    """The records of a chunk read on a fast path that made no per-sample objects: a record
    (index, sample id, paths; no values) is built only when a finding names its row."""

    def __init__(self, reader: DatasetReader, indices: Sequence[int]):
        self.reader = reader
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, row: int) -> SampleRecord:  # type: ignore[override]
        if isinstance(row, slice):
            return [self[k] for k in range(*row.indices(len(self)))]  # type: ignore[return-value]
        index = self.indices[row]
        return SampleRecord(index, self.reader.sample_ids[index], self.reader.paths(index))


def empty_chunk() -> CanonicalChunk:
    """A chunk with no annotated samples."""
    z = np.zeros
    return CanonicalChunk(
        [], z((0, 21, 3)), z((0, 3, 3)), z((0, 21, 2)), z((0, 21, 2)), z((0, 48)), z((0, 10)),
        z((0, 2)), z((0, 21)), z((0,), dtype=bool),
    )  # fmt: skip


def stack_rows(records: Sequence[SampleRecord], key: str, shape: tuple[int, ...]) -> np.ndarray:
    """Stack ``record.raw[key]`` as float64 (N, *shape); rows that are missing or misshapen are NaN."""
    return stack_values([record.raw.get(key) for record in records], shape)


def stack_values(
    values: Sequence[Any], shape: tuple[int, ...], checked: bool = False
) -> np.ndarray:
    """Stack arrays as float64 (N, *shape); entries that are not arrays of ``shape`` are NaN rows.

    ``checked``: the caller guarantees every entry is a numeric ndarray of ``shape`` (no
    per-entry test).
    """
    if checked and values:  # one C-level copy with the cast
        return np.concatenate(values, dtype=np.float64).reshape((len(values),) + shape)
    if all(type(v) is np.ndarray and v.shape == shape for v in values):
        return np.array(values, dtype=np.float64).reshape((len(values),) + shape)
    out = np.full((len(values),) + shape, np.nan)
    for n, value in enumerate(values):
        if isinstance(value, np.ndarray) and value.shape == shape:
            out[n] = value
    return out


def flip_global_orient(pose: np.ndarray) -> np.ndarray:
    """(N,48) axis-angle with the global orient (first 3) re-expressed after the OpenGL <-> OpenCV
    axis flip F = diag(1,-1,-1): a rotation R becomes ``F @ R``.

    F is the rotation by pi about x, so in quaternions q' = (0,1,0,0) * q = (-x, w, -z, y).
    Vectorised numpy (no per-call scipy overhead); non-finite rows stay non-finite.
    """
    out = pose.copy()
    aa = pose[:, :3]
    angle = np.linalg.norm(aa, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = angle / 2
        scale = np.where(angle > 1e-12, np.sin(half) / np.where(angle > 1e-12, angle, 1.0), 0.5)
    w = np.cos(half)
    x, y, z = (aa * scale[:, None]).T
    qw, qx, qy, qz = -x, w, -z, y
    sign = np.where(qw < 0, -1.0, 1.0)  # keep w >= 0: angle in [0, pi]
    qw, qx, qy, qz = qw * sign, qx * sign, qy * sign, qz * sign
    vec = np.stack([qx, qy, qz], axis=1)
    sin_half = np.linalg.norm(vec, axis=1)
    new_angle = 2.0 * np.arctan2(sin_half, qw)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(
            sin_half > 1e-12, new_angle / np.where(sin_half > 1e-12, sin_half, 1), 2.0
        )
    out[:, :3] = vec * factor[:, None]
    return out


class DatasetReader:
    """Base of the dataset readers: an ordered list of frames, each readable on its own.

    Subclasses set ``name``, ``root``, ``split``, ``sample_ids`` and implement ``read`` and
    ``canonical``. Readers are picklable (DataLoader workers and torchrun ranks each hold one).
    """

    name = "dataset"
    root: str
    split: str
    sample_ids: list[str]

    def __len__(self) -> int:
        return len(self.sample_ids)

    def read(self, index: int, images: bool = False) -> SampleRecord:
        """Read frame ``index``; problems become findings on the record, never exceptions."""
        raise NotImplementedError

    def canonical(self, records: Sequence[SampleRecord]) -> CanonicalChunk:
        """The annotated records among ``records`` in canonical form (vectorised)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.name, "root": self.root, "split": self.split, "samples": len(self)}
