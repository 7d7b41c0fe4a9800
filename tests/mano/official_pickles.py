"""Build pickles with the official MANO v1.2 structure (chumpy/scipy objects), Python 2 style.

Fake classes named ``chumpy.ch.Ch``, ``chumpy.reordering.Select`` and
``scipy.sparse.csc.csc_matrix`` are registered in ``sys.modules`` only while dumping; bytes are
written as Python 2 ``str`` (BINSTRING), and numpy's module is renamed to ``numpy.core``, so the
result references exactly the globals an official file does.
"""

from __future__ import annotations

import pickle
import struct
import sys
import types
from contextlib import contextmanager
from typing import Any

import numpy as np

from utnet_diag.mano import synthetic_mano_data


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 with bytes written as Python 2 str (no ``_codecs.encode`` global)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


@contextmanager
def fake_official_modules():
    """Temporarily install fake ``chumpy`` and ``scipy.sparse.csc`` modules; yield the classes."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")
    csc = types.ModuleType("scipy.sparse.csc")

    class Ch:
        pass

    class Select:
        pass

    class csc_matrix:  # noqa: N801 - the real class name
        pass

    for cls, module in ((Ch, ch), (Select, reordering), (csc_matrix, csc)):
        cls.__module__ = module.__name__
        cls.__qualname__ = cls.__name__
        setattr(module, cls.__name__, cls)
    names = ("chumpy", "chumpy.ch", "chumpy.reordering", "scipy.sparse.csc")
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update(dict(zip(names, (chumpy, ch, reordering, csc))))
    try:
        yield Ch, Select, csc_matrix
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def py2_dumps(obj: Any) -> bytes:
    """Pickle like Python 2 (protocol 2, str bytes, ``numpy.core.multiarray`` names)."""
    import io

    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def official_structure_bytes(side: str = "right", mutate=None) -> tuple[bytes, dict[str, Any]]:
    """(pickle bytes, expected plain arrays): the synthetic hand in the official file's layout.

    ``shapedirs`` is a Select over a Ch of shape (778, 3, 20) with 23340 flat indices,
    ``J_regressor`` a csc_matrix, ``weights`` a Ch; plus ``hands_coeffs``. ``mutate(d, classes)``
    may change the dict before dumping.
    """
    data = synthetic_mano_data(side)
    expected = dict(data)
    with fake_official_modules() as (Ch, Select, csc_matrix):
        full = np.concatenate([data["shapedirs"], 0.5 * data["shapedirs"][:, :, ::-1]], axis=2)
        source = Ch()
        source.__dict__.update({"x": full, "_dirty_vars": {"x"}, "label": None})
        shapedirs = Select()
        idxs = np.arange(full.size).reshape(full.shape)[:, :, :10].ravel()
        shapedirs.__dict__.update({"a": source, "idxs": idxs, "preferred_shape": (778, 3, 10)})
        weights = Ch()
        weights.__dict__.update({"x": data["weights"]})
        regressor = csc_matrix()
        dense = data["J_regressor"]
        rows, cols = np.nonzero(dense.T)  # column-major order: (col, row) pairs
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dense.shape[1]))])
        regressor.__dict__.update(
            {
                "data": dense[cols, rows],
                "indices": cols.astype(np.int32),
                "indptr": indptr.astype(np.int32),
                "_shape": dense.shape,
                "maxprint": 50,
            }
        )
        official = dict(data)
        official.update(
            {
                "shapedirs": shapedirs,
                "weights": weights,
                "J_regressor": regressor,
                "hands_coeffs": np.zeros((4, 45)),
            }
        )
        expected["hands_coeffs"] = official["hands_coeffs"]
        if mutate is not None:
            mutate(official, (Ch, Select, csc_matrix))
        return py2_dumps(official), expected
