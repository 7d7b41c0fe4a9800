"""A corpus of malformed and hostile inputs, built in a temporary folder.

Each entry names the input kind, the command line that reads it, and a marker file whose existence
would prove that a payload ran. Every entry must give exit 2, one line on stderr that names the
file, no traceback, no partial output, and leave the input bytes unchanged.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class Entry:
    name: str
    kind: str
    argv: list[str]
    input_path: Path
    names: str | None = None  # text the error line must contain (default: the input file name)
    outputs: list[Path] = field(default_factory=list)  # must not exist afterwards
    markers: list[Path] = field(default_factory=list)  # side effects that must not happen


class _Payload:
    """Pickles to ``open(marker, 'w')`` — a side effect the loader must never run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _valid_batch(n: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    kp3d = torch.randn(n, 21, 3, generator=g) * 40
    kp2d = torch.rand(n, 21, 2, generator=g) - 0.5
    return {
        "rgb": torch.randn(n, 3, 16, 12, generator=g),
        "keypoints_2d": torch.cat([kp2d, torch.ones(n, 21, 1)], -1),
        "keypoints_3d": torch.cat([kp3d, torch.ones(n, 21, 1)], -1),
        "mano_pose": torch.zeros(n, 48),
        "mano_shape": torch.zeros(n, 10),
    }


def _save_pt(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


def build(root: Path) -> list[Entry]:
    """Write the corpus under ``root`` and return its entries."""
    root.mkdir(parents=True, exist_ok=True)
    out = root / "out"
    out.mkdir(exist_ok=True)
    entries: list[Entry] = []

    def batch_entry(name: str, make: Callable[[Path], Path], names: str | None = None) -> None:
        path = make(root / f"batch_{name}.pt")
        junit = out / f"{name}.xml"
        entries.append(
            Entry(name, "batch", ["check-batch", str(path), "--junit", str(junit)], path, names,
                  outputs=[junit])
        )  # fmt: skip

    def write(path: Path, data: bytes) -> Path:
        path.write_bytes(data)
        return path

    valid = _valid_batch()
    buf = io.BytesIO()
    torch.save(valid, buf)
    good_bytes = buf.getvalue()

    # --- batches ---
    batch_entry("empty", lambda p: write(p, b""))
    batch_entry("truncated", lambda p: write(p, good_bytes[: len(good_bytes) // 2]))
    batch_entry("text", lambda p: write(p, b"this is not a torch file\n"))
    batch_entry("list", lambda p: _save_pt([1, 2, 3], p))
    batch_entry("unknown_keys", lambda p: _save_pt({"kp2d": torch.zeros(2, 21, 2)}, p))
    batch_entry("rank", lambda p: _save_pt({**valid, "keypoints_3d": torch.zeros(2, 63)}, p))
    batch_entry("joints17", lambda p: _save_pt({**valid, "keypoints_2d": torch.zeros(2, 17, 2)}, p))
    batch_entry("sizes", lambda p: _save_pt({**valid, "mano_shape": torch.zeros(3, 10)}, p))
    batch_entry("zero", lambda p: _save_pt({k: v[:0] for k, v in valid.items()}, p))
    batch_entry(
        "int", lambda p: _save_pt({**valid, "keypoints_3d": valid["keypoints_3d"].long()}, p)
    )
    batch_entry(
        "half", lambda p: _save_pt({**valid, "keypoints_3d": valid["keypoints_3d"].half()}, p)
    )
    batch_entry("bool", lambda p: _save_pt({**valid, "keypoints_2d": valid["keypoints_2d"] > 0}, p))
    batch_entry(
        "huge",
        lambda p: _save_pt({**valid, "keypoints_3d": valid["keypoints_3d"].double() * 1e300}, p),
    )
    marker_pt = root / "PWNED_batch"
    batch_entry("payload", lambda p: _save_pt({"keypoints_2d": _Payload(marker_pt)}, p))
    entries[-1].markers.append(marker_pt)
    wrong_ext = write(root / "batch.txt", good_bytes)
    entries.append(Entry("wrong_ext", "batch", ["check-batch", str(wrong_ext)], wrong_ext))
    a_dir = root / "a_directory.pt"
    a_dir.mkdir(exist_ok=True)
    entries.append(Entry("directory", "batch", ["check-batch", str(a_dir)], a_dir))
    missing = root / "missing.pt"
    entries.append(Entry("missing", "batch", ["check-batch", str(missing)], missing))

    npz_obj = root / "batch_object.npz"
    np.savez(npz_obj, keypoints_2d=np.array([{"a": 1}], dtype=object))
    entries.append(Entry("npz_object", "batch", ["check-batch", str(npz_obj)], npz_obj))
    npz_trunc = root / "batch_truncated.npz"
    zbuf = io.BytesIO()
    np.savez(zbuf, **{k: v.numpy() for k, v in valid.items()})
    npz_trunc.write_bytes(zbuf.getvalue()[:200])
    entries.append(Entry("npz_truncated", "batch", ["check-batch", str(npz_trunc)], npz_trunc))

    # --- configs ---
    batch_ok = _save_pt(valid, root / "batch_ok.pt")

    def config_entry(name: str, text: str, names: str | None = None, markers=()) -> None:
        path = root / f"config_{name}.yaml"
        path.write_text(text)
        entries.append(
            Entry(f"config_{name}", "config",
                  ["check-batch", str(batch_ok), "--config", str(path)], path, names,
                  markers=list(markers))
        )  # fmt: skip

    marker_yaml = root / "PWNED_yaml"
    config_entry(
        "python_tag",
        f"loss: !!python/object/apply:builtins.open ['{marker_yaml}', 'w']\n",
        markers=[marker_yaml],
    )
    config_entry("unknown_key", "loss:\n  w2d: 1.0\n", names="w_2d")
    config_entry("mistyped_value", "loss:\n  w_2d: high\n", names="w_2d")
    config_entry("not_mapping", "- 1\n- 2\n")
    config_entry("bad_yaml", "loss: [1, 2\n")
    config_entry("inf_weight", "loss:\n  w_3d_joint: 1e999\n", names="w_3d_joint")
    config_entry("diag_typo", "diag:\n  keymap: {}\n", names="key_map")

    # --- checkpoints ---
    def ckpt_entry(name: str, make: Callable[[Path], Path], names: str | None = None) -> Entry:
        path = make(root / f"ckpt_{name}.pt")
        entry = Entry(f"ckpt_{name}", "checkpoint", ["inspect-checkpoint", str(path)], path, names)
        entries.append(entry)
        return entry

    ckpt_entry("empty", lambda p: write(p, b""))
    ckpt_entry("truncated", lambda p: write(p, good_bytes[:100]))
    ckpt_entry("tensor", lambda p: _save_pt(torch.zeros(3), p))
    marker_ckpt = root / "PWNED_ckpt"
    ckpt_entry(
        "payload", lambda p: _save_pt({"model_state_dict": _Payload(marker_ckpt)}, p)
    ).markers.append(marker_ckpt)
    other = ckpt_entry(
        "other_arch",
        lambda p: _save_pt(
            {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)}, p
        ),
    )
    other.argv = ["gate", "--checkpoint", str(other.input_path)]

    # --- MANO pickles ---
    def mano_entry(name: str, data: bytes, names: str | None = None, markers=()) -> None:
        path = write(root / f"MANO_{name}.pkl", data)
        target = out / f"converted_{name}.pkl"
        entries.append(
            Entry(f"mano_{name}", "mano", ["convert-mano", str(path), str(target)], path, names,
                  outputs=[target], markers=list(markers))
        )  # fmt: skip

    mano_entry("missing_keys", pickle.dumps({"f": np.zeros((1538, 3), dtype=np.int64)}, protocol=2))
    marker_mano = root / "PWNED_mano"
    mano_entry("payload", pickle.dumps({"v_template": _Payload(marker_mano)}, protocol=2),
               markers=[marker_mano])  # fmt: skip
    mano_entry("truncated", pickle.dumps({"f": np.zeros((10, 3))}, protocol=2)[:40])
    mano_entry("text", b"not a pickle at all")
    mano_entry("empty", b"")

    # --- logs ---
    def log_entry(name: str, data: bytes) -> None:
        path = write(root / f"train_{name}.log", data)
        entries.append(Entry(f"log_{name}", "log", ["parse-log", str(path)], path))

    log_entry("empty", b"")
    log_entry("binary", bytes(range(256)) * 8)
    log_entry("no_blocks", b"epoch 1 done\nloss went down\n")

    # --- options ---
    entries.append(
        Entry("device_bogus", "option", ["gate", "--device", "tpu:7"], batch_ok, names="tpu:7")
    )
    entries.append(Entry("factory_missing", "option",
                         ["gate", "--model-factory", "no_such_module_xyz:build"], batch_ok,
                         names="no_such_module_xyz"))  # fmt: skip
    junit_bad = root / "no_such_dir" / "report.xml"
    entries.append(Entry("junit_dir_missing", "option",
                         ["check-batch", str(batch_ok), "--junit", str(junit_bad)], batch_ok,
                         names="no_such_dir", outputs=[junit_bad]))  # fmt: skip
    ho3d_missing = root / "no_ho3d_here"
    entries.append(Entry("dataset_root_missing", "dataset",
                         ["scan", "--dataset", "ho3d", "--root", str(ho3d_missing)], ho3d_missing))  # fmt: skip
    return entries


ENTRY_NAMES = (
    "empty", "truncated", "text", "list", "unknown_keys", "rank", "joints17", "sizes", "zero",
    "int", "half", "bool", "huge", "payload", "wrong_ext", "directory", "missing", "npz_object",
    "npz_truncated", "config_python_tag", "config_unknown_key", "config_mistyped_value",
    "config_not_mapping", "config_bad_yaml", "config_inf_weight", "config_diag_typo", "ckpt_empty",
    "ckpt_truncated", "ckpt_tensor", "ckpt_payload", "ckpt_other_arch", "mano_missing_keys",
    "mano_payload", "mano_truncated", "mano_text", "mano_empty", "log_empty", "log_binary",
    "log_no_blocks", "device_bogus", "factory_missing", "junit_dir_missing", "dataset_root_missing",
)  # fmt: skip
