"""``utnet-diag check-batch BATCH``: the ground-truth checks of one batch (a file, dataset
frames, or your own Dataset's items)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from utnet_diag.cli.app import emit, say_pictures
from utnet_diag.cli.options import (
    ConfigOpt,
    DatasetImagesOpt,
    DatasetOpt,
    DatasetRootOpt,
    DatasetSplitOpt,
    FailOn,
    FailOnOpt,
    IndicesOpt,
    JsonOpt,
    JunitOpt,
    LabelsManoOpt,
    LoaderArgsOpt,
    LoaderOpt,
    LoaderSamplesOpt,
    MaxSamplesOpt,
    OverlayOpt,
    OverlaySamplesOpt,
    PresetOpt,
)


def check_batch_command(
    batch: Annotated[
        Optional[Path], typer.Argument(help="Batch file (.pt weights-only, or .npz).")
    ] = None,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    max_samples: MaxSamplesOpt = None,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
    dataset: DatasetOpt = None,
    root: DatasetRootOpt = None,
    split: DatasetSplitOpt = None,
    indices: IndicesOpt = None,
    images: DatasetImagesOpt = True,
    mano: LabelsManoOpt = None,
    loader: LoaderOpt = None,
    loader_args: LoaderArgsOpt = None,
    loader_samples: LoaderSamplesOpt = 8,
    overlay: OverlayOpt = None,
    overlay_samples: OverlaySamplesOpt = 8,
) -> None:
    """Check a batch's ground truth: schema, NaN/Inf, confidences, 2D range, 3D units, images,
    MANO parameters, and the coordinate conventions.

    The batch: a file, frames of a HO3D/DexYCB tree (--dataset --root), or items of your own
    Dataset (--loader module:callable --loader-args key=value ...)."""
    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.diagnostics.batch_source import BatchSource, check_batch_source

    source = BatchSource(
        batch=batch, dataset=dataset.value if dataset is not None else None, root=root,
        split=split, indices=indices, images=images, loader=loader,
        loader_args=tuple(loader_args or ()), loader_samples=loader_samples,
    )  # fmt: skip
    report = check_batch_source(
        source, config, preset.value if preset is not None else None, mano, max_samples,
        overlay=overlay, overlay_samples=overlay_samples,
    )  # fmt: skip
    say_pictures(report)
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
