"""Fixtures for the model diagnostics: the toy UTNet (tests/diagnostics/utnet_toy.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # utnet_toy is importable (and usable as --model-factory)


@pytest.fixture
def toy_batch():
    import utnet_toy

    return utnet_toy.make_batch(4, seed=1)


@pytest.fixture
def toy_dir() -> Path:
    return HERE
