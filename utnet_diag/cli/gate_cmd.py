"""``utnet-diag gate``: check-batch, loss-breakdown and grad-flow in one run, for CI."""

from __future__ import annotations

import typer

from utnet_diag.cli.app import app, emit
from utnet_diag.cli.model_opts import DepthOpt, ExactOpt, SeedOpt, model_kwargs, warn_loaded
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


@app.command("gate")
def gate_command(
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
    exact: ExactOpt = False,
    depth: DepthOpt = 1,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """The CI gate: batch, model, loss and gradient checks from one model load and one forward.

    With no checkpoint or batch, the embedded reference model and default batch are used.
    Exit 0 no failure, 1 a check failed (--fail-on warn: a warning too), 2 bad input, 3 internal.
    """
    from utnet_diag.cli import render_batch, render_run  # noqa: F401  (section renderers)
    from utnet_diag.diagnostics.gate import gate

    kwargs = model_kwargs(
        checkpoint=checkpoint, batch=batch, config=config, preset=preset, repo=repo,
        model_factory=model_factory, output_map=output_map, mano=mano, device=device,
        max_samples=max_samples, unsafe_load=unsafe_load,
    )  # fmt: skip
    report = gate(exact=exact, depth=depth, seed=seed, **kwargs)
    warn_loaded(report)
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
