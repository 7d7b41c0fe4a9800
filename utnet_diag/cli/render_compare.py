"""Rich renderer of ``compare``'s side-by-side table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from utnet_diag.report.numbers import fmt_number
from utnet_diag.report.result import Report

LOWER_IS_BETTER = ("loss", "metric")


def _num(value: Any) -> str:
    return fmt_number(value, 5)


def _relative(row: dict[str, Any]) -> Text:
    rel = row.get("relative")
    if rel is None or isinstance(rel, str):
        return Text("" if rel is None else rel)
    text = f"{rel:+.1%}"
    if row["kind"] not in LOWER_IS_BETTER or rel == 0:
        return Text(text)
    return Text(text, style="red" if rel > 0 else "green")


def render_compare(console: Console, section: dict[str, Any], report: Report) -> None:
    run = report.sections.get("run", {})
    title = f"compare: A {run.get('a', '')}  vs  B {run.get('b', '')}"
    table = Table(title=title, title_justify="left")
    for name, justify in (("quantity", "left"), ("A", "right"), ("B", "right"),
                          ("B - A", "right"), ("relative", "right")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    kind = None
    for row in section.get("rows", []):
        if kind is not None and row["kind"] != kind:
            table.add_section()
        kind = row["kind"]
        unit = f" {row['unit']}" if row.get("unit") else ""
        table.add_row(row["label"] + unit, _num(row["a"]), _num(row["b"]), _num(row["delta"]),
                      _relative(row))  # fmt: skip
    console.print(table)
    limit = section.get("max_regression")
    if limit is not None:
        console.print(f"gate: B may be at most {limit:.1%} worse than A on losses and metrics")
