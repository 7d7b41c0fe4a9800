"""``utnet-diag compare CKPT_A CKPT_B``: the same batch through two checkpoints, with deltas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from utnet_diag.cli.app import emit, say
from utnet_diag.cli.model_opts import SeedOpt, with_model_options
from utnet_diag.cli.options import FailOn, FailOnOpt, JsonOpt, JunitOpt
from utnet_diag.run_options import RunOptions


@with_model_options(exclude=("checkpoint",))
def compare_command(
    checkpoint_a: Annotated[
        Path, typer.Argument(metavar="CKPT_A", help="Baseline checkpoint (A).")
    ],
    checkpoint_b: Annotated[
        Path, typer.Argument(metavar="CKPT_B", help="Checkpoint compared with it (B).")
    ],
    run_options: RunOptions,
    seed: SeedOpt = 0,
    max_regression: Annotated[
        Optional[float],
        typer.Option(
            "--max-regression",
            help="Gate: fail when B's loss or metric is worse than A's by more than this"
            " fraction (0.05 = 5%).",
        ),
    ] = None,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Run the same batch through two checkpoints: loss terms, MPJPE/PA-MPJPE and gradient norms
    side by side with deltas. Weights and files are never changed."""
    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.diagnostics.compare import check_max_regression, compare

    check_max_regression(max_regression)  # before anything heavy is loaded
    report = compare(
        checkpoint_a, checkpoint_b, max_regression=max_regression, seed=seed, options=run_options
    )
    for warning in report.sections["run"].get("warnings", []):
        say(f"warning: {warning}")
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
