"""--mano replaces the repo config's mano_path (a checkout whose configured MANO is elsewhere)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from utnet_diag.cli.app import main
from utnet_diag.errors import InputError
from utnet_diag.model.sources import load_model

FAKE_REPO = Path(__file__).resolve().parents[1] / "fixtures" / "fake_utnet_repo"


@pytest.fixture
def repo_without_mano(tmp_path: Path) -> tuple[Path, Path]:
    from utnet_diag.mano import write_synthetic_mano

    repo = tmp_path / "UTNet"
    shutil.copytree(FAKE_REPO, repo, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "elsewhere").mkdir()
    mano = write_synthetic_mano(tmp_path / "elsewhere" / "MANO_RIGHT.pkl")
    return repo, mano


def test_repo_config_mano_path_missing_is_an_input_error(repo_without_mano) -> None:
    repo, _ = repo_without_mano
    with pytest.raises(InputError, match="MANO"):
        load_model(repo=repo, device="cpu")


def test_mano_option_overrides_the_repo_config(repo_without_mano, capsys) -> None:
    repo, mano = repo_without_mano
    loaded = load_model(repo=repo, mano_path=mano, device="cpu")
    assert "repo" in loaded.source
    assert main(["loss-breakdown", "--repo", str(repo), "--mano", str(mano), "--json"]) in (0, 1)
    assert '"loss_table"' in capsys.readouterr().out
