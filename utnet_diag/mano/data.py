"""MANO model data as plain arrays: the file a path names, the embedded synthetic hand."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from utnet_diag.errors import InputError
from utnet_diag.mano.official import load_mano_file
from utnet_diag.mano.synthetic import _check_side, synthetic_mano_data

DEGENERATE_OUTPUT_HINT = (
    "all-zero joints and vertices usually mean MANO did not load inside your model: the official"
    " MANO_RIGHT.pkl needs chumpy to unpickle (pip's chumpy is broken on Python 3.11+/numpy 2),"
    " or smplx.create(model_path, 'mano') looks for <model_path>/mano/MANO_RIGHT.pkl and the file"
    " is elsewhere; run `utnet-diag convert-mano MANO_RIGHT.pkl <model_path>/mano/MANO_RIGHT.pkl`"
    " to write a chumpy-free copy where smplx.create expects it, and check that your model raises"
    " instead of silently returning zeros when MANO fails to load"
)


@functools.lru_cache(maxsize=2)
def _cached_synthetic(side: str) -> dict[str, Any]:
    data = synthetic_mano_data(side)
    for value in data.values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return data


def resolve_mano_path(path: str | Path, side: str = "right") -> Path:
    """The MANO file for ``path``: the file itself, or ``MANO_<SIDE>.pkl`` in a folder or in
    its ``mano/`` subfolder (where ``smplx.create(path, 'mano')`` looks)."""
    p = Path(path)
    if not p.is_dir():
        return p
    name = f"MANO_{side.upper()}.pkl"
    for candidate in (p / name, p / "mano" / name):
        if candidate.is_file():
            return candidate
    raise InputError(
        f"folder has no {name} (looked in {p} and {p / 'mano'})",
        path=str(p),
        hint="pass the .pkl file itself, or put it at <folder>/mano/" + name,
    )


def load_mano_data(path: str | Path | None = None, side: str = "right") -> dict[str, Any]:
    """MANO model data as plain numpy arrays and strings (metres; the official file's keys).

    ``path`` None: the embedded synthetic hand (``side='left'`` mirrors it). Otherwise a MANO
    pickle (official v1.2 with chumpy objects, or plain arrays) or .npz, or a folder holding
    ``MANO_<SIDE>.pkl``. Never runs code from the file. Missing keys or wrong shapes ->
    InputError naming the file and the keys. Synthetic arrays are shared and read-only.
    """

    side = _check_side(side)
    if path is None:
        return dict(_cached_synthetic(side))

    file = resolve_mano_path(path, side)
    name = file.name.upper()
    other = "LEFT" if side == "right" else "RIGHT"
    if other in name and side.upper() not in name:
        raise InputError(
            f"asked for a {side} hand but the file is named {file.name}",
            path=str(file),
            hint=f"pass MANO_{side.upper()}.pkl, or side='{other.lower()}'",
        )
    data, _ = load_mano_file(file)
    return data
