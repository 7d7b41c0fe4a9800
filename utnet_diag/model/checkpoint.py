"""Checkpoints: safe loading (``weights_only=True``), unwrapping, prefix cleaning, key reports.

A checkpoint is read with ``torch.load(weights_only=True)``, so a file that asks to build an
arbitrary Python object is refused before any of its code runs. ``unsafe=True`` (the CLI's
``--unsafe-load``) opts out for trusted files and returns a warning naming the risk.

Wrappers ``state_dict``, ``model_state_dict`` and ``model`` are unwrapped (nested too, as
Lightning does); the prefixes ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile)
are stripped from every key.
"""

from __future__ import annotations

import pickle
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from utnet_diag.checks.engine import CheckRegistry, Outcome
from utnet_diag.errors import InputError, UnsafeInputError
from utnet_diag.io.files import require_file, save_torch_atomic
from utnet_diag.report.result import CheckResult, Status

MODEL_CHECKS = CheckRegistry("model")
MODEL_CHECKS.declare(
    "checkpoint_keys",
    "The checkpoint's tensors load into the model: none missing, none of another shape",
    "check that the checkpoint belongs to this model",
)

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
STRIP_PREFIXES = ("module.", "_orig_mod.")
CONFIG_KEYS = ("config", "model_config", "hyper_parameters", "hparams")
REFERENCE_FORMAT = "utnet_diag.reference/1"
UNSAFE_WARNING = (
    "--unsafe-load: {path} was loaded with torch.load(weights_only=False), which runs any code "
    "the file contains; use it only for checkpoints you trust"
)
_SHOW = 5  # key names listed in a message


@dataclass
class CheckpointData:
    """A loaded checkpoint.

    ``state_dict``: cleaned name -> tensor; ``top_level_keys``: the keys of the stored mapping;
    ``wrappers``: the wrapper keys unwrapped, outermost first; ``stripped``: prefix -> number of
    keys it was stripped from; ``config``: the stored model config, if any; ``metadata``: other
    plain top-level values (epoch, step, ...); ``warnings``: text for stderr (``--unsafe-load``).
    """

    path: str
    state_dict: dict[str, torch.Tensor]
    top_level_keys: list[str] = field(default_factory=list)
    wrappers: list[str] = field(default_factory=list)
    stripped: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    format: str | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Tensor count, element count, size in MB and dtype histogram (JSON-ready)."""
        dtypes: Counter[str] = Counter()
        elements = 0
        nbytes = 0
        for tensor in self.state_dict.values():
            dtypes[str(tensor.dtype).replace("torch.", "")] += 1
            elements += tensor.numel()
            nbytes += tensor.numel() * tensor.element_size()
        return {
            "tensors": len(self.state_dict),
            "elements": elements,
            "size_mb": round(nbytes / 1e6, 3),
            "dtypes": dict(dtypes),
            "wrappers": list(self.wrappers),
            "stripped_prefixes": dict(self.stripped),
            "top_level_keys": list(self.top_level_keys)[:20],
            "format": self.format,
        }


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _torch_load(path: Path, unsafe: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=not unsafe)
    except pickle.UnpicklingError as err:
        if unsafe:
            raise InputError(
                f"not a readable torch checkpoint ({_first_line(err)})", path=str(path)
            ) from None
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f"the Python global '{found.group(1)}'" if found else "a Python object"
        raise UnsafeInputError(
            f"refused to load: the checkpoint asks for {what}, which weights-only loading does not allow",
            path=str(path),
            hint="re-save it with torch.save({'model_state_dict': model.state_dict()}); "
            "pass --unsafe-load only if you trust this file, since it runs code from it",
        ) from None
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - any parse failure of a user file is an input error
        raise InputError(
            f"not a readable torch checkpoint, truncated or another format ({_first_line(err)})",
            path=str(path),
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line[:160]


def _is_tensor_map(obj: Any) -> bool:
    return isinstance(obj, Mapping) and any(isinstance(v, torch.Tensor) for v in obj.values())


def _mostly_tensors(obj: Mapping) -> bool:
    values = list(obj.values())
    return bool(values) and sum(isinstance(v, torch.Tensor) for v in values) * 2 >= len(values)


def strip_prefixes(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Remove leading ``module.`` / ``_orig_mod.`` (any order, repeated) from every key.

    Returns the new state dict and prefix -> number of keys it was stripped from.
    """
    counts: Counter[str] = Counter()
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = key
        changed = True
        while changed:
            changed = False
            for prefix in STRIP_PREFIXES:
                if name.startswith(prefix):
                    name = name[len(prefix) :]
                    counts[prefix] += 1
                    changed = True
        if name in out:
            raise InputError(
                f"checkpoint keys '{key}' and another both become '{name}' after stripping prefixes"
            )
        out[name] = value
    return out, dict(counts)


def load_checkpoint(path: str | Path, unsafe: bool = False) -> CheckpointData:
    """Read a checkpoint without running code from it; unwrap and clean its state dict.

    Raises InputError (one line) for a missing, empty, truncated or non-checkpoint file and
    UnsafeInputError when weights-only loading refuses a global (the message names it).
    """
    p = require_file(path, "checkpoint")
    raw = _torch_load(p, unsafe)
    warnings: list[str] = [UNSAFE_WARNING.format(path=p)] if unsafe else []
    if isinstance(raw, torch.nn.Module):  # only reachable with unsafe: torch.save(model)
        raw = {"model": raw}
    if not isinstance(raw, Mapping):
        raise InputError(
            f"not a model checkpoint: it stores a {type(raw).__name__}, not a mapping of tensors",
            path=str(p),
        )
    top_level = [str(k) for k in raw]
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] = {}
    fmt = raw.get("format") if isinstance(raw.get("format"), str) else None
    wrappers: list[str] = []
    obj: Any = raw
    for _ in range(4):
        for key in CONFIG_KEYS:
            if config is None and isinstance(obj.get(key), Mapping):
                config = dict(obj[key])
        for key, value in obj.items():
            if _plain(value) and key not in ("format",) and len(metadata) < 20:
                metadata.setdefault(str(key), value)
        if _mostly_tensors(obj):
            break
        inner = next((k for k in WRAPPER_KEYS if k in obj), None)
        if inner is None:
            break
        value = obj[inner]
        if isinstance(value, torch.nn.Module):
            value = value.state_dict()
        if not isinstance(value, Mapping):
            break
        wrappers.append(inner)
        obj = value
    if not _is_tensor_map(obj):
        raise InputError(
            "not a model checkpoint: no tensors found"
            f" (top-level keys: {', '.join(top_level[:8]) or 'none'})",
            path=str(p),
            hint="expected a state dict or {'model_state_dict': ...}",
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    state_dict, stripped = strip_prefixes(tensors)
    return CheckpointData(
        path=str(p),
        state_dict=state_dict,
        top_level_keys=top_level,
        wrappers=wrappers,
        stripped=stripped,
        config=config,
        metadata=metadata,
        format=fmt,
        warnings=warnings,
    )


def _shape(t: torch.Tensor | torch.Size) -> str:
    dims = t.shape if isinstance(t, torch.Tensor) else t
    return "(" + ",".join(str(d) for d in dims) + ")"


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", … (+{len(keys) - _SHOW})" if len(keys) > _SHOW else "")


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str | None:
    """A prefix that, removed from the unexpected keys, would make them match the missing ones."""
    if not missing or not unexpected:
        return None
    heads = Counter(k.split(".", 1)[0] + "." for k in unexpected if "." in k)
    wanted = set(missing)
    for head, _ in heads.most_common(3):
        hits = sum(1 for k in unexpected if k.startswith(head) and k[len(head) :] in wanted)
        if hits >= max(1, len(missing) // 2):
            return (
                f"the checkpoint keys carry an extra prefix '{head}' ({hits} keys match without it)"
            )
    return None


def key_report(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> CheckResult:
    """Compare a state dict with a model: check ``checkpoint_keys``.

    Fail when model parameters are missing (they would stay at random init) or shapes differ;
    warn for unexpected keys or missing buffers only; pass when everything matches.
    ``details`` holds the counts and the first names of each kind.
    """
    own = model.state_dict()
    param_names = {name for name, _ in model.named_parameters()}
    missing = [k for k in own if k not in state_dict]
    missing_params = [k for k in missing if k in param_names]
    missing_buffers = [k for k in missing if k not in param_names]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    loaded = len(own) - len(missing) - len(mismatched)
    details: dict[str, Any] = {
        "model_tensors": len(own),
        "checkpoint_tensors": len(state_dict),
        "loaded": loaded,
        "missing": missing[:20],
        "missing_count": len(missing),
        "missing_parameters": len(missing_params),
        "unexpected": unexpected[:20],
        "unexpected_count": len(unexpected),
        "shape_mismatch": [
            {"key": k, "checkpoint": list(state_dict[k].shape), "model": list(own[k].shape)}
            for k in mismatched[:20]
        ],
        "shape_mismatch_count": len(mismatched),
    }
    hint = _prefix_hint(missing, unexpected)
    problems: list[str] = []
    if mismatched:
        k = mismatched[0]
        problems.append(
            f"{len(mismatched)} tensors differ in shape (first '{k}': checkpoint"
            f" {_shape(state_dict[k])}, model {_shape(own[k])})"
        )
    if missing_params:
        problems.append(
            f"{len(missing_params)} of {len(param_names)} model parameters missing from the"
            f" checkpoint and left at random init: {_names(missing_params)}"
        )
    if missing_buffers:
        problems.append(f"{len(missing_buffers)} buffers missing: {_names(missing_buffers)}")
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected checkpoint keys ignored: {_names(unexpected)}"
        )
    if mismatched or missing_params:
        status = Status.FAIL
        hint = hint or (
            "the checkpoint is for another architecture or configuration: build the model the"
            " checkpoint was trained with (--repo, --model-factory, or the config it stored)"
        )
    elif problems:
        status = Status.WARN
        hint = (
            hint or "check that the checkpoint belongs to this model; unexpected keys are ignored"
        )
    else:
        status = Status.PASS
        hint = None
    message = (
        "; ".join(problems)
        if problems
        else f"checkpoint matches the model: all {len(own)} tensors loaded"
    )
    outcome = Outcome(status, message, loaded, len(own), hint, details)
    return MODEL_CHECKS.result("checkpoint_keys", outcome)


def apply_state_dict(
    model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], path: str | None = None
) -> None:
    """Load matching tensors into ``model`` (non-strict: the key report says what is missing).

    Raises InputError when no checkpoint tensor matches a model tensor (another architecture)
    or naming the first tensor whose shape differs, since no meaningful model can be built
    from such a checkpoint. ``path`` names the checkpoint in the message.
    """
    own = model.state_dict()
    hint = "build the model it was trained with (its config, --repo or --model-factory)"
    if state_dict and own and not any(key in own for key in state_dict):
        first_ckpt, first_model = next(iter(state_dict)), next(iter(own))
        raise InputError(
            f"none of the checkpoint's {len(state_dict)} tensors match the model's {len(own)}"
            f" (checkpoint has '{first_ckpt}', model expects '{first_model}'): the checkpoint"
            " is for another architecture",
            path=path,
            hint=hint,
        )
    for key, tensor in state_dict.items():
        if key in own and tuple(own[key].shape) != tuple(tensor.shape):
            raise InputError(
                f"checkpoint tensor '{key}' has shape {_shape(tensor)} but the model expects"
                f" {_shape(own[key])}: the checkpoint is for another model configuration",
                path=path,
                hint=hint,
            )
    model.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=False)


def save_checkpoint(
    model: torch.nn.Module,
    path: str | Path,
    config: Mapping[str, Any] | None = None,
    fmt: str | None = REFERENCE_FORMAT,
    **metadata: Any,
) -> Path:
    """Write ``{'format', 'config', 'model_state_dict', **metadata}`` atomically.

    Only plain types are stored, so the file loads with ``weights_only=True``.
    """
    payload: dict[str, Any] = {
        "model_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}
    }
    if fmt is not None:
        payload["format"] = fmt
    if config is not None:
        payload["config"] = dict(config)
    payload.update(metadata)
    return save_torch_atomic(payload, path)
