"""``loss-breakdown``: every loss term of the spec for one forward pass, held to the spec's ranges.

For each term: the value the training log prints, the weight in effect and where it came from,
the weighted value, its share of the total, the batch size and the per-element mean error beside
each batch sum (mm for 3D, crop units and pixels at a 256-pixel crop for 2D). Plus MPJPE and
PA-MPJPE, and the checks of ``utnet_diag.checks.loss`` and the prediction conventions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from utnet_diag.checks.conventions import PREDICTION_CONVENTION_CHECKS
from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.checks.loss import LOSS_CHECKS, PREDICTION_CHECKS
from utnet_diag.diagnostics.advisor import advice_for_forward
from utnet_diag.diagnostics.amp import amp_checks, check_mode
from utnet_diag.diagnostics.loss_table import LossSummary, summarize_terms
from utnet_diag.diagnostics.metrics import pose_metrics
from utnet_diag.diagnostics.nan_origin import locate_forward
from utnet_diag.diagnostics.runner import (
    DEFAULT_SEED,
    ForwardResult,
    all_finite,
    detach_outputs,
    forward_pass,
    load_inputs,
    mano_extras,
    run_section,
    running,
    training_step,
)
from utnet_diag.evaluation.batch_metrics import protocol_metrics
from utnet_diag.pictures.overlay import (
    DEFAULT_SAMPLES,
    check_overlay_path,
    write_overlay,
)
from utnet_diag.report.result import CheckResult, Report
from utnet_diag.report.sections import MetricsSection, NanOriginSection, pictures_section
from utnet_diag.run_options import RunOptions, given

__all__ = ["LossSummary", "breakdown_from_forward", "loss_breakdown", "summarize_terms"]


def metrics_section(
    pred3d: torch.Tensor, gt3d: torch.Tensor, root_id: int, metric_protocol: str | None = None
) -> MetricsSection:
    """MPJPE / PA-MPJPE of predicted joints (B, 21, 3) mm against ground truth (B, 21, 3|4), with
    the convention they follow, and ``metric_protocol``'s official joint metrics beside them."""
    gt3d = gt3d.to(pred3d.device)
    protocol = None
    if metric_protocol is not None:
        coords = gt3d[..., :3].detach().cpu().double().numpy()
        visible = gt3d[..., 3].detach().cpu().numpy() > 0 if gt3d.shape[-1] == 4 else None
        pred = pred3d.detach().cpu().double().numpy()
        protocol = protocol_metrics(metric_protocol, pred, coords, visible)
    return MetricsSection(
        **pose_metrics(pred3d, gt3d, root_id),
        convention=f"MPJPE: each side minus its joint {root_id} (wrist), mm; PA-MPJPE: similarity"
        " Procrustes (rotation, scale, translation; no reflections) on the visible joints, mm;"
        " the mean over samples of the per-sample mean over visible joints",
        protocol=protocol,
    )


def breakdown_from_forward(
    fwd: ForwardResult, nan_origin: Any = None, metric_protocol: str | None = None
) -> tuple[list[CheckResult], dict[str, Any]]:
    """The loss-breakdown checks and sections for a forward pass that already ran.

    ``nan_origin`` is searched for (a hooked re-run) only when a term is non-finite and none is
    given. ``metric_protocol`` ('freihand', 'ho3d', 'dexycb') adds that benchmark's official
    joint metrics to the metrics section. Returns (checks, sections) so ``gate`` can merge them.
    """
    summary = summarize_terms(fwd)
    outputs = detach_outputs(fwd.outputs)
    finite = all(math.isfinite(r["logged"]) for r in summary.rows) and math.isfinite(summary.total)
    if nan_origin is None and not (finite and all_finite(outputs)):
        nan_origin = locate_forward(fwd.inputs, seed=fwd.seed)
    ctx = CheckContext(
        batch=fwd.batch,
        outputs=outputs,
        losses=summary,
        mano=getattr(fwd.inputs.loaded, "mano", None),
        config=fwd.config,
        model=fwd.inputs.model,
        extras={
            "nan_origin": nan_origin,
            "image_size": getattr(fwd.inputs.loaded, "image_size", None),
            **mano_extras(fwd.inputs.loaded),
        },
    )
    checks = run_checks(LOSS_CHECKS.specs, ctx)
    checks += run_checks(PREDICTION_CHECKS.specs, ctx, prior=checks)
    checks += run_checks(PREDICTION_CONVENTION_CHECKS.specs, ctx, prior=checks)
    sections: dict[str, Any] = {"loss_table": summary.to_section()}
    gt3d = fwd.batch.get("keypoints_3d")
    pred3d = outputs.get("keypoints_3d")
    if isinstance(gt3d, torch.Tensor) and isinstance(pred3d, torch.Tensor):
        sections["metrics"] = metrics_section(pred3d, gt3d, fwd.config.root_id, metric_protocol)
    if nan_origin is not None:
        sections["nan_origin"] = NanOriginSection(**nan_origin.to_dict())
    return checks, sections


def loss_breakdown(
    model: Any = None,
    batch: Any = None,
    *,
    options: RunOptions | None = None,
    seed: int = DEFAULT_SEED,
    target_shares: dict[str, float] | None = None,
    metric_protocol: str | None = None,
    amp: str | None = None,
    overlay: str | Path | None = None,
    overlay_samples: int = DEFAULT_SAMPLES,
    **fields: Any,
) -> Report:
    """Run the model once on ``batch`` and report every loss term against the spec.

    Args:
        model: a LoadedModel (``utnet_diag.load_model``), or None to load one from the options
            (``checkpoint``, ``repo``, ``model_factory``, ...); with nothing, the embedded
            reference model.
        batch: a Batch, a path, or None for the embedded default batch.
        options: which model, batch and config (:class:`utnet_diag.run_options.RunOptions`);
            ``fields`` (``config=``, ``preset=``, ``device=``, ...) replace some of them.
        target_shares: gradient shares the ``weight_advice`` section advises weights for
            (one gradient pass, weights unchanged; default equal 2D and 3D joint).
        metric_protocol: 'freihand', 'ho3d' or 'dexycb': that benchmark's official joint
            metrics beside MPJPE and PA-MPJPE.
        amp: 'fp16' or 'bf16': the forward, losses and backward again under autocast
            (:mod:`utnet_diag.diagnostics.amp`), with the ``amp`` checks and section.
        overlay: a ``.png`` path: the contact sheet of the ``overlay_samples`` worst samples
            with the predictions drawn (:mod:`utnet_diag.pictures.overlay`).
    Returns:
        Report ``loss-breakdown`` with sections ``run``, ``loss_table``, ``metrics``,
        ``weight_advice`` (and ``amp``, ``pictures``).
    """
    check_mode(amp)
    if overlay is not None:
        check_overlay_path(overlay, overlay_samples)
    inputs = load_inputs(RunOptions.of(options, **given(batch=batch), **fields), model=model)
    with training_step(inputs.model, seed), running(inputs.loaded):
        fwd = forward_pass(inputs, grad=True, seed=seed)  # grad for the weight advice
        checks, sections = breakdown_from_forward(fwd, metric_protocol=metric_protocol)
        sections["weight_advice"] = advice_for_forward(fwd, target_shares)
    amp_results, amp_section = amp_checks(inputs, fwd, amp, seed)
    checks += amp_results
    sections.update(amp_section)
    if overlay is not None:
        sections.update(pictures_section(write_overlay(
            overlay, inputs.batch, detach_outputs(fwd.outputs), checks, fwd.config.weights,
            fwd.config.root_id, overlay_samples)))  # fmt: skip
    model_checks = list(getattr(inputs.loaded, "checks", []) or [])
    return Report(
        "loss-breakdown", model_checks + checks, {"run": run_section(inputs, fwd), **sections}
    )
