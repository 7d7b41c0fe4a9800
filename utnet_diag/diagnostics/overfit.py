"""``overfit``: train a copy of the model on one batch and check that it can memorise it.

A model that cannot overfit one batch has a wiring bug: a detached head, a frozen module, a
bypassed MANO layer, a loss that does not reach the weights. The run works on a deep copy of the
model (the loaded weights are never changed and nothing is written), with AdamW (no weight decay,
so a weight without gradient stays exactly where it was) and a forked, seeded RNG.

Speed: a small model on the CPU (fewer than ``SMALL_MODEL_PARAMETERS``) trains with one intra-op
thread for the run (restored afterwards). Its ops take microseconds, so extra threads gain
nothing, and on a busy CPU their spin-waiting made each step about 20x slower: the embedded
default (125,760 parameters, batch 8) took 0.46-0.60 s per step with 2 threads on a loaded 2-core
machine and 0.028 s with one. At the defaults (300 steps, lr 1e-3, pass below 10% and 10 mm)
the embedded default model on the embedded batch goes from total 327.3 to 10-12 (3.1-3.5% of its
start; the last digits depend on the thread count) and MPJPE from 27.5 to 0.8-0.9 mm, in 7-10 s;
it crosses both thresholds after about 100 steps.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from utnet_diag.checks.engine import CheckContext, CheckRegistry, Outcome, run_checks
from utnet_diag.diagnostics.metrics import pose_metrics
from utnet_diag.diagnostics.runner import RunInputs, _gt_vertices, _protocol_model, running
from utnet_diag.errors import InputError
from utnet_diag.io.files import write_bytes_atomic
from utnet_diag.losses import compute_terms
from utnet_diag.losses.functional import TERM_LABELS
from utnet_diag.report.result import Report
from utnet_diag.report.sections import OverfitCurvesSection, OverfitSection
from utnet_diag.spec import TERM

PRIOR_HEALTHY = TERM["loss_prior"].healthy_below  # spec 9.2: "< 100"

OVERFIT_CHECKS = CheckRegistry("overfit")
# Below this many parameters a CPU run uses one intra-op thread (see the module docstring).
SMALL_MODEL_PARAMETERS = 1_000_000


@dataclass(frozen=True)
class OverfitOptions:
    """Steps, learning rate and pass thresholds of an overfit run."""

    steps: int = 300
    lr: float = 1e-3
    target_fraction: float = 0.1  # pass when the final total < this fraction of the first
    mpjpe_threshold_mm: float = 10.0
    stall_fraction: float = 0.9  # a term still above this fraction of its start has stalled
    moved_rtol: float = 1e-7  # a group whose relative weight change is below this did not move
    seed: int = 0
    cpu_threads: int | None = None  # None: 1 for a small model on the CPU, else torch's setting


@dataclass
class OverfitHistory:
    """Per-step values: ``terms[name]`` and ``total`` (floats), ``mpjpe_mm`` per step."""

    terms: dict[str, list[float]]
    total: list[float]
    mpjpe_mm: list[float]
    first_nonfinite_step: int | None = None
    seconds: float = 0.0
    cpu_threads: int | None = None  # the intra-op threads used on the CPU (None: on a GPU)


def _working_copy(loaded: Any) -> tuple[Any, nn.Module]:
    """A loaded model whose ``model`` is a deep copy: training it leaves the original untouched."""
    model = copy.deepcopy(loaded.model)
    if dataclasses.is_dataclass(loaded):
        return dataclasses.replace(loaded, model=model, notes=[]), model
    raise TypeError("overfit needs a utnet_diag LoadedModel (utnet_diag.model.sources.load_model)")


def module_groups_of(model: nn.Module) -> dict[str, list[str]]:
    """Top-level parameter groups: group name -> parameter names (the model's own children)."""
    groups: dict[str, list[str]] = {}
    for name, _ in model.named_parameters():
        groups.setdefault(name.split(".")[0], []).append(name)
    return groups


def _train(
    loaded: Any,
    model: nn.Module,
    named: dict[str, nn.Parameter],
    inputs: RunInputs,
    options: OverfitOptions,
    progress: Callable[[int, dict[str, float]], None] | None,
) -> tuple[OverfitHistory, dict[str, bool]]:
    """The training loop of :func:`train_on_batch` on the working copy: the history and whether
    ``keypoints_3d`` ever changed / started all zero."""
    started = time.perf_counter()
    batch, config = inputs.batch, inputs.config
    gt_vertices = _gt_vertices(inputs)  # MANO on the GT params when the batch has no vertices
    trainable = [p for p in named.values() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.lr, weight_decay=0.0) if trainable else None
    history = OverfitHistory(terms={}, total=[], mpjpe_mm=[])
    first_kp3d: torch.Tensor | None = None
    kp3d_changed = False
    gt3d = batch["keypoints_3d"]
    devices = [p.device.index or 0 for p in trainable if p.device.type == "cuda"][:1]
    with torch.random.fork_rng(devices=devices), running(loaded):
        torch.manual_seed(options.seed)
        model.train()
        for step in range(options.steps):
            outputs = loaded.forward(batch)
            terms = compute_terms(
                outputs, batch, config.weights, root_id=config.root_id, gt_vertices=gt_vertices
            )
            values = {k: float(v.detach()) for k, v in terms.terms.items()}
            total = float(terms.total.detach())
            for key, value in values.items():
                history.terms.setdefault(key, []).append(value)
            history.total.append(total)
            kp3d = outputs["keypoints_3d"].detach()
            history.mpjpe_mm.append(pose_metrics(kp3d, gt3d, config.root_id)["mpjpe_mm"])
            if first_kp3d is None:
                first_kp3d = kp3d.clone()
            elif not kp3d_changed and not torch.equal(kp3d, first_kp3d):
                kp3d_changed = True
            if progress is not None:
                progress(step, {"total": total, **values})
            if not math.isfinite(total):
                history.first_nonfinite_step = step
                break
            if optimizer is None or not terms.total.requires_grad:
                continue
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
    history.seconds = time.perf_counter() - started
    return history, {
        "keypoints_3d_changed": kp3d_changed,
        "keypoints_3d_all_zero": bool(first_kp3d is not None and not first_kp3d.any()),
    }


def train_on_batch(
    inputs: RunInputs,
    options: OverfitOptions,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[OverfitHistory, dict[str, dict[str, Any]], dict[str, Any]]:
    """Train a copy of ``inputs.model`` on ``inputs.batch`` for ``options.steps`` AdamW steps.

    Returns the history, per-group weight movement ({group: {relative_change, tensors, frozen}})
    and facts about the outputs (whether ``keypoints_3d`` ever changed). ``progress(step, values)``
    is called after each step with the step's total and terms.
    """
    loaded, model = _working_copy(inputs.loaded)
    named = dict(model.named_parameters())
    start = {name: p.detach().clone() for name, p in named.items()}
    on_cpu = all(p.device.type == "cpu" for p in named.values())
    threads = options.cpu_threads
    if threads is None and on_cpu:
        small = sum(p.numel() for p in named.values()) < SMALL_MODEL_PARAMETERS
        threads = 1 if small else torch.get_num_threads()
    previous_threads = torch.get_num_threads()
    if on_cpu and threads:
        torch.set_num_threads(threads)
    try:
        history, output_facts = _train(loaded, model, named, inputs, options, progress)
    finally:
        torch.set_num_threads(previous_threads)
    history.cpu_threads = threads if on_cpu else None
    movement: dict[str, dict[str, Any]] = {}
    for group, names in module_groups_of(model).items():
        delta = sum(float((named[n].detach() - start[n]).norm() ** 2) for n in names) ** 0.5
        size = sum(float(start[n].norm() ** 2) for n in names) ** 0.5
        movement[group] = {
            "relative_change": delta / size if size > 0 else delta,
            "tensors": len(names),
            "frozen": sum(not named[n].requires_grad for n in names),
        }
    facts = {
        **output_facts,
        "by_design_frozen": [g for g in movement if "mano" in g.lower()],
    }
    protocol = _protocol_model(model)
    if protocol is not None:
        facts["module_groups"] = protocol.module_groups()
    return history, movement, facts


def _h(ctx: CheckContext) -> OverfitHistory:
    return ctx.extras["history"]


def _opts(ctx: CheckContext) -> OverfitOptions:
    return ctx.extras["options"]


@OVERFIT_CHECKS.check(
    "overfit_finite", hint="lower --lr; run utnet-diag nan-origin on the batch to find the source"
)
def check_finite(ctx: CheckContext) -> Outcome:
    """Every step's loss is finite."""
    history = _h(ctx)
    step = history.first_nonfinite_step
    if step is None:
        return Outcome.ok(f"all {len(history.total)} steps finite")
    bad = [k for k, v in history.terms.items() if not math.isfinite(v[-1])]
    return Outcome.fail(
        f"the total became {history.total[-1]} at step {step}"
        + (f" ({', '.join(TERM_LABELS.get(k, k) for k in bad)})" if bad else ""),
        value=step,
    )


def _stalled_terms(history: OverfitHistory, stall: float) -> list[tuple[str, float]]:
    """(term, final/first) for data terms that started above 0 and ended above ``stall`` of it."""
    out = []
    for key, values in history.terms.items():
        if key == "loss_prior":  # a regularizer: it may grow from ~0 while the data terms fit
            continue
        first, last = values[0], values[-1]
        if first > 0 and math.isfinite(last) and last / first > stall:
            out.append((key, last / first))
    return out


HINT_STALLED = "the stalled term's path to the weights is broken: check utnet-diag grad-flow"


def _hint_too_short(opts: OverfitOptions) -> str:
    return (
        f"no term stalled: the run was too short or the learning rate too low; raise --steps"
        f" (now {opts.steps}) or --lr (now {opts.lr:g})"
    )


@OVERFIT_CHECKS.check(
    "overfit_total_drop",
    requires=("overfit_finite",),
    hint=f"{HINT_STALLED}; if no term stalled, raise --steps or --lr",
)
def check_total_drop(ctx: CheckContext) -> Outcome:
    """The total falls below the target fraction of its first value. On a failure the hint
    depends on the terms: a stalled term points at its gradient path; when every term falls the
    run was too short or the learning rate too low."""
    history, opts = _h(ctx), _opts(ctx)
    first, last = history.total[0], history.total[-1]
    ratio = last / first if first > 0 else 0.0
    stalled = _stalled_terms(history, opts.stall_fraction)
    details = {"first": first, "last": last, "ratio": ratio, "stalled": dict(stalled)}
    text = f"total {first:.6g} -> {last:.6g} in {len(history.total)} steps ({ratio:.1%} of start)"
    if ratio <= opts.target_fraction:
        return Outcome.ok(text, value=ratio, threshold=opts.target_fraction, details=details)
    if stalled:
        names = ", ".join(f"{TERM_LABELS.get(k, k)} at {r:.0%} of its start" for k, r in stalled)
        text += f"; stalled: {names}"
        return Outcome.fail(text, value=ratio, threshold=opts.target_fraction, details=details,
                            hint=HINT_STALLED)  # fmt: skip
    text += f", above the target {opts.target_fraction:.0%}; every term falls, none stalled"
    return Outcome.fail(text, value=ratio, threshold=opts.target_fraction, details=details,
                        hint=_hint_too_short(opts))  # fmt: skip


@OVERFIT_CHECKS.check(
    "overfit_terms",
    requires=("overfit_finite",),
    hint="a term that does not fall on one batch gets no useful gradient: check the module that"
    " produces its prediction (detached head, bypassed MANO, wrong output key)",
)
def check_terms(ctx: CheckContext) -> Outcome:
    """Every data term that starts above 0 falls (none stays above 90% of its start); the prior,
    a regulariser that may grow from about 0 while the data terms fit, is named when it rises,
    and fails once it passes the spec's healthy < 100."""
    history, opts, facts = _h(ctx), _opts(ctx), ctx.extras["facts"]
    stalled = _stalled_terms(history, opts.stall_fraction)
    falls = {k: v[-1] / v[0] for k, v in history.terms.items() if v[0] > 0 and k != "loss_prior"}
    prior = history.terms.get("loss_prior")
    rose = None
    if prior and prior[0] > 0 and math.isfinite(prior[-1]) and prior[-1] > prior[0]:
        rose = (prior[0], prior[-1])
        falls["loss_prior"] = prior[-1] / prior[0]
    prior_text = (
        ""
        if rose is None
        else f"; {TERM_LABELS.get('loss_prior', 'prior')} rose"
        f" {rose[1] / rose[0]:.3g}x ({rose[0]:.3g} -> {rose[1]:.3g}; the spec's healthy < {PRIOR_HEALTHY:g})"
    )
    notes = []
    if not facts["keypoints_3d_changed"]:
        zero = " (all zeros)" if facts["keypoints_3d_all_zero"] else ""
        notes.append(
            f"keypoints_3d never changed during training{zero}: the MANO layer looks bypassed or"
            " its input is cut off"
        )
    prior_bad = rose is not None and rose[1] >= PRIOR_HEALTHY
    if not stalled and not notes and not prior_bad:
        text = ", ".join(
            f"{TERM_LABELS.get(k, k)} {r:.1%}" for k, r in falls.items() if k != "loss_prior"
        )
        every = "every term falls" if rose is None else "every data term falls"
        return Outcome.ok(f"{every} (final/first: {text}){prior_text}", details={"ratios": falls})
    parts = [f"{TERM_LABELS.get(k, k)} stalled at {r:.0%} of its start" for k, r in stalled]
    return Outcome.fail(
        "; ".join(parts + notes) + prior_text, value=len(stalled), details={"ratios": falls}
    )


@OVERFIT_CHECKS.check(
    "overfit_mpjpe",
    requires=("overfit_finite",),
    hint="raise --steps or --lr; if MPJPE does not fall at all, check units (mm) and joint order",
)
def check_mpjpe(ctx: CheckContext) -> Outcome:
    """MPJPE on the training batch falls below the threshold (mm)."""
    history, opts = _h(ctx), _opts(ctx)
    first, last = history.mpjpe_mm[0], history.mpjpe_mm[-1]
    text = f"MPJPE {first:.2f} -> {last:.2f} mm (threshold {opts.mpjpe_threshold_mm:g} mm)"
    if math.isfinite(last) and last < opts.mpjpe_threshold_mm:
        return Outcome.ok(text, value=last, threshold=opts.mpjpe_threshold_mm)
    return Outcome.fail(text, value=last, threshold=opts.mpjpe_threshold_mm)


@OVERFIT_CHECKS.check(
    "overfit_weights_moved",
    hint="a group that did not move gets no gradient: set requires_grad, pass its parameters to"
    " the optimizer, and do not detach its output (utnet-diag grad-flow shows where it stops)",
)
def check_weights_moved(ctx: CheckContext) -> Outcome:
    """Every module group with trainable weights changed (MANO is frozen by design)."""
    movement, opts, facts = ctx.extras["movement"], _opts(ctx), ctx.extras["facts"]
    stuck, frozen = [], []
    for group, info in movement.items():
        if group in facts["by_design_frozen"]:
            continue
        if info["frozen"] == info["tensors"]:
            frozen.append(f"{group} weights did not move (requires_grad is False: frozen)")
        elif info["relative_change"] < opts.moved_rtol:
            stuck.append(f"{group} weights did not move (no gradient reaches them)")
    details = {"movement": movement}
    if stuck or frozen:
        return Outcome.fail(
            "; ".join(frozen + stuck), value=len(stuck) + len(frozen), details=details
        )
    moved = ", ".join(f"{g} {i['relative_change']:.2g}" for g, i in movement.items()
                      if g not in facts["by_design_frozen"])  # fmt: skip
    return Outcome.ok(f"every trainable group moved (relative change: {moved})", details=details)


def overfit(
    inputs: RunInputs,
    options: OverfitOptions | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> Report:
    """Overfit one batch with a copy of the model and report what did not learn."""
    options = options or OverfitOptions()
    history, movement, facts = train_on_batch(inputs, options, progress)
    ctx = CheckContext(
        config=inputs.config,
        extras={"history": history, "movement": movement, "facts": facts, "options": options},
    )
    checks = run_checks(OVERFIT_CHECKS.specs, ctx)
    sections = {
        "overfit": OverfitSection(
            steps=len(history.total),
            lr=options.lr,
            seconds=round(history.seconds, 3),
            cpu_threads=history.cpu_threads,
            batch_size=int(inputs.batch["keypoints_3d"].shape[0]),
            total_first=history.total[0],
            total_last=history.total[-1],
            mpjpe_first_mm=history.mpjpe_mm[0],
            mpjpe_last_mm=history.mpjpe_mm[-1],
        ),
        "overfit_curves": OverfitCurvesSection(
            {"total": history.total, **history.terms, "mpjpe_mm": history.mpjpe_mm}
        ),
    }
    return Report(command="overfit", checks=checks, sections=sections)


def learning_rate_of(config: Any, default: float = 1e-3) -> float:
    """The config's ``training:`` learning rate (``lr`` or ``learning_rate``), else ``default``."""
    training = getattr(config, "training", None) or {}
    for key in ("lr", "learning_rate", "base_lr"):
        value = training.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return default


def save_overfit_plot(report: Report, path: Any) -> None:
    """The run's curves, written atomically to a .png: above, the total (black, drawn last so
    no term hides it) and every term (log scale), with the pass line at the target fraction of
    the first total; below, MPJPE (mm) with its threshold."""
    from pathlib import Path

    target = Path(path)
    if target.suffix.lower() != ".png":
        raise InputError("--plot must name a .png file", path=str(target))
    import io

    fig = overfit_figure(report)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    write_bytes_atomic(target, buffer.getvalue())


def overfit_figure(report: Report) -> Any:
    """The matplotlib Figure of :func:`save_overfit_plot`."""
    # deferred: matplotlib, the optional plot extra, loaded only when a plot is drawn
    from utnet_diag.logs.plot import new_figure

    curves = dict(report.sections["overfit_curves"])
    mpjpe = curves.pop("mpjpe_mm", [])
    total = curves.pop("total", [])
    fig = new_figure(figsize=(7, 5.5), layout="constrained")
    losses, errors = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))

    def positive(values: list[Any]) -> list[float]:
        return [v if isinstance(v, float) and v > 0 else float("nan") for v in values]

    for name, values in curves.items():
        losses.plot(positive(values), label=TERM_LABELS.get(name, name), lw=1.0)
    losses.plot(positive(total), label="total (weighted)", color="black", lw=2.0, zorder=5)
    drop = next((c for c in report.checks if c.id == "overfit_total_drop"), None)
    if drop is not None and total and isinstance(drop.threshold, float) and total[0] > 0:
        losses.axhline(drop.threshold * total[0], color="tab:green", ls="--", lw=1.0,
                       label=f"pass: total < {drop.threshold:.0%} of its start")  # fmt: skip
    losses.set_yscale("log")
    losses.set_ylabel("loss (terms unweighted, log)")
    losses.legend(fontsize=7, ncol=2)
    errors.plot(mpjpe, color="tab:purple", lw=1.2, label="MPJPE")
    check = next((c for c in report.checks if c.id == "overfit_mpjpe"), None)
    if check is not None and isinstance(check.threshold, float):
        errors.axhline(check.threshold, color="tab:green", ls="--", lw=1.0,
                       label=f"pass: MPJPE < {check.threshold:g} mm")  # fmt: skip
    errors.set_ylabel("MPJPE (mm)")
    errors.set_xlabel("step")
    errors.legend(fontsize=7)
    return fig
