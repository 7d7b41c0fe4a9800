"""``grad-flow``: one training step's gradients, per module group and per loss term.

Nothing is written to the model: gradients come from ``torch.autograd.grad`` (``.grad`` fields
untouched, no optimizer step), the forward runs inside :func:`runner.training_step` (modes and
buffers restored). Cost of the default path, beyond a plain training step: for each active term
but the largest, one backward from where the term enters the graph the terms share (its
frontier, recorded by hooks during the total's backward) to the trunk/heads boundary: through
the shared heads only; and one walk of the autograd graph to find which module groups each term
reaches. ``exact=True`` instead runs one full backward per term and reports exact per-term,
per-group gradient norms.
"""

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

from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.checks.grad import GRAD_CHECKS
from utnet_diag.diagnostics.resources import out_of_memory_as_input_error
from utnet_diag.diagnostics.runner import (
    DEFAULT_SEED,
    ForwardResult,
    all_finite,
    forward_pass,
    load_inputs,
    running,
    training_step,
)
from utnet_diag.errors import InputError
from utnet_diag.report.result import CheckResult, Report

REFINE_PATTERN = ("gcn", "refine")
REENTRANT_NODE = "CheckpointFunctionBackward"  # torch.utils.checkpoint with use_reentrant=True


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

    def group(self, name: str) -> dict[str, Any] | None:
        return next((g for g in self.groups if g["name"] == name), None)

    def term(self, name: str) -> dict[str, Any] | None:
        return next((t for t in self.terms if t["term"] == name), None)

    def to_sections(self) -> dict[str, Any]:
        return {
            "grad_modules": {
                "groups": self.groups,
                "depth": self.depth,
                "total_grad_norm": self.total_grad_norm,
            },  # fmt: skip
            "grad_terms": {
                "terms": self.terms,
                "conflicts": self.conflicts,
                "boundary": self.boundary,
                "exact": self.exact,
                "seconds": round(self.seconds, 4),
            },  # fmt: skip
        }


def group_of(param_name: str, depth: int) -> str:
    """Module group of a parameter: the first ``depth`` parts of its module path."""
    parts = param_name.split(".")[:-1]
    return ".".join(parts[:depth]) if parts else "(root)"


def _role(param_name: str, trunk: list[str]) -> str:
    return "trunk" if any(param_name.startswith(t + ".") for t in trunk) else "head"


def reach_sets(
    roots: dict[str, torch.Tensor],
    param_bit: dict[int, int],
    boundary: torch.Tensor | None = None,
    walk: GraphWalk | None = None,
    masks: dict[Any, tuple[int, int]] | None = None,
) -> dict[str, tuple[int, int]]:
    """For each named scalar, bitmasks of the parameters its autograd graph reaches: ``(all,
    bypass)``, where ``bypass`` holds those reached by a path that does not go through
    ``boundary`` (the trunk/heads tensor). One post-order walk over the union of the graphs;
    shared parts (the trunk) are walked once. ``param_bit``: id(parameter) -> bit index; bit
    ``len(param_bit)`` of ``all`` is set when the graph reaches the boundary tensor. ``walk``:
    the union graph already walked from these roots (:class:`GraphWalk`); ``masks``: a dict
    that receives every node's ``(all, bypass)``.
    """
    if walk is None:
        walk = GraphWalk([root.grad_fn for root in roots.values()])
    cut_node = boundary.grad_fn if boundary is not None else None
    cut_nr = boundary.output_nr if boundary is not None else -1
    boundary_bit = 1 << len(param_bit)
    if masks is None:
        masks = {}
    children = walk.children
    for node in walk.order:
        full = bypass = 0
        for child, nr in children[node]:
            if child is None:
                continue
            child_full, child_bypass = masks[child]
            full |= child_full
            if child is cut_node:
                if nr == cut_nr:  # into the boundary tensor: no bypass
                    full |= boundary_bit
                else:  # another output of the same node: a bypass
                    bypass |= child_full
            else:
                bypass |= child_bypass
        if not children[node]:  # a leaf: a parameter's AccumulateGrad, or a graph input
            variable = getattr(node, "variable", None)
            if variable is not None and id(variable) in param_bit:
                bit = 1 << param_bit[id(variable)]
                full |= bit
                bypass |= bit
        masks[node] = (full, bypass)
    return {name: masks[root.grad_fn] if root.grad_fn is not None else (0, 0)
            for name, root in roots.items()}  # fmt: skip


class GraphWalk:
    """The union of the autograd graphs below ``roots`` (grad_fn nodes; None skipped), walked
    once: ``order`` lists every node after all the nodes it leads to (post-order), ``children``
    maps a node to its ``next_functions``."""

    def __init__(self, roots: list[Any]):
        children: dict[Any, tuple] = {}
        order: list[Any] = []
        for root in roots:
            if root is None or root in children:
                continue
            children[root] = root.next_functions
            stack = [(root, iter(children[root]))]
            while stack:
                node, pending = stack[-1]
                for child, _ in pending:
                    if child is not None and child not in children:
                        children[child] = child.next_functions
                        stack.append((child, iter(children[child])))
                        break
                else:
                    stack.pop()
                    order.append(node)
        self.children = children
        self.order = order

    @property
    def reentrant_checkpoint(self) -> bool:
        """Whether the graph holds ``torch.utils.checkpoint(..., use_reentrant=True)`` segments,
        which ``torch.autograd.grad`` cannot run through (``backward()`` can)."""
        return any(type(node).__name__ == REENTRANT_NODE for node in self.order)


def _norms(tensors: list[torch.Tensor]) -> list[float]:
    if not tensors:
        return []
    return torch.stack(torch._foreach_norm(tensors)).double().tolist()


def _grad(
    output: Any,
    inputs: list[torch.Tensor],
    grad_output: Any = None,
    retain: bool = True,
) -> list[torch.Tensor | None]:
    """``torch.autograd.grad`` from ``output`` (a tensor, with ``grad_output`` when not a scalar)
    to ``inputs``, None for an input not reached."""
    if not inputs:
        return []
    return list(torch.autograd.grad(output, inputs, grad_output, retain_graph=retain,
                                    allow_unused=True))  # fmt: skip


def compute_grad_stats(
    fwd: ForwardResult, *, exact: bool = False, depth: int = 1, model: nn.Module | None = None
) -> GradStats:
    """Gradients of the total loss (and per term) for a forward pass that kept its graph.

    Default path, when the trunk/heads boundary is known: the total's backward (a plain
    training backward) in two parts, the heads (graph kept, each term's frontier gradients
    recorded on the way) and then the trunk from the boundary (freeing the graph as it goes);
    between them, for every active term but the largest, one backward from its frontier to the
    boundary. The largest term's boundary gradient is the total's minus the others'. With
    ``exact``, one full backward per term.
    """
    if not fwd.grad:
        raise ValueError("grad stats need a forward pass run with grad=True")
    with _cyclic_gc_paused(), reentrant_checkpoint_as_input_error():
        return _compute_grad_stats(fwd, exact, depth, model)


def _compute_grad_stats(
    fwd: ForwardResult, exact: bool, depth: int, model: nn.Module | None
) -> GradStats:
    start = time.perf_counter()
    model = model if model is not None else fwd.inputs.model
    weights = fwd.config.weights
    boundary = fwd.boundary
    named = list(model.named_parameters())
    group_names: list[str] = []
    group_index: dict[str, int] = {}
    named_gid: list[int] = []  # group of each named parameter
    for name, _ in named:
        g = group_of(name, depth)
        gid = group_index.get(g)
        if gid is None:
            gid = group_index[g] = len(group_names)
            group_names.append(g)
        named_gid.append(gid)
    trainable = [(n, p) for n, p in named if p.requires_grad]
    params = [p for _, p in trainable]
    param_bit = {id(p): i for i, p in enumerate(params)}
    param_gid = [gid for (_, p), gid in zip(named, named_gid) if p.requires_grad]

    terms = fwd.terms.terms
    active = {k: weights.weight_of(k) for k in terms if weights.weight_of(k) != 0}
    features = boundary.features
    usable = (
        isinstance(features, torch.Tensor)
        and features.requires_grad
        and features.grad_fn is not None
    )
    walk = GraphWalk([t.grad_fn for t in terms.values()])
    node_masks: dict[Any, tuple[int, int]] = {}
    reach = reach_sets(dict(terms), param_bit, features if usable else None, walk, node_masks)
    boundary_bit = 1 << len(params)

    boundary_info: dict[str, Any] = {
        "description": boundary.description,
        "guessed": boundary.guessed,
        "trunk": boundary.trunk,
        "heads": boundary.heads,
        "shape": list(features.shape) if isinstance(features, torch.Tensor) else None,
    }
    if not usable:
        boundary_info["unavailable"] = (
            "no boundary tensor"
            if features is None
            else "the boundary needs no gradient"
            if not features.requires_grad
            else "the boundary is a leaf tensor (computed from nothing the model trains)"
        )
    names_active = [k for k in active if terms[k].grad_fn is not None]
    all_mask = bypass_mask = 0
    for k in names_active:
        all_mask |= reach[k][0]
        bypass_mask |= reach[k][1]
    reached = [i for i in range(len(params)) if all_mask >> i & 1]
    direct = [i for i in reached if bypass_mask >> i & 1]
    chain = [i for i in reached if not bypass_mask >> i & 1]

    grads: list[torch.Tensor | None] = [None] * len(params)
    summary = _GradSummary(params)
    boundary_grads: dict[str, torch.Tensor] = {}
    term_group_norms: dict[str, list[float]] = {}
    total = fwd.terms.total
    if names_active and usable:
        direct_params = [params[i] for i in direct]
        chain_params = [params[i] for i in chain]
        via = [k for k in names_active if reach[k][0] & boundary_bit]
        zero = torch.zeros_like(features)
        if exact:
            per_term: dict[int, list[torch.Tensor | None]] = {i: [] for i in reached}
            for k in names_active:
                found = _grad(active[k] * terms[k], [features] + direct_params)
                g_b = found[0] if found[0] is not None else zero
                boundary_grads[k] = g_b
                for i, g in zip(direct, found[1:]):
                    per_term[i].append(g)
                chained = _grad(features, chain_params, g_b) if k in via else [None] * len(chain)
                for i, g in zip(chain, chained):
                    per_term[i].append(g)
            for i, per in per_term.items():
                present = [g for g in per if g is not None]
                grads[i] = torch.stack(present).sum(0) if present else None
            term_group_norms = _per_term_group_norms(per_term, names_active, param_gid,
                                                     len(group_names))  # fmt: skip
        else:
            # The total's backward in two parts: through the heads to the boundary (and the
            # parameters reached past it), the graph kept, while hooks on each term's own nodes
            # record the gradient the term sends into the graph the terms share; then, for
            # each term but the largest, one backward from those frontier edges to the
            # boundary (the shared heads only); then the trunk, from the boundary, freeing the
            # graph as it goes. The largest term's boundary gradient is the total's minus the
            # others' (exact up to rounding, as it dominates).
            anchor = _anchor(via, active, terms)
            with _term_frontiers(walk, names_active, active, terms, features, node_masks,
                                 boundary_bit) as frontiers:  # fmt: skip
                found = _grad(total, [features] + direct_params)
            g_total = found[0] if found[0] is not None else zero
            for i, g in zip(direct, found[1:]):
                grads[i] = g
            for k in via:
                if k != anchor:
                    boundary_grads[k] = _from_frontier(frontiers[k], features, zero)
            if via and walk.reentrant_checkpoint:
                # Reentrant checkpoint segments in the trunk: torch.autograd.grad cannot run
                # through them, and their parameters are not in the graph (the segment runs
                # under no_grad until the backward recomputes it): backward() finds them all.
                taken = set(direct)
                below = [i for i in range(len(params)) if i not in taken]
                found_below = _backward_into(features, g_total, [params[i] for i in below], params)
                chain = [i for i, g in zip(below, found_below) if g is not None]
                for i, g in zip(below, found_below):
                    grads[i] = g
                hidden = sum(1 << i for i in chain if not all_mask >> i & 1)
                for k in via:  # every term through the boundary reaches them
                    reach[k] = (reach[k][0] | hidden, reach[k][1])
            elif chain:
                chained = _grad(features, chain_params, g_total, retain=False)
                for i, g in zip(chain, chained):
                    grads[i] = g
            summary.add(direct + chain, [grads[i] for i in direct + chain])
            for k in names_active:
                if k not in via:
                    boundary_grads[k] = zero
            if anchor is not None:
                rest = [boundary_grads[k] for k in via if k != anchor]
                boundary_grads[anchor] = g_total - sum(rest) if rest else g_total
    elif names_active and exact:
        per_term = {i: [] for i in reached}
        for k in names_active:
            for i, g in zip(reached, _grad(active[k] * terms[k], [params[i] for i in reached])):
                per_term[i].append(g)
        for i, per in per_term.items():
            present = [g for g in per if g is not None]
            grads[i] = torch.stack(present).sum(0) if present else None
        term_group_norms = _per_term_group_norms(per_term, names_active, param_gid,
                                                 len(group_names))  # fmt: skip
    elif names_active and reached:
        for i, g in zip(reached, _grad(total, [params[i] for i in reached], retain=False)):
            grads[i] = g
    if exact or not (names_active and usable):
        summary.add(range(len(params)), grads)
    per_term_boundary = (
        torch.stack([boundary_grads[k].reshape(-1) for k in names_active])
        if boundary_grads
        else None
    )

    norms, nonzero, param_norms = summary.read()
    groups = _group_rows(trainable, grads, norms, nonzero, param_norms, named, named_gid,
                         param_gid, group_names, boundary.trunk)  # fmt: skip
    if exact:
        for gid, row in enumerate(groups):
            row["term_norms"] = {t: n[gid] for t, n in term_group_norms.items()}
    total_sq = sum(n * n for n in norms if n is not None)
    total_norm = math.sqrt(total_sq) if math.isfinite(total_sq) else float("nan")

    # Terms: reach, boundary norms, shares, conflicts.
    b_norms: dict[str, float] = {}
    if per_term_boundary is not None:
        # Gram matrix of the per-term boundary gradients (float32 products, float64 after):
        # norms on its diagonal, cosines off it.
        gram = (per_term_boundary @ per_term_boundary.T).double().tolist()
        if not all(math.isfinite(v) for row in gram for v in row):  # overflow, or NaN/inf inside
            rows = per_term_boundary.double()
            gram = (rows @ rows.T).tolist()
        for k, term in enumerate(names_active):
            b_norms[term] = math.sqrt(gram[k][k]) if gram[k][k] >= 0 else float("nan")
    b_sum = sum(v for v in b_norms.values() if math.isfinite(v))
    term_rows = []
    for term in terms:
        full = reach[term][0]
        groups_reached = sorted({param_gid[i] for i in range(len(params)) if full >> i & 1})
        term_rows.append({
            "term": term,
            "weight": weights.weight_of(term),
            "active": term in active,
            "reaches": [group_names[g] for g in groups_reached],
            "boundary_norm": b_norms.get(term),
            "share": (b_norms[term] / b_sum) if term in b_norms and b_sum > 0 else None,
        })  # fmt: skip
    conflicts = []
    if per_term_boundary is not None:
        for i, a in enumerate(names_active):
            for j in range(i + 1, len(names_active)):
                na, nb = b_norms[a], b_norms[names_active[j]]
                if na > 0 and nb > 0:
                    cos = gram[i][j] / (na * nb)
                    conflicts.append({"a": a, "b": names_active[j], "cosine": cos})
    refine = [
        g for g in group_names
        if any(p in g.lower() for p in REFINE_PATTERN) and _group_role(g, boundary.trunk) == "head"
    ]  # fmt: skip
    boundary_info["chained"] = bool(usable and chain)
    return GradStats(groups, term_rows, conflicts, boundary_info, total_norm, exact, depth,
                     refine, time.perf_counter() - start)  # fmt: skip


def _backward_into(
    root: torch.Tensor,
    grad: torch.Tensor,
    wanted: list[torch.Tensor],
    params: list[torch.Tensor],
) -> list[torch.Tensor | None]:
    """``root.backward(grad)`` and the ``.grad`` it leaves on ``wanted``: for graphs with
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
        torch.autograd.backward(root, grad)  # frees the graph as it goes, as a training step does
        return [p.grad for p in wanted]
    finally:
        for p, g in zip(params, saved):
            p.grad = g


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


def _anchor(via: list[str], active: dict[str, float], terms: dict[str, torch.Tensor]) -> str | None:
    """The term whose boundary gradient is taken as the total's minus the others': the largest
    weighted value (its gradient dominates, so the subtraction loses least to rounding)."""
    if not via:
        return None
    sizes = torch.stack([(active[k] * terms[k].detach()).abs() for k in via]).tolist()
    return via[sizes.index(max(sizes))]


@contextmanager
def _term_frontiers(
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


def _from_frontier(
    frontier: dict[tuple[Any, int], torch.Tensor], features: torch.Tensor, zero: torch.Tensor
) -> torch.Tensor:
    """A term's boundary gradient from the gradients on its frontier edges."""
    from torch.autograd.graph import GradientEdge

    if not frontier:
        return zero
    keys = list(frontier)
    (g,) = _grad([GradientEdge(*key) for key in keys], [features], [frontier[k] for k in keys])
    return g if g is not None else zero


def _per_term_group_norms(
    per_term: dict[int, list[torch.Tensor | None]], names: list[str], param_gid: list[int], n: int
) -> dict[str, list[float]]:
    """Per term, the gradient norm of each group; ``per_term``: param index -> one grad a term."""
    sq = [[0.0] * n for _ in names]
    for i, per in per_term.items():
        present = [(k, g) for k, g in enumerate(per) if g is not None]
        for (k, _), norm in zip(present, _norms([g for _, g in present])):
            sq[k][param_gid[i]] += norm * norm
    return {t: [math.sqrt(v) if math.isfinite(v) else float("nan") for v in sq[k]]
            for k, t in enumerate(names)}  # fmt: skip


def _group_role(group: str, trunk: list[str]) -> str:
    return _role(group + ".x", trunk) if group != "(root)" else "head"


def _group_rows(
    trainable, grads, norms, nonzero, param_norms, named, named_gid, param_gid, group_names, trunk
):
    rows = {
        gid: {
            "name": g,
            "role": _group_role(g, trunk),
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
        for gid, g in enumerate(group_names)
    }
    sq_g = [0.0] * len(group_names)
    sq_p = [0.0] * len(group_names)
    missing = [0] * len(group_names)
    for (_, param), gid in zip(named, named_gid):
        row = rows[gid]
        row["tensors"] += 1
        if not param.requires_grad:
            row["frozen"] += param.numel()
    for k, ((name, param), grad) in enumerate(zip(trainable, grads)):
        gid = param_gid[k]
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
    return [rows[i] for i in range(len(group_names))]


_EXACT_COUNT = (torch.float32, torch.float64)  # dtypes whose L0 norm counts exactly to 2**24


class _GradSummary:
    """Norms and non-zero counts of gradients, taken right after the backward that made them
    (while they are still in cache) and read back at the end in one transfer."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.index: list[int] = []
        self.params = len(params)
        with torch.no_grad():  # the parameters' own norms, taken first
            self.parts = [torch.stack(torch._foreach_norm(params)).double()] if params else []

    def add(self, indices: Any, grads: list[torch.Tensor | None]) -> None:
        """``grads[j]``: the gradient of parameter ``indices[j]`` (None: none)."""
        pairs = [(i, g) for i, g in zip(indices, grads) if g is not None]
        if not pairs:
            return
        present = [g for _, g in pairs]
        with torch.no_grad():
            norms = torch.stack(torch._foreach_norm(present)).double()
            if all(g.dtype in _EXACT_COUNT and g.numel() <= 1 << 24 for g in present):
                # one kernel for all: the L0 "norm" counts non-zero elements (exact in float32)
                nonzero = torch.stack(torch._foreach_norm(present, 0)).double()
            else:
                nonzero = torch.stack([torch.count_nonzero(g) for g in present]).double()
        self.index.extend(i for i, _ in pairs)
        self.parts.append(torch.cat((norms, nonzero)))

    def read(self) -> tuple[list[float | None], list[int], list[float]]:
        """Per parameter: gradient norm (None without gradient), non-zero gradient elements, and
        the parameter's own norm."""
        n = self.params
        sizes = [part.numel() // 2 for part in self.parts[1:]]
        flat = torch.cat(self.parts).tolist() if self.parts else []
        param_norms, at = flat[:n], n
        norms: list[float | None] = [None] * n
        nonzero = [0] * n
        index = iter(self.index)
        for size in sizes:
            for j in range(size):
                i = next(index)
                norms[i] = flat[at + j]
                nonzero[i] = int(flat[at + size + j])
            at += 2 * size
        return norms, nonzero, param_norms


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
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


def grad_from_forward(
    fwd: ForwardResult, *, exact: bool = False, depth: int = 1, nan_origin: Any = None
) -> tuple[list[CheckResult], dict[str, Any], GradStats]:
    """grad-flow's checks and sections for a forward pass that kept its graph (used by gate).

    ``nan_origin``: a forward origin already found (gate passes loss-breakdown's), else searched
    for only when a gradient is non-finite."""
    with out_of_memory_as_input_error(fwd.batch.size, fwd.inputs.device):
        stats = compute_grad_stats(fwd, exact=exact, depth=depth)
    origin = nan_origin
    bad = any(g["nonfinite"] for g in stats.groups) or not math.isfinite(stats.total_grad_norm)
    if bad and origin is None:
        from utnet_diag.diagnostics.nan_origin import locate_backward, locate_forward

        forward_ok = all_finite(fwd.outputs) and bool(torch.isfinite(fwd.terms.total))
        origin = locate_forward(fwd.inputs, fwd.seed) if not forward_ok else None
        if origin is None:
            origin = locate_backward(fwd.inputs, fwd.seed)
    ctx = CheckContext(batch=fwd.batch, config=fwd.config, model=fwd.inputs.model,
                       extras={"grad": stats, "nan_origin": origin})  # fmt: skip
    checks = run_checks(GRAD_CHECKS.specs, ctx)
    sections = stats.to_sections()
    if origin is not None:
        sections["nan_origin"] = origin.to_dict()
    return checks, sections, stats


def grad_flow(
    model: Any = None,
    batch: Any = None,
    *,
    config: Any = None,
    preset: str | None = None,
    device: str = "auto",
    exact: bool = False,
    depth: int = 1,
    seed: int = DEFAULT_SEED,
    target_shares: dict[str, float] | None = None,
    **load_options: Any,
) -> Report:
    """One training step's gradients, per module group and per loss term; weights unchanged.

    Args:
        model: a LoadedModel, or None to load one (``load_options`` as in ``load_model``).
        batch: a Batch, a path, or None for the embedded default.
        exact: one full backward per term for exact per-term, per-group norms.
        depth: module-path depth of the groups (1: top-level children).
        target_shares: gradient shares the ``weight_advice`` section advises weights for
            (:mod:`utnet_diag.diagnostics.advisor`; default equal 2D and 3D joint).
    Returns:
        Report ``grad-flow`` with sections ``run``, ``grad_modules``, ``grad_terms``,
        ``weight_advice``.
    """
    from utnet_diag.diagnostics.loss_breakdown import run_section

    if depth < 1:
        raise InputError(f"--depth must be >= 1, got {depth}")
    from utnet_diag.diagnostics.advisor import advice_for_forward

    inputs = load_inputs(
        batch=batch, config=config, preset=preset, device=device, model=model, **load_options
    )
    with training_step(inputs.model, seed), running(inputs.loaded), _cyclic_gc_paused():
        fwd = forward_pass(inputs, grad=True, seed=seed)
        checks, sections, stats = grad_from_forward(fwd, exact=exact, depth=depth)
        sections["weight_advice"] = advice_for_forward(fwd, target_shares, stats)
    model_checks = list(getattr(inputs.loaded, "checks", []) or [])
    return Report("grad-flow", model_checks + checks, {"run": run_section(inputs, fwd), **sections})


def save_grad_plot(report: Report, path: Any) -> None:
    """Bar chart of gradient norm and grad/param ratio per module group, written atomically as PNG.

    Needs matplotlib (the ``plot`` extra)."""
    import io

    from utnet_diag.io.files import write_bytes_atomic

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib", hint="pip install 'utnet-diag[plot]'") from None
    groups = report.sections.get("grad_modules", {}).get("groups", [])
    names = [g["name"] for g in groups]
    norms = [
        g["grad_norm"] if g["grad_norm"] and math.isfinite(g["grad_norm"]) else 0 for g in groups
    ]
    ratios = [g["ratio"] or 0 for g in groups]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(names) + 1.5))
    colors = ["tab:blue" if g["role"] == "trunk" else "tab:orange" for g in groups]
    for ax, values, title in ((axes[0], norms, "gradient norm"), (axes[1], ratios, "grad / param")):
        ax.barh(names, [max(v, 1e-30) for v in values], color=colors)
        ax.set_xscale("log")
        ax.set_title(title)
        ax.invert_yaxis()
    axes[1].set_yticklabels([])
    fig.suptitle("utnet-diag grad-flow (blue: trunk, orange: heads)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
