"""``utnet-diag explain ID``: what one check does, the spec's advice, and the check run live on an
input with its fault planted."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from utnet_diag.cli.app import report_stream
from utnet_diag.cli.checks import print_entry
from utnet_diag.cli.options import JsonOpt


def explain_command(
    check_id: Annotated[str, typer.Argument(help="A check id (an old id too, or <id>:<subject>).")],
    json_out: JsonOpt = False,
) -> None:
    """What a check does, what to do when it fires, and its result on a planted fault."""
    from rich.console import Console
    from rich.text import Text

    # deferred: loads torch (the example runs the check), which --help does not need
    from utnet_diag.explain import explain

    explanation = explain(check_id)
    out = report_stream()
    if json_out:
        out.write(json.dumps(explanation.to_dict(), indent=2) + "\n")
        return
    console = Console(file=out, highlight=False)
    print_entry(console, explanation.entry, explanation.doc, explanation.reads)
    result = explanation.example
    if result is None:
        console.print(Text("no built-in example: run the command that reads it", style="dim"))
        return
    console.print(Text(f"\nexample: {explanation.example_fault}", style="bold"))
    line = Text(f"{result.status.value.upper()} ", style="bold red" if result.status.value ==
                "fail" else "yellow")  # fmt: skip
    line.append(result.message)
    console.print(line)
