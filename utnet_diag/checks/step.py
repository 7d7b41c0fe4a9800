"""Checks on what one optimiser step does (``grad-flow``, ``gate``): clipping and step size.

``ctx.extras['step']`` is a :class:`utnet_diag.report.sections.StepSection` (None when the
gradients were not finite). The limits are heuristics, module constants shown in every message:
an update of about 1e-3 of a group's weight norm per step is the usual healthy order for
Adam-family optimisers; 1e-2 moves the weights fast, 1e-1 replaces them within ten steps.
"""

from __future__ import annotations

from utnet_diag.checks.engine import CheckContext, CheckRegistry, Outcome
from utnet_diag.report.numbers import fmt_number

STEP_CHECKS = CheckRegistry("step")

CLIP_SHRINK_WARN = 1e-3  # clipping makes the actual update over 1000x smaller than unclipped
UPDATE_LOW = 1e-6  # a group whose weights move by less than this fraction per step
UPDATE_HIGH = 1e-2
UPDATE_FAIL = 1e-1


def _fmt(x: float | None) -> str:
    return fmt_number(x, 3, none="none")


def _shares_text(shares: dict[str, float], basis: str, top: int = 2) -> str:
    ranked = sorted(shares.items(), key=lambda kv: -abs(kv[1]))[:top]
    return ", ".join(f"{t} {fmt_number(100 * s, 3)}%" for t, s in ranked) + f" (at {basis})"


@STEP_CHECKS.check("step_clip", requires=("grad_finite",),
                   hint="the clip, not the learning rate, sets the step: bring the loss to a"
                        " scale where clipping is rare (weights, units: mm sums are large) or"
                        " raise clip_grad_norm; with SGD-family optimisers the step size is"
                        " lr * max_norm")  # fmt: skip
def step_clip(ctx: CheckContext) -> Outcome:
    """Gradient clipping does not shrink the optimiser's actual update over 1000x; says which
    terms make the clipped direction."""
    step = ctx.extras.get("step")
    if step is None:
        return Outcome.skip("no optimiser step measured")
    norm = step.total_grad_norm
    direction = _shares_text(step.term_shares, step.share_basis) if step.term_shares else ""
    made = f"; direction: {direction}" if direction else ""
    kind = step.optimizer["type"]
    if step.clip_grad_norm is None:
        return Outcome.ok(f"no clipping configured (global gradient norm {_fmt(norm)}){made}",
                          value=1.0)  # fmt: skip
    factor = step.clip_factor
    if factor >= 1.0:
        return Outcome.ok(f"global gradient norm {_fmt(norm)} <= max_norm "
                          f"{_fmt(step.clip_grad_norm)}: not clipped{made}", value=1.0,
                          threshold=CLIP_SHRINK_WARN)  # fmt: skip
    shrink = step.step_shrink if step.step_shrink is not None else factor
    text = (f"clipping to max_norm {_fmt(step.clip_grad_norm)} scales the gradient (norm "
            f"{_fmt(norm)}) by {_fmt(factor)}; {kind}'s update becomes {_fmt(shrink)}x the"
            f" unclipped one{made}")  # fmt: skip
    details = {"clip_factor": factor, "step_shrink": shrink, "term_shares": step.term_shares}
    if shrink < CLIP_SHRINK_WARN:
        return Outcome.warn(text, value=shrink, threshold=CLIP_SHRINK_WARN, details=details)
    return Outcome.ok(text, value=shrink, threshold=CLIP_SHRINK_WARN, details=details)


@STEP_CHECKS.check("step_update", requires=("grad_finite",),
                   hint="set this group's learning rate (optimizer.groups in the config) so one"
                        " step moves its weights by about 1e-3 of their norm")  # fmt: skip
def step_update(ctx: CheckContext) -> Outcome:
    """One step of the configured optimiser moves each module group's weights by 1e-6 to 1e-2
    of their norm (fail above 1e-1)."""
    step = ctx.extras.get("step")
    if step is None:
        return Outcome.skip("no optimiser step measured")
    rows = [g for g in step.groups if g["ratio"] is not None]
    if not rows:
        return Outcome.skip("no module group with gradient and non-zero weights")
    opt = step.optimizer
    what = f"{opt['type']} lr {_fmt(opt['lr'])}"
    high = [g for g in rows if g["ratio"] > UPDATE_HIGH]
    low = [g for g in rows if g["ratio"] < UPDATE_LOW]
    ratios = {g["name"]: g["ratio"] for g in rows}
    details = {"ratios": ratios, "lr": {g["name"]: g["lr"] for g in rows}}

    def listing(groups: list[dict]) -> str:
        return ", ".join(f"{g['name']} {_fmt(g['ratio'])} (lr {_fmt(g['lr'])})" for g in groups)

    unknown = step.unknown_groups or []
    unknown_text = (f"; optimizer.groups names no module group: {', '.join(unknown)}"
                    if unknown else "")  # fmt: skip
    if any(g["ratio"] > UPDATE_FAIL for g in high):
        return Outcome.fail(f"one {what} step moves {listing(high)} of the weight norm (above"
                            f" {UPDATE_FAIL:g}){unknown_text}", value=ratios,
                            threshold=UPDATE_FAIL, details=details)  # fmt: skip
    if high or low or unknown:
        parts = []
        if high:
            parts.append(f"fast: {listing(high)} (above {UPDATE_HIGH:g})")
        if low:
            parts.append(f"barely moving: {listing(low)} (below {UPDATE_LOW:g})")
        text = (
            f"one {what} step, update/weight: " + "; ".join(parts) if parts else f"one {what} step"
        )
        return Outcome.warn(text + unknown_text, value=ratios, threshold=(UPDATE_LOW, UPDATE_HIGH),
                            details=details)  # fmt: skip
    lo, hi = min(rows, key=lambda g: g["ratio"]), max(rows, key=lambda g: g["ratio"])
    return Outcome.ok(
        f"one {what} step moves each group by {_fmt(lo['ratio'])} ({lo['name']}) to"
        f" {_fmt(hi['ratio'])} ({hi['name']}) of its weight norm",
        value=ratios,
        threshold=(UPDATE_LOW, UPDATE_HIGH),
        details=details,
    )
