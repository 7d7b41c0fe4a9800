"""``utnet-diag eval PRED --gt GT --protocol P``: a prediction file checked, then scored as the
benchmark's official evaluator scores it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from utnet_diag.cli.app import emit, say
from utnet_diag.cli.options import FailOn, FailOnOpt, JsonOpt, JunitOpt, MetricProtocol


def eval_command(
    pred: Annotated[
        Path,
        typer.Argument(
            help="Predictions: FreiHAND/HO3D pred.json [xyz, verts] in metres, or DexYCB result"
            " lines (image id + 63 numbers, mm)."
        ),
    ],
    gt: Annotated[
        Path,
        typer.Option(
            "--gt",
            help="Ground truth: a folder with evaluation_xyz.json and evaluation_verts.json, one"
            " JSON in the prediction's form, or DexYCB lines (mm).",
        ),
    ],
    protocol: Annotated[
        MetricProtocol, typer.Option("--protocol", help="Whose official evaluator to reproduce.")
    ],
    per_sample: Annotated[
        Optional[Path],
        typer.Option(
            "--per-sample", help="Write every sample's errors here (JSON lines, worst first)."
        ),
    ] = None,
    max_file_mb: Annotated[
        float, typer.Option("--max-file-mb", min=1, help="Refuse input files larger than this.")
    ] = 2048,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Score predictions as FreiHAND's, HO3D's or DexYCB's official evaluator does.

    First checks the file like a batch: units, joint order, camera frame, mirrored hands, mesh.
    A file that would score nonsense fails with the fix; its metrics are still shown, beside
    the metrics it would score once fixed.
    """
    # deferred: loads numpy and scipy, which this module's importers do not need
    from utnet_diag.evaluation.run import evaluate

    report = evaluate(pred, gt, protocol.value, per_sample=per_sample, max_file_mb=max_file_mb)
    if per_sample is not None:
        say(f"per-sample errors written to {per_sample}")
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
