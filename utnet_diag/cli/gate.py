"""``utnet-diag gate``: check-batch, loss-breakdown and grad-flow in one run, for CI."""

from __future__ import annotations

import typer

from utnet_diag.cli.app import emit, say_pictures
from utnet_diag.cli.model_opts import DepthOpt, ExactOpt, SeedOpt, warn_loaded, with_model_options
from utnet_diag.cli.options import (
    AmpOpt,
    ClipGradNormOpt,
    FailOn,
    FailOnOpt,
    JsonOpt,
    JunitOpt,
    MetricProtocolOpt,
    OverlayOpt,
    OverlaySamplesOpt,
)
from utnet_diag.run_options import RunOptions


@with_model_options()
def gate_command(
    run_options: RunOptions,
    exact: ExactOpt = False,
    depth: DepthOpt = 1,
    seed: SeedOpt = 0,
    metric_protocol: MetricProtocolOpt = None,
    amp: AmpOpt = None,
    clip_grad_norm: ClipGradNormOpt = None,
    overlay: OverlayOpt = None,
    overlay_samples: OverlaySamplesOpt = 8,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """The CI gate: batch, model, loss and gradient checks from one model load and one forward.

    With no checkpoint or batch, the embedded reference model and default batch are used.
    Exit 0 no failure, 1 a check failed (--fail-on warn: a warning too), 2 bad input, 3 internal.
    """
    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.diagnostics.gate import gate

    report = gate(
        exact=exact,
        depth=depth,
        seed=seed,
        options=run_options,
        metric_protocol=metric_protocol.value if metric_protocol else None,
        amp=amp.value if amp else None,
        clip_grad_norm=clip_grad_norm,
        overlay=overlay,
        overlay_samples=overlay_samples,
    )
    warn_loaded(report)
    say_pictures(report)
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
