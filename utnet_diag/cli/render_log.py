"""Rich rendering of ``parse-log`` sections: a summary line and per-term sparklines."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from utnet_diag.report.result import Report

BARS = "▁▂▃▄▅▆▇█"


def sparkline(series: list[Any], log_scale: bool | None = None) -> Text:
    """One character per point: ▁..█ scaled between the finite min and max; NaN/Inf as a red
    '×', a missing point as a space. ``log_scale`` None: log when all positive and max/min > 100."""
    numbers = [v for v in series if isinstance(v, (int, float)) and math.isfinite(v)]
    text = Text()
    if not numbers:
        return Text("×" * len(series), style="bold red") if series else text
    low, high = min(numbers), max(numbers)
    if log_scale is None:
        log_scale = low > 0 and high / low > 100
    if log_scale:
        low, high = math.log10(low), math.log10(high)
    span = high - low
    for value in series:
        if value is None:
            text.append(" ")
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            text.append("×", style="bold red")
            continue
        y = math.log10(value) if log_scale else value
        level = 0 if span <= 0 else round((y - low) / span * (len(BARS) - 1))
        text.append(BARS[min(max(level, 0), len(BARS) - 1)], style="cyan")
    return text


def render_log_summary(console: Console, section: dict[str, Any], report: Report) -> None:
    del report
    epochs = section.get("epochs") or [0, 0]
    iters = section.get("iter_range") or [section.get("first_iter"), section.get("last_iter")]
    line = Text(f"{section.get('path')}: ", style="bold")
    line.append(
        f"{section.get('blocks')} loss block{'' if section.get('blocks') == 1 else 's'}"
        f" from epoch {section.get('first_epoch', epochs[0])} iter {section.get('first_iter')}"
        f" to epoch {section.get('last_epoch', epochs[1])} iter {section.get('last_iter')}"
        f" (epochs {epochs[0]}-{epochs[1]}, iters {iters[0]}..{iters[1]} within an epoch);"
        f" {section.get('lines_read')} lines read, {section.get('lines_skipped')} skipped"
    )
    if section.get("plot"):
        line.append(f"; curves in {section['plot']}")
    console.print(line)


def compact(value: Any) -> str:
    """A loss value in at most 6 characters: 334.8, 73.6k, 1.20M, 0.0512, nan."""
    if value is None:
        return "-"
    if not isinstance(value, (int, float)):
        return str(value)
    if not math.isfinite(value):
        return repr(float(value))
    size = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if size >= limit:
            scaled = value / (limit if suffix != "k" else 1e3)
            return f"{scaled:.3g}{suffix}"
    return f"{value:.4g}"


def resample(series: list[Any], width: int) -> list[Any]:
    """Shrink a series to ``width`` points (bucket means; a bucket with NaN stays NaN)."""
    if len(series) <= width:
        return list(series)
    out: list[Any] = []
    for i in range(width):
        bucket = series[i * len(series) // width : (i + 1) * len(series) // width]
        numbers = [v for v in bucket if v is not None]
        if not numbers:
            out.append(None)
        elif any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in numbers):
            out.append(math.nan)
        else:
            out.append(sum(numbers) / len(numbers))
    return out


def render_log_terms(console: Console, section: dict[str, Any], report: Report) -> None:
    del report
    table = Table(title="loss terms over the log", title_justify="left")
    table.add_column("term", style="bold", no_wrap=True)
    table.add_column("first → last", justify="right", no_wrap=True)
    table.add_column("min … max", justify="right", no_wrap=True)
    table.add_column("NaN", justify="right", no_wrap=True)
    table.add_column("trend", no_wrap=True)
    rows = []
    for summary in section.values():
        rows.append(
            (
                summary.get("label", ""),
                f"{compact(summary.get('first'))} → {compact(summary.get('last'))}",
                f"{compact(summary.get('min'))} … {compact(summary.get('max'))}",
                str(summary.get("nonfinite", 0)),
                summary.get("series") or [],
            )
        )
    headers = ("term", "first → last", "min … max", "NaN")
    used = sum(max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers))
    width = max(8, min(48, console.width - used - 17))  # 5 columns: borders and padding
    for label, first_last, min_max, bad, series in rows:
        table.add_row(
            label,
            first_last,
            min_max,
            Text(bad, style="bold red" if bad != "0" else ""),
            sparkline(resample(series, width)),
        )
    console.print(table)
