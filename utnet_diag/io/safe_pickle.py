"""A restricted unpickler: only globals on an explicit allow-list are ever resolved.

Pickles run code through the globals they name (``os.system``, ``builtins.eval``...). Here every
global goes through ``find_class``, which returns the replacement the caller allowed for that
``(module, name)`` or raises :class:`UnsafeInputError` naming the refused global, before
anything is called. Persistent ids are refused too.

Example (numpy arrays only)::

    data = restricted_load("meta.pkl", NUMPY_GLOBALS)
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from utnet_diag.errors import InputError, UnsafeInputError
from utnet_diag.io.files import require_file


def _numpy_reconstruct() -> Callable[..., Any]:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


def _numpy_scalar() -> Callable[..., Any]:
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    return scalar


# A pickle that names an array shape (``numpy.ndarray(shape)``, ``_reconstruct``) or a dtype makes
# numpy allocate what it claims before any data is read: the claim is checked first.
MAX_ARRAY_BYTES = 1 << 30  # no input of this tool pickles a larger array
MAX_ITEMSIZE = 1024  # bytes per element: numbers and short strings, not V2000000000


def _claimed_shape(shape: Any) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not all(isinstance(n, (int, np.integer)) and n >= 0 for n in dims) or len(dims) > 32:
        raise InputError(f"array shape {dims!r} is not a list of sizes")
    return tuple(int(n) for n in dims)


def _bounded(dims: tuple[int, ...], dtype: Any) -> None:
    """InputError when an array of ``dims`` and ``dtype`` would hold over MAX_ARRAY_BYTES."""
    kind = _bounded_dtype(dtype)
    count = 1
    for n in dims:
        count *= n
    if count * max(kind.itemsize, 1) > MAX_ARRAY_BYTES:
        raise InputError(
            f"pickle asks for an array of shape {dims} ({count * kind.itemsize / 2**30:.1f} GiB),"
            f" over the {MAX_ARRAY_BYTES / 2**30:.0f} GiB an input may claim; not allocated"
        )


def _bounded_dtype(spec: Any, *args: Any, **kwargs: Any) -> np.dtype:
    """``numpy.dtype`` for numbers, booleans and short strings only (no objects, no huge voids)."""
    try:
        kind = spec if isinstance(spec, np.dtype) else np.dtype(spec, *args, **kwargs)
    except (TypeError, ValueError) as err:
        raise InputError(f"pickle names an invalid dtype {spec!r} ({err})") from None
    if kind.hasobject:
        raise UnsafeInputError("an array of Python objects is not allowed here")
    if kind.itemsize > MAX_ITEMSIZE:
        raise InputError(
            f"pickle names dtype {kind.str} of {kind.itemsize} bytes per element; at most"
            f" {MAX_ITEMSIZE} are allowed"
        )
    return kind


class BoundedNdarray(np.ndarray):
    """What a pickle's ``numpy.ndarray`` global resolves to: called (``numpy.ndarray(shape,
    dtype)``), it checks the claimed size before allocating and returns a plain ndarray; passed
    to numpy's C ``_reconstruct`` as the array type, it is a plain ndarray subclass."""

    def __new__(cls, shape: Any, dtype: Any = float, *args: Any, **kwargs: Any) -> np.ndarray:
        dims = _claimed_shape(shape)
        _bounded(dims, dtype)
        return np.ndarray(dims, _bounded_dtype(dtype), *args, **kwargs)


_bounded_ndarray = BoundedNdarray


def _reconstruct_ndarray(subtype, shape, dtype):
    """``_reconstruct`` restricted to plain ndarrays (no arbitrary subclass construction) of a
    bounded size."""
    if subtype is _bounded_ndarray:  # the file's numpy.ndarray global, resolved to our guard
        subtype = np.ndarray
    if subtype is not np.ndarray:
        raise UnsafeInputError(f"array subtype {subtype!r} is not allowed")
    dims = _claimed_shape(shape)
    _bounded(dims, np.uint8)  # numpy pickles claim (0,) here; the data comes with its bytes
    return _numpy_reconstruct()(subtype, dims, dtype)


def _frombuffer_ndarray(
    buf: Any, dtype: Any, shape: Any, order: str = "C", axis_order: Any = None
) -> np.ndarray:
    """Protocol 5's ``numpy._core.numeric._frombuffer`` restricted to numeric data whose shape
    matches the bytes in the pickle (nothing is allocated beyond them)."""
    kind = np.dtype(dtype)
    if kind.hasobject:
        raise UnsafeInputError("an array of Python objects is not allowed here")
    data = memoryview(buf).cast("B")
    dims = tuple(int(n) for n in shape)
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if any(n < 0 for n in dims) or count * kind.itemsize != data.nbytes:
        raise InputError(f"array of shape {dims} does not match its {data.nbytes} bytes")
    array = np.frombuffer(data, dtype=kind)
    if order == "K" and axis_order is not None:
        return array.reshape(dims, order="C").transpose(tuple(int(a) for a in axis_order))
    return array.reshape(dims, order="F" if order == "F" else "C")


# numpy arrays, as numpy 1.x (numpy.core) and numpy 2 (numpy._core) write them (protocol 2-5).
NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _bounded_ndarray,
    ("numpy", "dtype"): _bounded_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_ndarray,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_ndarray,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar(),
    ("numpy._core.multiarray", "scalar"): _numpy_scalar(),
    ("numpy.core.numeric", "_frombuffer"): _frombuffer_ndarray,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer_ndarray,
}


def latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 protocol-2 pickles use it for bytes (numpy array data):
    latin1 only, nothing else."""
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") not in (
        "latin1",
        "iso88591",
    ):
        raise UnsafeInputError(f"_codecs.encode with {encoding!r} is not allowed")
    return text.encode("latin1")


# bytes in a pickle written by Python 3 with protocol 2 (e.g. pickle.dump(..., protocol=2))
BYTES_GLOBALS: dict[tuple[str, str], Any] = {("_codecs", "encode"): latin1_encode}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, allowed: Mapping[tuple[str, str], Any], encoding: str):
        super().__init__(file, encoding=encoding, fix_imports=False)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafeInputError(
                f"pickle refers to '{module}.{name}', which is not allowed here"
                " (a pickle global can run code; this file was not loaded)",
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeInputError("pickle uses persistent ids, which are not allowed here")


def restricted_load(
    source: str | Path | BinaryIO | bytes,
    allowed: Mapping[tuple[str, str], Any],
    encoding: str = "latin1",
    what: str = "pickle",
) -> Any:
    """Unpickle ``source`` (a path, bytes or binary file) resolving only ``allowed`` globals.

    ``allowed`` maps ``(module, name)`` to the callable or class to use in its place.
    Raises :class:`UnsafeInputError` naming the first refused global, and :class:`InputError`
    for a truncated or corrupt pickle. ``encoding='latin1'`` reads Python 2 pickles (numpy
    arrays inside them need it).
    """
    path = None
    if isinstance(source, (str, Path)):
        path = str(require_file(source, what))
        handle: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed below
    elif isinstance(source, (bytes, bytearray)):
        handle = io.BytesIO(bytes(source))
    else:
        handle = source
    try:
        return _RestrictedUnpickler(handle, allowed, encoding).load()
    except InputError as err:
        if path and err.path is None:
            raise type(err)(str(err), path=path) from None
        raise
    except EOFError:
        raise InputError(f"{what} is truncated (ended before its STOP opcode)", path=path) from None
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError) as err:
        detail = " ".join(str(err).split())[:200]
        raise InputError(
            f"{what} is corrupt or not a pickle: {type(err).__name__}: {detail}", path=path
        ) from None
    except (AttributeError, ImportError, UnicodeDecodeError, MemoryError, RecursionError) as err:
        detail = " ".join(str(err).split())[:200]
        raise InputError(
            f"{what} could not be read: {type(err).__name__}: {detail}", path=path
        ) from None
    finally:
        if path is not None:
            handle.close()
