"""Where check-batch's batch comes from: a file, frames of a HO3D/DexYCB tree, or the items of
the user's own Dataset; one function checks whichever was given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from utnet_diag.config import load_config
from utnet_diag.datasets.batch import check_dataset_batch
from utnet_diag.datasets.user_loader import check_loader, parse_loader_args
from utnet_diag.diagnostics.check_batch import check_batch
from utnet_diag.errors import InputError
from utnet_diag.mano import ManoLayer
from utnet_diag.pictures.overlay import check_overlay_path
from utnet_diag.report.result import Report


@dataclass(frozen=True)
class BatchSource:
    """One batch source: ``batch`` (a .pt/.npz file), or ``dataset`` + ``root`` (+ ``split``,
    ``indices``, ``images``), or ``loader`` (``module:callable``, its ``loader_args`` as
    ``key=value`` strings, ``loader_samples`` items)."""

    batch: str | Path | None = None
    dataset: str | None = None
    root: str | Path | None = None
    split: str | None = None
    indices: str | None = None
    images: bool = True
    loader: str | None = None
    loader_args: tuple[str, ...] = ()
    loader_samples: int = 8

    def validate(self) -> None:
        """One source, and options only where they apply (InputError otherwise)."""
        given = [self.batch is not None, self.dataset is not None or self.root is not None,
                 self.loader is not None]  # fmt: skip
        if sum(given) > 1:
            raise InputError("give one batch source: a BATCH file, --dataset/--root, or --loader")
        if self.loader is None and self.loader_args:
            raise InputError("--loader-args needs --loader")
        if not any(given):
            raise InputError("give a BATCH file, or --dataset and --root")


def check_batch_source(
    source: BatchSource,
    config: str | Path | None = None,
    preset: str | None = None,
    mano: str | Path | None = None,
    max_samples: int | None = None,
    overlay: str | Path | None = None,
    overlay_samples: int = 8,
) -> Report:
    """The check-batch report of ``source``, with the weights of ``config`` (``preset`` when it
    gives none) and, with ``mano``, the MANO the labels were made with (mano_consistency);
    ``overlay``: a contact sheet of the batch (:mod:`utnet_diag.pictures.overlay`)."""
    source.validate()
    if overlay is not None:
        check_overlay_path(overlay, overlay_samples)
    shown = {"overlay": overlay, "overlay_samples": overlay_samples}
    cfg = load_config(config, preset)
    mano_layer = ManoLayer(path=mano) if mano is not None else None
    if source.loader is not None:  # the user's own Dataset, as training reads it
        return check_loader(source.loader, parse_loader_args(list(source.loader_args)),
                            samples=source.loader_samples, config=cfg, mano=mano_layer,
                            **shown)  # fmt: skip
    if source.dataset is not None or source.root is not None:
        return check_dataset_batch(
            None, source.dataset, source.root, source.split, source.indices, cfg,
            mano=mano_layer, max_samples=max_samples, images=source.images, **shown,
        )  # fmt: skip
    assert source.batch is not None
    return check_batch(source.batch, cfg, mano=mano_layer, max_samples=max_samples, **shown)
