"""File helpers: readable-input validation and atomic writes (no partial outputs)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from utnet_diag.errors import InputError


def require_file(path: str | Path, what: str = "file", suffixes: tuple[str, ...] = ()) -> Path:
    """The path of an existing, readable, non-empty regular file, or an InputError saying why not."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found", path=str(p), hint="check the path")
    if p.is_dir():
        raise InputError(f"expected a {what} but found a directory", path=str(p))
    if not os.access(p, os.R_OK):
        raise InputError(f"{what} is not readable (permission denied)", path=str(p))
    if suffixes and p.suffix.lower() not in suffixes:
        raise InputError(
            f"unsupported {what} extension '{p.suffix or '(none)'}'",
            path=str(p),
            hint=f"expected one of {', '.join(suffixes)}",
        )
    if p.stat().st_size == 0:
        raise InputError(f"{what} is empty (0 bytes)", path=str(p))
    return p


def require_dir(path: str | Path, what: str = "directory") -> Path:
    """The path of an existing, readable directory, or an InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found", path=str(p), hint="check the path")
    if not p.is_dir():
        raise InputError(f"expected a {what} but found a file", path=str(p))
    if not os.access(p, os.R_OK | os.X_OK):
        raise InputError(f"{what} is not readable (permission denied)", path=str(p))
    return p


def _new_file_mode(target: Path) -> int:
    """The mode a plain ``open(target, "w")`` would give: the old file's, else 0o666 less umask."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _atomic_write(path: str | Path, write) -> Path:
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise InputError("output directory does not exist", path=str(parent))
    mode = _new_file_mode(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    try:
        # mkstemp creates 0o600; outputs should be as readable as any file the user writes
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write text to ``path`` via a temporary file in the same folder, then rename."""
    return _atomic_write(path, lambda h: h.write(text.encode("utf-8")))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write bytes to ``path`` atomically."""
    return _atomic_write(path, lambda h: h.write(data))


def save_torch_atomic(obj, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically."""
    import torch

    return _atomic_write(path, lambda h: torch.save(obj, h))
