"""``utnet-diag version``."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version

import utnet_diag
from utnet_diag.cli.app import report_stream


def version_command() -> None:
    """Print the versions of utnet-diag and the libraries it runs on."""
    lines = [f"utnet-diag {utnet_diag.__version__}"]
    for name in ("torch", "numpy", "smplx", "typer", "rich"):
        try:
            lines.append(f"{name} {dist_version(name)}")
        except PackageNotFoundError:
            lines.append(f"{name} (not installed)")
    lines.append(f"python {platform.python_version()}")
    report_stream().write("\n".join(lines) + "\n")
