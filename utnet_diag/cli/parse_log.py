"""``utnet-diag parse-log LOGFILE``: healthy ranges, NaN, stuck terms, trends and total consistency."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from utnet_diag.cli.app import emit, say_pictures
from utnet_diag.cli.options import ConfigOpt, FailOn, FailOnOpt, JsonOpt, JunitOpt, PresetOpt
from utnet_diag.config import load_config


def parse_log_command(
    logfile: Annotated[
        Path,
        typer.Argument(
            help="Training log: the spec's text ('Loss breakdown' blocks), CSV with a header"
            " (Lightning's metrics.csv), or JSON lines."
        ),
    ],
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    plot: Annotated[
        Optional[Path],
        typer.Option("--plot", help="Draw per-term curves to this .png/.svg/.pdf (matplotlib)."),
    ] = None,
    window: Annotated[
        Optional[int],
        typer.Option("--window", min=3, help="Blocks per window for trends (default: N/4)."),
    ] = None,
    columns: Annotated[
        Optional[str],
        typer.Option(
            "--columns",
            metavar="TERM=COLUMN,...",
            help="For a CSV or JSON-lines log: which column holds which term (default: common"
            " names; config: diag: log_columns:).",
        ),
    ] = None,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Read a training log and check every loss block against the spec's healthy ranges.

    Also finds NaN/Inf, terms stuck at 0 or constant, divergence and plateaus, and checks that
    the logged total is the weighted sum of the logged terms under the config's weights.
    """
    # deferred: loads numpy, which this module's importers do not need
    from utnet_diag.logs.checks import LogCheckOptions, diagnose_log

    diag_config = load_config(config, preset.value if preset is not None else None)
    options = LogCheckOptions(
        trend_window=window, weights_given=config is not None or preset is not None
    )
    # deferred: loads numpy, which this module's importers do not need
    from utnet_diag.logs.tables import parse_columns

    report = diagnose_log(logfile, diag_config, options, plot_path=plot,
                          columns=parse_columns(columns))  # fmt: skip
    say_pictures(report)
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
