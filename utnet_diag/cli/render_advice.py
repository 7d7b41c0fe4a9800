"""The ``--target-shares`` option and the rich renderer of the ``weight_advice`` section.

Importing this module must not import torch (the CLI's commands import it at module level for
the option alias)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from utnet_diag.report.numbers import fmt_number
from utnet_diag.report.render import fmt_value
from utnet_diag.report.result import Report

TargetSharesOpt = Annotated[
    Optional[str],
    typer.Option(
        "--target-shares",
        help="Gradient shares to advise weights for, e.g. 2d=0.5,3d=0.5 (the default);"
        " terms: 2d, 3d, 3d_vert, prior, aux.",
    ),
]


def _num(value: Any) -> str:
    return fmt_number(value, 4)


def _share(value: Any) -> str:
    return "" if value is None or isinstance(value, str) else f"{float(value):.1%}"


def _range(row: dict[str, Any]) -> str:
    bounds = row.get("recommended_range")
    if not bounds:
        return ""
    lo, hi = bounds
    text = fmt_value(float(lo)) if lo == hi else f"{fmt_value(float(lo))}-{fmt_value(float(hi))}"
    return text + ("" if row.get("weight_in_range") is not False else " (current outside)")


def render_weight_advice(console: Console, section: dict[str, Any], report: Report) -> None:
    if section.get("unavailable"):
        console.print(f"weight advice: {section['unavailable']}")
        return
    table = Table(title="loss-weight advice (gradient at the trunk)", title_justify="left")
    for name, justify in (("term", "left"), ("weight", "right"), ("share now", "right"),
                          ("target", "right"), ("advised weight", "right"),
                          ("same 3D weight", "right"), ("spec range", "left")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in section.get("rows", []):
        table.add_row(
            f"{row['label']} ({row['weight_name']})", _num(row["weight"]), _share(row["share"]),
            _share(row["target_share"]), _num(row["recommended"]), _num(row["same_3d_weight"]),
            _range(row),
        )  # fmt: skip
    console.print(table)
    console.print(f"advised weights: {section.get('normalisation', '')}", style="dim")
    if section.get("explanation"):
        console.print(section["explanation"])
    for note in section.get("notes", []):
        console.print(f"note: {note}", style="yellow")
