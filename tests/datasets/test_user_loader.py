"""check-batch --loader: the user's own Dataset, with and without its augmentation switch; its
crashes reported with the likely cause (tests/fixtures/loaders/toy_hand_loader.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from utnet_diag.cli.app import main

LOADERS = Path(__file__).resolve().parents[1] / "fixtures" / "loaders"
SPEC = "toy_hand_loader:ToyHandDataset"


@pytest.fixture(autouse=True)
def in_loader_folder(monkeypatch):
    """Run from the folder that holds the loader module, as users run from their checkout."""
    monkeypatch.chdir(LOADERS)


def _run(capsys, *args: str) -> tuple[int, dict, str]:
    code = main(["check-batch", "--loader", *args, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out else {}, captured.err


def _check(report: dict, check_id: str) -> dict:
    return next(c for c in report["checks"] if c["id"] == check_id)


def test_items_are_checked_as_training_reads_them(capsys):
    code, report, err = _run(capsys, SPEC, "--loader-args", "n=6")
    assert code == 0, err
    assert report["loader"]["samples"] == 6 and report["loader"]["augmentation_switch"] == "train"
    assert _check(report, "kp2d_kp3d_consistency")["status"] == "pass"
    assert _check(report, "loader_augmentation")["status"] == "pass"
    assert "ToyHandDataset: building 6 samples" in err  # the loader's prints: stderr only


def test_an_augmentation_that_turns_the_2d_alone_is_caught(capsys):
    args = [SPEC, "--loader-args", "train=true", "--loader-args", "rotate_3d=false"]
    code, report, _ = _run(capsys, *args)
    assert code == 1
    augmentation = _check(report, "loader_augmentation")
    assert augmentation["status"] == "fail"
    assert augmentation["details"]["broken_by_augmentation"] == ["kp2d_kp3d_consistency"]
    consistency = _check(report, "kp2d_kp3d_consistency")
    assert consistency["status"] == "fail" and consistency["details"]["rotation_deg"]
    # the right augmentation (3D turned too) passes both
    code, report, _ = _run(capsys, SPEC, "--loader-args", "{train: true, rotate_3d: true}")
    assert code == 0 and _check(report, "loader_augmentation")["status"] == "pass"


def test_a_function_returning_a_dataloader_works(capsys):
    code, report, _ = _run(capsys, "toy_hand_loader:toy_loader", "--loader-samples", "3")
    assert code == 0 and report["loader"]["samples"] == 3


@pytest.mark.parametrize(
    ("fault", "message", "cause"),
    [
        ("latin1", "building --loader toy_hand_loader:ToyHandDataset failed: UnicodeDecodeError",
         "encoding='latin1'"),
        ("latin1_swallowed", "built an empty dataset: its own warnings", "encoding='latin1'"),
        ("uint8", "reading items of --loader toy_hand_loader:ToyHandDataset failed: OverflowError",
         "NumPy 2"),
    ],
)  # fmt: skip
def test_crashes_of_the_users_loader_name_the_likely_cause(capsys, fault, message, cause):
    code, report, err = _run(capsys, SPEC, "--loader-args", f"fault={fault}")
    assert code == 2 and report == {}
    last = err.strip().splitlines()[-1]
    assert last.startswith("utnet-diag: error:") and message in last and cause in last


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope_module:X"], "module 'nope_module' not found"),
        (["toy_hand_loader"], "must look like module:callable"),
        (["toy_hand_loader:PY2"], "has no attribute 'PY2'"),
        ([SPEC, "--loader-args", "n"], "bad --loader-args entry 'n'"),
        ([SPEC, "--loader-args", "{a: [}"], "is not a mapping"),
        ([SPEC, "--loader-args", "{1: 2}"], "keys that are not argument names"),
        ([SPEC, "--loader-samples", "0"], "--loader-samples must be 1..256"),
        ([SPEC, "--loader-args", "bogus=1"], "unexpected keyword argument 'bogus'"),
    ],
)
def test_bad_loader_options_are_exit_2_with_one_line(capsys, args, message):
    code, _, err = _run(capsys, *args)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.startswith("utnet-diag:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_one_batch_source_only(capsys, tmp_path):
    assert main(["check-batch", str(tmp_path / "b.pt"), "--loader", SPEC]) == 2
    assert main(["check-batch", "--loader-args", "n=2"]) == 2
    err = capsys.readouterr().err
    assert "give one batch source" in err and "--loader-args needs --loader" in err
