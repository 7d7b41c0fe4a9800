"""Rich rendering of the ``scan`` section: what was scanned, and the findings by check."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from utnet_diag.report.result import Report

SEVERITY_STYLE = {"fail": "bold red", "warn": "yellow", "info": "dim"}


def render_scan(console: Console, section: dict[str, Any], report: Report) -> None:
    """Header line (dataset, samples, speed) and a table of findings by check."""
    head = Text(f"{section['dataset']} {section['split']} at {section['root']}: ", style="bold")
    head.append(section["status"], style="bold red" if section["interrupted"] else "")
    rate = section.get("samples_per_s")
    head.append(
        f" in {section['elapsed_s']:.2f} s"
        + (f" ({rate:,.0f} samples/s)" if rate else "")
        + f", images {'decoded' if section['images'] else 'skipped'}"
        + (f", {section['workers']} workers" if section["workers"] else "")
        + (f", {section['world_size']} ranks" if section["world_size"] > 1 else "")
    )
    console.print(head)
    for note in section.get("notes", []):
        console.print(Text(f"note: {note}", style="dim"))
    by_check = section.get("by_check") or {}
    if not by_check:
        console.print(Text("no findings", style="bold green"))
    else:
        table = Table(title="findings by check", title_justify="left")
        table.add_column("check", style="bold", no_wrap=True)
        table.add_column("samples", justify="right")
        table.add_column("severity")
        table.add_column("not listed", justify="right")
        table.add_column("first sample ids")
        for check_id, entry in by_check.items():
            severity = Text()
            for name, count in entry.get("by_severity", {}).items():
                severity.append(f"{name} {count} ", style=SEVERITY_STYLE.get(name, ""))
            table.add_row(
                check_id,
                str(entry["count"]),
                severity,
                str(entry.get("suppressed", 0) or ""),
                ", ".join(entry.get("first_ids", [])),
            )
        console.print(table)
    if section.get("out"):
        console.print(
            Text(f"{section['findings_written']} findings written to {section['out']}", style="dim")
        )
