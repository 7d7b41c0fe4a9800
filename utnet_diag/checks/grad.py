"""Checks on one training step's gradients (``grad-flow``, ``gate``).

``ctx.extras['grad']`` is a :class:`utnet_diag.diagnostics.grad.GradStats`;
``ctx.extras['nan_origin']`` a NanOrigin or None. The vanishing/exploding limits are heuristics
(the spec gives none): they are module constants, and every message shows the measured numbers.
"""

from __future__ import annotations

import math
from typing import Any

from utnet_diag.checks.engine import CheckContext, CheckRegistry, Outcome
from utnet_diag.report.numbers import fmt_number
from utnet_diag.spec import TERM

GRAD_CHECKS = CheckRegistry("grad")

VANISH_RELATIVE = 1e-4  # a group whose grad/param ratio is below this x the median ratio
# The spec's losses are batch sums, so large gradient norms are normal (Adam rescales them);
# only absurd norms are flagged; the update size is measured by the step checks (checks/step.py).
EXPLODE_WARN = 1e6
EXPLODE_FAIL = 1e9
DROWN_RATIO = 100.0  # a supervision term below 1/100 of the strongest at the boundary
CONFLICT_COSINE = -0.5  # two terms pulling the trunk features in opposite directions
# Terms compared for drowning: the L1 supervision terms. An L1 term's gradient has the same size
# however well the term is fitted (each element contributes conf * sign(residual)), so their
# gradient ratio measures the weights and units, not progress. loss_aux is left out: it is an
# MSE (its gradient shrinks with its residual, so a fitted aux has a small gradient) and a mean
# at w_aux 0.001-0.1 (spec 9.1) beside batch sums in mm, so it is 1e5-1e9x smaller at the trunk
# by design; whether it reaches the backbone is grad_reach's, too small a w_aux loss_weights'.
SUPERVISION_TERMS = tuple(key for key, term in TERM.items() if term.supervision)

HINT_REACH = (
    "look for .detach(), torch.no_grad() or .data in the forward between the backbone and the"
    " heads; check the coarse outputs get gradient (spec 9.3: 'Aux loss not decreasing')"
)


def _stats(ctx: CheckContext) -> Any:
    return ctx.extras["grad"]


def _fmt(x: float | None) -> str:
    return fmt_number(x, 3, none="none")


@GRAD_CHECKS.check("grad_finite", hint="check the learning rate, divisions by zero and bad samples")
def grad_finite(ctx: CheckContext) -> Outcome:
    """Every gradient is finite."""
    stats = _stats(ctx)
    bad = [(g["name"], g["nonfinite"]) for g in stats.groups if g["nonfinite"]]
    if not bad and math.isfinite(stats.total_grad_norm):
        return Outcome.ok(f"all gradients finite (total norm {_fmt(stats.total_grad_norm)})",
                          stats.total_grad_norm)  # fmt: skip
    origin = ctx.extras.get("nan_origin")
    listing = ", ".join(f"{name} ({n} values)" for name, n in bad) or "total norm"
    where = f"; {origin.message}" if origin is not None else "; origin not found"
    return Outcome.fail(
        f"non-finite gradients in {listing}{where}",
        value=[name for name, _ in bad],
        details={"nan_origin": origin.to_dict() if origin is not None else None},
    )


@GRAD_CHECKS.check("grad_dead", requires=("grad_finite",),
                   hint="a trainable module gets no gradient: it is unused or cut off by"
                        " .detach()/no_grad; freeze it on purpose (requires_grad=False) or"
                        " reconnect it")  # fmt: skip
def grad_dead(ctx: CheckContext) -> Outcome:
    """Every trainable parameter receives a non-zero gradient."""
    stats = _stats(ctx)
    whole = [g["name"] for g in stats.groups if g["trainable"] and g["no_grad_share"] == 1.0]
    partial = [(g["name"], g["dead"]) for g in stats.groups
               if g["dead"] and g["name"] not in whole]  # fmt: skip
    trainable = sum(1 for g in stats.groups if g["trainable"])
    if whole:
        return Outcome.fail(
            f"{len(whole)}/{trainable} trainable module groups get no gradient: {', '.join(whole)}",
            value=whole, details={"dead_groups": whole, "dead_tensors": dict(partial)},
        )  # fmt: skip
    if partial:
        names = [n for _, tensors in partial for n in tensors]
        return Outcome.warn(
            f"{len(names)} parameter tensors get no or an all-zero gradient: "
            + ", ".join(names[:5]) + (" …" if len(names) > 5 else ""),
            value=names, details={"dead_tensors": dict(partial)},
        )  # fmt: skip
    return Outcome.ok(f"all {trainable} trainable module groups get gradient")


@GRAD_CHECKS.check("grad_vanishing", requires=("grad_finite",),
                   hint="gradient barely reaches these modules: check normalization layers,"
                        " saturating activations, and tiny loss weights")  # fmt: skip
def grad_vanishing(ctx: CheckContext) -> Outcome:
    """No module group's grad/param ratio is 10^4 below the median group's."""
    stats = _stats(ctx)
    ratios = {g["name"]: g["ratio"] for g in stats.groups if g["ratio"] is not None}
    positive = sorted(r for r in ratios.values() if r > 0)
    if not positive:
        if ratios:
            return Outcome.fail("every gradient is zero", value=0.0)
        return Outcome.skip("no trainable parameters with gradient")
    median = positive[len(positive) // 2]
    limit = VANISH_RELATIVE * median
    low = {n: r for n, r in ratios.items() if 0 < r < limit}
    if low:
        listing = ", ".join(f"{n} {_fmt(r)}" for n, r in low.items())
        return Outcome.warn(
            f"grad/param ratio of {listing} is below {_fmt(limit)} ({VANISH_RELATIVE:g}x the"
            f" median {_fmt(median)})",
            value=low, threshold=limit,
        )  # fmt: skip
    smallest = min(ratios.items(), key=lambda kv: kv[1] if kv[1] > 0 else math.inf)
    return Outcome.ok(
        f"smallest grad/param ratio {_fmt(smallest[1])} ({smallest[0]}); median {_fmt(median)}",
        value=smallest[1], threshold=limit,
    )  # fmt: skip


@GRAD_CHECKS.check("grad_exploding", requires=("grad_finite",),
                   hint="lower the learning rate or the large loss weights, or clip gradients;"
                        " check the loss units (mm sums grow with the batch)")  # fmt: skip
def grad_exploding(ctx: CheckContext) -> Outcome:
    """No module group's gradient norm exceeds 1e6 (fail at 1e9). What a step does with them
    (clipping, the optimiser's update size) is the ``step`` family's."""
    stats = _stats(ctx)
    groups = [g for g in stats.groups if g["trainable"]]
    if not groups:
        return Outcome.skip("no trainable parameters")
    worst = max(groups, key=lambda g: g["grad_norm"])
    big = [g for g in groups if g["grad_norm"] > EXPLODE_WARN]
    listing = ", ".join(f"{g['name']} {_fmt(g['grad_norm'])}" for g in big)
    if worst["grad_norm"] > EXPLODE_FAIL:
        return Outcome.fail(f"gradient norms above {EXPLODE_FAIL:g}: {listing}",
                            worst["grad_norm"], EXPLODE_FAIL)  # fmt: skip
    if big:
        return Outcome.warn(f"gradient norms above {EXPLODE_WARN:g}: {listing}",
                            worst["grad_norm"], EXPLODE_WARN)  # fmt: skip
    text = f"largest gradient norm {_fmt(worst['grad_norm'])} ({worst['name']}) < {EXPLODE_WARN:g}"
    return Outcome.ok(text, worst["grad_norm"], EXPLODE_WARN)


@GRAD_CHECKS.check("grad_reach", requires=("grad_finite",), hint=HINT_REACH)
def grad_reach(ctx: CheckContext) -> Outcome:
    """Every active term reaches the backbone; the aux term too; 2D and 3D reach the refinement."""
    stats = _stats(ctx)
    trunk = [g["name"] for g in stats.groups if g["role"] == "trunk" and g["trainable"]]
    active = [t for t in stats.terms if t["active"]]
    if not active:
        return Outcome.skip("no active loss term")
    problems: list[str] = []
    for t in active:
        if not t["reaches"]:
            problems.append(f"{t['term']} reaches no parameter")
        elif trunk and not set(t["reaches"]) & set(trunk):
            problems.append(f"{t['term']} does not reach the backbone ({', '.join(trunk)})")
    refine = [g for g in stats.refine_groups if (stats.group(g) or {}).get("trainable")]
    if refine:
        for t in active:
            if t["term"] in ("loss_2d", "loss_3d_joint") and not set(t["reaches"]) & set(refine):
                problems.append(f"{t['term']} does not reach the refinement ({', '.join(refine)})")
    reach = {t["term"]: t["reaches"] for t in active}
    if problems:
        return Outcome.fail("; ".join(problems), value=reach, details={"reach": reach})
    notes = []
    if not trunk:
        notes.append("no trainable trunk identified: backbone reach not checked")
    if not refine:
        notes.append("no refinement module (gcn/refine) found: refinement reach not checked")
    if stats.boundary.get("guessed"):
        notes.append(f"trunk guessed: {stats.boundary['description']}")
    text = f"all {len(active)} active terms reach the backbone"
    if refine:
        text += "; 2D and 3D reach the refinement"
    return Outcome.ok(text + (f" ({'; '.join(notes)})" if notes else ""),
                      details={"reach": reach})  # fmt: skip


@GRAD_CHECKS.check("grad_balance", requires=("grad_finite",),
                   hint="rebalance the loss weights (spec 9.1: w_2d=1.0, w_3d_joint=1.0 as a"
                        " start); a drowned term barely trains the backbone")  # fmt: skip
def grad_balance(ctx: CheckContext) -> Outcome:
    """No L1 supervision term's (2D, 3D joint, 3D vertex) gradient at the trunk boundary is 100x
    below the strongest of them. loss_aux and loss_prior are not compared (see
    ``SUPERVISION_TERMS``): their small gradients are their design, not drowning."""
    stats = _stats(ctx)
    norms = {t["term"]: t["boundary_norm"] for t in stats.terms
             if t["active"] and t["boundary_norm"] is not None}  # fmt: skip
    if not norms:
        why = stats.boundary.get("unavailable", "no active term")
        return Outcome.skip(f"no per-term gradient at the trunk boundary: {why}")
    compared = {t: n for t, n in norms.items() if t in SUPERVISION_TERMS}
    conflicts = [c for c in stats.conflicts if c["cosine"] < CONFLICT_COSINE]
    conflict_text = "; ".join(f"{c['a']} vs {c['b']} cosine {c['cosine']:.2f}" for c in conflicts)
    where = f"at {stats.boundary['description']}"
    details = {"boundary_norms": norms, "compared": sorted(compared), "conflicts": stats.conflicts}
    if len(compared) < 2:
        text = (f"fewer than two L1 supervision terms active ({', '.join(compared) or 'none'}):"
                " nothing to balance")  # fmt: skip
        if conflict_text:
            text += f"; conflicts: {conflict_text}"
        return Outcome.ok(text, value=norms, details=details)
    strongest, top = max(compared.items(), key=lambda kv: kv[1])
    drowned = {t: n for t, n in compared.items() if t != strongest and n * DROWN_RATIO < top}
    if drowned:
        listing = ", ".join(
            f"{t} ({top / n:.3g}x smaller)" if n > 0 else f"{t} (zero)" for t, n in drowned.items()
        )
        text = f"{strongest} drowns {listing} {where}"
        if conflict_text:
            text += f"; conflicts: {conflict_text}"
        return Outcome.warn(text, value=norms, threshold=DROWN_RATIO, details=details)
    weakest, low = min(compared.items(), key=lambda kv: kv[1])
    text = f"{', '.join(compared)} gradient norms {where} within {DROWN_RATIO:g}x"
    if low > 0 and weakest != strongest:
        text += f" ({weakest} {top / low:.3g}x below {strongest})"
    left_out = [t for t in norms if t not in compared]
    if left_out:
        text += f"; {', '.join(left_out)} not compared (small by design)"
    if conflict_text:
        text += f"; conflicts: {conflict_text}"
    return Outcome.ok(text, value=norms, threshold=DROWN_RATIO, details=details)
