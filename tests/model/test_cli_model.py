"""CLI: make-sample and inspect-checkpoint, with every bad-input path (exit 2, one line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from utnet_diag.cli.app import main
from utnet_diag.model.reference import build_reference


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "out"
    assert main(["make-sample", str(out), "-n", "3", "--json"]) == 0
    return out


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("utnet-diag: error:") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.slow
def test_make_sample_outputs_and_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    assert main(["make-sample", str(out), "-n", "2", "--seed", "4", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["command"] == "make-sample" and report["sample"]["samples"] == 2
    assert set(report["sample"]["files"]) == {
        "MANO_RIGHT.pkl",
        "reference.pt",
        "batch.pt",
        "config.yaml",
    }
    assert "wrote 4 files" in captured.err
    assert main(["make-sample", str(out)]) == 2
    assert "refusing to overwrite" in _one_line_error(capsys)
    assert main(["make-sample", str(out), "--force"]) == 0
    assert "sample files" in capsys.readouterr().out
    assert main(["make-sample", str(tmp_path / "t"), "--model-preset", "tinny"]) == 2
    assert "did you mean 'tiny'" in _one_line_error(capsys)
    assert not (tmp_path / "t" / "batch.pt").exists()


def test_inspect_reference_checkpoint(sample_dir: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["inspect-checkpoint", str(sample_dir / "reference.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    section = report["checkpoint"]
    assert section["format"] == "utnet_diag.reference/1"
    assert section["dtypes"] == {"float32": section["tensors"]}
    assert section["elements"] == sum(
        t.numel() for t in build_reference("tiny").state_dict().values()
    )
    assert report["stored_config"]["embed_dim"] == 64
    assert (
        report["checks"][0]["id"] == "checkpoint_keys" and report["checks"][0]["status"] == "pass"
    )
    assert "its stored config" in report["compared_with"]["model"]
    assert main(["inspect-checkpoint", str(sample_dir / "reference.pt")]) == 0
    text = capsys.readouterr().out
    assert "checkpoint" in text and "float32" in text and "PASSED" in text


def test_inspect_foreign_checkpoint_fails_the_key_check(tmp_path: Path, capsys) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 3))
    torch.save({"model_state_dict": net.state_dict()}, tmp_path / "other.pt")
    assert main(["inspect-checkpoint", str(tmp_path / "other.pt"), "--json"]) == 1
    check = json.loads(capsys.readouterr().out)["checks"][0]
    assert check["status"] == "fail" and "left at random init" in check["message"]
    assert check["details"]["unexpected"] == ["0.weight", "0.bias"]


def test_inspect_with_repo(fake_repo: Path, tmp_path: Path, capsys) -> None:
    from utnet_diag.model.sources import build_repo_model

    model, _, _, _ = build_repo_model(fake_repo)
    torch.save({"model_state_dict": model.state_dict(), "epoch": 5}, tmp_path / "u.pt")
    assert (
        main(["inspect-checkpoint", str(tmp_path / "u.pt"), "--repo", str(fake_repo), "--json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoint"]["metadata"] == {"epoch": 5}
    assert report["compared_with"]["model"].startswith("repo ")


def test_unsafe_load_warns_on_stderr(sample_dir: Path, capsys) -> None:
    capsys.readouterr()
    code = main(["inspect-checkpoint", str(sample_dir / "reference.pt"), "--unsafe-load", "--json"])
    assert code == 0
    captured = capsys.readouterr()
    assert "weights_only=False" in captured.err and "trust" in captured.err
    json.loads(captured.out)  # stdout holds only the report


class Evil:
    def __reduce__(self):
        return (print, ("side effect ran",))


def test_bad_checkpoints_exit_2(tmp_path: Path, sample_dir: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["inspect-checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "not found" in _one_line_error(capsys)
    assert main(["inspect-checkpoint", str(tmp_path)]) == 2
    assert "directory" in _one_line_error(capsys)
    data = (sample_dir / "reference.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    assert main(["inspect-checkpoint", str(tmp_path / "trunc.pt")]) == 2
    assert "truncated" in _one_line_error(capsys)
    torch.save({"model_state_dict": {}, "x": Evil()}, tmp_path / "evil.pt")
    assert main(["inspect-checkpoint", str(tmp_path / "evil.pt")]) == 2
    captured = capsys.readouterr()
    assert "side effect ran" not in captured.out
    assert "print" in captured.err and "--unsafe-load" in captured.err
    (tmp_path / "empty.pt").write_bytes(b"")
    assert main(["inspect-checkpoint", str(tmp_path / "empty.pt")]) == 2
    assert "empty" in _one_line_error(capsys)
    assert (
        main(
            ["inspect-checkpoint", str(sample_dir / "reference.pt"), "--repo", str(tmp_path / "no")]
        )
        == 2
    )
    assert "UTNet checkout not found" in _one_line_error(capsys)
