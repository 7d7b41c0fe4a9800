"""``utnet-diag grad-flow``: one training step's gradients per module and per loss term."""

from __future__ import annotations

import typer

from utnet_diag.cli.app import emit, say_pictures
from utnet_diag.cli.model_opts import (
    DepthOpt,
    ExactOpt,
    PlotOpt,
    SeedOpt,
    warn_loaded,
    with_model_options,
)
from utnet_diag.cli.options import (
    AmpOpt,
    ClipGradNormOpt,
    FailOn,
    FailOnOpt,
    JsonOpt,
    JunitOpt,
)
from utnet_diag.cli.render_advice import TargetSharesOpt
from utnet_diag.report.sections import pictures_section
from utnet_diag.run_options import RunOptions


@with_model_options()
def grad_flow_command(
    run_options: RunOptions,
    exact: ExactOpt = False,
    depth: DepthOpt = 1,
    plot: PlotOpt = None,
    seed: SeedOpt = 0,
    target_shares: TargetSharesOpt = None,
    amp: AmpOpt = None,
    clip_grad_norm: ClipGradNormOpt = None,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Gradients of one training step (weights unchanged): per module group, per loss term
    (which modules it reaches, its share at the trunk/heads boundary, conflicts), NaN origin."""
    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.diagnostics.advisor import parse_target_shares

    shares = parse_target_shares(target_shares)  # exit 2 on a malformed value, before loading
    from utnet_diag.diagnostics.grad_flow import grad_flow, save_grad_plot
    from utnet_diag.logs.plot import check_plot_path

    if plot is not None:
        check_plot_path(plot, (".png",))
    report = grad_flow(
        exact=exact,
        depth=depth,
        seed=seed,
        target_shares=shares,
        options=run_options,
        amp=amp.value if amp else None,
        clip_grad_norm=clip_grad_norm,
    )
    warn_loaded(report)
    if plot is not None:
        save_grad_plot(report, plot)
        report.sections.update(pictures_section({"kind": "plot", "path": str(plot)}))
        say_pictures(report)
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
