"""``grad-flow``: one training step's gradients, per module group and per loss term.

Nothing is written to the model: gradients come from ``torch.autograd.grad`` (``.grad`` fields
untouched, no optimizer step), the forward runs inside :func:`runner.training_step` (modes and
buffers restored). The gradient pass itself is :mod:`utnet_diag.diagnostics.grad`: cost of its
default path, beyond a plain training step, one backward per active term but the largest from
where the term enters the graph the terms share (its frontier) to the trunk/heads boundary,
through the shared heads only, and one walk of the autograd graph. ``exact=True`` runs one full
backward per term and reports exact per-term, per-group gradient norms.
"""

from __future__ import annotations

import io
import math
from typing import Any

import torch

from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.checks.grad import GRAD_CHECKS
from utnet_diag.checks.step import STEP_CHECKS
from utnet_diag.diagnostics.advisor import advice_for_forward
from utnet_diag.diagnostics.amp import amp_checks, check_mode
from utnet_diag.diagnostics.grad import GradStats, compute_grad_stats
from utnet_diag.diagnostics.grad.summary import cyclic_gc_paused
from utnet_diag.diagnostics.nan_origin import locate_backward, locate_forward
from utnet_diag.diagnostics.resources import out_of_memory_as_input_error
from utnet_diag.diagnostics.runner import (
    DEFAULT_SEED,
    ForwardResult,
    all_finite,
    forward_pass,
    load_inputs,
    run_section,
    running,
    training_step,
)
from utnet_diag.diagnostics.step import step_section
from utnet_diag.errors import InputError
from utnet_diag.io.files import write_bytes_atomic
from utnet_diag.report.result import CheckResult, Report, Status
from utnet_diag.report.sections import NanOriginSection
from utnet_diag.run_options import RunOptions, given


def grad_from_forward(
    fwd: ForwardResult,
    *,
    exact: bool = False,
    depth: int = 1,
    nan_origin: Any = None,
    clip_grad_norm: float | None = None,
) -> tuple[list[CheckResult], dict[str, Any], GradStats]:
    """grad-flow's checks and sections for a forward pass that kept its graph (used by gate).

    ``nan_origin``: a forward origin already found (gate passes loss-breakdown's), else searched
    for only when a gradient is non-finite. The step checks use the config's optimiser, with
    ``clip_grad_norm`` (0: none) replacing its clipping when given."""
    with out_of_memory_as_input_error(fwd.batch.size, fwd.inputs.device):
        stats = compute_grad_stats(fwd, exact=exact, depth=depth, keep_grads=True)
    origin = nan_origin
    bad = any(g["nonfinite"] for g in stats.groups) or not math.isfinite(stats.total_grad_norm)
    if bad and origin is None:
        forward_ok = all_finite(fwd.outputs) and bool(torch.isfinite(fwd.terms.total))
        origin = locate_forward(fwd.inputs, fwd.seed) if not forward_ok else None
        if origin is None:
            origin = locate_backward(fwd.inputs, fwd.seed)
    ctx = CheckContext(batch=fwd.batch, config=fwd.config, model=fwd.inputs.model,
                       extras={"grad": stats, "nan_origin": origin})  # fmt: skip
    checks = run_checks(GRAD_CHECKS.specs, ctx)
    sections: dict[str, Any] = dict(stats.to_sections())
    if ctx.results["grad_finite"].status is Status.PASS:
        settings = fwd.config.optimizer
        if clip_grad_norm is not None:
            settings = settings.with_clip(clip_grad_norm, "--clip-grad-norm")
        ctx.extras["step"] = sections["step"] = step_section(stats, settings)
    stats.release()
    checks += run_checks(STEP_CHECKS.specs, ctx, prior=checks)
    if origin is not None:
        sections["nan_origin"] = NanOriginSection(**origin.to_dict())
    return checks, sections, stats


def grad_flow(
    model: Any = None,
    batch: Any = None,
    *,
    options: RunOptions | None = None,
    exact: bool = False,
    depth: int = 1,
    seed: int = DEFAULT_SEED,
    target_shares: dict[str, float] | None = None,
    clip_grad_norm: float | None = None,
    amp: str | None = None,
    **fields: Any,
) -> Report:
    """One training step's gradients, per module group and per loss term; weights unchanged.

    Args:
        model: a LoadedModel, or None to load one from the options.
        batch: a Batch, a path, or None for the embedded default.
        options: which model, batch and config (:class:`utnet_diag.run_options.RunOptions`);
            ``fields`` (``config=``, ``preset=``, ``device=``, ...) replace some of them.
        exact: one full backward per term for exact per-term, per-group norms.
        depth: module-path depth of the groups (1: top-level children).
        target_shares: gradient shares the ``weight_advice`` section advises weights for
            (:mod:`utnet_diag.diagnostics.advisor`; default equal 2D and 3D joint).
        clip_grad_norm: the max global gradient norm the step checks clip to (0: none),
            replacing the config's ``optimizer.clip_grad_norm`` (default UTNet's 1.0).
        amp: 'fp16' or 'bf16': the step again under autocast (:mod:`utnet_diag.diagnostics.amp`).
    Returns:
        Report ``grad-flow`` with sections ``run``, ``grad_modules``, ``grad_terms``, ``step``,
        ``weight_advice`` (and ``amp``).
    """
    if depth < 1:
        raise InputError(f"--depth must be >= 1, got {depth}")
    check_mode(amp)
    inputs = load_inputs(RunOptions.of(options, **given(batch=batch), **fields), model=model)
    with training_step(inputs.model, seed), running(inputs.loaded), cyclic_gc_paused():
        fwd = forward_pass(inputs, grad=True, seed=seed)
        checks, sections, stats = grad_from_forward(
            fwd, exact=exact, depth=depth, clip_grad_norm=clip_grad_norm
        )
        sections["weight_advice"] = advice_for_forward(fwd, target_shares, stats)
    amp_results, amp_section = amp_checks(inputs, fwd, amp, seed)
    checks += amp_results
    sections.update(amp_section)
    model_checks = list(getattr(inputs.loaded, "checks", []) or [])
    return Report("grad-flow", model_checks + checks, {"run": run_section(inputs, fwd), **sections})


def save_grad_plot(report: Report, path: Any) -> None:
    """Per module group: gradient norm and grad/param ratio (bars, log scale; blue trunk, orange
    heads); beside them the per-term attribution as a heat map of terms x groups: each term's
    gradient norm in each group with ``--exact`` (log colour scale), else which groups each
    term reaches. Written atomically as PNG; needs matplotlib (the ``plot`` extra)."""
    fig = grad_figure(report)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    write_bytes_atomic(path, buf.getvalue())


def grad_figure(report: Report) -> Any:
    """The matplotlib Figure of :func:`save_grad_plot`."""
    # deferred: matplotlib, the optional plot extra, loaded only when a plot is drawn
    from utnet_diag.logs.plot import new_figure

    groups = report.sections.get("grad_modules", {}).get("groups", [])
    terms = [t for t in report.sections.get("grad_terms", {}).get("terms", []) if t["active"]]
    names = [g["name"] for g in groups]
    norms = [
        g["grad_norm"] if g["grad_norm"] and math.isfinite(g["grad_norm"]) else 0 for g in groups
    ]
    ratios = [g["ratio"] or 0 for g in groups]
    fig = new_figure(figsize=(13, 0.45 * len(names) + 1.8))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": (1, 1, 1.2)})
    colors = ["tab:blue" if g["role"] == "trunk" else "tab:orange" for g in groups]
    for ax, values, title in ((axes[0], norms, "gradient norm"), (axes[1], ratios, "grad / param")):
        ax.barh(names, [max(v, 1e-30) for v in values], color=colors)
        ax.set_xscale("log")
        ax.set_title(title)
        ax.invert_yaxis()
    axes[1].set_yticklabels([])
    _attribution(fig, axes[2], groups, terms)
    fig.suptitle("utnet-diag grad-flow (bars: blue trunk, orange heads)")
    fig.tight_layout()
    return fig


def _attribution(
    fig: Any, ax: Any, groups: list[dict[str, Any]], terms: list[dict[str, Any]]
) -> None:
    """The terms x groups heat map: exact per-term norms (log colours) or reach (0/1)."""
    import numpy as np
    from matplotlib.colors import LogNorm

    if not terms or not groups:
        ax.set_axis_off()
        ax.set_title("per-term attribution: no active loss term")
        return
    exact = bool(groups) and all("term_norms" in g for g in groups)
    grid = np.zeros((len(groups), len(terms)))
    for i, g in enumerate(groups):
        for j, t in enumerate(terms):
            if exact:
                grid[i, j] = g["term_norms"].get(t["term"], 0.0)
            else:
                grid[i, j] = 1.0 if g["name"] in t["reaches"] else 0.0
    labels = [t["term"].removeprefix("loss_") for t in terms]
    if exact and (grid > 0).any():
        shown = np.where(grid > 0, grid, np.nan)
        image = ax.imshow(shown, aspect="auto", cmap="viridis",
                          norm=LogNorm(np.nanmin(shown), np.nanmax(shown)))  # fmt: skip
        fig.colorbar(image, ax=ax, label="term's gradient norm in the group")
        ax.set_title("per-term gradient (--exact)")
    else:
        ax.imshow(grid, aspect="auto", cmap="Greens", vmin=0, vmax=1.4)
        ax.set_title("groups each term reaches (--exact: norms)")
    ax.set_xticks(range(len(terms)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(groups)), [g["name"] for g in groups])
