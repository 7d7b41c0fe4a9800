"""What every report command takes besides its own options: the verdict first and last,
--quiet, --select/--ignore and [tool.utnet-diag], --version/-h, the GitHub job summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from utnet_diag.cli.app import main

RGB_01 = "image_range"  # rgb in [0, 1] instead of mean/std normalized: a warning only


@pytest.fixture
def warn_and_fail_batch(clean_batch, write_batch) -> Path:
    """A batch with one warning (rgb in [0,1]) and one failure (betas 40, not N(0,1))."""
    batch = dict(clean_batch, rgb=torch.rand(8, 3, 8, 8))
    batch["mano_shape"] = batch["mano_shape"] * 0 + 40.0
    return write_batch(batch)


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main(["check-batch", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _ids(out: str, status: str) -> set[str]:
    return {c["id"] for c in json.loads(out)["checks"] if c["status"] == status}


def test_the_verdict_comes_first_and_last_and_names_each_flagged_check(
    capsys, warn_and_fail_batch, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = _run(capsys, warn_and_fail_batch)
    lines = out.rstrip("\n").splitlines()
    assert code == 1
    assert lines[0].startswith("utnet-diag check-batch: FAILED (1 failed, 1 warning,")
    assert lines[-1] == lines[0]
    summary = lines[-3:-1]
    assert summary[0].startswith("WARN image_range: ") and summary[1].startswith("FAIL mano_shape")
    assert all(len(line) <= 80 for line in lines[-3:])


def test_quiet_prints_only_the_flagged_checks_and_the_verdict(capsys, warn_and_fail_batch):
    code, out, _ = _run(capsys, warn_and_fail_batch, "-q")
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 3
    assert lines[0].startswith("WARN image_range") and lines[1].startswith("FAIL mano_shape")
    code, out, _ = _run(capsys, warn_and_fail_batch, "--quiet", "--ignore", "mano_shape")
    assert code == 0 and out.strip().splitlines()[-1].startswith(
        "utnet-diag check-batch: PASSED with warnings"
    )


def test_ignore_turns_a_failure_into_a_visible_skip_and_select_keeps_only_those(
    capsys, warn_and_fail_batch
):
    code, out, _ = _run(capsys, warn_and_fail_batch, "--json")
    assert code == 1 and "mano_shape" in _ids(out, "fail") and RGB_01 in _ids(out, "warn")
    code, out, _ = _run(capsys, warn_and_fail_batch, "--json", "--ignore", "mano_shape")
    assert code == 0 and _ids(out, "fail") == set()
    shape = next(c for c in json.loads(out)["checks"] if c["id"] == "mano_shape")
    assert shape["status"] == "skip" and "deselected by --select/--ignore" in shape["message"]
    assert "it found FAIL: " in shape["message"]
    assert shape["details"]["deselected_status"] == "fail"
    # a family works as a name; --fail-on warn then fails on the warning that still counts
    code, out, _ = _run(capsys, warn_and_fail_batch, "--json", "--select", f"{RGB_01},convention")
    assert code == 0 and _ids(out, "fail") == set() and _ids(out, "warn") == {RGB_01}
    code, _, _ = _run(capsys, warn_and_fail_batch, "--select", RGB_01, "--fail-on", "warn")
    assert code == 1


def test_unknown_ids_are_input_errors_with_the_nearest_id(capsys, warn_and_fail_batch):
    code, out, err = _run(capsys, warn_and_fail_batch, "--ignore", "mano_shap")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "utnet-diag: error: --ignore: unknown check id or family 'mano_shap'; did you mean"
        " 'mano_shape'? (`utnet-diag checks` lists every id and family)"
    ]
    code, _, err = _run(capsys, warn_and_fail_batch, "--select", "batch,nope_nope")
    assert code == 2 and "'nope_nope'" in err


def test_pyproject_selection_and_fail_on_apply_and_the_command_line_wins(
    capsys, warn_and_fail_batch, tmp_path, monkeypatch
):
    project = tmp_path / "proj" / "sub"
    project.mkdir(parents=True)
    (tmp_path / "proj" / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.utnet-diag]\nignore = ["mano_shape"]\nfail-on = "warn"\n'
    )
    monkeypatch.chdir(project)  # found in a parent folder, as ruff and pytest find it
    code, out, _ = _run(capsys, warn_and_fail_batch, "--json")
    shape = next(c for c in json.loads(out)["checks"] if c["id"] == "mano_shape")
    assert "pyproject.toml [tool.utnet-diag]" in shape["message"]
    assert code == 1  # fail-on warn from the file: the rgb warning fails
    code, _, _ = _run(capsys, warn_and_fail_batch, "--fail-on", "fail")
    assert code == 0  # the command line's --fail-on wins over the file
    code, out, _ = _run(capsys, warn_and_fail_batch, "--json", "--ignore", RGB_01)
    assert code == 1 and "mano_shape" in _ids(out, "fail")  # --ignore replaces the file's list


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ('ignore = ["mano_shap"]', "did you mean 'mano_shape'?"),
        ('ignored = ["mano_shape"]', "unknown key 'ignored'; did you mean 'ignore'?"),
        ('ignore = "mano_shape"', "'ignore' must be a list"),
        ('fail-on = "never"', "'fail-on' must be 'fail' or 'warn'"),
        ("ignore = [", "cannot read it"),
    ],
)
def test_bad_pyproject_tables_are_input_errors(
    capsys, warn_and_fail_batch, tmp_path, monkeypatch, table, fragment
):
    (tmp_path / "pyproject.toml").write_text(f"[tool.utnet-diag]\n{table}\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, warn_and_fail_batch)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and fragment in lines[0], err
    assert "pyproject.toml" in lines[0]


def test_github_step_summary_gets_the_verdict_and_flagged_checks(
    capsys, warn_and_fail_batch, tmp_path, monkeypatch
):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, _, _ = _run(capsys, warn_and_fail_batch, "--json")
    text = summary.read_text()
    assert code == 1 and text.startswith("earlier step\n### utnet-diag check-batch: FAILED")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| status | check | result | hint |"
    assert [r.split(" | ")[1] for r in rows[1:]] == ["`image_range`", "`mano_shape`"]
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))  # a folder: not writable as a file
    code, out, err = _run(capsys, warn_and_fail_batch, "--json")
    assert code == 1 and json.loads(out)["command"] == "check-batch"
    assert "GITHUB_STEP_SUMMARY" in err and "not written" in err


def test_version_and_short_help(capsys):
    import utnet_diag

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"utnet-diag {utnet_diag.__version__}\n"
    assert main(["-h"]) == 0
    assert "Usage: utnet-diag" in capsys.readouterr().out
    assert main(["check-batch", "-h"]) == 0
    out = capsys.readouterr().out
    assert "--quiet" in out and "--select" in out and "--ignore" in out


def test_the_config_diag_section_selects_between_pyproject_and_the_command_line(
    capsys, warn_and_fail_batch, tmp_path, monkeypatch
):
    (tmp_path / "pyproject.toml").write_text('[tool.utnet-diag]\nignore = ["image_range"]\n')
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("diag:\n  ignore: [mano_shape]\n  fail_on: warn\n")
    code, out, _ = _run(capsys, warn_and_fail_batch, "--json", "--config", config)
    # the config's ignore replaces pyproject's: image_range warns again, and fail_on warn fails
    assert code == 1 and _ids(out, "fail") == set() and _ids(out, "warn") == {RGB_01}
    shape = next(c for c in json.loads(out)["checks"] if c["id"] == "mano_shape")
    assert f"deselected by {config} diag:" in shape["message"]
    code, out, _ = _run(capsys, warn_and_fail_batch, "--json", "--config", config,
                        "--ignore", RGB_01, "--fail-on", "fail")  # fmt: skip
    assert code == 1 and "mano_shape" in _ids(out, "fail")  # the command line wins
    config.write_text("diag:\n  select: [mano_shap]\n")
    code, out, err = _run(capsys, warn_and_fail_batch, "--config", config)
    assert code == 2 and out == "" and "did you mean 'mano_shape'?" in err
    config.write_text("diag:\n  fail_on: sometimes\n")
    code, _, err = _run(capsys, warn_and_fail_batch, "--config", config)
    assert code == 2 and "'fail_on' must be 'fail' or 'warn'" in err
