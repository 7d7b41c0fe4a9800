"""``utnet-diag convert-mano IN OUT``: MANO as a chumpy-free pickle that smplx loads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from utnet_diag.cli.app import emit, say
from utnet_diag.cli.options import FailOn, FailOnOpt, JsonOpt, JunitOpt, SideOpt


def convert_mano_command(
    source: Annotated[
        Path, typer.Argument(help="Official MANO_RIGHT.pkl / MANO_LEFT.pkl (v1.2), or a folder.")
    ],
    output: Annotated[
        Path, typer.Argument(help="Output .pkl, or a folder (writes MANO_<SIDE>.pkl in it).")
    ],
    side: SideOpt = None,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Write MANO as a chumpy-free pickle of plain arrays that smplx loads without chumpy.

    Nothing from the input runs: only numpy, chumpy Ch/Select and scipy csc globals are read,
    as data. The output is written only after smplx.MANO, loading it, reproduces the vertices
    and joints of the original. smplx.create(DIR, 'mano') looks for DIR/mano/MANO_RIGHT.pkl.
    """
    # deferred: loads numpy, which this module's importers do not need
    from utnet_diag.mano.convert import convert_mano
    from utnet_diag.mano.synthetic import _check_side

    report = convert_mano(source, output, _check_side(side) if side else None)
    section = report.sections["mano"]
    for key, why in section.get("dropped_keys", {}).items():
        say(f"not copied: key '{key}' ({why}); smplx does not use it")
    if section.get("written"):
        say(f"wrote {section['output']}; {section['smplx_create']}")
    else:
        say(f"not written: {section['output']} (a check failed)", style="red")
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
