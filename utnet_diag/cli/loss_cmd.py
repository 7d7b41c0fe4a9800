"""``utnet-diag loss-breakdown``: every loss term of one forward pass against the spec."""

from __future__ import annotations

import typer

from utnet_diag.cli.app import app, emit
from utnet_diag.cli.model_opts import SeedOpt, model_kwargs, warn_loaded
from utnet_diag.cli.options import (
    BatchOpt,
    CheckpointOpt,
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
from utnet_diag.cli.render_advice import TargetSharesOpt


@app.command("loss-breakdown")
def loss_breakdown_command(
    checkpoint: CheckpointOpt = None,
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
    target_shares: TargetSharesOpt = None,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Run the model once and report every loss term: value, weight and its source, weighted
    value, share, per-sample and per-element errors; the spec's ranges; MPJPE and PA-MPJPE."""
    from utnet_diag.cli import render_run  # noqa: F401  (registers the section renderers)
    from utnet_diag.diagnostics.advisor import parse_target_shares

    shares = parse_target_shares(target_shares)  # exit 2 on a malformed value, before loading
    from utnet_diag.diagnostics.loss_breakdown import loss_breakdown

    kwargs = model_kwargs(
        checkpoint=checkpoint, batch=batch, config=config, preset=preset, repo=repo,
        model_factory=model_factory, output_map=output_map, mano=mano, device=device,
        max_samples=max_samples, unsafe_load=unsafe_load,
    )  # fmt: skip
    report = loss_breakdown(seed=seed, target_shares=shares, **kwargs)
    warn_loaded(report)
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
