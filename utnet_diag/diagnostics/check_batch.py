"""``check_batch``: the ground-truth checks of one batch, as a Report (command ``check-batch``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from utnet_diag.checks.batch import BATCH_CHECKS
from utnet_diag.checks.conventions import CONVENTION_CHECKS
from utnet_diag.checks.engine import CheckContext, CheckSpec, run_checks
from utnet_diag.config import DiagConfig, load_config
from utnet_diag.io.batch import Batch, coerce_batch, load_batch
from utnet_diag.pictures.overlay import (
    DEFAULT_SAMPLES,
    check_overlay_path,
    write_overlay,
)
from utnet_diag.report.result import CheckResult, Report
from utnet_diag.report.sections import BatchSection, pictures_section

COMMAND = "check-batch"


def resolve_config(config: DiagConfig | str | Path | None) -> DiagConfig:
    """A DiagConfig from an object, a config.yaml path, or None (the ``config`` preset)."""
    if isinstance(config, DiagConfig):
        return config
    return load_config(config)


def resolve_batch(
    batch: Batch | Mapping[str, Any] | str | Path, config: DiagConfig
) -> tuple[Batch, list[str]]:
    """A canonical Batch and the schema problems found.

    A path is loaded strictly (structural problems raise InputError); a raw mapping is coerced
    leniently so that the ``schema`` check can list its problems. ``config.key_map`` and
    ``config.max_samples`` apply to both.
    """
    if isinstance(batch, Batch):
        if config.max_samples is not None and batch.size > config.max_samples:
            return batch.subset(config.max_samples), []
        return batch, []
    if isinstance(batch, (str, Path)):
        return load_batch(batch, config.key_map, config.max_samples), []
    if isinstance(batch, Mapping):
        return coerce_batch(batch, None, config.key_map, config.max_samples, strict=False)
    raise TypeError(f"batch must be a Batch, a mapping or a path, got {type(batch).__name__}")


def batch_section(batch: Batch) -> BatchSection:
    """The report's ``batch`` section: size, keys with shapes, format, notes, source."""
    return BatchSection(
        size=batch.size,
        keys={k: list(v.shape) for k, v in batch.tensors.items()},
        format=batch.format,
        notes=list(batch.notes),
        source=batch.source,
        extra_keys=sorted(map(str, batch.extra)),
    )


def check_specs() -> list[CheckSpec]:
    """The checks check-batch runs, in order: the batch checks, then the convention checks."""
    return [s for s in BATCH_CHECKS.specs + CONVENTION_CHECKS.specs if s.fn is not None]


def batch_check_results(
    batch: Batch,
    config: DiagConfig,
    mano: Any = None,
    problems: Iterable[str] = (),
) -> list[CheckResult]:
    """Run the batch checks, then the ground-truth convention checks, over one context.

    ``problems``: schema problems found while coercing the batch (the ``schema`` check fails on
    them). ``mano``: a MANO layer for the convention checks that need one (optional).
    """
    ctx = CheckContext(batch=batch, config=config, mano=mano)
    ctx.extras["schema_problems"] = list(problems)
    results = run_checks(BATCH_CHECKS.specs, ctx)
    return results + run_checks(CONVENTION_CHECKS.specs, ctx, prior=results)


def check_batch(
    batch: Batch | Mapping[str, Any] | str | Path,
    config: DiagConfig | str | Path | None = None,
    mano: Any = None,
    max_samples: int | None = None,
    overlay: str | Path | None = None,
    overlay_samples: int = DEFAULT_SAMPLES,
) -> Report:
    """Check the ground truth of a batch against the spec's conventions.

    Args:
        batch: a loaded Batch, a raw mapping of tensors (canonical or UTNet dataloader keys), or
            the path of a ``.pt``/``.npz`` batch file.
        config: a DiagConfig or a UTNet config.yaml path (``diag.key_map``, ``diag.root_id``).
        mano: an optional MANO layer for the convention checks.
        max_samples: check only the first N samples (overrides ``diag.max_samples``).
        overlay: a ``.png`` path: the contact sheet of the ``overlay_samples`` worst samples
            (:mod:`utnet_diag.pictures.overlay`).

    Returns:
        Report ``check-batch`` with one result per check, a ``batch`` section (and
        ``pictures``).
    """
    if overlay is not None:
        check_overlay_path(overlay, overlay_samples)
    cfg = resolve_config(config)
    if max_samples is not None:
        cfg = replace(cfg, max_samples=max_samples)
    loaded, problems = resolve_batch(batch, cfg)
    checks = batch_check_results(loaded, cfg, mano, problems)
    sections: dict[str, Any] = {"batch": batch_section(loaded)}
    if overlay is not None:
        sections.update(pictures_section(write_overlay(
            overlay, loaded, None, checks, cfg.weights, cfg.root_id, overlay_samples)))  # fmt: skip
    return Report(COMMAND, checks, sections)
