"""Rich rendering of the ``eval`` section: the protocol, the official metrics (and what the file
would score once fixed), the fixes, and the worst samples."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from utnet_diag.report.numbers import fmt_number
from utnet_diag.report.result import Report

FRAMES = {"opencv": "OpenCV frame", "opengl": "OpenGL frame"}
ORDERS = {"spec": "wrist, thumb..pinky base to tip", "mano": "MANO order 16 + tips"}
COLUMNS = {
    "joint_error": "joints",
    "joint_error_aligned": "aligned",
    "joint_error_scale_trans": "sc-tr",
    "mesh_error_aligned": "mesh al.",
    "f_al_score_5": "F@5 al.",
    "f_al_score_15": "F@15 al.",
    "absolute": "absolute",
    "root_relative": "root-rel.",
    "procrustes": "Procrustes",
}


def _value(value: Any) -> str:
    return "n/a" if value is None else fmt_number(value, 4)


def render_evaluation(console: Console, section: Any, report: Report) -> None:
    """Header, metrics table, alignment, fixes, notes and the worst samples."""
    del report
    head = Text(f"{section['title']} protocol: ", style="bold")
    extra = []
    if section["left_out"]:
        extra.append(f"{section['left_out']} ground-truth frames without a hand left out")
    if section["ignored"]:
        extra.append(f"{section['ignored']} results without ground truth ignored")
    head.append(
        f"{section['samples']} samples; files in {section['unit']},"
        f" {FRAMES[section['frame']]}, {ORDERS.get(section['joint_order'], section['joint_order'])};"
        f" errors in {section['report_unit']}" + "".join(f"; {e}" for e in extra)
    )
    console.print(head)
    fixed = any("fixed" in row for row in section["metrics"])
    table = Table(title="official metrics", title_justify="left")
    table.add_column("metric", no_wrap=True)
    table.add_column("as submitted", justify="right")
    if fixed:
        table.add_column("once fixed", justify="right")
    for row in section["metrics"]:
        label = row["label"] + (f" ({row['unit']})" if row["unit"] else "")
        cells = [label, _value(row["value"])]
        if fixed:
            cells.append(_value(row.get("fixed")))
        table.add_row(*cells)
    console.print(table)
    console.print(Text(f"alignment: {section['alignment']}", style="dim"))
    if section.get("fixes"):
        console.print(
            Text(
                "warning: the numbers as submitted are what the official evaluator reports for"
                " this file; the checks found what to fix first:",
                style="yellow",
            )
        )
        for fix in section["fixes"]:
            console.print(Text(f"  - {fix}"))
    for note in section.get("notes", []):
        console.print(Text(f"note: {note}", style="dim"))
    worst = section.get("worst") or []
    if worst:
        names = [k for k in worst[0] if k != "sample"]
        title = f"worst samples (errors in {section['report_unit']})"
        table = Table(title=title, title_justify="left")
        table.add_column("sample", justify="right")
        for name in names:
            table.add_column(COLUMNS.get(name, name), justify="right")
        for row in worst:
            table.add_row(str(row["sample"]), *[fmt_number(row[n], 4) for n in names])
        console.print(table)
