"""The README stays true: its test command is the one CI runs, and its Python example runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from utnet_diag.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_first_screen_has_the_two_commands_and_ci_runs_the_test_command():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    lines = [line for line in first_block.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 2
    assert lines[0].endswith("utnet-diag gate")
    test_command = lines[1].rsplit("&& ", 1)[1]
    assert test_command == "python -m pytest -q"
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^{re.escape(test_command)}$", ci, re.M)


def test_python_api_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["make-sample", "sample", "--json"]) == 0
    capsys.readouterr()
    code = README.split("## Python API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # the README's own example
    assert namespace["report"].command == "gate"


def test_the_readme_lists_exactly_the_check_ids_of_the_registry():
    """The README's table of check ids is the registry's (every id once, no stale ones)."""
    from utnet_diag.catalog import catalog

    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Checks (stable ids)") : text.index("Ids are `snake_case`")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    listed = set()
    for row in rows[1:]:  # the header row names the columns
        ids_cell = row.split("|")[2]
        listed |= {m.split(":")[0] for m in re.findall(r"`([a-z0-9_:<>]+)`", ids_cell)}
    # nan_origin is named as a detail of a failing check, not a check of its own
    assert listed - {"nan_origin"} == {entry.id for entry in catalog()}


@pytest.mark.slow
def test_the_eval_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """The worked example of ``eval``: its files, exit codes and the numbers the text quotes."""
    import runpy
    import shlex

    monkeypatch.chdir(tmp_path)
    block = README.split("## Benchmark numbers", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    make, *commands = lines
    monkeypatch.setattr("sys.argv", shlex.split(make)[1:])
    runpy.run_path(str(ROOT / shlex.split(make)[1]), run_name="__main__")
    codes = []
    for command in commands:
        capsys.readouterr()
        codes.append(main(shlex.split(command)[1:] + ["--json"]))
        if "pred_mm_mano" in command:
            report = json.loads(capsys.readouterr().out)
    assert codes == [0, 1, 0]
    rows = {r["metric"]: r for r in report["evaluation"]["metrics"]}
    text = README.split("## Benchmark numbers", 1)[1]
    assert f"{rows['xyz_al_mean3d']['value']:.2f} cm as submitted" in text
    assert f"{rows['xyz_al_mean3d']['fixed']:.2f} cm once" in text
