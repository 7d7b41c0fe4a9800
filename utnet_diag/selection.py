"""Which checks count: ``select``/``ignore`` by check id or family, and ``fail-on``, the way ruff
and pytest take them, from ``[tool.utnet-diag]`` in the project's ``pyproject.toml``, from the
``diag:`` section of the UTNet config (``select``, ``ignore``, ``fail_on``), and from the command
line; each overrides the one before.

A deselected check still appears in the report, as ``skip`` with what it found (nothing passes or
fails unseen); it no longer decides the exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from utnet_diag.errors import InputError, did_you_mean
from utnet_diag.report.result import CheckResult, Report, Status

PYPROJECT_TABLE = "utnet-diag"
FAIL_ON = ("fail", "warn")
KEYS = ("select", "ignore", "fail-on")


@dataclass(frozen=True)
class Selection:
    """``select``: only these ids/families count (empty: all); ``ignore``: these never count;
    ``fail_on``: ``fail`` or ``warn`` (None: the command's default); ``source``: where it came
    from, for messages."""

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    fail_on: str | None = None
    source: str = "--select/--ignore"

    def counts(self, check: CheckResult) -> bool:
        """True when ``check`` decides the verdict under this selection."""
        names = _names(check)
        if self.select and not names & set(self.select):
            return False
        return not names & set(self.ignore)

    def merged_over(self, base: Selection) -> Selection:
        """This selection's non-empty parts over ``base`` (the command line over the file)."""
        return Selection(
            self.select or base.select,
            self.ignore or base.ignore,
            self.fail_on or base.fail_on,
            self.source if (self.select or self.ignore) else base.source,
        )


def _names(check: CheckResult) -> set[str]:
    """The names a check answers to: its id (without a ``:subject`` suffix) and its family."""
    base = check.id.split(":", 1)[0]
    return {check.id, base, check.family} - {""}


def known_names() -> set[str]:
    """Every check id, old alias and family the tool has."""
    from utnet_diag.catalog import ID_ALIASES, catalog  # deferred: the catalog loads torch

    names: set[str] = set(ID_ALIASES)
    for entry in catalog():
        names.add(entry.id)
        names.update(entry.families)
    return names


def parse_names(values: Iterable[str], option: str) -> tuple[str, ...]:
    """Comma- or repeat-separated ids/families, checked against the catalog (aliases mapped to
    their ids). Unknown names -> InputError with the nearest valid name."""
    from utnet_diag.catalog import ID_ALIASES  # deferred: the catalog loads torch

    items = [v.strip() for value in values for v in str(value).split(",") if v.strip()]
    if not items:
        return ()
    known = known_names()
    out = []
    for item in items:
        if item not in known:
            raise InputError(
                f"{option}: unknown check id or family '{item}'" + did_you_mean(item, known),
                hint="`utnet-diag checks` lists every id and family",
            )
        out.append(ID_ALIASES.get(item, item))
    return tuple(dict.fromkeys(out))


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def from_pyproject(path: Path | None) -> Selection:
    """``[tool.utnet-diag]`` of ``path`` (empty selection when there is none)."""
    if path is None:
        return Selection()
    if sys.version_info < (3, 11):  # pragma: no cover - tomllib is 3.11+
        return Selection()
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InputError(f"cannot read it: {err}", path=str(path)) from None
    table: Any = data.get("tool", {}).get(PYPROJECT_TABLE)
    if table is None:
        return Selection()
    where = f"{path} [tool.{PYPROJECT_TABLE}]"
    if not isinstance(table, dict):
        raise InputError(f"{where} must be a table")
    for key in table:
        if key not in KEYS:
            raise InputError(f"{where}: unknown key '{key}'" + did_you_mean(key, KEYS))
    return _selection(table, where, "fail-on")


def from_config(path: str | Path | None) -> Selection:
    """``select``, ``ignore`` and ``fail_on`` of a UTNet config's ``diag:`` section (its other
    keys are checked by :func:`utnet_diag.config.load_config`)."""
    if path is None:
        return Selection()
    from utnet_diag.config import safe_load_yaml  # deferred: yaml loads only with a config

    data = safe_load_yaml(path)
    diag = data.get("diag") if isinstance(data, dict) else None
    if not isinstance(diag, dict):
        return Selection()
    return _selection(diag, f"{path} diag:", "fail_on")


def _selection(table: dict[str, Any], where: str, fail_on_key: str) -> Selection:
    lists = {}
    for key in ("select", "ignore"):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"{where} '{key}' must be a list of check ids or families")
        lists[key] = parse_names(value, f"{where} {key}")
    fail_on = table.get(fail_on_key)
    if fail_on is not None and fail_on not in FAIL_ON:
        raise InputError(f"{where} '{fail_on_key}' must be 'fail' or 'warn', not {fail_on!r}")
    return Selection(lists["select"], lists["ignore"], fail_on, where)


def apply(report: Report, selection: Selection) -> Report:
    """The report with every deselected check turned into ``skip`` saying what it found."""
    if not (selection.select or selection.ignore):
        return report
    checks = []
    for check in report.checks:
        if selection.counts(check) or check.status is Status.SKIP:
            checks.append(check)
            continue
        was = f"{check.status.value.upper()}: {check.message}"
        checks.append(
            replace(
                check,
                status=Status.SKIP,
                message=f"deselected by {selection.source} (it found {was})",
                details={**check.details, "deselected_status": check.status.value},
            )
        )
    return replace(report, checks=checks)
