"""What a gradient pass reports: per module group (norms, ratio, dead and non-finite shares), per
loss term (groups reached, weighted gradient at the trunk/heads boundary, share), and the cosine
of every pair of per-term boundary gradients (conflicts), from one Gram matrix."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from utnet_diag.diagnostics.grad.norms import GradNorms
from utnet_diag.diagnostics.grad.plan import GradPlan, group_role, make_plan
from utnet_diag.diagnostics.grad.strategies import (
    Backward,
    exact_backward,
    exact_backward_with_boundary,
    frontier_backward,
    reentrant_checkpoint_as_input_error,
    total_backward,
)
from utnet_diag.report.sections import GradModulesSection, GradTermsSection

REFINE_PATTERN = ("gcn", "refine")


@dataclass
class GradStats:
    """Gradient statistics of one step (JSON-ready through :meth:`to_sections`).

    ``groups``: per module group: ``name``, ``role`` (trunk/head), ``tensors``, ``trainable``
    (elements), ``grad_norm``, ``param_norm``, ``ratio`` (grad/param), ``no_grad_share`` (share
    of trainable elements with no or zero gradient), ``dead`` (tensor names with no or all-zero
    gradient), ``nonfinite`` (elements); in exact mode ``term_norms``.
    ``terms``: per loss term: ``term``, ``weight``, ``active``, ``reaches`` (groups),
    ``boundary_norm`` (norm of its weighted gradient at the trunk/heads boundary), ``share``.
    """

    groups: list[dict[str, Any]]
    terms: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    boundary: dict[str, Any]
    total_grad_norm: float
    exact: bool
    depth: int
    refine_groups: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # the step itself, for the clipping and step-size checks (not in the JSON; dropped with
    # :meth:`release`): trainable (name, parameter), group index of each, total gradient of each
    # (None: not reached), and in exact mode each term's dot product with the total gradient
    trainable: list[tuple[str, Any]] = field(default_factory=list, repr=False)
    param_gid: list[int] = field(default_factory=list, repr=False)
    grads: list[Any] = field(default_factory=list, repr=False)
    term_dots: dict[str, float] = field(default_factory=dict, repr=False)

    def release(self) -> None:
        """Drop the parameter and gradient references (a model's worth of memory)."""
        self.trainable, self.param_gid, self.grads = [], [], []

    def group(self, name: str) -> dict[str, Any] | None:
        return next((g for g in self.groups if g["name"] == name), None)

    def term(self, name: str) -> dict[str, Any] | None:
        return next((t for t in self.terms if t["term"] == name), None)

    def to_sections(self) -> dict[str, GradModulesSection | GradTermsSection]:
        return {
            "grad_modules": GradModulesSection(
                groups=self.groups, depth=self.depth, total_grad_norm=self.total_grad_norm
            ),
            "grad_terms": GradTermsSection(
                terms=self.terms,
                conflicts=self.conflicts,
                boundary=self.boundary,
                exact=self.exact,
                seconds=round(self.seconds, 4),
            ),
        }


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration (restored after, if it was on).

    The graph walk keeps a few hundred autograd nodes and tuples alive at once; with the
    collector on, each step crosses its allocation threshold and it traverses them (and
    promotes them to older generations, which makes full collections come sooner) only to
    find nothing: none of this forms reference cycles, so everything is freed by reference
    counting as usual. Collections that are due run again once it is back on."""
    enabled = gc.isenabled()
    if enabled:
        gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compute_grad_stats(
    fwd: Any,
    *,
    exact: bool = False,
    depth: int = 1,
    model: nn.Module | None = None,
    keep_grads: bool = False,
) -> GradStats:
    """Gradients of the total loss (and per term) for a forward pass that kept its graph: the
    plan, one backward strategy (:mod:`.strategies`: the frontier method by default when the
    trunk/heads boundary is usable, exact per-term backwards with ``exact``), the summary.
    ``keep_grads``: keep the parameters and their total gradients in the result (for the step
    checks; :meth:`GradStats.release` drops them)."""
    if not fwd.grad:
        raise ValueError("grad stats need a forward pass run with grad=True")
    with cyclic_gc_paused(), reentrant_checkpoint_as_input_error():
        start = time.perf_counter()
        plan = make_plan(fwd, depth, model if model is not None else fwd.inputs.model)
        norms = GradNorms(plan.params)
        backward = _backward(plan, exact, norms)
        if not backward.normed:
            norms.add(range(len(plan.params)), backward.grads)
        stats = summarize(plan, backward, norms, fwd, exact, depth, time.perf_counter() - start)
        if not keep_grads:
            stats.release()
        return stats


def _backward(plan: GradPlan, exact: bool, norms: GradNorms) -> Backward:
    """The strategy for this plan."""
    if not plan.names_active:
        return Backward([None] * len(plan.params))
    if plan.usable:
        return exact_backward_with_boundary(plan) if exact else frontier_backward(plan, norms)
    return exact_backward(plan) if exact else total_backward(plan)


def summarize(
    plan: GradPlan,
    backward: Backward,
    norms: GradNorms,
    fwd: Any,
    exact: bool,
    depth: int,
    seconds: float = 0.0,
) -> GradStats:
    """GradStats from a plan and the backward it had."""
    grad_norms, nonzero, param_norms = norms.read()
    groups = group_rows(plan, backward.grads, grad_norms, nonzero, param_norms,
                        fwd.boundary.trunk)  # fmt: skip
    if exact:
        for gid, row in enumerate(groups):
            row["term_norms"] = {t: n[gid] for t, n in backward.term_group_norms.items()}
    total_sq = sum(n * n for n in grad_norms if n is not None)
    total_norm = math.sqrt(total_sq) if math.isfinite(total_sq) else float("nan")
    term_rows, conflicts = term_statistics(plan, backward, fwd.config.weights)
    refine = [
        g for g in plan.group_names
        if any(p in g.lower() for p in REFINE_PATTERN) and group_role(g, fwd.boundary.trunk) == "head"
    ]  # fmt: skip
    boundary_info = dict(plan.boundary_info, chained=bool(plan.usable and backward.chained))
    return GradStats(groups, term_rows, conflicts, boundary_info, total_norm, exact, depth,
                     refine, seconds, list(plan.trainable), list(plan.param_gid),
                     list(backward.grads), dict(backward.term_dots))  # fmt: skip


def term_statistics(
    plan: GradPlan, backward: Backward, weights: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per term: the groups it reaches, its boundary gradient's norm and share; and the cosine
    of every pair of active terms' boundary gradients. One Gram matrix of the per-term boundary
    gradients (float32 products, float64 after; float64 throughout on overflow) gives the norms
    on its diagonal and the cosines off it."""
    names = plan.names_active
    b_norms: dict[str, float] = {}
    gram: list[list[float]] = []
    if backward.boundary_grads:
        rows = torch.stack([backward.boundary_grads[k].reshape(-1) for k in names])
        gram = (rows @ rows.T).double().tolist()
        if not all(math.isfinite(v) for row in gram for v in row):  # overflow, or NaN/inf inside
            wide = rows.double()
            gram = (wide @ wide.T).tolist()
        for k, term in enumerate(names):
            b_norms[term] = math.sqrt(gram[k][k]) if gram[k][k] >= 0 else float("nan")
    b_sum = sum(v for v in b_norms.values() if math.isfinite(v))
    term_rows = []
    for term in plan.terms:
        full = plan.reach[term][0]
        reached = sorted({plan.param_gid[i] for i in range(len(plan.params)) if full >> i & 1})
        term_rows.append({
            "term": term,
            "weight": weights.weight_of(term),
            "active": term in plan.active,
            "reaches": [plan.group_names[g] for g in reached],
            "boundary_norm": b_norms.get(term),
            "share": (b_norms[term] / b_sum) if term in b_norms and b_sum > 0 else None,
        })  # fmt: skip
    conflicts = []
    for i, a in enumerate(names if gram else []):
        for j in range(i + 1, len(names)):
            na, nb = b_norms[a], b_norms[names[j]]
            if na > 0 and nb > 0:
                conflicts.append({"a": a, "b": names[j], "cosine": gram[i][j] / (na * nb)})
    return term_rows, conflicts


def group_rows(
    plan: GradPlan,
    grads: list[torch.Tensor | None],
    norms: list[float | None],
    nonzero: list[int],
    param_norms: list[float],
    trunk: list[str],
) -> list[dict[str, Any]]:
    """One row per module group: sizes, gradient and parameter norms, their ratio, the share of
    trainable elements with no or zero gradient, dead tensors, non-finite elements."""
    names = plan.group_names
    rows = {
        gid: {
            "name": g,
            "role": group_role(g, trunk),
            "tensors": 0,
            "trainable": 0,
            "frozen": 0,
            "grad_norm": 0.0,
            "param_norm": 0.0,
            "ratio": None,
            "no_grad_share": None,
            "dead": [],
            "nonfinite": 0,
        }  # fmt: skip
        for gid, g in enumerate(names)
    }
    sq_g = [0.0] * len(names)
    sq_p = [0.0] * len(names)
    missing = [0] * len(names)
    for (_, param), gid in zip(plan.named, plan.named_gid):
        row = rows[gid]
        row["tensors"] += 1
        if not param.requires_grad:
            row["frozen"] += param.numel()
    for k, ((name, param), grad) in enumerate(zip(plan.trainable, grads)):
        gid = plan.param_gid[k]
        row = rows[gid]
        row["trainable"] += param.numel()
        sq_p[gid] += param_norms[k] ** 2
        if grad is None:
            missing[gid] += param.numel()
            row["dead"].append(name)
            continue
        norm = norms[k]
        if not math.isfinite(norm):
            row["nonfinite"] += int((~torch.isfinite(grad)).sum())
        sq_g[gid] += norm * norm
        zeros = param.numel() - nonzero[k]
        missing[gid] += zeros
        if zeros == param.numel():
            row["dead"].append(name)
    for gid, row in rows.items():
        row["grad_norm"] = math.sqrt(sq_g[gid]) if math.isfinite(sq_g[gid]) else float("nan")
        row["param_norm"] = math.sqrt(sq_p[gid])
        if row["trainable"]:
            row["no_grad_share"] = missing[gid] / row["trainable"]
            if row["param_norm"] > 0 and math.isfinite(row["grad_norm"]):
                row["ratio"] = row["grad_norm"] / row["param_norm"]
    return [rows[i] for i in range(len(names))]
