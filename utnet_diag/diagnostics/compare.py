"""``compare``: the same batch through two checkpoints, side by side with deltas.

Both checkpoints are loaded the same way (same model source, config, MANO and device); each runs
one training-mode forward with the same seed through the shared runner
(:mod:`utnet_diag.diagnostics.runner`), then the gradients of its loss are taken with
``torch.autograd.grad`` (:func:`utnet_diag.diagnostics.grad_flow.compute_grad_stats`), so neither
model's weights, buffers or ``.grad`` change and no file is written.

Rows (``compare`` section): the spec's loss terms and the total, MPJPE / PA-MPJPE / Avg Metric
(mm), the total gradient norm and the gradient norm of each top-level module group, and each
term's share of the gradient at the trunk/heads boundary. Each row has ``a``, ``b``, ``delta`` =
b - a and ``relative`` = delta / |a| (None when a is 0 and b is not; 0 when both are 0).

With ``max_regression`` (a fraction, 0.05 = 5%) every gated row gets a ``compare_regression:<row>``
check that fails when B is worse than A by more than that fraction: the total, the data terms
(2D, 3D joint, 3D vertex, aux) and the three pose metrics, all lower-is-better. The prior term
is shown but not gated (a regularizer that is near 0 at init and grows as a model fits), and
gradient norms and shares are shown but not gated (neither larger nor smaller is "better").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from utnet_diag.checks.engine import CheckRegistry, Outcome
from utnet_diag.diagnostics.grad import compute_grad_stats
from utnet_diag.diagnostics.metrics import pose_metrics
from utnet_diag.diagnostics.runner import forward_pass, load_inputs, running, training_step
from utnet_diag.errors import InputError
from utnet_diag.model.sources import load_model
from utnet_diag.report.result import CheckResult, Report, Status
from utnet_diag.report.sections import CompareRunSection, CompareSection
from utnet_diag.run_options import RunOptions
from utnet_diag.spec import TERM, TOTAL_LABEL

TERM_LABELS = {"total": TOTAL_LABEL, **{key: term.label for key, term in TERM.items()}}
METRIC_LABELS = {"mpjpe_mm": "MPJPE", "pa_mpjpe_mm": "PA-MPJPE", "avg_metric_mm": "Avg Metric"}
PRIOR_HEALTHY = TERM["loss_prior"].healthy_below  # spec 9.2: "< 100"
REGRESSION_HINT = "run utnet-diag loss-breakdown and grad-flow on B to see which term and module"
COMPARE_CHECKS = CheckRegistry("compare")
COMPARE_CHECKS.declare(
    "compare_regression",
    "B's metrics and loss terms (the total and every term) are not worse than A's by more than"
    " --max-regression (one check per row: compare_regression:<row>; the prior fails only once"
    " it also leaves the spec's healthy range)",
    REGRESSION_HINT,
)


@dataclass
class ModelRun:
    """One checkpoint's forward/backward on the batch (plain floats).

    ``terms``: loss term -> value as logged (batch sums; aux already weighted), plus ``total``;
    ``metrics``: mm; ``group_grad_norms``: top-level module group -> gradient norm of the total;
    ``term_shares``: term -> share of the gradient at the trunk/heads boundary.
    """

    source: str
    terms: dict[str, float]
    metrics: dict[str, float]
    group_grad_norms: dict[str, float]
    total_grad_norm: float
    term_shares: dict[str, float] = field(default_factory=dict)
    boundary_norms: dict[str, float] = field(default_factory=dict)


def check_max_regression(value: float | None) -> float | None:
    """``value`` if it is a usable fraction (finite, >= 0), else InputError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"--max-regression must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise InputError(
            f"--max-regression must be a finite fraction >= 0 (0.05 = 5%), got {value}"
        )
    return float(value)


def run_model(inputs: Any, seed: int = 0) -> ModelRun:
    """Loss terms, pose metrics and gradient norms of ``inputs.model`` on ``inputs.batch``."""

    with training_step(inputs.model, seed), running(inputs.loaded):
        fwd = forward_pass(inputs, grad=True, seed=seed)
        stats = compute_grad_stats(fwd)
    terms = {k: float(v.detach()) for k, v in fwd.terms.terms.items()}
    terms["total"] = float(fwd.terms.total.detach())
    metrics = pose_metrics(
        fwd.outputs["keypoints_3d"].detach(), inputs.batch["keypoints_3d"], inputs.config.root_id
    )
    return ModelRun(
        source=str(getattr(inputs.loaded, "source", "")),
        terms=terms,
        metrics={k: float(metrics[k]) for k in METRIC_LABELS},
        group_grad_norms={g["name"]: float(g["grad_norm"]) for g in stats.groups},
        total_grad_norm=float(stats.total_grad_norm),
        term_shares={t["term"]: t["share"] for t in stats.terms if t.get("share") is not None},
        boundary_norms={
            t["term"]: t["boundary_norm"] for t in stats.terms if t.get("boundary_norm") is not None
        },
    )


def delta_row(
    name: str, label: str, kind: str, a: float | None, b: float | None, unit: str = ""
) -> dict[str, Any]:
    """One side-by-side row: ``delta`` = b - a, ``relative`` = delta / |a|."""
    delta = relative = None
    if a is not None and b is not None:
        delta = b - a
        if a == b:
            relative = 0.0
        elif a != 0 and math.isfinite(a):
            relative = delta / abs(a)
    return {"name": name, "label": label, "kind": kind, "unit": unit, "a": a, "b": b,
            "delta": delta, "relative": relative}  # fmt: skip


def compare_runs(run_a: ModelRun, run_b: ModelRun) -> list[dict[str, Any]]:
    """Rows for every quantity both runs have (terms, metrics, gradient norms, shares)."""
    rows = []
    for name in ["total", *[t for t in run_a.terms if t != "total"]]:
        if name in run_b.terms:
            label = TERM_LABELS.get(name, name)
            rows.append(delta_row(name, label, "loss", run_a.terms[name], run_b.terms[name]))
    for name, label in METRIC_LABELS.items():
        rows.append(delta_row(name, label, "metric", run_a.metrics[name], run_b.metrics[name],
                              "mm"))  # fmt: skip
    rows.append(delta_row("grad_norm", "gradient norm (all)", "grad", run_a.total_grad_norm,
                          run_b.total_grad_norm))  # fmt: skip
    for group, norm in run_a.group_grad_norms.items():
        if group in run_b.group_grad_norms:
            rows.append(delta_row(f"grad_norm:{group}", f"gradient norm {group}", "grad", norm,
                                  run_b.group_grad_norms[group]))  # fmt: skip
    for term, share in run_a.term_shares.items():
        if term in run_b.term_shares:
            label = f"gradient share {TERM_LABELS.get(term, term)}"
            rows.append(delta_row(f"grad_share:{term}", label, "share", share,
                                  run_b.term_shares[term]))  # fmt: skip
    return rows


def _gated(row: dict[str, Any]) -> bool:
    """Every loss term (the total too) and every metric is gated."""
    return row["kind"] in ("metric", "loss")


def regression_checks(rows: list[dict[str, Any]], max_regression: float) -> list[CheckResult]:
    """``compare_regression:<row>`` per gated row: fail when B > A by more than the fraction."""
    checks = []
    for row in rows:
        if not _gated(row):
            continue
        a, b, rel = row["a"], row["b"], row["relative"]
        unit = f" {row['unit']}" if row["unit"] else ""
        change = "" if rel is None else f" ({rel:+.1%})"
        text = f"{row['label']}: A {a:.6g}{unit} -> B {b:.6g}{unit}{change}"
        limit = f"limit +{max_regression:.1%}"
        if not math.isfinite(b) and math.isfinite(a):
            status, text = Status.FAIL, f"{text}: B is not finite"
        elif rel is None:  # a == 0 < b, or a not finite
            worse = math.isfinite(a) and b > a
            status = Status.FAIL if worse else Status.PASS
            text += ": A is 0, B is not" if worse else ""
        else:
            status = Status.FAIL if rel > max_regression else Status.PASS
            text += f", {'over' if status is Status.FAIL else 'within'} the {limit}"
        if status is Status.FAIL and row["name"] == "loss_prior" and b < PRIOR_HEALTHY:
            # a regulariser near 0 moves by large factors at no cost: it fails past the spec's
            # healthy range only
            status = Status.PASS
            text += f"; within the spec's healthy < {PRIOR_HEALTHY:g}, so it does not fail"
        outcome = Outcome(status, text, rel, max_regression,
                          details={"a": a, "b": b, "delta": row["delta"]})  # fmt: skip
        checks.append(COMPARE_CHECKS.result("compare_regression", outcome, subject=row["name"]))
    return checks


def _architecture(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _same_architecture(inputs_a: Any, inputs_b: Any, path_a: Path, path_b: Path) -> None:
    arch_a, arch_b = _architecture(inputs_a.model), _architecture(inputs_b.model)
    if arch_a == arch_b:
        return
    only_a = sorted(set(arch_a) - set(arch_b))
    only_b = sorted(set(arch_b) - set(arch_a))
    shape = next((k for k in arch_a if k in arch_b and arch_a[k] != arch_b[k]), None)
    if shape is not None:
        why = f"'{shape}' is {list(arch_a[shape])} in A and {list(arch_b[shape])} in B"
    elif only_a:
        why = f"'{only_a[0]}' and {len(only_a) - 1} more tensors are only in A"
    else:
        why = f"'{only_b[0]}' and {len(only_b) - 1} more tensors are only in B"
    raise InputError(
        f"the two checkpoints build different models ({why}): compare needs one architecture",
        path=str(path_b),
        hint=f"compare checkpoints of the same model configuration as {path_a.name}",
    )


def _tag(checks: list[CheckResult], side: str, path: Path) -> list[CheckResult]:
    """The loader's checks of one side, with ids ``<id>_a`` / ``<id>_b``."""
    return [replace(c, id=f"{c.id}_{side}", message=f"{side.upper()} ({path.name}): {c.message}")
            for c in checks]  # fmt: skip


def compare(
    checkpoint_a: str | Path,
    checkpoint_b: str | Path,
    *,
    options: RunOptions | None = None,
    max_regression: float | None = None,
    seed: int = 0,
    **fields: Any,
) -> Report:
    """Run the same batch through two checkpoints and report both with deltas.

    Args:
        checkpoint_a, checkpoint_b: checkpoint files of the same architecture (A: the baseline).
        options: the batch, config and model source both share
            (:class:`utnet_diag.run_options.RunOptions`; its checkpoint is ignored); ``fields``
            (``batch=``, ``repo=``, ...) replace some of them.
        max_regression: when given, a fraction: ``compare_regression:<row>`` checks fail when
            B's loss or metric is higher than A's by more than it.
    Returns:
        Report ``compare`` with sections ``run`` and ``compare`` (``rows``).
    Raises:
        InputError: a missing or unreadable checkpoint, two architectures, a bad fraction.
    """

    max_regression = check_max_regression(max_regression)
    path_a, path_b = Path(checkpoint_a), Path(checkpoint_b)
    opts = RunOptions.of(options, **fields)
    inputs_a = load_inputs(opts, checkpoint=path_a)
    model_b = load_model(path_b, config=inputs_a.config, **opts.model_source())
    inputs_b = load_inputs(opts, batch=inputs_a.host_batch, config=inputs_a.config, model=model_b)
    _same_architecture(inputs_a, inputs_b, path_a, path_b)
    run_a = run_model(inputs_a, seed)
    run_b = run_model(inputs_b, seed)
    rows = compare_runs(run_a, run_b)
    checks = _tag(list(getattr(inputs_a.loaded, "checks", []) or []), "a", path_a)
    checks += _tag(list(getattr(inputs_b.loaded, "checks", []) or []), "b", path_b)
    if max_regression is not None:
        checks += regression_checks(rows, max_regression)
    warnings = [f"A: {w}" for w in getattr(inputs_a.loaded, "warnings", [])]
    warnings += [f"B: {w}" for w in getattr(inputs_b.loaded, "warnings", [])]
    run = CompareRunSection(
        a=str(path_a),
        b=str(path_b),
        model_a=run_a.source,
        model_b=run_b.source,
        batch=(
            "embedded default"
            if opts.batch is None
            else str(opts.batch)
            if isinstance(opts.batch, (str, Path))
            else "in-memory batch"
        ),
        batch_size=int(inputs_a.batch["keypoints_3d"].shape[0]),
        device=str(inputs_a.device),
        weights=inputs_a.config.weights.preset,
        seed=seed,
        warnings=warnings or None,
    )
    section = CompareSection(rows=rows, max_regression=max_regression)
    return Report("compare", checks, {"run": run, "compare": section})
