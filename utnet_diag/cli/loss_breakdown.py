"""``utnet-diag loss-breakdown``: every loss term of one forward pass against the spec."""

from __future__ import annotations

from typing import Any

import typer

from utnet_diag.cli.app import emit
from utnet_diag.cli.model_opts import SeedOpt, warn_loaded, with_model_options
from utnet_diag.cli.options import FailOn, FailOnOpt, JsonOpt, JunitOpt
from utnet_diag.cli.render_advice import TargetSharesOpt


@with_model_options()
def loss_breakdown_command(
    model_options: dict[str, Any],
    seed: SeedOpt = 0,
    target_shares: TargetSharesOpt = None,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Run the model once and report every loss term: value, weight and its source, weighted
    value, share, per-sample and per-element errors; the spec's ranges; MPJPE and PA-MPJPE."""
    from utnet_diag.diagnostics.advisor import parse_target_shares

    shares = parse_target_shares(target_shares)  # exit 2 on a malformed value, before loading
    from utnet_diag.diagnostics.loss_breakdown import loss_breakdown

    report = loss_breakdown(seed=seed, target_shares=shares, **model_options)
    warn_loaded(report)
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
