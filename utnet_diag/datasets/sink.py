"""Where a scan's findings go: counted per check and severity, the first few kept and streamed to
a JSON-lines file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from utnet_diag.datasets.common import Finding
from utnet_diag.errors import InputError
from utnet_diag.io.files import check_output_path, new_file_mode


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
        self._partial: str | None = None
        if self.out is not None:
            check_output_path(self.out, "--out")
            folder = os.path.dirname(os.path.abspath(self.out))
            try:  # a name of its own: two scans writing the same --out never share one
                fd, self._partial = tempfile.mkstemp(
                    prefix=f".{os.path.basename(self.out)}.", suffix=".partial", dir=folder
                )
            except OSError as err:
                raise InputError(
                    f"cannot write the findings: {err.strerror}", path=folder
                ) from None
            os.fchmod(fd, new_file_mode(Path(self.out)))  # as readable as any file written here
            self._handle = os.fdopen(fd, "w", encoding="utf-8")

    @property
    def partial_path(self) -> str | None:
        """The temporary file the findings stream to until :meth:`close` renames it."""
        return self._partial

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
            try:
                self._handle.write(json.dumps(finding.to_dict(), allow_nan=False) + "\n")
                self._handle.flush()
            except OSError as err:  # a full disk, a quota, a vanished mount
                self.abort()
                raise InputError(
                    f"cannot write the findings: {err.strerror}; nothing was kept", path=self.out
                ) from None
            self.written += 1

    def close(self) -> None:
        """Finish the file: the partial file becomes ``out``."""
        if self._handle is not None:
            try:
                self._handle.close()
                self._handle = None
                os.replace(self._partial, self.out)
            except OSError as err:
                self._handle = None
                self.abort()
                raise InputError(
                    f"cannot write the findings: {err.strerror}", path=self.out
                ) from None

    def abort(self) -> None:
        """Drop the partial file (a scan that broke before finding anything useful)."""
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None
        if self._partial is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._partial)
