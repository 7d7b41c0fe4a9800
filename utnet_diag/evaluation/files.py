"""Reading prediction and ground-truth files in the benchmarks' own formats, with bounds.

- FreiHAND and HO3D: one JSON ``[xyz, verts]``: ``xyz`` a list of (21, 3), ``verts`` a list of
  (V, 3) (778 for a MANO mesh; empty lists when there is no mesh). Their ground truth is a
  folder holding ``evaluation_xyz.json`` and ``evaluation_verts.json`` (or another
  ``<set>_xyz.json`` / ``<set>_verts.json`` pair), or one JSON in the prediction's form.
- DexYCB: text lines ``image_id,x0,y0,z0,...,x20,y20,z20`` (64 comma-separated values), mm.

Sizes are checked before anything is parsed: the file against ``max_bytes`` and the memory a
JSON parse needs against the free memory; lines are read with a length limit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from utnet_diag.errors import InputError, ResourceError
from utnet_diag.io.files import free_memory, require_dir, require_file

DEFAULT_MAX_MB = 2048
JSON_MEMORY_FACTOR = 6  # bytes of Python objects per byte of a JSON of numbers (measured ~4.5)
MAX_LINE_CHARS = 8192  # one DexYCB line: an id and 63 numbers
DEXYCB_VALUES = 64
NO_HAND_MARKERS = (-1.0, -1000.0)  # DexYCB's joint_3d of a frame without a hand, in m and mm


@dataclass(frozen=True)
class PoseFile:
    """What a file holds: ``xyz`` (N, 21, 3) and ``verts`` (N, V, 3) (V = 0: no mesh) in the
    file's units; ``ids`` (N,) the DexYCB image ids (else 0..N-1); ``duplicates``: ids that
    appeared more than once (the last line kept, as the official evaluator does)."""

    path: str
    xyz: np.ndarray
    verts: np.ndarray
    ids: np.ndarray
    duplicates: tuple[int, ...] = ()


def _sized(path: Path, what: str, max_bytes: int) -> Path:
    """``path`` as a regular, readable, non-empty file no larger than ``max_bytes``."""
    path = require_file(path, what)
    size = path.stat().st_size
    if size > max_bytes:
        raise ResourceError(
            f"{what} is {size / 2**20:.0f} MiB, over the {max_bytes / 2**20:.0f} MiB limit",
            path=str(path),
            hint="raise it with --max-file-mb if the file is what you meant",
        )
    return path


def _load_json(path: Path, what: str, max_bytes: int) -> Any:
    path = _sized(path, what, max_bytes)
    size = path.stat().st_size
    free = free_memory()
    if free is not None and size * JSON_MEMORY_FACTOR > free:
        raise ResourceError(
            f"parsing this {size / 2**20:.0f} MiB JSON needs about"
            f" {size * JSON_MEMORY_FACTOR / 2**30:.1f} GiB, and {free / 2**30:.1f} GiB is free",
            path=str(path),
        )
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except UnicodeDecodeError as err:
        raise InputError(f"{what} is not UTF-8 text ({err.reason})", path=str(path)) from None
    except json.JSONDecodeError as err:
        raise InputError(
            f"{what} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}",
            path=str(path),
        ) from None
    except RecursionError:
        raise InputError(
            f"{what} is nested too deeply to be a list of joints", path=str(path)
        ) from None


def _points(rows: Any, what: str, path: Path, width: int | None) -> np.ndarray:
    """A list of per-sample (K, 3) lists -> (N, K, 3) float64; an InputError naming the first
    sample that is not (``width``: the K every sample must have; None: the first sample's; a
    list of empty samples is (N, 0, 3), no points)."""
    if not isinstance(rows, list):
        raise InputError(
            f"{what} must be a list of samples, found {type(rows).__name__}", path=str(path)
        )
    arrays = []
    for index, sample in enumerate(rows):
        try:
            arr = np.asarray(sample, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(
                f"{what} sample {index} is not a list of [x, y, z] numbers", path=str(path)
            ) from None
        if arr.size == 0 and width in (None, 0):
            arr = arr.reshape(0, 3)
        if arr.ndim != 2 or arr.shape[1] != 3 or (width is not None and arr.shape[0] != width):
            expected = f"({width}, 3)" if width is not None else "(K, 3)"
            raise InputError(
                f"{what} sample {index} has shape {tuple(arr.shape)}, expected {expected}",
                path=str(path),
                hint="every sample must have the same number of points",
            )
        width = arr.shape[0]
        arrays.append(arr)
    out = np.stack(arrays) if arrays else np.zeros((0, width or 0, 3))
    bad = ~np.isfinite(out).all(axis=(1, 2))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{what} holds NaN or Inf in {int(bad.sum())} of {len(rows)} samples (first: sample"
            f" {first})",
            path=str(path),
            hint="the official evaluator would report NaN; fix the values",
        )
    return out


def read_pair_json(path: str | Path, what: str, max_bytes: int) -> PoseFile:
    """A FreiHAND/HO3D JSON ``[xyz, verts]`` (see the module docstring)."""
    p = Path(path)
    data = _load_json(p, what, max_bytes)
    if not isinstance(data, list) or len(data) != 2:
        found = f"a list of {len(data)} items" if isinstance(data, list) else type(data).__name__
        raise InputError(
            f"{what} must be a JSON list [xyz, verts], found {found}",
            path=str(p),
            hint="write json.dump([xyz_list, verts_list], f) with xyz (N,21,3) and verts (N,778,3)",
        )
    xyz = _points(data[0], f"{what} xyz", p, 21)
    verts = _points(data[1], f"{what} verts", p, None)
    if len(verts) != len(xyz):
        raise InputError(
            f"{what} has {len(xyz)} joint sets but {len(verts)} meshes", path=str(p),
            hint="both lists need one entry per sample, in the same order",
        )  # fmt: skip
    return PoseFile(str(p), xyz, verts, np.arange(len(xyz)))


def read_pair_folder(path: str | Path, what: str, max_bytes: int) -> PoseFile:
    """A FreiHAND/HO3D ground-truth folder: ``evaluation_xyz.json`` + ``evaluation_verts.json``
    (or the one ``<set>_xyz.json`` / ``<set>_verts.json`` pair it holds)."""
    folder = require_dir(path, what)
    pairs = sorted(
        f.name[: -len("_xyz.json")]
        for f in folder.glob("*_xyz.json")
        if (folder / f.name.replace("_xyz.json", "_verts.json")).is_file()
    )
    if "evaluation" in pairs:
        name = "evaluation"
    elif len(pairs) == 1:
        name = pairs[0]
    else:
        found = ", ".join(pairs) if pairs else "none"
        raise InputError(
            f"{what} folder has no single <set>_xyz.json + <set>_verts.json pair (found: {found})",
            path=str(folder),
            hint="pass the folder holding evaluation_xyz.json and evaluation_verts.json",
        )
    xyz_path, verts_path = folder / f"{name}_xyz.json", folder / f"{name}_verts.json"
    xyz = _points(_load_json(xyz_path, what, max_bytes), f"{what} xyz", xyz_path, 21)
    verts = _points(_load_json(verts_path, what, max_bytes), f"{what} verts", verts_path, None)
    if len(verts) != len(xyz):
        raise InputError(
            f"{xyz_path.name} has {len(xyz)} samples but {verts_path.name} has {len(verts)}",
            path=str(folder),
        )
    return PoseFile(str(folder), xyz, verts, np.arange(len(xyz)))


def read_lines(path: str | Path, what: str, max_bytes: int) -> PoseFile:
    """DexYCB lines ``id,63 numbers`` (blank lines ignored); a repeated id keeps its last line."""
    p = _sized(Path(path), what, max_bytes)
    rows: dict[int, np.ndarray] = {}
    duplicates: list[int] = []
    with open(p, encoding="utf-8", errors="replace", newline=None) as handle:
        number = 0
        while True:
            line = handle.readline(MAX_LINE_CHARS + 1)
            if not line:
                break
            number += 1
            if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
                raise InputError(
                    f"{what} line {number} is over {MAX_LINE_CHARS} characters; a line is an image"
                    f" id and 63 numbers",
                    path=str(p),
                )
            if not line.strip():
                continue
            image_id, joints = _parse_line(line, number, what, p)
            if image_id in rows:
                duplicates.append(image_id)
            rows[image_id] = joints
    if not rows:
        raise InputError(f"{what} has no result lines", path=str(p))
    ids = np.array(sorted(rows), dtype=np.int64)
    xyz = np.stack([rows[i] for i in ids])
    return PoseFile(str(p), xyz, np.zeros((len(ids), 0, 3)), ids, tuple(sorted(set(duplicates))))


def _parse_line(line: str, number: int, what: str, path: Path) -> tuple[int, np.ndarray]:
    elems = line.strip().split(",")
    if len(elems) != DEXYCB_VALUES:
        raise InputError(
            f"{what} line {number} has {len(elems)} comma-separated values, expected 64 (an image"
            " id and 21 x 3 joint coordinates in mm)",
            path=str(path),
        )
    try:
        image_id = int(elems[0])
        values = [float(e) for e in elems[1:]]
    except ValueError:
        raise InputError(
            f"{what} line {number} holds a value that is not a number", path=str(path)
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(
            f"{what} line {number} (image {image_id}) holds NaN or Inf", path=str(path),
            hint="the official evaluator would report NaN; fix the values",
        )  # fmt: skip
    return image_id, np.array(values).reshape(21, 3)


def read_pose_file(path: str | Path, protocol: str, what: str, max_bytes: int) -> PoseFile:
    """A prediction or ground truth for ``protocol`` ('freihand', 'ho3d', 'dexycb')."""
    p = Path(path)
    if protocol == "dexycb":
        return read_lines(p, what, max_bytes)
    if p.is_dir():
        return read_pair_folder(p, what, max_bytes)
    return read_pair_json(p, what, max_bytes)


def no_hand(xyz: np.ndarray) -> np.ndarray:
    """(N,) whether a DexYCB frame has no hand: every joint value -1 (in m) or -1000 (in mm)."""
    flat = xyz.reshape(len(xyz), -1)
    return np.logical_or.reduce([(flat == m).all(1) for m in NO_HAND_MARKERS])
