"""What a gradient pass works on, found before any backward: the trainable parameters and their
module groups, the union of the loss terms' autograd graphs walked once, and which parameters
each term reaches (through the trunk/heads boundary tensor, or by a path around it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

REENTRANT_NODE = "CheckpointFunctionBackward"  # torch.utils.checkpoint with use_reentrant=True


def group_of(param_name: str, depth: int) -> str:
    """Module group of a parameter: the first ``depth`` parts of its module path."""
    parts = param_name.split(".")[:-1]
    return ".".join(parts[:depth]) if parts else "(root)"


def role_of(param_name: str, trunk: list[str]) -> str:
    """'trunk' for a parameter under one of the ``trunk`` module paths, else 'head'."""
    return "trunk" if any(param_name.startswith(t + ".") for t in trunk) else "head"


def group_role(group: str, trunk: list[str]) -> str:
    return role_of(group + ".x", trunk) if group != "(root)" else "head"


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


@dataclass
class GradPlan:
    """Everything a backward strategy needs, computed once per pass.

    ``named``: every named parameter; ``named_gid``/``param_gid``: the group index of each named
    / trainable parameter; ``params``: the trainable ones (bit ``i`` of a reach mask is
    ``params[i]``); ``terms``: the loss terms; ``active``: term -> weight, for the terms with a
    non-zero weight; ``names_active``: those with a graph; ``features``: the trunk/heads
    boundary tensor, ``usable`` when gradient can be taken at it; ``walk``, ``node_masks`` and
    ``reach``: the graph and term -> (all, bypass) masks; ``reached``: indices of the parameters
    any active term reaches, split into ``direct`` (reached around the boundary) and ``chain``
    (only through it); ``boundary_info``: the report's description of the boundary.
    """

    named: list[tuple[str, nn.Parameter]]
    named_gid: list[int]
    group_names: list[str]
    trainable: list[tuple[str, nn.Parameter]]
    params: list[nn.Parameter]
    param_gid: list[int]
    terms: dict[str, torch.Tensor]
    total: torch.Tensor
    active: dict[str, float]
    names_active: list[str]
    features: Any
    usable: bool
    walk: GraphWalk
    node_masks: dict[Any, tuple[int, int]]
    reach: dict[str, tuple[int, int]]
    reached: list[int]
    direct: list[int]
    chain: list[int]
    all_mask: int
    boundary_info: dict[str, Any] = field(default_factory=dict)

    @property
    def boundary_bit(self) -> int:
        return 1 << len(self.params)

    @property
    def via_boundary(self) -> list[str]:
        """The active terms whose graph reaches the boundary."""
        return [k for k in self.names_active if self.reach[k][0] & self.boundary_bit]


def make_plan(fwd: Any, depth: int, model: nn.Module) -> GradPlan:
    """The plan of a gradient pass over ``fwd`` (a ForwardResult that kept its graph)."""
    weights = fwd.config.weights
    boundary = fwd.boundary
    named = list(model.named_parameters())
    group_names: list[str] = []
    group_index: dict[str, int] = {}
    named_gid: list[int] = []
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
    return GradPlan(
        named=named, named_gid=named_gid, group_names=group_names, trainable=trainable,
        params=params, param_gid=param_gid, terms=terms, total=fwd.terms.total, active=active,
        names_active=names_active, features=features, usable=usable, walk=walk,
        node_masks=node_masks, reach=reach, reached=reached,
        direct=[i for i in reached if bypass_mask >> i & 1],
        chain=[i for i in reached if not bypass_mask >> i & 1],
        all_mask=all_mask, boundary_info=boundary_info,
    )  # fmt: skip
