"""MANO: the embedded synthetic hand, chumpy-free loading of the official model, a layer.

- :func:`load_mano_data` -> plain arrays (None: the synthetic right hand, cached per process).
- :class:`ManoLayer` -> vertices (B, 778, 3) mm, joints (B, 21, 3) mm in the spec's order.
- :func:`synthetic_mano_data`, :func:`write_synthetic_mano` -> a MANO_RIGHT.pkl smplx loads.
- :data:`DEGENERATE_OUTPUT_HINT` -> what to tell a user whose MANO outputs are all zero.

Importing this package does not import torch; ``ManoLayer`` and ``mano_forward_pose48`` load
it on first use.
"""

from __future__ import annotations

from typing import Any

from utnet_diag.mano.data import DEGENERATE_OUTPUT_HINT, load_mano_data, resolve_mano_path
from utnet_diag.mano.synthetic import synthetic_mano_data, write_synthetic_mano

__all__ = [
    "DEGENERATE_OUTPUT_HINT",
    "ManoLayer",
    "ManoOutput",
    "load_mano_data",
    "mano_forward_pose48",
    "resolve_mano_path",
    "synthetic_mano_data",
    "write_synthetic_mano",
]


def __getattr__(name: str) -> Any:  # torch only when the layer is asked for
    if name in ("ManoLayer", "ManoOutput", "mano_forward_pose48"):
        from utnet_diag.mano import layer  # deferred: loads torch

        return getattr(layer, name)
    raise AttributeError(f"module 'utnet_diag.mano' has no attribute {name!r}")
