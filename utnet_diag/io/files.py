"""File helpers: readable-input validation, the memory a process may still take, and atomic
writes (no partial outputs)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from utnet_diag.errors import InputError


def meminfo_available() -> int | None:
    """MemAvailable of /proc/meminfo in bytes, or None where unknown (an os-level read: it runs
    before every forward)."""
    try:
        fd = os.open("/proc/meminfo", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 1 << 16)
    finally:
        os.close(fd)
    start = data.find(b"MemAvailable:")
    if start < 0:
        return None
    fields = data[start + 13 : data.find(b"\n", start)].split()
    return int(fields[0]) * 1024 if fields and fields[0].isdigit() else None


def _cgroup_headroom() -> int | None:
    """memory.max - memory.current of this process's cgroup (v2), or None without a limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def _address_space_headroom() -> int | None:
    """RLIMIT_AS (ulimit -v) less the address space in use, or None without a limit."""
    try:
        import resource  # deferred: POSIX only

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmSize:"):
                    return soft - int(line.split()[1]) * 1024
    except (ImportError, OSError, ValueError, IndexError):
        return None
    return None


def free_memory() -> int | None:
    """Bytes this process can still take: the least of the machine's available memory, its
    cgroup's headroom and its address-space limit; None where none is known."""
    known = [m for m in (meminfo_available(), _cgroup_headroom(), _address_space_headroom())
             if m is not None]  # fmt: skip
    return max(min(known), 0) if known else None


def regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it is a regular file; a FIFO, device or socket is refused by name (opening one
    would block or read forever)."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=str(p)) from None
    except OSError as err:
        raise InputError(f"{what} cannot be read: {err.strerror}", path=str(p)) from None
    if not stat.S_ISREG(mode):
        kind = (
            "a directory" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, device or socket)"
        )
        raise InputError(f"{what} is {kind}", path=str(p))
    return p


def open_regular(path: str | Path) -> int:
    """An O_RDONLY file descriptor for ``path``, refused (InputError) unless it is a regular file:
    opening is non-blocking, so a FIFO in place of a data file cannot hang the reader."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputError("not a regular file (a FIFO, device or socket)", path=str(path))
    return fd


def require_file(path: str | Path, what: str = "file", suffixes: tuple[str, ...] = ()) -> Path:
    """The path of an existing, readable, non-empty regular file, or an InputError saying why not
    (a FIFO, device or socket is refused by name: reading one would block or never end)."""
    p = Path(path)
    try:
        info = os.stat(p)
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=str(p), hint="check the path") from None
    except OSError as err:  # a name too long, a loop of links, a component that is a file
        raise InputError(f"{what} cannot be opened: {err.strerror}", path=str(p)) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"expected a {what} but found a directory", path=str(p))
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{what} is not a regular file (a FIFO, device or socket)", path=str(p))
    if not os.access(p, os.R_OK):
        raise InputError(f"{what} is not readable (permission denied)", path=str(p))
    if suffixes and p.suffix.lower() not in suffixes:
        raise InputError(
            f"unsupported {what} extension '{p.suffix or '(none)'}'",
            path=str(p),
            hint=f"expected one of {', '.join(suffixes)}",
        )
    if info.st_size == 0:
        raise InputError(f"{what} is empty (0 bytes)", path=str(p))
    return p


def check_output_path(path: str | Path, label: str, inputs: tuple[str | Path, ...] = ()) -> Path:
    """An output file checked before any work (``label`` names it, e.g. ``--junit``): not a
    folder, not one of ``inputs``, in an existing writable folder. InputError otherwise."""
    out = Path(path)
    if out.is_dir():
        raise InputError(f"{label} is a directory; give a file name", path=str(out))
    for given in inputs:
        with contextlib.suppress(OSError):
            if out.exists() and Path(given).exists() and os.path.samefile(out, given):
                raise InputError(f"{label} would overwrite an input of this run",
                                 path=str(out), hint="choose another file name")  # fmt: skip
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{label}: output directory does not exist", path=str(parent))
    if not os.access(parent, os.W_OK):
        raise InputError(f"{label}: output directory is not writable", path=str(parent))
    return out


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


def new_file_mode(target: Path) -> int:
    """The mode a plain ``open(target, "w")`` would give: the old file's, else 0o666 less umask."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _atomic_write(path: str | Path, write) -> Path:
    """Write through a temporary file in the target's folder, then rename; on any failure the
    temporary file is removed, and an OS refusal (read-only, full disk, permission) is an
    InputError naming the target."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise InputError("output directory does not exist", path=str(parent))
    mode = new_file_mode(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as err:
        raise InputError(f"cannot write here: {err.strerror}", path=str(target)) from None
    try:
        # mkstemp creates 0o600; outputs should be as readable as any file the user writes
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write: {err.strerror or err}", path=str(target)) from None
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
