"""The backward passes of a gradient pass, one function each. Every one takes gradients with
``torch.autograd.grad`` (``.grad`` fields untouched) except through reentrant checkpoint
segments, where ``backward()`` runs with every ``.grad`` set aside and put back.

- :func:`frontier_backward` (the default, with a usable trunk/heads boundary): the total's
  backward in two parts, the heads (graph kept, each term's frontier gradients recorded on the
  way) and the trunk from the boundary (freeing the graph as it goes); between them, for every
  active term but the largest, one backward from its frontier to the boundary;
- :func:`exact_backward_with_boundary`: one full backward per term, split at the boundary;
- :func:`exact_backward`: one full backward per term (no boundary);
- :func:`total_backward`: the total alone (no boundary, not exact).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.autograd.graph import GradientEdge

from utnet_diag.diagnostics.grad.norms import GradNorms, per_term_group_norms
from utnet_diag.diagnostics.grad.plan import GradPlan, GraphWalk
from utnet_diag.errors import InputError


@dataclass
class Backward:
    """What a strategy found: ``grads[i]`` of ``plan.params[i]`` (None: not reached), the
    weighted gradient of each active term at the boundary, per-term per-group norms (exact
    strategies), and whether the gradients' norms were already taken into the GradNorms."""

    grads: list[torch.Tensor | None]
    boundary_grads: dict[str, torch.Tensor] = field(default_factory=dict)
    term_group_norms: dict[str, list[float]] = field(default_factory=dict)
    term_dots: dict[str, float] = field(default_factory=dict)  # exact: <term grad, total grad>
    normed: bool = False
    chained: bool = False


# torch.autograd.grad checks each given grad_output's shape with torch.fx's symbolic-shape
# helpers, whose first use imports sympy (0.2-0.4 s of CPU, once per process). The grad_outputs
# here come from the same edges they are fed back into, so their shapes match by construction:
# they go to the autograd engine directly (torch.autograd.grad's own last call), when this torch
# has it, and through torch.autograd.grad otherwise.
_ENGINE = getattr(torch.autograd.graph, "_engine_run_backward", None)


def grad(
    output: Any, inputs: list[torch.Tensor], grad_output: Any = None, retain: bool = True
) -> list[torch.Tensor | None]:
    """``torch.autograd.grad`` from ``output`` (a tensor, with ``grad_output`` when not a scalar,
    or a list of tensors or GradientEdges with a list of gradients) to ``inputs``, None for an
    input not reached."""
    if not inputs:
        return []
    if grad_output is None or _ENGINE is None:
        return list(torch.autograd.grad(output, inputs, grad_output, retain_graph=retain,
                                        allow_unused=True))  # fmt: skip
    outputs = tuple(output) if isinstance(output, (list, tuple)) else (output,)
    grads = tuple(grad_output) if isinstance(grad_output, (list, tuple)) else (grad_output,)
    return list(_ENGINE(outputs, grads, retain, False, tuple(inputs), True, accumulate_grad=False))


@contextmanager
def reentrant_checkpoint_as_input_error() -> Iterator[None]:
    """Run a block; torch's refusal to run ``torch.autograd.grad`` through a reentrant
    checkpoint segment becomes an InputError with what to do (other errors pass through)."""
    try:
        yield
    except RuntimeError as err:
        if "use_reentrant=True" not in str(err):
            raise
        raise InputError(
            "the model runs torch.utils.checkpoint with use_reentrant=True where the diagnosis "
            "needs torch.autograd.grad (in the heads, with --exact, or to locate a NaN)",
            hint="pass use_reentrant=False to the model's checkpoint calls, or turn gradient "
            "checkpointing off for the diagnosis",
        ) from None


def backward_into(
    root: torch.Tensor,
    grad_root: torch.Tensor,
    wanted: list[torch.Tensor],
    params: list[torch.Tensor],
) -> list[torch.Tensor | None]:
    """``root.backward(grad_root)`` and the ``.grad`` it leaves on ``wanted``: for graphs with
    reentrant checkpoint segments, where ``torch.autograd.grad`` raises. Every parameter's
    ``.grad`` is set aside first and put back after, so the model's fields end as they were.
    Refused (InputError) when a parameter has a post-accumulate-grad hook: backward() would run
    it (an optimizer step in the backward would change the weights)."""
    if any(getattr(p, "_post_accumulate_grad_hooks", None) for p in params):
        raise InputError(
            "the model runs torch.utils.checkpoint with use_reentrant=True and has "
            "post-accumulate-grad hooks on its parameters, which backward() would run",
            hint="pass use_reentrant=False to the model's checkpoint calls for the diagnosis",
        )
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        # frees the graph as it goes, as training does (the engine directly: see _ENGINE)
        if _ENGINE is not None:
            _ENGINE((root,), (grad_root,), False, False, (), True, accumulate_grad=True)
        else:
            torch.autograd.backward(root, grad_root)
        return [p.grad for p in wanted]
    finally:
        for p, g in zip(params, saved):
            p.grad = g


def exact_backward_with_boundary(plan: GradPlan) -> Backward:
    """One full backward per active term: to the boundary and the parameters reached around it,
    then from the boundary to the trunk; exact per-term, per-group norms."""
    params, features = plan.params, plan.features
    direct_params = [params[i] for i in plan.direct]
    chain_params = [params[i] for i in plan.chain]
    via = plan.via_boundary
    zero = torch.zeros_like(features)
    out = Backward([None] * len(params))
    per_term: dict[int, list[torch.Tensor | None]] = {i: [] for i in plan.reached}
    for k in plan.names_active:
        found = grad(plan.active[k] * plan.terms[k], [features] + direct_params)
        g_b = found[0] if found[0] is not None else zero
        out.boundary_grads[k] = g_b
        for i, g in zip(plan.direct, found[1:]):
            per_term[i].append(g)
        chained = grad(features, chain_params, g_b) if k in via else [None] * len(plan.chain)
        for i, g in zip(plan.chain, chained):
            per_term[i].append(g)
    _sum_per_term(per_term, out, plan.names_active)
    out.term_group_norms = per_term_group_norms(
        per_term, plan.names_active, plan.param_gid, len(plan.group_names)
    )
    out.chained = bool(plan.chain)
    return out


def exact_backward(plan: GradPlan) -> Backward:
    """One full backward per active term to every parameter it reaches (no boundary)."""
    out = Backward([None] * len(plan.params))
    per_term: dict[int, list[torch.Tensor | None]] = {i: [] for i in plan.reached}
    reached = [plan.params[i] for i in plan.reached]
    for k in plan.names_active:
        for i, g in zip(plan.reached, grad(plan.active[k] * plan.terms[k], reached)):
            per_term[i].append(g)
    _sum_per_term(per_term, out, plan.names_active)
    out.term_group_norms = per_term_group_norms(
        per_term, plan.names_active, plan.param_gid, len(plan.group_names)
    )
    return out


def total_backward(plan: GradPlan) -> Backward:
    """The total's backward alone, to every parameter it reaches (no boundary, not exact)."""
    out = Backward([None] * len(plan.params))
    if plan.reached:
        reached = [plan.params[i] for i in plan.reached]
        for i, g in zip(plan.reached, grad(plan.total, reached, retain=False)):
            out.grads[i] = g
    return out


def _sum_per_term(
    per_term: dict[int, list[torch.Tensor | None]], out: Backward, names: list[str]
) -> None:
    """The total gradient of each parameter (the sum of its per-term ones), and each term's dot
    product with the total over all parameters (float64), ``out.term_dots``."""
    dots = [torch.zeros((), dtype=torch.float64) for _ in names]
    for i, per in per_term.items():
        present = [g for g in per if g is not None]
        total = torch.stack(present).sum(0) if present else None
        out.grads[i] = total
        for k, g in enumerate(per):
            if g is not None and total is not None:
                dots[k] = dots[k] + (g.double() * total.double()).sum().cpu()
    out.term_dots = {t: float(d) for t, d in zip(names, dots)}


def frontier_backward(plan: GradPlan, norms: GradNorms) -> Backward:
    """The default: the total's backward, plus one short backward per non-largest term from its
    frontier to the boundary (see the module docstring). The gradients' norms go into ``norms``
    right after the backward that made them."""
    params, features = plan.params, plan.features
    direct, chain = plan.direct, list(plan.chain)
    via = plan.via_boundary
    zero = torch.zeros_like(features)
    out = Backward([None] * len(params), normed=True)
    anchor = _anchor(via, plan.active, plan.terms)
    with term_frontiers(plan.walk, plan.names_active, plan.active, plan.terms, features,
                        plan.node_masks, plan.boundary_bit) as frontiers:  # fmt: skip
        found = grad(plan.total, [features] + [params[i] for i in direct])
    g_total = found[0] if found[0] is not None else zero
    for i, g in zip(direct, found[1:]):
        out.grads[i] = g
    for k in via:
        if k != anchor:
            out.boundary_grads[k] = from_frontier(frontiers[k], features, zero)
    if via and plan.walk.reentrant_checkpoint:
        # Reentrant checkpoint segments in the trunk: torch.autograd.grad cannot run through
        # them, and their parameters are not in the graph (the segment runs under no_grad until
        # the backward recomputes it): backward() finds them all.
        taken = set(direct)
        below = [i for i in range(len(params)) if i not in taken]
        found_below = backward_into(features, g_total, [params[i] for i in below], params)
        chain = [i for i, g in zip(below, found_below) if g is not None]
        for i, g in zip(below, found_below):
            out.grads[i] = g
        hidden = sum(1 << i for i in chain if not plan.all_mask >> i & 1)
        for k in via:  # every term through the boundary reaches them
            plan.reach[k] = (plan.reach[k][0] | hidden, plan.reach[k][1])
    elif chain:
        chained = grad(features, [params[i] for i in chain], g_total, retain=False)
        for i, g in zip(chain, chained):
            out.grads[i] = g
    norms.add(direct + chain, [out.grads[i] for i in direct + chain])
    for k in plan.names_active:
        if k not in via:
            out.boundary_grads[k] = zero
    if anchor is not None:
        rest = [out.boundary_grads[k] for k in via if k != anchor]
        out.boundary_grads[anchor] = g_total - sum(rest) if rest else g_total
    out.chained = bool(chain)
    return out


def _anchor(via: list[str], active: dict[str, float], terms: dict[str, torch.Tensor]) -> str | None:
    """The term whose boundary gradient is taken as the total's minus the others': the largest
    weighted value (its gradient dominates, so the subtraction loses least to rounding)."""
    if not via:
        return None
    sizes = torch.stack([(active[k] * terms[k].detach()).abs() for k in via]).tolist()
    return via[sizes.index(max(sizes))]


@contextmanager
def term_frontiers(
    walk: GraphWalk,
    names: list[str],
    weights: dict[str, float],
    terms: dict[str, torch.Tensor],
    features: torch.Tensor,
    node_masks: dict[Any, tuple[int, int]],
    boundary_bit: int,
) -> Iterator[dict[str, dict[tuple[Any, int], torch.Tensor]]]:
    """Hooks that record, during a backward of the total, what each term sends into the graph
    the terms share: term -> {(node, input number): gradient}, filled when the block's backward
    has run (the hooks are removed on exit).

    Every node is marked with the active terms above it; the boundary and what lies below it
    count as shared by all. A term's own nodes are those only it reaches; its frontier edges go
    from them into shared nodes that lead to the boundary. A term whose root is shared has its
    root as frontier (with its weight as gradient, set here)."""
    shared_bit = 1 << len(names)
    marks: dict[Any, int] = {}
    for n, k in enumerate(names):
        root = terms[k].grad_fn
        marks[root] = marks.get(root, 0) | 1 << n
    cut = features.grad_fn
    marks[cut] = marks.get(cut, 0) | shared_bit
    children = walk.children
    for node in reversed(walk.order):  # every node before the nodes it leads to
        mark = marks.get(node, 0)
        if mark:
            for child, _ in children[node]:
                if child is not None:
                    marks[child] = marks.get(child, 0) | mark
    found: dict[str, dict[tuple[Any, int], torch.Tensor]] = {k: {} for k in names}
    handles = []
    own = {1 << n: k for n, k in enumerate(names)}
    for n, k in enumerate(names):
        root = terms[k].grad_fn
        if marks[root] != 1 << n:
            found[k][(root, terms[k].output_nr)] = torch.full_like(terms[k], weights[k])
    for node in walk.order:
        term = own.get(marks.get(node, 0))
        if term is None:
            continue
        bit = marks[node]
        edges = [
            (j, (child, nr))
            for j, (child, nr) in enumerate(children[node])
            if child is not None and marks[child] != bit
            and node_masks[child][0] & boundary_bit  # leads to the boundary
        ]  # fmt: skip
        if edges:
            handles.append(node.register_hook(_recorder(found[term], edges)))
    try:
        yield found
    finally:
        for handle in handles:
            handle.remove()


def _recorder(into: dict[tuple[Any, int], torch.Tensor], edges: list[tuple[int, Any]]) -> Any:
    def hook(grad_inputs: tuple, grad_outputs: tuple) -> None:
        for j, key in edges:
            g = grad_inputs[j]
            if g is not None:
                into[key] = into[key] + g if key in into else g

    return hook


def from_frontier(
    frontier: dict[tuple[Any, int], torch.Tensor], features: torch.Tensor, zero: torch.Tensor
) -> torch.Tensor:
    """A term's boundary gradient from the gradients on its frontier edges."""
    if not frontier:
        return zero
    keys = list(frontier)
    (g,) = grad([GradientEdge(*key) for key in keys], [features], [frontier[k] for k in keys])
    return g if g is not None else zero
