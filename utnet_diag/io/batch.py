"""Batches: a mapping of tensors in ``.pt`` (``weights_only=True``) or ``.npz`` (no object arrays).

Canonical keys and shapes (B samples):
``rgb`` (B,3,H,W); ``depth`` (B,1,H,W); ``n_i`` (B,) depth-present flag; ``keypoints_2d`` (B,21,3|2)
normalized crop coordinates (+conf); ``keypoints_3d`` (B,21,4|3) mm (+conf); ``mano_pose`` (B,48)
axis-angle; ``mano_shape`` (B,10); optional ``has_mano`` (B,), ``vertices_3d`` (B,778,3) mm,
``mano_trans`` (B,3) metres (MANO's translation), ``is_right`` (B,) 1 for a right hand (also read from the loaders' ``hand_type`` / ``side`` /
``handedness`` strings), ``sample_id`` (B,).

A batch dumped from a UTNet dataloader (``joint_img``, ``joints_3d_gt``) is recognised: ``joint_img``'s
third column is not a confidence, so conf is 1 as UTNet's train.py uses it.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utnet_diag.errors import InputError, ResourceError, UnsafeInputError, did_you_mean, nearest
from utnet_diag.io.files import require_file, save_torch_atomic, write_bytes_atomic
from utnet_diag.io.npz import load_npz

# key -> (rank, fixed trailing dims with None for free, kind); allowed last dims in LAST_DIMS
SCHEMA: dict[str, tuple[int, tuple[int | None, ...], str]] = {
    "rgb": (4, (3, None, None), "float"),
    "depth": (4, (1, None, None), "float"),
    "n_i": (1, (), "flag"),
    "keypoints_2d": (3, (21, None), "float"),
    "keypoints_3d": (3, (21, None), "float"),
    "mano_pose": (2, (48,), "float"),
    "mano_shape": (2, (10,), "float"),
    "has_mano": (1, (), "flag"),
    "vertices_3d": (3, (778, 3), "float"),
    "is_right": (1, (), "flag"),
    "mano_trans": (2, (3,), "float"),
}
LAST_DIMS = {"keypoints_2d": (2, 3), "keypoints_3d": (3, 4)}
CANONICAL_KEYS = tuple(SCHEMA) + ("sample_id",)
REQUIRED_ANY = ("keypoints_2d", "keypoints_3d", "rgb", "mano_pose")
UTNET_KEYS = {"joint_img": "keypoints_2d", "joints_3d_gt": "keypoints_3d"}
HAND_SIDE_KEYS = ("hand_type", "side", "handedness")  # 'left'/'right' strings, as loaders give


def _is_right_from_sides(value: Any) -> torch.Tensor | None:
    """(B,) 1/0 from a list of 'right'/'left' strings (any case, 'r'/'l'); None if not that."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "US":
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        return None
    flags = []
    for item in value:
        text = item.decode() if isinstance(item, bytes) else str(item)
        text = text.strip().lower()
        if text in ("right", "r", "right_hand"):
            flags.append(1.0)
        elif text in ("left", "l", "left_hand"):
            flags.append(0.0)
        else:
            return None
    return torch.tensor(flags)


SUFFIXES = (".pt", ".pth", ".npz")


@dataclass
class Batch(Mapping):
    """A loaded batch: canonical tensors plus what was done to get them.

    ``tensors``: canonical key -> tensor; ``sample_ids``: one id a sample; ``source``: the file;
    ``notes``: conversions applied (format detected, conf assumed); ``extra``: unknown keys kept.
    """

    tensors: dict[str, torch.Tensor]
    sample_ids: list[str]
    source: str | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = "canonical"

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    @property
    def size(self) -> int:
        """Batch size B."""
        return len(self.sample_ids)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            {k: v.to(device) for k, v in self.tensors.items()},
            list(self.sample_ids), self.source, list(self.notes), dict(self.extra), self.format,
        )  # fmt: skip

    def subset(self, n: int) -> Batch:
        """The first ``n`` samples."""
        return Batch(
            {k: v[:n] for k, v in self.tensors.items()},
            self.sample_ids[:n], self.source, list(self.notes), dict(self.extra), self.format,
        )  # fmt: skip


def _shape(t: Any) -> str:
    return "(" + ",".join(str(s) for s in t.shape) + ")"


def _read_pt(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()
        reason = next((line for line in first if "GLOBAL" in line or "Unsupported" in line), "")
        raise UnsafeInputError(
            "refused to load: the file needs code outside the weights-only allow-list"
            + (f" ({reason.strip()})" if reason else ""),
            path=str(path),
            hint="save the batch as a dict of tensors",
        ) from None
    except (
        RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile,
        # the weights-only unpickler of a non-zip (legacy) file fails on garbage with these
        IndexError, KeyError, TypeError, AttributeError, struct.error,
    ) as err:  # fmt: skip
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"not a readable torch file ({msg[:160]})", path=str(path)) from None


def _read_npz(path: Path) -> dict[str, Any]:
    return load_npz(path, "batch archive")


def read_batch_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping stored in a batch file, parsed without running code from it."""
    p = require_file(path, "batch file", SUFFIXES)
    raw = _read_npz(p) if p.suffix.lower() == ".npz" else _read_pt(p)
    if not isinstance(raw, Mapping):
        raise InputError(
            f"a batch must be a mapping of tensors, found {type(raw).__name__}", path=str(p)
        )
    return dict(raw)


def _as_tensor(key: str, value: Any, src: str) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            raise InputError(
                f"'{key}' is a tensor on the meta device: it has a shape but no values",
                path=src,
                hint="save the batch from real tensors (.cpu() before torch.save)",
            )
        if value.is_sparse or value.layout != torch.strided:
            raise InputError(f"'{key}' is a sparse tensor; expected a dense one", path=src)
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise InputError(f"'{key}' has dtype {value.dtype}; expected numbers", path=src)
        return torch.from_numpy(np.ascontiguousarray(value))
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (int, float)) for v in value)
    ):
        return torch.tensor(value)
    return None


def _mano_pose_diagnosis(pose: torch.Tensor) -> str | None:
    """A specific message for a mano_pose that is not (B,48) axis-angle, or None."""
    if pose.dim() < 2:
        return None
    per_sample = int(np.prod(pose.shape[1:]))
    got = _shape(pose)
    if per_sample in (144, 135) and pose.shape[-1] in (144, 135, 9, 3):
        return (
            f"'mano_pose' has shape {got}: looks like flattened rotation matrices; "
            "convert to axis-angle (B,48)"
        )
    if per_sample in (64, 60) and pose.shape[-1] in (64, 60, 4):
        return f"'mano_pose' has shape {got}: looks like quaternions; convert to axis-angle (B,48)"
    if per_sample == 96 and pose.shape[-1] in (96, 6):
        return (
            f"'mano_pose' has shape {got}: looks like the 6D rotation representation; "
            "convert to axis-angle (B,48)"
        )
    if per_sample == 45:
        return (
            f"'mano_pose' has shape {got}: 15 hand joints without the global orient; "
            "prepend the 3 global-orient values to make (B,48)"
        )
    return None


def coerce_batch(
    raw: Mapping[str, Any],
    source: str | None = None,
    key_map: Mapping[str, str] | None = None,
    max_samples: int | None = None,
    strict: bool = True,
) -> tuple[Batch, list[str]]:
    """Canonical Batch from a raw mapping. Returns the batch and the schema problems found.

    With ``strict`` the first problem raises an InputError instead (the CLI path).
    ``key_map`` maps canonical names to the user's key names. The steps, in order: the key map,
    UTNet's dataloader names, the hand side, tensors per key, the MANO pose layout, shape and
    dtype per key, one batch size.
    """
    src = source or "<batch>"
    problems: list[str] = []

    def problem(text: str) -> None:
        if strict:
            raise InputError(text, path=source)
        problems.append(text)

    raw = dict(raw)
    notes: list[str] = []
    _apply_key_map(raw, key_map or {}, source, notes)
    fmt = _map_utnet_keys(raw, src, notes)
    _read_hand_side(raw, notes)
    tensors, extra, sample_ids = _collect(raw, src, problem)
    if not any(k in tensors for k in REQUIRED_ANY):
        found = ", ".join(sorted(map(str, raw))) or "nothing"
        guesses = [f"'{k}'->'{g}'" for k in map(str, raw) if (g := nearest(k, CANONICAL_KEYS))]
        raise InputError(
            f"no known batch keys (found: {found[:200]})"
            + (f"; did you mean {', '.join(guesses[:3])}?" if guesses else ""),
            path=source,
            hint="use canonical keys or a diag.key_map in --config",
        )
    _mano_pose_layout(tensors, notes, problem)
    for key, t in list(tensors.items()):
        checked = _shape_and_dtype(key, t, notes, problem)
        if checked is None:
            tensors.pop(key)
        else:
            tensors[key] = checked
    size, sample_ids = _batch_size(tensors, sample_ids, max_samples, source, notes, problem)
    tensors = {k: v[:size] for k, v in tensors.items()}
    batch = Batch(tensors, sample_ids[:size], source, notes, extra, fmt)
    return batch, problems


def _apply_key_map(
    raw: dict[str, Any], key_map: Mapping[str, str], source: str | None, notes: list[str]
) -> None:
    """Rename the user's keys to canonical ones (``key_map``: canonical -> theirs), in place."""
    for canonical, theirs in key_map.items():
        if canonical not in CANONICAL_KEYS:
            raise InputError(
                f"key_map names unknown canonical key '{canonical}'"
                + did_you_mean(canonical, CANONICAL_KEYS),
                hint=f"canonical keys: {', '.join(CANONICAL_KEYS)}",
            )
        if theirs not in raw:
            raise InputError(
                f"key_map maps '{canonical}' to '{theirs}', which the batch lacks", path=source
            )
        raw[canonical] = raw.pop(theirs)
        notes.append(f"key '{theirs}' read as '{canonical}' (key_map)")


def _map_utnet_keys(raw: dict[str, Any], src: str, notes: list[str]) -> str:
    """UTNet's dataloader names (joint_img, joints_3d_gt, ...) to canonical ones, in place;
    returns the format: ``utnet-dataloader`` or ``canonical``."""
    fmt = "canonical"
    for theirs, canonical in UTNET_KEYS.items():
        if theirs in raw and canonical not in raw:
            fmt = "utnet-dataloader"
            value = raw.pop(theirs)
            if theirs == "joint_img":
                t = _as_tensor(theirs, value, src)
                if t is not None and t.dim() == 3 and t.shape[-1] == 3:
                    value = t[..., :2]
                    notes.append(
                        "joint_img: third column is not a confidence; conf = 1 (as UTNet's train.py)"
                    )
            raw[canonical] = value
    if fmt != "canonical":
        notes.insert(0, "UTNet dataloader batch (joint_img, joints_3d_gt) mapped to canonical keys")
    return fmt


def _read_hand_side(raw: dict[str, Any], notes: list[str]) -> None:
    """``is_right`` from a hand-side key (hand_type, side, ...) when the batch has none."""
    if "is_right" in raw:
        return
    for key in HAND_SIDE_KEYS:
        flags = _is_right_from_sides(raw.get(key))
        if flags is not None:
            raw["is_right"] = flags
            notes.append(f"'{key}' read as is_right (1 = right hand)")
            return


def _collect(
    raw: Mapping[str, Any], src: str, problem: Callable[[str], None]
) -> tuple[dict[str, torch.Tensor], dict[str, Any], list[str] | None]:
    """The tensors of the schema's keys, the other keys as they are, and the sample ids."""
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, Any] = {}
    sample_ids: list[str] | None = None
    for key, value in raw.items():
        if key == "sample_id":
            if isinstance(value, (list, tuple)):
                sample_ids = [str(v) for v in value]
            elif isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 1:
                sample_ids = [str(v) for v in value.tolist()]
            else:
                problem(f"'sample_id' must be a list or 1-D array, got {type(value).__name__}")
            continue
        if key not in SCHEMA:
            extra[key] = value
            continue
        t = _as_tensor(key, value, src)
        if t is None:
            problem(f"'{key}' must be a tensor, got {type(value).__name__}")
            continue
        tensors[key] = t
    return tensors, extra, sample_ids


def _mano_pose_layout(
    tensors: dict[str, torch.Tensor], notes: list[str], problem: Callable[[str], None]
) -> None:
    """(B, 16, 3) poses flattened to (B, 48); a pose of another layout named and dropped."""
    pose = tensors.get("mano_pose")
    if pose is None:
        return
    if pose.dim() == 3 and tuple(pose.shape[1:]) == (16, 3):
        tensors["mano_pose"] = pose.reshape(pose.shape[0], 48)
        notes.append("mano_pose (B,16,3) reshaped to (B,48)")
        return
    diagnosis = _mano_pose_diagnosis(pose)
    if diagnosis:
        problem(diagnosis)
        tensors.pop("mano_pose")


def _shape_and_dtype(
    key: str, t: torch.Tensor, notes: list[str], problem: Callable[[str], None]
) -> torch.Tensor | None:
    """``t`` in the schema's rank, shape and dtype (float32, or 0/1 flags as float); None when
    it cannot be used."""
    rank, trailing, kind = SCHEMA[key]
    if t.dim() != rank:
        problem(f"'{key}' must have rank {rank}, got shape {_shape(t)}")
        return None
    bad_dim = any(want is not None and got != want for want, got in zip(trailing, t.shape[1:]))
    if bad_dim or (key in LAST_DIMS and t.shape[-1] not in LAST_DIMS[key]):
        want = {
            "keypoints_2d": "(B,21,2|3)", "keypoints_3d": "(B,21,3|4)",
        }.get(key, "(B," + ",".join("*" if d is None else str(d) for d in trailing) + ")")  # fmt: skip
        problem(f"'{key}' must have shape {want}, got {_shape(t)}")
        return None
    dtype = str(t.dtype).replace("torch.", "")
    if kind != "float":  # flags
        if t.dtype.is_complex:
            problem(f"'{key}' has dtype {t.dtype}; expected 0/1 flags")
            return None
        return t.float()
    if t.dtype in (torch.float32, torch.float64):
        single = t.float()
        overflow = torch.isinf(single) & torch.isfinite(t)
        if bool(overflow.any()):
            big = t[overflow].abs().max().item()
            problem(
                f"'{key}' holds {int(overflow.sum())} value(s) beyond the float32 range "
                f"(up to {big:.3g})"
            )
            return None
        return single
    if t.dtype in (torch.float16, torch.bfloat16):
        problem(f"'{key}' has dtype {dtype}; expected float32 (half precision loses mm accuracy)")
        return t.float()
    if t.dtype == torch.uint8 and key == "rgb":
        notes.append("rgb stored as uint8: converted to float (values stay 0-255)")
        return t.float()
    problem(f"'{key}' has dtype {dtype}; expected floating point")
    return None


def _batch_size(
    tensors: dict[str, torch.Tensor],
    sample_ids: list[str] | None,
    max_samples: int | None,
    source: str | None,
    notes: list[str],
    problem: Callable[[str], None],
) -> tuple[int, list[str]]:
    """One batch size for every key (the smallest, after naming a mismatch), cut to
    ``max_samples``; the sample ids (0, 1, ... when the batch has none)."""
    sizes = {k: int(t.shape[0]) for k, t in tensors.items()}
    if sample_ids is not None:
        sizes["sample_id"] = len(sample_ids)
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{k}={v}" for k, v in sizes.items())
        problem(f"batch sizes differ across keys ({listing})")
    size = min(sizes.values()) if sizes else 0
    if size == 0:
        raise InputError("the batch has 0 samples", path=source)
    if max_samples is not None and size > max_samples:
        notes.append(f"kept the first {max_samples} of {size} samples (--max-samples)")
        size = max_samples
    if sample_ids is None:
        sample_ids = [str(i) for i in range(size)]
    return size, sample_ids


MAX_BATCH_BYTES = 8 * 1024**3


def load_batch(
    path: str | Path,
    key_map: Mapping[str, str] | None = None,
    max_samples: int | None = None,
) -> Batch:
    """Load a batch file (``.pt`` weights-only or ``.npz`` without objects) into canonical form.

    Raises InputError (one line, names the file) for anything structurally wrong.
    """
    p = Path(path)
    if p.is_file() and p.stat().st_size > MAX_BATCH_BYTES and max_samples is None:
        raise ResourceError(
            f"batch file is {p.stat().st_size / 1024**3:.1f} GiB, over the {MAX_BATCH_BYTES // 1024**3} GiB limit",
            path=str(p),
            hint="pass --max-samples N or save a smaller batch",
        )
    raw = read_batch_file(p)
    batch, _ = coerce_batch(raw, str(p), key_map, max_samples, strict=True)
    return batch


def save_batch(tensors: Mapping[str, Any], path: str | Path) -> Path:
    """Write a batch mapping as ``.pt`` or ``.npz`` (atomic)."""

    p = Path(path)
    if p.suffix == ".npz":
        import io

        buf = io.BytesIO()
        arrays = {
            k: (v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
            for k, v in tensors.items()
        }
        np.savez(buf, **arrays)
        return write_bytes_atomic(p, buf.getvalue())
    return save_torch_atomic(dict(tensors), p)
