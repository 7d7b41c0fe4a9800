"""Reading ``.npz`` archives with every claim checked before memory is taken.

An ``.npz`` is a zip of ``.npy`` members; each member's header names a shape and a dtype, and
numpy allocates what it names before reading a byte of data. Here each header is read first and
the array it claims is held against the member's own size, a byte budget and the free memory;
decompression is bounded by the member's declared size (a zip bomb stops there). Object arrays
are refused. NumPy only.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from utnet_diag.errors import InputError, ResourceError, UnsafeInputError
from utnet_diag.io.files import free_memory, regular_file

MAX_NPZ_BYTES = 4 << 30  # arrays of one archive, in all
MEMORY_SHARE = 0.5  # of the free memory an archive's arrays may take


def _member_header(handle: Any) -> tuple[tuple[int, ...], np.dtype, bool]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle, max_header_size=10_000)
    if version in ((2, 0), (3, 0)):
        return np.lib.format.read_array_header_2_0(handle, max_header_size=10_000)
    raise ValueError(f"unsupported .npy version {version}")


def load_npz(
    path: str | Path,
    what: str = "npz archive",
    max_bytes: int = MAX_NPZ_BYTES,
    keys: tuple[str, ...] | None = None,
) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path`` by name (the ``.npy`` suffix dropped), or only
    those named in ``keys`` (the others are not read; a missing one is not an error here).

    InputError for a file that is not a readable archive or holds a truncated member;
    UnsafeInputError for object arrays; ResourceError when the arrays it claims exceed
    ``max_bytes`` or half the free memory (checked before any array is read)."""
    p = regular_file(path, what)
    try:
        archive = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        with open(p, "rb") as handle:  # only a file that is no zip is looked at again
            if handle.read(6) == b"\x93NUMPY":
                raise InputError(
                    f"expected an .npz archive of named arrays, found a single array (.npy) as"
                    f" {what}",
                    path=str(p),
                    hint="save with np.savez(path, name=array, ...)",
                ) from None
        raise InputError(
            f"{what} is not a readable .npz archive ({str(err)[:160]})", path=str(p)
        ) from None
    budget = max_bytes
    free = free_memory()
    if free is not None:
        budget = min(budget, int(free * MEMORY_SHARE))
    out: dict[str, np.ndarray] = {}
    total = 0
    with archive:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if keys is not None and name not in keys:
                continue
            try:
                with archive.open(info) as handle:
                    shape, fortran, dtype = _read_claim(handle, name, what, p)
                    count = 1
                    for n in shape:
                        count *= n
                    nbytes = count * dtype.itemsize
                    if nbytes > info.file_size:
                        raise InputError(
                            f"array '{name}' claims {nbytes} bytes but its member holds"
                            f" {info.file_size}",
                            path=str(p),
                        )
                    total += nbytes
                    if total > budget:
                        raise ResourceError(
                            f"{what}'s arrays claim {total / 2**20:.0f} MiB, over the"
                            f" {budget / 2**20:.0f} MiB this machine can give them",
                            path=str(p),
                        )
                    array = np.empty(count, dtype=dtype)
                    if _read_into(handle, memoryview(array).cast("B")) != nbytes:
                        raise InputError(f"array '{name}' is truncated", path=str(p))
                out[name] = array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
                raise InputError(
                    f"array '{name}' is truncated or corrupt ({str(err)[:160]})", path=str(p)
                ) from None
    return out


CHUNK = 1 << 18  # as numpy reads: cache-sized pieces


def _read_into(handle: Any, view: memoryview) -> int:
    """Fill ``view`` from ``handle`` in chunks; the bytes read (fewer at the member's end)."""
    done = 0
    while done < len(view):
        data = handle.read(min(CHUNK, len(view) - done))
        if not data:
            break
        view[done : done + len(data)] = data
        done += len(data)
    return done


def _read_claim(
    handle: Any, name: str, what: str, path: Path
) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        shape, fortran, dtype = _member_header(handle)
    except ValueError as err:
        raise InputError(
            f"array '{name}' has no valid .npy header ({str(err)[:120]})", path=str(path)
        ) from None
    if dtype.hasobject:
        raise UnsafeInputError(
            f"array '{name}' holds Python objects; object arrays are refused",
            path=str(path),
            hint="store numeric arrays only",
        )
    return tuple(int(n) for n in shape), bool(fortran), dtype
