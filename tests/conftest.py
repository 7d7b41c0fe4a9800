"""Shared fixtures: a clean procedural batch and a helper that writes batches to files."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import torch

pytest_plugins = ["pytester"]  # tests/test_pytest_plugin.py runs pytest on the plugin


@pytest.fixture
def clean_batch() -> dict[str, torch.Tensor]:
    """A clean canonical batch of 8 procedural right hands (utnet_diag.synthetic.skeleton)."""
    from utnet_diag.synthetic.skeleton import make_skeleton_batch

    return make_skeleton_batch(8, seed=0)


@pytest.fixture
def write_batch(tmp_path: Path) -> Callable[..., Path]:
    """``write_batch(mapping, name="batch.pt")`` saves a mapping (.pt or .npz) under tmp_path."""
    from utnet_diag.io.batch import save_batch

    def write(mapping: Mapping, name: str = "batch.pt") -> Path:
        return save_batch(mapping, tmp_path / name)

    return write


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports of matplotlib fail, as on an install without the ``plot`` extra."""
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
