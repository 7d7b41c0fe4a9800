"""``utnet-diag compare CKPT_A CKPT_B``: the same batch through two checkpoints, with deltas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from utnet_diag.cli.app import app, emit, say
from utnet_diag.cli.model_opts import SeedOpt
from utnet_diag.cli.options import (
    BatchOpt,
    ConfigOpt,
    DeviceOpt,
    FailOn,
    FailOnOpt,
    JsonOpt,
    JunitOpt,
    ManoOpt,
    MaxSamplesOpt,
    ModelFactoryOpt,
    OutputMapOpt,
    PresetOpt,
    RepoOpt,
    UnsafeLoadOpt,
)


@app.command("compare")
def compare_command(
    checkpoint_a: Annotated[
        Path, typer.Argument(metavar="CKPT_A", help="Baseline checkpoint (A).")
    ],
    checkpoint_b: Annotated[
        Path, typer.Argument(metavar="CKPT_B", help="Checkpoint compared with it (B).")
    ],
    batch: BatchOpt = None,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    repo: RepoOpt = None,
    model_factory: ModelFactoryOpt = None,
    output_map: OutputMapOpt = None,
    mano: ManoOpt = None,
    device: DeviceOpt = "auto",
    max_samples: MaxSamplesOpt = None,
    unsafe_load: UnsafeLoadOpt = False,
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
    from utnet_diag.cli import render_compare  # noqa: F401  (registers the section renderer)
    from utnet_diag.diagnostics.compare import check_max_regression, compare

    check_max_regression(max_regression)  # before anything heavy is loaded
    report = compare(
        checkpoint_a, checkpoint_b, batch=batch, config=config,
        preset=preset.value if preset is not None else None, repo=repo,
        model_factory=model_factory, output_map=output_map, mano=mano, device=device,
        max_samples=max_samples, unsafe_load=unsafe_load, max_regression=max_regression,
        seed=seed,
    )  # fmt: skip
    for warning in report.sections["run"].get("warnings", []):
        say(f"warning: {warning}")
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
