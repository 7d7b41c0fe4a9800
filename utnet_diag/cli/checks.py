"""``utnet-diag checks [ID]``: every check id, or what one check does and what to do when it fires."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer

from utnet_diag.catalog import CatalogEntry, catalog, lookup
from utnet_diag.cli.app import report_stream
from utnet_diag.cli.options import JsonOpt
from utnet_diag.errors import InputError, did_you_mean


def print_entry(console: Any, entry: CatalogEntry, text: str, reads: str | None = None) -> None:
    """One check for people: id and families, ``text`` (its description or full doc), what it
    reads, its default threshold, its hint, and the checks it depends on."""
    from rich.text import Text

    console.print(Text(entry.id, style="bold") + Text(f"  ({', '.join(entry.families)})"))
    console.print(text)
    if reads:
        console.print(Text(f"reads: {reads}", style="dim"))
    if entry.threshold:
        console.print(Text(f"default threshold: {entry.threshold}"))
    if entry.hint:
        console.print(Text("→ " + entry.hint, style="cyan"))
    for label, ids in (("requires", entry.requires), ("after the fix of", entry.after),
                       ("formerly", entry.aliases)):  # fmt: skip
        if ids:
            console.print(Text(f"{label}: {', '.join(ids)}", style="dim"))


def checks_command(
    check_id: Annotated[
        Optional[str],
        typer.Argument(help="A check id (an old id too, or <id>:<subject>); none lists them all."),
    ] = None,
    family: Annotated[
        Optional[str], typer.Option("--family", help="List one family only (batch, grad, ...).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Every check id with its family and what it checks; with an id, its hint and prerequisites."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = report_stream()
    if check_id is not None:
        entries = [lookup(check_id)]
    else:
        entries = catalog()
        if family is not None:
            families = sorted({f for e in entries for f in e.families})
            entries = [e for e in entries if family in e.families]
            if not entries:
                raise InputError(
                    f"no check family '{family}'" + did_you_mean(family, families),
                    hint=f"families: {', '.join(families)}",
                )
    if json_out:
        out.write(json.dumps([e.to_dict() for e in entries], indent=2) + "\n")
        return
    console = Console(file=out, highlight=False)
    if check_id is not None:
        print_entry(console, entries[0], entries[0].description)
        return
    table = Table(title=f"{len(entries)} checks", title_justify="left")
    table.add_column("check", style="bold", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("what it checks", overflow="fold", ratio=3)
    table.add_column("default threshold", overflow="fold", ratio=2)
    for entry in entries:
        table.add_row(entry.id, ", ".join(entry.families), entry.description, entry.threshold)
    console.print(table)
    console.print(Text("utnet-diag checks ID: its hint and prerequisites", style="dim"))
