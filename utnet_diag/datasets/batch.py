"""A canonical Batch from dataset frames (for ``check-batch --dataset``).

Per sample: the RGB and depth crops around the hand (square, ``CROP_SCALE`` x the keypoint box,
resized to ``image_size``), 2D keypoints normalised to that crop, 3D joints in camera-frame mm
(spec order), absolute axis-angle MANO pose and betas. RGB is ImageNet mean/std normalised (what
the ViT backbone expects); depth is metres with 0 where the sensor has no value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from utnet_diag.checks.engine import CheckRegistry, Outcome
from utnet_diag.datasets.common import (
    CanonicalChunk,
    DatasetReader,
    SampleRecord,
    crop_image,
    hand_crop_boxes,
    normalize_to_crop,
)
from utnet_diag.datasets.dexycb import DexYCBReader
from utnet_diag.datasets.ho3d import HO3DReader
from utnet_diag.errors import InputError, did_you_mean
from utnet_diag.report.result import CheckResult, Report, Status

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
DEFAULT_IMAGE_SIZE = (256, 256)
DEFAULT_COUNT = 16
MAX_BATCH = 4096
DATASET_FILES_HINT = (
    "fix or replace the listed files (a frame that cannot be read crashes the data loader or "
    "turns a loss into NaN); 'utnet-diag scan' lists every such frame of the dataset"
)
UNANNOTATED_HINT = (
    "unannotated frames (evaluation splits, no hand in view) cannot be trained on: leave them "
    "out of the training list, or pick other --indices"
)
# check-batch on dataset frames: the selected frames' files (the scan's checks, per frame)
DATASET_FILES_CHECKS = CheckRegistry("dataset")
DATASET_FILES_CHECKS.declare("dataset_files", "The selected frames' files read, and carry a hand annotation",
               DATASET_FILES_HINT)  # fmt: skip


def open_reader(
    dataset: str, root: str | os.PathLike, split: str | None = None, mano_path: str | None = None
) -> DatasetReader:
    """The reader of ``dataset`` (``ho3d`` or ``dexycb``) at ``root``; default split: HO3D
    ``train``, DexYCB ``all``."""

    name = (dataset or "").lower()
    if name == "ho3d":
        return HO3DReader(root, split or "train")
    if name == "dexycb":
        return DexYCBReader(root, split or "all", mano_path=mano_path)
    raise InputError(
        f"unknown dataset '{dataset}'" + did_you_mean(name, ("ho3d", "dexycb")),
        hint="choose ho3d or dexycb",
    )


def parse_indices(text: str | None, size: int, default_count: int = DEFAULT_COUNT) -> list[int]:
    """``"0,5,10-19"`` -> sample indices (inclusive ranges); None -> the first ``default_count``."""
    if text is None or not text.strip():
        return list(range(min(default_count, size)))
    indices: list[int] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise InputError(
                f"bad --indices item '{part}'",
                hint="use comma-separated numbers and ranges: 0,5,10-19",
            )
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) else lo
        if hi < lo:
            raise InputError(f"bad --indices range '{part}': end before start")
        if hi >= size:
            raise InputError(f"--indices {part}: the dataset has {size} samples (0-{size - 1})")
        indices.extend(range(lo, hi + 1))
    if len(indices) > MAX_BATCH:
        raise InputError(f"--indices selects {len(indices)} samples; at most {MAX_BATCH} per batch")
    return indices


def build_batch(
    reader: DatasetReader,
    indices: Sequence[int],
    images: bool = True,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
):
    """A canonical :class:`utnet_diag.io.batch.Batch` of the annotated frames among ``indices``.

    Frames that are unannotated or unreadable are left out and listed in ``batch.notes``
    (:func:`dataset_files_result` turns them into a check); InputError when none is left.
    """
    records = [reader.read(i, images) for i in indices]
    return batch_from_records(reader, records, images, image_size)


def batch_from_records(
    reader: DatasetReader,
    records: Sequence[SampleRecord],
    images: bool = True,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
):
    """The Batch of the annotated frames among ``records`` (see :func:`build_batch`)."""
    chunk = reader.canonical(list(records))
    notes = [
        f"{'left out' if not r.annotated else 'kept'} {r.sample_id}: {p.check}: {p.message}"
        for r in records
        for p in r.problems
        if p.severity != "info" or not r.annotated
    ]
    if not len(chunk):
        raise InputError(
            f"none of the {len(records)} selected {reader.name} frames has a usable annotation",
            path=reader.root,
            hint="pick other --indices or run 'utnet-diag scan' to see why",
        )
    batch = chunk_to_batch(chunk, images, image_size, source=f"{reader.name}:{reader.root}")
    if images and "rgb" not in batch.tensors:
        notes.append("rgb left out: some frames' images did not decode")
    n = len(chunk)
    batch.notes.extend(notes)
    batch.notes.append(
        f"{reader.name} {reader.split}: {n} of {len(records)} frames, crops {image_size[1]}x"
        f"{image_size[0]}, 2D normalised to the crop, 3D camera-frame mm (OpenCV, spec order)"
    )
    batch.format = reader.name
    return batch


def dataset_files_result(records: Sequence[SampleRecord], listed: int = 3):
    """The ``dataset_files`` CheckResult of the selected frames.

    FAIL when a frame's files are missing, unreadable or unsafe (or its calibration is missing):
    such a frame crashes a data loader or poisons a loss, so it must not pass quietly just
    because it was left out of the batch. WARN when frames are only unannotated (no hand label:
    left out, nothing is wrong with the files). ``details["frames"]`` lists every offending frame
    (sample id, path, reader check, severity, message); the message names the first ``listed``.
    """
    bad = [(r, p) for r in records for p in r.problems if p.severity != "info"]
    bad_ids = {r.sample_id for r, _ in bad}
    unannotated = [r for r in records if not r.annotated and r.sample_id not in bad_ids]
    details = {
        "frames": [
            {"index": p.index, "sample_id": p.sample_id, "path": p.path, "check": p.check,
             "severity": p.severity, "message": p.message}
            for _, p in bad
        ],
        "unannotated": [r.sample_id for r in unannotated],
    }  # fmt: skip
    total = len(records)
    if bad:
        shown = "; ".join(
            f"{p.sample_id} {p.check}: {p.message} ({p.path})" for _, p in bad[:listed]
        )
        more = f"; and {len(bad) - listed} more" if len(bad) > listed else ""
        worst = Status.FAIL if any(p.severity == "fail" for _, p in bad) else Status.WARN
        return DATASET_FILES_CHECKS.result("dataset_files", Outcome(
            worst,
            f"{len(bad_ids)}/{total} selected frames have missing, unreadable or unsafe files: "
            f"{shown}{more}",
            value=len(bad_ids), threshold=0, details=details,
        ))  # fmt: skip
    if unannotated:
        names = ", ".join(r.sample_id for r in unannotated[:listed])
        more = f" and {len(unannotated) - listed} more" if len(unannotated) > listed else ""
        return DATASET_FILES_CHECKS.result("dataset_files", Outcome.warn(
            f"{len(unannotated)}/{total} selected frames carry no hand annotation and were left "
            f"out of the batch: {names}{more}",
            value=len(unannotated), threshold=0, hint=UNANNOTATED_HINT, details=details,
        ))  # fmt: skip
    return DATASET_FILES_CHECKS.result("dataset_files", Outcome.ok(
        f"all {total} selected frames read and annotated", value=0, threshold=0, details=details,
    ))  # fmt: skip


def chunk_to_batch(
    chunk: CanonicalChunk,
    images: bool = True,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    source: str | None = None,
):
    """A canonical Batch of a chunk's annotated samples (rgb/depth only when every frame's
    images decoded). Non-finite annotations are kept as they are: the checks report them."""
    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.io.batch import coerce_batch

    n = len(chunk)
    boxes = hand_crop_boxes(np.nan_to_num(chunk.uv_px, nan=0.0))
    kp2d = normalize_to_crop(chunk.uv_px, boxes)
    ones = np.ones((n, 21, 1))
    raw: dict[str, object] = {
        "keypoints_2d": np.concatenate([kp2d, ones], axis=-1).astype(np.float32),
        "keypoints_3d": np.concatenate([chunk.joints_mm, ones], axis=-1).astype(np.float32),
        "mano_pose": np.where(chunk.has_mano[:, None], chunk.mano_pose, 0.0).astype(np.float32),
        "mano_shape": np.where(chunk.has_mano[:, None], chunk.mano_shape, 0.0).astype(np.float32),
        "has_mano": chunk.has_mano.astype(np.float32),
        "sample_id": [r.sample_id for r in chunk.records],
    }
    if images and all(r.rgb is not None for r in chunk.records):
        h, w = image_size
        rgb = np.stack([crop_image(r.rgb, box, (h, w)) for r, box in zip(chunk.records, boxes)])
        rgb = (rgb / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        raw["rgb"] = rgb.transpose(0, 3, 1, 2).astype(np.float32)
        depth = np.zeros((n, 1, h, w), dtype=np.float32)
        has_depth = np.zeros(n, dtype=np.float32)
        for k, (record, box) in enumerate(zip(chunk.records, boxes)):
            if record.depth_m is not None:
                depth[k, 0] = crop_image(record.depth_m, box, (h, w))
                has_depth[k] = 1.0
        raw["depth"] = depth
        raw["n_i"] = has_depth
    batch, _ = coerce_batch(raw, source=source, strict=True)
    batch.extra["paths"] = [r.main_path for r in chunk.records]
    return batch


def _dataset_reader(
    batch_file: object, dataset: object, root: str | os.PathLike | None, split: str | None
) -> DatasetReader:
    if batch_file is not None:
        raise InputError("give either a BATCH file or --dataset/--root, not both")
    if dataset is None or root is None:
        raise InputError("--dataset and --root go together")
    name = getattr(dataset, "value", dataset)
    return open_reader(str(name), root, split)


def dataset_batch(
    batch_file: object,
    dataset: object,
    root: str | os.PathLike | None,
    split: str | None,
    indices: str | None,
):
    """The Batch that ``check-batch --dataset D --root R [--split S] [--indices I]`` checks;
    InputError for a half-given or conflicting choice."""
    reader = _dataset_reader(batch_file, dataset, root, split)
    return build_batch(reader, parse_indices(indices, len(reader)))


def check_dataset_batch(
    batch_file: object,
    dataset: object,
    root: str | os.PathLike | None,
    split: str | None,
    indices: str | None,
    config: Any = None,
    mano: Any = None,
    max_samples: int | None = None,
    images: bool = True,
    overlay: Any = None,
    overlay_samples: int = 8,
):
    """``check-batch --dataset``: the Report of :func:`utnet_diag.diagnostics.check_batch.
    check_batch` on the selected frames, led by the ``dataset_files`` check (frames left out
    because their files are missing, unreadable or unsafe fail it, so the exit code is 1).

    When no selected frame is usable: ``dataset_files`` fails and every other check is listed
    as skipped (it judged nothing) if files are at fault; InputError (exit 2) if the frames are
    only unannotated (nothing to check: pick others). ``images=False``: annotations only (no
    image file is read, so none is missing; the image checks skip). ``overlay``: see
    :func:`utnet_diag.diagnostics.check_batch.check_batch`.
    """
    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.diagnostics.check_batch import COMMAND, check_batch, check_specs

    reader = _dataset_reader(batch_file, dataset, root, split)
    records = [reader.read(i, images) for i in parse_indices(indices, len(reader))]
    files = dataset_files_result(records)
    if not any(r.annotated for r in records) and files.status is Status.FAIL:
        why = "not evaluated: no selected frame is usable (see dataset_files)"
        skipped = [CheckResult(s.id, Status.SKIP, why, family=s.family) for s in check_specs()]
        return Report(COMMAND, [files, *skipped], {})
    report = check_batch(batch_from_records(reader, records), config, mano, max_samples,
                         overlay=overlay, overlay_samples=overlay_samples)  # fmt: skip
    report.checks.insert(0, files)
    return report
