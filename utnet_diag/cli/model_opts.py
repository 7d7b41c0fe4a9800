"""The options every model command shares (checkpoint, batch, config, model source, device), and
the ones of the gradient commands. Importing this module must not import torch."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from utnet_diag.cli.app import say
from utnet_diag.cli.options import (
    BatchOpt,
    CheckpointOpt,
    ConfigOpt,
    DeviceOpt,
    ManoOpt,
    MaxSamplesOpt,
    ModelFactoryOpt,
    OutputMapOpt,
    PresetOpt,
    RepoOpt,
    UnsafeLoadOpt,
)
from utnet_diag.run_options import RunOptions

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


# The options every model command shares: (parameter name, option type, default).
MODEL_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("checkpoint", CheckpointOpt, None),
    ("batch", BatchOpt, None),
    ("config", ConfigOpt, None),
    ("preset", PresetOpt, None),
    ("repo", RepoOpt, None),
    ("model_factory", ModelFactoryOpt, None),
    ("output_map", OutputMapOpt, None),
    ("mano", ManoOpt, None),
    ("device", DeviceOpt, "auto"),
    ("max_samples", MaxSamplesOpt, None),
    ("unsafe_load", UnsafeLoadOpt, False),
)


def with_model_options(
    exclude: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the shared model options (less ``exclude``) without declaring them.

    The command takes ``run_options``: a :class:`utnet_diag.run_options.RunOptions` built from
    them, which the core model functions (``gate``, ``loss_breakdown``, ``load_inputs``, ...)
    take as ``options``. Its own arguments come first in ``--help``, then the shared options,
    then its own options.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        shared = [(n, t, d) for n, t, d in MODEL_OPTIONS if n not in exclude]
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.name != "run_options"
        ]
        shared_params = [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=t)
            for n, t, d in shared
        ]
        arguments = [p for p in own if p.default is inspect.Parameter.empty]
        options = [p for p in own if p.default is not inspect.Parameter.empty]

        @functools.wraps(command)
        def wrapper(**values: Any) -> Any:
            given = {n: values.pop(n) for n, _, _ in shared}
            preset = given.get("preset")
            if preset is not None:
                given["preset"] = preset.value
            return command(run_options=RunOptions(**given), **values)

        wrapper.__signature__ = inspect.Signature(arguments + shared_params + options)  # type: ignore[attr-defined]
        return wrapper

    return decorate


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

    for note in stderr_notes(report):
        say(f"note: {note}")
