"""``utnet-diag loss-breakdown``: every loss term of one forward pass against the spec."""

from __future__ import annotations

import typer

from utnet_diag.cli.app import emit, say_pictures
from utnet_diag.cli.model_opts import SeedOpt, warn_loaded, with_model_options
from utnet_diag.cli.options import (
    AmpOpt,
    FailOn,
    FailOnOpt,
    JsonOpt,
    JunitOpt,
    MetricProtocolOpt,
    OverlayOpt,
    OverlaySamplesOpt,
)
from utnet_diag.cli.render_advice import TargetSharesOpt
from utnet_diag.run_options import RunOptions


@with_model_options()
def loss_breakdown_command(
    run_options: RunOptions,
    seed: SeedOpt = 0,
    target_shares: TargetSharesOpt = None,
    metric_protocol: MetricProtocolOpt = None,
    amp: AmpOpt = None,
    overlay: OverlayOpt = None,
    overlay_samples: OverlaySamplesOpt = 8,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Run the model once and report every loss term: value, weight and its source, weighted
    value, share, per-sample and per-element errors; the spec's ranges; MPJPE and PA-MPJPE."""
    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.diagnostics.advisor import parse_target_shares

    shares = parse_target_shares(target_shares)  # exit 2 on a malformed value, before loading
    from utnet_diag.diagnostics.loss_breakdown import loss_breakdown

    report = loss_breakdown(
        seed=seed,
        target_shares=shares,
        options=run_options,
        metric_protocol=metric_protocol.value if metric_protocol else None,
        amp=amp.value if amp else None,
        overlay=overlay,
        overlay_samples=overlay_samples,
    )
    warn_loaded(report)
    say_pictures(report)
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
