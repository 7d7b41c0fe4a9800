"""Where a scan's findings go: counted per check and severity, the first few kept and streamed to
a JSON-lines file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from utnet_diag.datasets.common import Finding
from utnet_diag.errors import InputError


@dataclass
class FindingSink:
    """Collects findings: counts per check and severity, keeps at most ``cap`` per check, and
    streams the kept ones to ``<out>.partial`` (one JSON line each, flushed), renamed to ``out``
    by :meth:`close`.
    """

    cap: int
    out: str | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    kept: dict[str, list[Finding]] = field(default_factory=dict)
    written: int = 0
    evaluated: dict[str, int] = field(default_factory=dict)  # per check: samples it judged

    def __post_init__(self) -> None:
        self._handle = None
        if self.out is not None:
            folder = os.path.dirname(os.path.abspath(self.out))
            if not os.path.isdir(folder):
                raise InputError("output directory does not exist", path=folder)
            self._handle = open(self.partial_path, "w", encoding="utf-8")  # noqa: SIM115

    @property
    def partial_path(self) -> str:
        return f"{self.out}.partial"

    def add_evaluated(self, counts: dict[str, int]) -> None:
        """Add a chunk's per-check counts of samples judged."""
        for check, n in counts.items():
            self.evaluated[check] = self.evaluated.get(check, 0) + n

    def add(self, finding: Finding) -> None:
        by_severity = self.counts.setdefault(finding.check, {})
        by_severity[finding.severity] = by_severity.get(finding.severity, 0) + 1
        kept = self.kept.setdefault(finding.check, [])
        if len(kept) >= self.cap:
            return
        kept.append(finding)
        if self._handle is not None:
            self._handle.write(json.dumps(finding.to_dict(), allow_nan=False) + "\n")
            self._handle.flush()
            self.written += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            os.replace(self.partial_path, self.out)

    def abort(self) -> None:
        """Drop the partial file (a scan that broke before finding anything useful)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            os.unlink(self.partial_path)
