"""``utnet-diag check-batch BATCH``: the ground-truth checks of one batch file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from utnet_diag.cli.app import emit
from utnet_diag.cli.options import (
    ConfigOpt,
    DatasetOpt,
    DatasetRootOpt,
    DatasetSplitOpt,
    FailOn,
    FailOnOpt,
    IndicesOpt,
    JsonOpt,
    JunitOpt,
    MaxSamplesOpt,
    PresetOpt,
)
from utnet_diag.config import load_config
from utnet_diag.errors import InputError


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
    images: Annotated[
        bool,
        typer.Option(
            "--images/--no-images",
            help="With --dataset: decode RGB and depth (--no-images: annotations only; the image"
            " checks are then skipped, and missing image files are not a failure).",
        ),
    ] = True,
    mano: Annotated[
        Optional[Path],
        typer.Option(
            "--mano",
            help="MANO_RIGHT.pkl the labels were made with: checks mano_pose/mano_shape"
            " against keypoints_3d (mano_consistency).",
        ),
    ] = None,
    loader: Annotated[
        Optional[str],
        typer.Option(
            "--loader",
            help="module:callable: your Dataset (or a function returning one); the checks run on"
            " its first items, with and without its augmentation switch. Run from your checkout.",
        ),
    ] = None,
    loader_args: Annotated[
        Optional[list[str]],
        typer.Option(
            "--loader-args",
            help="key=value for the --loader callable (value read as YAML), repeatable; or one"
            " {...} mapping.",
        ),
    ] = None,
    loader_samples: Annotated[
        int, typer.Option("--loader-samples", help="Items read from --loader.")
    ] = 8,
) -> None:
    """Check a batch's ground truth: schema, NaN/Inf, confidences, 2D range, 3D units, images,
    MANO parameters, and the coordinate conventions.

    The batch: a file, frames of a HO3D/DexYCB tree (--dataset --root), or items of your own
    Dataset (--loader module:callable --loader-args key=value ...)."""
    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.diagnostics.check_batch import check_batch

    cfg = load_config(config, preset.value if preset is not None else None)
    mano_layer = None
    if mano is not None:
        from utnet_diag.mano import ManoLayer  # deferred: loads torch

        mano_layer = ManoLayer(path=mano)
    sources = [batch is not None, dataset is not None or root is not None, loader is not None]
    if sum(sources) > 1:
        raise InputError("give one batch source: a BATCH file, --dataset/--root, or --loader")
    if loader is None and loader_args:
        raise InputError("--loader-args needs --loader")
    if loader is not None:  # the user's own Dataset, as training reads it
        from utnet_diag.datasets.user_loader import check_loader, parse_loader_args

        report = check_loader(
            loader, parse_loader_args(loader_args), samples=loader_samples, config=cfg,
            mano=mano_layer,
        )  # fmt: skip
    elif dataset is not None or root is not None:  # a batch built from HO3D / DexYCB frames
        from utnet_diag.datasets.batch import check_dataset_batch

        report = check_dataset_batch(
            batch,
            dataset,
            root,
            split,
            indices,
            cfg,
            mano=mano_layer,
            max_samples=max_samples,
            images=images,
        )
    elif batch is None:
        raise InputError("give a BATCH file, or --dataset and --root")
    else:
        report = check_batch(batch, cfg, mano=mano_layer, max_samples=max_samples)
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
