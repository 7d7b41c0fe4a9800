"""``utnet-diag mano-info PKL``: what a MANO file holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from utnet_diag.cli.app import emit
from utnet_diag.cli.options import FailOn, FailOnOpt, JsonOpt, JunitOpt, SideOpt


def mano_info_command(
    model: Annotated[Path, typer.Argument(help="MANO .pkl/.npz (official, converted) or folder.")],
    side: SideOpt = None,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Keys, shapes, chumpy objects converted, and invariants of a MANO model file."""
    # deferred: loads numpy, which this module's importers do not need
    from utnet_diag.mano.convert import mano_info
    from utnet_diag.mano.synthetic import _check_side

    report = mano_info(model, _check_side(side) if side else None)
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
