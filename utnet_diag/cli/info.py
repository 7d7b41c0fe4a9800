"""``utnet-diag version``."""

from __future__ import annotations

from utnet_diag.cli.app import app


@app.command()
def version() -> None:
    """Print the versions of utnet-diag and the libraries it runs on."""
    import platform
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    import utnet_diag

    print(f"utnet-diag {utnet_diag.__version__}")
    for name in ("torch", "numpy", "smplx", "typer", "rich"):
        try:
            print(f"{name} {dist_version(name)}")
        except PackageNotFoundError:
            print(f"{name} (not installed)")
    print(f"python {platform.python_version()}")
