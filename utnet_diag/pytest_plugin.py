"""pytest plugin: the gate as test items, one per check, in the project's own test run.

    pytest --utnet-gate                                    # the embedded default
    pytest --utnet-gate="--repo . --batch tests/data/batch.pt --config config/config.yaml"

Each check of the gate report becomes a test item ``utnet-diag::gate::<family>::<id>``: a failure
fails it with the check's message and hint, a skip skips it with its reason, a warning passes
with a pytest warning (or fails with ``--utnet-gate-fail-on=warn``). The same selection as the
CLI applies (``[tool.utnet-diag]`` in pyproject.toml, the config's ``diag:`` section). The
``utnet_gate`` fixture gives the report itself to tests of your own. Registered as a ``pytest11``
entry point; nothing runs unless ``--utnet-gate`` is given or the fixture is used.
"""

from __future__ import annotations

import shlex
import warnings
from typing import Any

import pytest

from utnet_diag.errors import did_you_mean
from utnet_diag.run_options import RunOptions
from utnet_diag.selection import apply, find_pyproject, from_config, from_pyproject

OPTION = "--utnet-gate"


class GateWarning(UserWarning):
    """A gate check that warned."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("utnet-diag")
    group.addoption(
        OPTION,
        action="store",
        nargs="?",
        const="",
        default=None,
        metavar="ARGS",
        help="run utnet-diag gate (with these CLI arguments) and add one test item per check",
    )
    group.addoption(
        "--utnet-gate-fail-on",
        choices=("fail", "warn"),
        default=None,
        help="fail the items of checks that failed (default), or that warned too",
    )


_REPORT = pytest.StashKey[tuple[Any, Any]]()


def _gate_once(config: pytest.Config) -> tuple[Any, Any]:
    """:func:`_run_gate` for this session's ``--utnet-gate`` ARGS, run once."""
    if _REPORT not in config.stash:
        config.stash[_REPORT] = _run_gate(config.getoption(OPTION) or "")
    return config.stash[_REPORT]


def _run_gate(args: str) -> Any:
    """The gate report for CLI-style ``args`` (model and batch options), with the selection of
    the project's pyproject.toml and config applied."""
    # deferred: loads torch, which pytest sessions without --utnet-gate never need
    from utnet_diag.diagnostics.gate import gate

    options = _parse(args)
    report = gate(options=RunOptions(**options))
    selection = from_config(options.get("config")).merged_over(from_pyproject(find_pyproject()))
    return apply(report, selection), selection.fail_on


_FLAGS = {
    "--checkpoint": "checkpoint", "--batch": "batch", "--config": "config", "--preset": "preset",
    "--repo": "repo", "--model-factory": "model_factory", "--output-map": "output_map",
    "--mano": "mano", "--device": "device", "--max-samples": "max_samples",
}  # fmt: skip


def _parse(args: str) -> dict[str, Any]:
    """``--batch b.pt --device cpu`` -> {"batch": "b.pt", "device": "cpu"}; unknown -> UsageError."""
    words = shlex.split(args)
    out: dict[str, Any] = {}
    while words:
        flag = words.pop(0)
        name, _, value = flag.partition("=")
        if name not in _FLAGS:
            raise pytest.UsageError(
                f"{OPTION}: unknown gate option {name!r}" + did_you_mean(name, _FLAGS)
            )
        if not value:
            if not words:
                raise pytest.UsageError(f"{OPTION}: {name} needs a value")
            value = words.pop(0)
        out[_FLAGS[name]] = int(value) if name == "--max-samples" else value
    return out


class GateCheck(pytest.Item):
    """One check of the gate report."""

    def __init__(self, *, check: Any, fail_on: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.check = check
        self.fail_on = fail_on
        self.add_marker(pytest.mark.utnet_gate)

    def runtest(self) -> None:
        status = self.check.status.value
        text = f"{self.check.id}: {self.check.message}"
        if self.check.hint:
            text += f"\nhint: {self.check.hint}"
        if status == "fail" or (status == "warn" and self.fail_on == "warn"):
            raise GateCheckFailed(text)
        if status == "skip":
            pytest.skip(text)
        if status == "warn":
            warnings.warn(text, GateWarning, stacklevel=1)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, GateCheckFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "utnet-diag gate", None, f"{self.check.family}::{self.check.id}"


class GateCheckFailed(Exception):
    """A gate check failed (its message and hint are the failure text)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "utnet_gate: a check of the utnet-diag gate")


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    args = config.getoption(OPTION)
    if args is None:
        return
    report, file_fail_on = _gate_once(config)
    fail_on = config.getoption("--utnet-gate-fail-on") or file_fail_on or "fail"
    for check in report.checks:
        name = f"gate::{check.family or 'gate'}::{check.id}"
        items.append(GateCheck.from_parent(session, name=name, check=check, fail_on=fail_on))


@pytest.fixture(scope="session")
def utnet_gate(request: pytest.FixtureRequest) -> Any:
    """The gate report (``utnet_diag.Report``) for ``--utnet-gate`` ARGS (default: the
    embedded reference model and batch); run once per session."""
    report, _ = _gate_once(request.config)
    return report
