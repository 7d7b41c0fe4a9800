"""Device selection: ``auto`` picks CUDA when there is one, else CPU."""

from __future__ import annotations

import re

import torch

from utnet_diag.errors import InputError


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a torch.device that exists on this machine."""
    if isinstance(spec, torch.device):
        return spec
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if not match:
        raise InputError(f"unknown device '{spec}'", hint="use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise InputError(
            f"device '{spec}' asked for, but no CUDA GPU is available", hint="use --device cpu"
        )
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise InputError(
            f"device '{spec}' asked for, but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    return torch.device("cuda", index)


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA and CPU allocation failures."""
    if isinstance(err, MemoryError):
        return True
    oom = getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(err, oom):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )
