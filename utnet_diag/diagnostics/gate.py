"""``gate``: check-batch, loss-breakdown and grad-flow in one process, for CI.

One model load and one forward pass (kept with its graph) are shared: loss-breakdown reads the
detached outputs and loss values, grad-flow differentiates the same graph. The report holds the
batch checks (families batch/convention), the model/checkpoint checks, the loss and prediction
checks, and the gradient checks, with sections for the loss table, metrics and gradients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from utnet_diag.diagnostics.amp import amp_checks, check_mode
from utnet_diag.diagnostics.check_batch import batch_check_results, batch_section
from utnet_diag.diagnostics.grad_flow import grad_from_forward
from utnet_diag.diagnostics.loss_breakdown import breakdown_from_forward
from utnet_diag.diagnostics.nan_origin import NanOrigin
from utnet_diag.diagnostics.runner import (
    DEFAULT_SEED,
    detach_outputs,
    forward_pass,
    load_inputs,
    run_section,
    running,
    training_step,
)
from utnet_diag.errors import InputError
from utnet_diag.pictures.overlay import (
    DEFAULT_SAMPLES,
    check_overlay_path,
    write_overlay,
)
from utnet_diag.report.result import Report
from utnet_diag.report.sections import pictures_section
from utnet_diag.run_options import RunOptions, given

COMMAND = "gate"


def gate(
    checkpoint: str | Path | None = None,
    batch: Any = None,
    config: Any = None,
    *,
    model: Any = None,
    options: RunOptions | None = None,
    exact: bool = False,
    depth: int = 1,
    seed: int = DEFAULT_SEED,
    metric_protocol: str | None = None,
    clip_grad_norm: float | None = None,
    amp: str | None = None,
    overlay: str | Path | None = None,
    overlay_samples: int = DEFAULT_SAMPLES,
    **fields: Any,
) -> Report:
    """Every check utnet-diag has for a model and a batch, from one load and one forward.

    With no checkpoint, model source or batch, the embedded reference model and default batch
    are used, so ``gate()`` works on a fresh install. ``model`` may be an already loaded model.
    ``options``: which model, batch and config (:class:`utnet_diag.run_options.RunOptions`);
    ``fields`` (``repo=``, ``mano=``, ``device=``, ...) replace some of them.
    ``metric_protocol`` ('freihand', 'ho3d', 'dexycb') adds that benchmark's official joint
    metrics to the metrics section. ``clip_grad_norm`` (0: none) replaces the config's
    ``optimizer.clip_grad_norm`` in the step checks. ``amp`` ('fp16', 'bf16') adds the step
    under autocast (:mod:`utnet_diag.diagnostics.amp`). ``overlay`` (a ``.png`` path) draws the
    ``overlay_samples`` worst samples with the predictions (:mod:`utnet_diag.pictures.overlay`).
    Returns Report ``gate``; ``report.exit_code(fail_on)`` is the CLI's exit code.
    """

    if depth < 1:
        raise InputError(f"--depth must be >= 1, got {depth}")
    check_mode(amp)
    if overlay is not None:
        check_overlay_path(overlay, overlay_samples)
    opts = RunOptions.of(
        options, **given(checkpoint=checkpoint, batch=batch, config=config), **fields
    )
    inputs = load_inputs(opts, model=model)
    host = inputs.host_batch if inputs.host_batch is not None else inputs.batch
    # mano_consistency compares the labels with the MANO they were made with: the user's --mano
    # or their checkout's configured MANO file, or the embedded hand for the embedded batch;
    # never the embedded hand against user labels
    user_mano = opts.mano is not None or getattr(inputs.loaded, "user_code", False)
    labels_mano = getattr(inputs.loaded, "mano", None) if user_mano or opts.batch is None else None
    checks = batch_check_results(host, inputs.config, labels_mano)
    checks += list(getattr(inputs.loaded, "checks", []) or [])
    with training_step(inputs.model, seed), running(inputs.loaded):
        fwd = forward_pass(inputs, grad=True, seed=seed)
        loss_checks, loss_sections = breakdown_from_forward(fwd, metric_protocol=metric_protocol)
        origin = loss_sections.get("nan_origin")
        grad_checks, grad_sections, _ = grad_from_forward(
            fwd, exact=exact, depth=depth, nan_origin=_origin_object(origin),
            clip_grad_norm=clip_grad_norm,
        )  # fmt: skip
    amp_results, amp_section = amp_checks(inputs, fwd, amp, seed)
    sections: dict[str, Any] = {"run": run_section(inputs, fwd), "batch": batch_section(host)}
    sections.update(loss_sections)
    sections.update(grad_sections)
    sections.update(amp_section)
    every = checks + loss_checks + grad_checks + amp_results
    if overlay is not None:
        sections.update(pictures_section(write_overlay(
            overlay, inputs.batch, detach_outputs(fwd.outputs), every, inputs.config.weights,
            inputs.config.root_id, overlay_samples)))  # fmt: skip
    return Report(COMMAND, every, sections)


def _origin_object(origin: Any) -> Any:
    """loss-breakdown's ``nan_origin`` section as the NanOrigin it was made from."""
    return None if origin is None else NanOrigin(**origin.to_dict())
