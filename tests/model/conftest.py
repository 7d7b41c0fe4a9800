"""Fixtures for the model tests: the tiny reference model, the default batch, a fake UTNet repo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FAKE_REPO = Path(__file__).resolve().parents[1] / "fixtures" / "fake_utnet_repo"


@pytest.fixture(scope="module")
def reference_model():
    from utnet_diag.model.reference import build_reference

    return build_reference("tiny")


@pytest.fixture(scope="module")
def sample_batch():
    from utnet_diag.synthetic.sample import default_batch

    return default_batch()


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """A copy of the fake UTNet checkout with a synthetic MANO at its configured mano_path."""
    from utnet_diag.mano import write_synthetic_mano

    repo = tmp_path / "UTNet"
    shutil.copytree(FAKE_REPO, repo, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "mano").mkdir()
    write_synthetic_mano(repo / "mano" / "MANO_RIGHT.pkl")
    return repo
