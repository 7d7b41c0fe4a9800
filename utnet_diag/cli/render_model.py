"""Rich renderers for the model commands' report sections."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from utnet_diag.report.render import fmt_value
from utnet_diag.report.result import Report


def _kv_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in rows:
        table.add_row(key, value if isinstance(value, str) else fmt_value(value))
    return table


def render_checkpoint(console: Console, section: dict[str, Any], report: Report) -> None:
    dtypes = ", ".join(f"{k} x{v}" for k, v in section.get("dtypes", {}).items())
    stripped = ", ".join(
        f"'{k}' ({v} keys)" for k, v in section.get("stripped_prefixes", {}).items()
    )
    rows = [
        ("path", str(section.get("path"))),
        ("tensors", str(section.get("tensors"))),
        ("elements", f"{section.get('elements', 0):,}"),
        ("size", f"{section.get('size_mb', 0):.2f} MB"),
        ("dtypes", dtypes or "-"),
        ("wrappers", " > ".join(section.get("wrappers", [])) or "none (bare state dict)"),
        ("stripped prefixes", stripped or "none"),
        ("format", str(section.get("format") or "-")),
    ]
    for key, value in (section.get("metadata") or {}).items():
        rows.append((f"meta: {key}", fmt_value(value)))
    console.print(_kv_table("checkpoint", rows))


def render_sample(console: Console, section: dict[str, Any], report: Report) -> None:
    rows = [
        ("folder", str(section.get("folder"))),
        ("samples", str(section.get("samples"))),
        ("image size", "x".join(str(v) for v in section.get("image_size", []))),
        ("model", f"{section.get('model')}, {section.get('parameters', 0):,} parameters"),
    ]
    for name, info in (section.get("files") or {}).items():
        rows.append((name, f"{info['bytes']:,} bytes"))
    console.print(_kv_table("sample files", rows))
