"""Hostile inputs, round two: each case is run as its own process under a memory cap and a
timeout, so that a regression fails the test instead of exhausting or hanging the machine.

A case expects either an input error (exit 2, one stderr line naming the file, no traceback,
no output, input unchanged) or a bounded success (exit 0/1 within the caps, input unchanged).
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MEMORY_CAP = 3 << 30  # address space of one case's process
TIMEOUT_S = 90


@dataclass
class Case:
    """``argv`` for ``python -m utnet_diag``; ``expect``: 'input' or 'ok'; ``names``: text the
    error line must contain (default: the input's file name); ``outputs``: paths that must not
    exist afterwards; ``check``: more assertions on the finished process."""

    name: str
    kind: str
    argv: list[str]
    input_path: Path
    expect: str = "input"
    names: str | None = None
    outputs: list[Path] = field(default_factory=list)
    check: Callable[[subprocess.CompletedProcess], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = TIMEOUT_S


def digest(path: Path) -> str | None:
    try:
        path.stat()
    except OSError:  # missing, or a name the system refuses
        return None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        return "dir:" + ",".join(sorted(p.name for p in path.rglob("*")))
    return None


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run(case: Case, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "UTNET_DIAG_DEBUG": "", **case.env}
    return subprocess.run(
        [sys.executable, "-m", "utnet_diag", *case.argv],
        cwd=cwd,
        env=env,
        preexec_fn=_cap,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=case.timeout,
    )
