"""examples/ci/utnet-diag.yml works as written: its steps, run in a fresh repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "ci" / "utnet-diag.yml"

pytestmark = pytest.mark.slow


def _steps() -> list[dict]:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]["gate"]["steps"]


def _runs(repo: Path, step: dict) -> bool:
    """The step's ``if:`` as GitHub evaluates it here (hashFiles of a missing file is '')."""
    condition = step.get("if")
    if condition is None or condition == "always()":
        return True
    found = re.fullmatch(r"hashFiles\('([^']+)'\) != ''", condition)
    assert found, f"the test does not know the condition {condition!r}"
    return (repo / found[1]).exists()


def test_the_workflow_installs_from_a_source_not_an_unpublished_name():
    install = next(s for s in _steps() if s.get("name", "").startswith("Install"))
    assert '"utnet-diag[plot] @ $UTNET_DIAG_SOURCE"' in install["run"]
    assert "set the repository variable UTNET_DIAG_SOURCE" in install["run"]


def test_the_workflow_steps_pass_in_a_fresh_repository(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    summary = tmp_path / "summary.md"
    env = dict(os.environ, GITHUB_STEP_SUMMARY=str(summary), COLUMNS="100")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    ran = []
    for step in _steps():
        command = step.get("run")
        if command is None or step["name"].startswith("Install") or not _runs(repo, step):
            continue  # actions (uses:), the install (done here), steps whose files are absent
        done = subprocess.run(["bash", "-ec", command], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, (step["name"], done.stdout[-2000:], done.stderr[-2000:])
        ran.append(step["name"])
    assert ran == ["Gate on the embedded default", "Gate checks as pytest items"]
    for name in ("gate-default.xml", "gate-pytest.xml"):
        suite = ET.parse(repo / name).getroot().find("testsuite")
        assert int(suite.get("tests")) >= 30 and suite.get("failures") == "0", name
    assert summary.read_text().startswith("### utnet-diag gate: PASSED with warnings")
