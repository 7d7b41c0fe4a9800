"""``utnet-diag overfit``: train a copy of the model on one batch; pass when it memorises it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from utnet_diag.cli.app import emit, say, say_pictures, stderr_console
from utnet_diag.cli.model_opts import with_model_options
from utnet_diag.cli.options import FailOn, FailOnOpt, JsonOpt, JunitOpt
from utnet_diag.report.sections import pictures_section
from utnet_diag.run_options import RunOptions


@with_model_options()
def overfit_command(
    run_options: RunOptions,
    steps: Annotated[int, typer.Option("--steps", min=2, help="AdamW steps.")] = 300,
    lr: Annotated[
        Optional[float], typer.Option("--lr", min=0.0, help="Default: the config's training lr.")
    ] = None,
    target: Annotated[
        float,
        typer.Option("--target", min=0.0, max=1.0, help="Pass below this share of the start."),
    ] = 0.1,
    mpjpe_threshold: Annotated[
        float, typer.Option("--mpjpe-threshold", min=0.0, help="Pass below this MPJPE (mm).")
    ] = 10.0,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Per-term curves (.png).")] = None,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Train a copy of the model on one batch (never written back): the loss must fall below
    --target of its start and MPJPE below --mpjpe-threshold; names stalled terms and unmoved
    module groups."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.diagnostics.overfit import (
        OverfitOptions,
        learning_rate_of,
        overfit,
        save_overfit_plot,
    )
    from utnet_diag.diagnostics.runner import load_inputs
    from utnet_diag.logs.plot import check_plot_path

    if plot is not None:
        check_plot_path(plot, (".png",))
    inputs = load_inputs(run_options)
    options = OverfitOptions(
        steps=steps,
        lr=lr if lr is not None else learning_rate_of(inputs.config),
        target_fraction=target,
        mpjpe_threshold_mm=mpjpe_threshold,
    )
    with Progress(
        TextColumn("overfit"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[losses]}"),
        TimeRemainingColumn(),
        console=stderr_console(),
        transient=True,
        disable=json_out,
    ) as bar:
        task = bar.add_task("overfit", total=steps, losses="")

        def progress(step: int, values: dict[str, float]) -> None:
            text = " ".join(f"{k.replace('loss_', '')}={v:.4g}" for k, v in values.items())
            bar.update(task, completed=step + 1, losses=text)

        report = overfit(inputs, options, progress)
    for warning in getattr(inputs.loaded, "warnings", []):
        say(f"warning: {warning}")
    if plot is not None:
        save_overfit_plot(report, plot)
        report.sections.update(pictures_section({"kind": "plot", "path": str(plot)}))
        say_pictures(report)
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
