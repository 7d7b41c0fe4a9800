"""Rich rendering of reports for people. Only the CLI imports this module.

Sections are drawn by the renderers the caller hands over (the CLI's table,
``utnet_diag.cli.renderers``); a section without one is shown as a plain key/value table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from utnet_diag.report.markdown import counts_text, verdict
from utnet_diag.report.numbers import fmt_number
from utnet_diag.report.result import CheckResult, Report, Status, jsonable
from utnet_diag.report.sections import Section

STYLE = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIP: "dim"}
ICON = {Status.PASS: "PASS", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "skip"}

SectionRenderer = Callable[[Console, Any, Report], None]


def fmt_value(value: Any, digits: int = 4) -> str:
    """Compact text for a measured value or threshold."""
    value = jsonable(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return fmt_number(value, digits)
    if isinstance(value, list):
        text = ", ".join(fmt_value(v, 3) for v in value[:6])
        return f"[{text}{', …' if len(value) > 6 else ''}]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt_value(v, 3)}" for k, v in list(value.items())[:4])
    return str(value)


NARROW = 110  # below this many columns, value and threshold go under the result text


def _checks_table(title: str, checks: list[CheckResult], width: int = 200) -> Table:
    """One row a check. Wide terminals get value and threshold columns; narrow ones get them on
    a line under the result, so the text column is wide enough that words and numbers are
    wrapped between words, never cut inside one."""
    narrow = width < NARROW
    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", style="bold", no_wrap=True)
    table.add_column("result", overflow="fold")
    if not narrow:
        # numbers wrap onto a second line rather than lose digits to an ellipsis
        table.add_column("value", justify="right", no_wrap=True, overflow="fold")
        table.add_column("threshold", justify="right", no_wrap=True, overflow="fold")
    for check in checks:
        message = Text(check.message)
        value, threshold = _cell_value(check.value), _cell_value(check.threshold)
        if narrow and (value or threshold):
            parts = [
                f"value {value}" if value else "",
                f"threshold {threshold}" if threshold else "",
            ]
            message.append("\n" + ", ".join(p.replace("\n", ", ") for p in parts if p), style="dim")
        if check.hint and check.status in (Status.FAIL, Status.WARN):
            message.append("\n→ " + check.hint, style="cyan")
        cells = [Text(ICON[check.status], style=STYLE[check.status]), check.id, message]
        table.add_row(*cells, *([] if narrow else [value, threshold]))
    return table


def _cell_value(value: Any) -> str:
    """A value for a table cell: a mapping gets one ``key=value`` a line."""
    value = jsonable(value)
    if isinstance(value, dict):
        return "\n".join(f"{k}={fmt_value(v, 3)}" for k, v in list(value.items())[:4])
    return fmt_value(value)


def key_value_table(title: str, data: Mapping[str, Any]) -> Table:
    """A two-column table, one ``key value`` a row (values written by :func:`fmt_value`)."""
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in data.items():
        table.add_row(str(key), fmt_value(value))
    return table


def render_report(
    report: Report,
    console: Console,
    fail_on: str = "fail",
    renderers: Mapping[str, SectionRenderer] | None = None,
    quiet: bool = False,
) -> None:
    """Draw a report: the verdict, the command's sections (each with its renderer in
    ``renderers``), one table of checks per family, then a short summary naming every failing
    and warning check and the verdict again. ``quiet``: the short summary and verdict only."""
    if not quiet:
        console.print(_verdict_line(report, fail_on))
        _sections_and_tables(report, console, renderers)
    for check in report.checks:
        if check.status in (Status.FAIL, Status.WARN):
            console.print(_summary_line(check, console.width))
    console.print(_verdict_line(report, fail_on))


def _sections_and_tables(
    report: Report, console: Console, renderers: Mapping[str, SectionRenderer] | None
) -> None:
    for name, section in report.sections.items():
        renderer = (renderers or {}).get(name)
        if renderer is not None:
            renderer(console, section, report)
        else:
            data = section.to_dict() if isinstance(section, Section) else section
            if isinstance(data, Mapping) and data:
                console.print(key_value_table(name.replace("_", " "), data))
    families: dict[str, list[CheckResult]] = {}
    for check in report.checks:
        families.setdefault(check.family or report.command, []).append(check)
    for family, checks in families.items():
        console.print(_checks_table(f"{family} checks", checks, console.width))


def _summary_line(check: CheckResult, width: int) -> Text:
    """``FAIL id: message`` on one line, cut at a word boundary to fit ``width``."""
    head = f"{ICON[check.status]} {check.id}: "
    message = " ".join(check.message.split())
    room = max(width - len(head), 20)
    if len(message) > room:
        cut = message[: room - 1].rsplit(" ", 1)[0].rstrip(",;:")
        message = cut + "…"
    line = Text(ICON[check.status], style=STYLE[check.status])
    line.append(f" {check.id}: ", style="bold")
    line.append(message)
    return line


def _verdict_line(report: Report, fail_on: str) -> Text:
    failed = report.failed(fail_on)
    counts = report.counts()
    text = verdict(report, fail_on)
    style = "bold red" if failed else ("yellow" if counts["warn"] else "bold green")
    line = Text(f"utnet-diag {report.command}: ", style="bold")
    line.append(text, style=style)
    line.append(f" ({counts_text(report)})")
    return line
