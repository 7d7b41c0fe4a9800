"""Rich rendering of the ``batch`` section of a check-batch report."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from utnet_diag.report.result import Report
from utnet_diag.report.sections import BatchSection


def render_batch_section(console: Console, section: BatchSection, report: Report) -> None:
    """A table: source, format, size, one row a key with its shape, then the loader's notes."""
    table = Table(title="batch", title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    if section.source:
        table.add_row("source", section.source)
    table.add_row("format", section.format)
    table.add_row("samples", str(section.size))
    for key, shape in section.keys.items():
        table.add_row(key, "(" + ",".join(str(s) for s in shape) + ")")
    if section.extra_keys:
        table.add_row("ignored keys", ", ".join(section.extra_keys))
    for note in section.notes:
        table.add_row("note", note, style="cyan")
    console.print(table)
