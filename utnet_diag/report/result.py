"""Result objects: one check result, and a report of many. Frozen, JSON-ready, no printing."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from utnet_diag import __version__

SCHEMA_VERSION = "1.0"


class Status(str, Enum):
    """Outcome of one check. ``skip`` means it could not run (missing input or failed prerequisite)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"

    def __str__(self) -> str:
        return self.value


_SEVERITY = {Status.SKIP: 0, Status.PASS: 1, Status.WARN: 2, Status.FAIL: 3}


@dataclass(frozen=True)
class CheckResult:
    """One check: stable ``id``, ``status``, a specific ``message``, the measured ``value``,
    the ``threshold`` it was held to, and a ``hint`` that says what to do."""

    id: str
    status: Status
    message: str
    value: Any = None
    threshold: Any = None
    hint: str | None = None
    family: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None  # how long the check ran, when measured

    def to_dict(self) -> dict[str, Any]:
        timing = {} if self.seconds is None else {"seconds": round(self.seconds, 6)}
        return {
            "id": self.id,
            "family": self.family,
            "status": self.status.value,
            "message": self.message,
            "value": jsonable(self.value),
            "threshold": jsonable(self.threshold),
            "hint": self.hint,
            "details": jsonable(self.details),
            **timing,
        }


def overall_status(checks: list[CheckResult]) -> Status:
    """Worst status over the checks (skips do not count); ``pass`` when nothing ran."""
    worst = Status.PASS
    for check in checks:
        if check.status is not Status.SKIP and _SEVERITY[check.status] > _SEVERITY[worst]:
            worst = check.status
    return worst


def _tool_version() -> str:
    return __version__


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Report:
    """What a command returns: its checks and command-specific ``sections`` (JSON-ready)."""

    command: str
    checks: list[CheckResult] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION
    tool_version: str = field(default_factory=_tool_version)
    created: str = field(default_factory=_now)  # UTC, ISO 8601, seconds

    @property
    def status(self) -> Status:
        return overall_status(self.checks)

    def check(self, check_id: str) -> CheckResult:
        """The result with this id (KeyError when it did not run)."""
        for result in self.checks:
            if result.id == check_id:
                return result
        raise KeyError(check_id)

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for result in self.checks:
            out[result.status.value] += 1
        return out

    def failed(self, fail_on: str = "fail") -> bool:
        """True when a check failed (or warned, with ``fail_on='warn'``)."""
        bad = {Status.FAIL} if fail_on == "fail" else {Status.FAIL, Status.WARN}
        return any(c.status in bad for c in self.checks)

    def exit_code(self, fail_on: str = "fail") -> int:
        return 1 if self.failed(fail_on) else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "tool_version": self.tool_version,
            "created": self.created,
            "command": self.command,
            "status": self.status.value,
            "counts": self.counts(),
            "checks": [c.to_dict() for c in self.checks],
            **{k: jsonable(v) for k, v in self.sections.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def jsonable(value: Any) -> Any:
    """Plain JSON types from numpy/torch scalars, tuples, enums; non-finite floats as strings."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy / torch
        return jsonable(value.tolist())
    if hasattr(value, "item"):
        return jsonable(value.item())
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return str(value)
