"""The options every model command shares (checkpoint, batch, config, model source, device), and
the ones of the gradient commands. Importing this module must not import torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from utnet_diag.cli.options import Preset

ExactOpt = Annotated[
    bool,
    typer.Option("--exact", help="One backward per loss term: exact per-term, per-module norms."),
]
DepthOpt = Annotated[
    int,
    typer.Option("--depth", min=1, max=8, help="Module-path depth of the groups (1: top level)."),
]
PlotOpt = Annotated[
    Optional[Path],
    typer.Option("--plot", help="Also draw the per-module bar chart to this PNG (matplotlib)."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for dropout and other randomness.")]


def model_kwargs(
    *,
    checkpoint: Path | None,
    batch: Path | None,
    config: Path | None,
    preset: Preset | None,
    repo: Path | None,
    model_factory: str | None,
    output_map: str | None,
    mano: Path | None,
    device: str,
    max_samples: int | None,
    unsafe_load: bool,
) -> dict[str, Any]:
    """The keyword arguments of the core model functions (``gate``, ``loss_breakdown``, ...)."""
    return dict(
        checkpoint=checkpoint,
        batch=batch,
        config=config,
        preset=preset.value if preset is not None else None,
        repo=repo,
        model_factory=model_factory,
        output_map=output_map,
        mano=mano,
        device=device,
        max_samples=max_samples,
        unsafe_load=unsafe_load,
    )


# The runner's note for the embedded default batch: the run table's 'batch' row already says it.
EMBEDDED_BATCH_NOTE = "batch: the embedded default"


def stderr_notes(report: Any) -> list[str]:
    """The run notes (loader warnings, conversions, batch notes) that the rendered report does not
    show already: the batch section's notes and the embedded-default batch note are in the
    report's tables, so each note is printed in one place."""
    shown = set((report.sections.get("batch") or {}).get("notes") or [])
    return [
        note
        for note in report.sections.get("run", {}).get("notes", [])
        if note not in shown and not str(note).startswith(EMBEDDED_BATCH_NOTE)
    ]


def warn_loaded(report: Any) -> None:
    """Print on stderr the model loader's warnings and the run notes not already in the report."""
    from utnet_diag.cli.app import say

    for note in stderr_notes(report):
        say(f"note: {note}")
