"""``utnet-diag inspect-checkpoint CKPT``: sizes, dtypes, stored config, keys against the model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from utnet_diag.cli.app import emit, say
from utnet_diag.cli.options import (
    ConfigOpt,
    FailOn,
    FailOnOpt,
    JsonOpt,
    JunitOpt,
    ManoOpt,
    RepoOpt,
    UnsafeLoadOpt,
)


def inspect_checkpoint_command(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file (.pt/.pth/.ckpt).")],
    repo: RepoOpt = None,
    config: ConfigOpt = None,
    mano: ManoOpt = None,
    unsafe_load: UnsafeLoadOpt = False,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Sizes, dtypes, stored config, and missing/unexpected keys against the model.

    The model is the reference UTNet built with the checkpoint's stored config, or your UTNet
    with --repo (built from --config, else the checkout's config/config.yaml).
    """
    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.model.sources import inspect_checkpoint

    report = inspect_checkpoint(
        checkpoint, repo=repo, config=config, mano_path=mano, unsafe_load=unsafe_load
    )
    for warning in report.sections["checkpoint"].get("warnings", []):
        say(f"warning: {warning}", style="yellow")
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
