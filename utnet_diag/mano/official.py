"""Loading MANO pickles without chumpy and without running code from the file.

The official ``MANO_RIGHT.pkl``/``MANO_LEFT.pkl`` (v1.2) are Python 2 pickles that reference
chumpy and scipy objects. A restricted unpickler resolves only the globals such a file uses and
turns them into plain numpy arrays:

- ``chumpy.ch.Ch``: its state's ``x`` array;
- ``chumpy.reordering.Select``: ``a.x.ravel()[idxs].reshape(preferred_shape)``;
- ``scipy.sparse.csc.csc_matrix``: densified from ``data``, ``indices``, ``indptr``, ``_shape``;
- the CSC, CSR and COO matrices and arrays of any SciPy, from 0.x (``scipy.sparse.csc``) to today
  (``scipy.sparse._csc``), as chumpy-free files written with a current SciPy hold them;
- numpy arrays (protocol 2 to 5, including protocol 5's ``_frombuffer``) and dtypes, and ``set``.

Any other global (``os.system``, ``builtins.eval``...) is refused with an error naming it.
The result goes to smplx through ``data_struct``, so smplx never unpickles anything itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from utnet_diag.errors import InputError
from utnet_diag.io.files import require_file
from utnet_diag.io.npz import load_npz
from utnet_diag.io.safe_pickle import BYTES_GLOBALS, NUMPY_GLOBALS, restricted_load

MAX_DENSE_ELEMENTS = 1_000_000  # a sparse matrix in a MANO file: J_regressor is 16 x 778
MAX_EXTRA_BYTES = 1 << 20  # keys smplx does not use are kept only when numeric and this small
MAX_EXTRA_TEXT = 4096

# The keys smplx's MANO needs, and the shapes they must have (None: any size on that axis).
REQUIRED_SHAPES: dict[str, tuple[int | None, ...]] = {
    "v_template": (778, 3),
    "f": (1538, 3),
    "J_regressor": (16, 778),
    "kintree_table": (2, 16),
    "weights": (778, 16),
    "posedirs": (778, 3, 135),
    "shapedirs": (778, 3, None),
    "hands_components": (45, 45),
    "hands_mean": (45,),
}


class _PickledState:
    """Stands in for a class from the file: records its constructor args and pickled state."""

    kind = "object"
    state: Any = None  # NEWOBJ creates instances without __init__; BUILD may never come

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def field(self, name: str) -> Any:
        state = self.state[0] if isinstance(self.state, tuple) and self.state else self.state
        if not isinstance(state, dict) or name not in state:
            raise InputError(f"a pickled {self.kind} has no '{name}' in its state")
        return state[name]


class ChumpyCh(_PickledState):
    kind = "chumpy.ch.Ch"


class ChumpySelect(_PickledState):
    kind = "chumpy.reordering.Select"


class SparseMatrix(_PickledState):
    """A pickled scipy sparse matrix or array; ``layout`` is 'csc', 'csr' or 'coo'."""

    layout = "csc"


def _sparse_class(module: str, name: str) -> type[SparseMatrix]:
    return type(name, (SparseMatrix,), {"kind": f"{module}.{name}", "layout": name[:3]})


# scipy < 1.8 names the modules scipy.sparse.csc etc., later versions scipy.sparse._csc etc.;
# *_array classes exist since scipy 1.8.
SPARSE_GLOBALS: dict[tuple[str, str], Any] = {
    (module, name): _sparse_class(module, name)
    for layout in ("csc", "csr", "coo")
    for module in (f"scipy.sparse.{layout}", f"scipy.sparse._{layout}")
    for name in (f"{layout}_matrix", f"{layout}_array")
}
CscMatrix = SPARSE_GLOBALS[("scipy.sparse.csc", "csc_matrix")]  # the official file's

MANO_GLOBALS: dict[tuple[str, str], Any] = {
    **NUMPY_GLOBALS,
    **BYTES_GLOBALS,  # a MANO file re-saved by Python 3 with protocol 2
    **SPARSE_GLOBALS,
    ("chumpy.ch", "Ch"): ChumpyCh,
    ("chumpy.reordering", "Select"): ChumpySelect,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
}


def _as_array(value: Any, key: str, depth: int = 0) -> Any:
    """Plain numpy array (or str) for one value of the pickled dict."""
    if depth > 4:
        raise InputError(f"'{key}' nests chumpy objects too deeply")
    if isinstance(value, ChumpyCh):
        return _as_array(value.field("x"), key, depth + 1)
    if isinstance(value, ChumpySelect):
        source = np.asarray(_as_array(value.field("a"), key, depth + 1)).ravel()
        idxs = np.asarray(value.field("idxs")).astype(np.int64).ravel()
        shape = tuple(int(n) for n in np.asarray(value.field("preferred_shape")).ravel())
        if idxs.size and (idxs.min() < 0 or idxs.max() >= source.size):
            raise InputError(f"'{key}' selects indices outside its {source.size} values")
        if any(n < 0 for n in shape) or int(np.prod(shape)) != idxs.size:
            raise InputError(f"'{key}' selects {idxs.size} values but its shape is {shape}")
        return source[idxs].reshape(shape)
    if isinstance(value, SparseMatrix):
        return _dense_from_sparse(value, key)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise InputError(f"'{key}' is an object array; expected numbers")
        return value
    if isinstance(value, (str, bytes, int, float, set, list, tuple)) or value is None:
        return value
    raise InputError(f"'{key}' holds an unsupported {type(value).__name__}")


def _dense_from_sparse(matrix: SparseMatrix, key: str) -> np.ndarray:
    """Dense (rows, cols) array from a pickled scipy sparse matrix's state (CSC, CSR, COO)."""
    state = matrix.state[0] if isinstance(matrix.state, tuple) else matrix.state
    # scipy >= 0.14 pickles the shape as '_shape'; older files as 'shape'
    shape_key = "shape" if isinstance(state, dict) and "_shape" not in state else "_shape"
    try:
        rows, cols = (int(n) for n in matrix.field(shape_key))
    except (TypeError, ValueError):
        raise InputError(f"'{key}' is a sparse matrix without a (rows, cols) shape") from None
    expected = REQUIRED_SHAPES.get(key)
    if expected is not None and (rows, cols) != expected:
        raise InputError(f"'{key}' is a sparse matrix of {rows}x{cols}; expected {expected}")
    if rows < 0 or cols < 0 or rows * cols > MAX_DENSE_ELEMENTS:
        raise InputError(f"'{key}' is a sparse matrix of {rows}x{cols}, too large for MANO")
    data = np.asarray(matrix.field("data"), dtype=np.float64).ravel()
    if matrix.layout == "coo":
        if isinstance(state, dict) and "coords" in state:  # scipy >= 1.13
            row, col = (np.asarray(c).astype(np.int64).ravel() for c in matrix.field("coords"))
        else:
            row = np.asarray(matrix.field("row")).astype(np.int64).ravel()
            col = np.asarray(matrix.field("col")).astype(np.int64).ravel()
    else:
        indices = np.asarray(matrix.field("indices")).astype(np.int64).ravel()
        indptr = np.asarray(matrix.field("indptr")).astype(np.int64).ravel()
        major, minor = (cols, rows) if matrix.layout == "csc" else (rows, cols)
        if indptr.shape != (major + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            raise InputError(f"'{key}' is a malformed sparse matrix (bad indptr)")
        if indptr[-1] != data.size or data.size != indices.size:
            raise InputError(f"'{key}' is a malformed sparse matrix (data/indices sizes)")
        if indices.size and (indices.min() < 0 or indices.max() >= minor):
            raise InputError(f"'{key}' is a malformed sparse matrix (index out of range)")
        outer = np.repeat(np.arange(major), np.diff(indptr))
        row, col = (indices, outer) if matrix.layout == "csc" else (outer, indices)
    if not (row.size == col.size == data.size):
        raise InputError(f"'{key}' is a malformed sparse matrix (data/coordinate sizes)")
    if row.size and (row.min() < 0 or row.max() >= rows or col.min() < 0 or col.max() >= cols):
        raise InputError(f"'{key}' is a malformed sparse matrix (index out of range)")
    dense = np.zeros((rows, cols))
    np.add.at(dense, (row, col), data)
    return dense


def validate_mano_data(data: dict[str, Any], path: str | None = None) -> None:
    """InputError naming the file and the keys when ``data`` lacks MANO keys or has bad shapes."""
    missing = [k for k in REQUIRED_SHAPES if k not in data]
    if missing:
        raise InputError(
            f"not a MANO model: missing keys {', '.join(missing)}",
            path=path,
            hint="expected the official MANO_RIGHT.pkl/MANO_LEFT.pkl (v1.2) or a converted copy",
        )
    for key, expected in REQUIRED_SHAPES.items():
        try:
            shape = np.shape(data[key])
            kind = np.asarray(data[key]).dtype
        except (ValueError, TypeError, RecursionError):
            raise InputError(f"MANO key '{key}' is not an array of numbers", path=path) from None
        ok = len(shape) == len(expected) and all(
            e is None or s == e for s, e in zip(shape, expected)
        )
        if not ok:
            want = "(" + ", ".join("N" if e is None else str(e) for e in expected) + ")"
            raise InputError(f"MANO key '{key}' has shape {shape}; expected {want}", path=path)
        if kind.kind not in "biuf":
            what = "complex" if kind.kind == "c" else "not real numbers"
            raise InputError(f"MANO key '{key}' is {what} ({kind})", path=path)
    faces = np.asarray(data["f"])
    if faces.dtype.kind == "f" and not (
        np.isfinite(faces).all() and (faces == np.round(faces)).all()
    ):
        raise InputError("MANO faces hold NaN, Inf or fractions; expected vertex indices",
                         path=path)  # fmt: skip
    if faces.min() < 0 or faces.max() >= 778:
        raise InputError(f"MANO faces index vertices {faces.min()}..{faces.max()}; expected 0..777",
                         path=path)  # fmt: skip
    if np.shape(data["shapedirs"])[2] < 10:
        raise InputError("MANO shapedirs has fewer than 10 shape components", path=path)
    for key in ("v_template", "shapedirs", "posedirs", "weights", "J_regressor"):
        if not np.all(np.isfinite(np.asarray(data[key], dtype=np.float64))):
            raise InputError(f"MANO key '{key}' holds NaN or Inf", path=path)


def load_mano_file(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Plain-array MANO data from a pickle (official chumpy-based, or plain arrays), or .npz.

    Returns ``(data, info)``; ``info`` says which chumpy/scipy objects were converted.
    """

    p = require_file(path, "MANO model", suffixes=(".pkl", ".npz"))
    if p.suffix.lower() == ".npz":
        raw = load_npz(p, "MANO npz", max_bytes=64 << 20)
        raw = {k: (str(v) if v.dtype.kind == "U" else v) for k, v in raw.items()}
    else:
        raw = restricted_load(p, MANO_GLOBALS, encoding="latin1", what="MANO pickle")
    if not isinstance(raw, dict):
        raise InputError(
            f"MANO file holds a {type(raw).__name__}, not a dict of arrays", path=str(p)
        )
    converted: dict[str, str] = {}
    data: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    for key, value in raw.items():
        key = key.decode("latin1") if isinstance(key, bytes) else str(key)
        if key not in REQUIRED_SHAPES:
            reason = _extra_refused(value)
            if reason:
                dropped[key] = reason
                continue
        if isinstance(value, (ChumpyCh, ChumpySelect, SparseMatrix)):
            converted[key] = value.kind
        try:
            data[key] = _as_array(value, key)
        except InputError as err:
            if key not in REQUIRED_SHAPES:
                dropped[key] = str(err)
                continue
            raise InputError(str(err), path=str(p)) from None
        if key not in REQUIRED_SHAPES and _extra_refused(data[key]):
            dropped[key] = _extra_refused(data[key])
            del data[key]
    validate_mano_data(data, str(p))
    for key in REQUIRED_SHAPES:
        data[key] = np.array(data[key], dtype=np.uint32 if key == "f" else None)
    info = {"path": str(p), "converted": converted, "keys": sorted(data), "dropped": dropped}
    return data, info


def _extra_refused(value: Any) -> str | None:
    """Why a key smplx does not use is not kept (None: kept): only numbers, small arrays of
    numbers and short text are; chumpy and sparse objects are kept when they are small."""
    if isinstance(value, SparseMatrix):
        state = value.state[0] if isinstance(value.state, tuple) and value.state else value.state
        shape = state.get("_shape", state.get("shape")) if isinstance(state, dict) else None
        try:
            rows, cols = (int(n) for n in shape)
        except (TypeError, ValueError):
            return "a sparse matrix without a shape"
        if rows * cols * 8 > MAX_EXTRA_BYTES:
            return f"a {rows}x{cols} sparse matrix, over {MAX_EXTRA_BYTES >> 20} MiB dense"
        return None
    if isinstance(value, (ChumpyCh, ChumpySelect)):
        return None  # judged once converted
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            return f"an array of {value.dtype}, not real numbers"
        if value.nbytes > MAX_EXTRA_BYTES:
            return f"an array of {value.nbytes >> 20} MiB, over {MAX_EXTRA_BYTES >> 20} MiB"
        return None
    if isinstance(value, (str, bytes)):
        return None if len(value) <= MAX_EXTRA_TEXT else f"text of {len(value)} characters"
    if value is None or isinstance(value, (bool, float)):
        return None
    if isinstance(value, int):
        return None if abs(value) < 2**63 else "an integer too large for any array"
    if isinstance(value, (list, tuple)):
        try:
            return _extra_refused(np.asarray(value))
        except (ValueError, TypeError, RecursionError, OverflowError):
            return f"a {type(value).__name__} that is not an array of numbers"
    return f"a {type(value).__name__}, not an array"
