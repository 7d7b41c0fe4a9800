"""Where a NaN/Inf starts: in the batch, in a module's forward, in the loss, or in the backward.

Only run when something non-finite was already seen, so the normal path stays fast. Each search
re-runs the forward with the same seed (same dropout masks) under hooks:

- forward: forward hooks on every module, in execution order (a child finishes before its
  parent); the origin is the first module whose output is non-finite while its inputs were
  finite. If its inputs were already non-finite, the value came from code between modules.
- backward: every autograd node is tagged with the innermost module whose forward created it
  (autograd sequence numbers bracketed by pre/post forward hooks); node hooks then find the first
  node, in backward order, that receives finite gradients and produces non-finite ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from utnet_diag.diagnostics.grad.strategies import reentrant_checkpoint_as_input_error
from utnet_diag.diagnostics.runner import RunInputs, all_finite
from utnet_diag.losses import compute_terms


@dataclass(frozen=True)
class NanOrigin:
    """The first place a non-finite value appears.

    ``stage``: ``input`` (the batch), ``forward`` (a module's forward), ``model-code`` (code between
    modules), ``loss`` (the loss computation), ``backward`` (a backward node); ``where``: batch key
    or module path; ``message``: one sentence for the report.
    """

    stage: str
    where: str
    message: str
    node: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    return []


def _kind(tensors: list[torch.Tensor]) -> str:
    has_nan = any(bool(torch.isnan(t).any()) for t in tensors)
    has_inf = any(bool(torch.isinf(t).any()) for t in tensors)
    return "NaN and Inf" if has_nan and has_inf else ("NaN" if has_nan else "Inf")


def batch_origin(batch: Any) -> NanOrigin | None:
    """The first batch key holding NaN/Inf, with the sample and count."""
    for key in batch:
        value = batch[key]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            continue
        bad = ~torch.isfinite(value)
        if bool(bad.any()):
            per_sample = bad.reshape(bad.shape[0], -1).any(1)
            first = int(per_sample.nonzero()[0, 0])
            return NanOrigin(
                "input",
                key,
                f"the batch's '{key}' holds {_kind([value])} ({int(bad.sum())} values,"
                f" {int(per_sample.sum())}/{bad.shape[0]} samples, first at sample {first})",
            )
    return None


def _module_paths(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name or "(model)", module) for name, module in model.named_modules()]


def locate_forward(inputs: RunInputs, seed: int = 0) -> NanOrigin | None:
    """Re-run the forward under hooks and name where NaN/Inf first appears (None: all finite)."""
    found = batch_origin(inputs.batch)
    if found is not None:
        return found
    model = inputs.model
    state: dict[str, Any] = {"origin": None, "first_bad_input": None}
    handles = []

    def pre_hook(path: str):
        def hook(_m: nn.Module, args: Any, kwargs: Any) -> None:
            if state["first_bad_input"] is None and not all_finite([args, kwargs]):
                state["first_bad_input"] = path

        return hook

    def post_hook(path: str):
        def hook(_m: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
            if state["origin"] is not None or all_finite(output):
                return
            inputs_ok = all_finite([args, kwargs])
            state["origin"] = (path, inputs_ok, _kind(_tensors(output)))

        return hook

    for path, module in _module_paths(model):
        handles.append(module.register_forward_pre_hook(pre_hook(path), with_kwargs=True))
        handles.append(module.register_forward_hook(post_hook(path), with_kwargs=True))
    try:
        with torch.random.fork_rng(devices=_cuda_devices(model)), torch.no_grad():
            torch.manual_seed(seed)
            outputs = inputs.loaded.forward(inputs.batch)
            terms = compute_terms(
                outputs, inputs.batch, inputs.config.weights, root_id=inputs.config.root_id
            )
    finally:
        for handle in handles:
            handle.remove()
    if state["origin"] is not None:
        path, inputs_ok, kind = state["origin"]
        if inputs_ok:
            return NanOrigin(
                "forward", path, f"{kind} first appears in the output of module '{path}'"
                " (its inputs were finite)",
            )  # fmt: skip
        where = state["first_bad_input"] or path
        return NanOrigin(
            "model-code", where,
            f"{kind} first appears in the inputs of module '{where}': made by code between"
            " modules (in the forward of its parent), not by a module",
        )  # fmt: skip
    if not all_finite(outputs):
        bad = [k for k, v in outputs.items() if not all_finite(v)]
        return NanOrigin(
            "model-code", "(outputs)",
            f"every module output is finite but the outputs {', '.join(bad)} are not:"
            " made in the model's top-level code or the output mapping",
        )  # fmt: skip
    bad_terms = [k for k, v in terms.terms.items() if not bool(torch.isfinite(v).all())]
    if bad_terms:
        return NanOrigin(
            "loss", bad_terms[0],
            f"the model outputs are finite; {', '.join(bad_terms)} became non-finite in the loss"
            " computation (check the ground truth and weights)",
        )  # fmt: skip
    return None


def _cuda_devices(model: nn.Module) -> list[int]:
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def _next_sequence_nr() -> int:
    """The autograd sequence number the next node will get (a throwaway node is created)."""
    probe = torch.zeros((), requires_grad=True).clone()
    return probe.grad_fn._sequence_nr() + 1  # type: ignore[union-attr]


class _ModuleSpans:
    """While active, which module created which autograd nodes: each forward call spans a range
    of sequence numbers; a node belongs to the innermost module whose span holds it."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.spans: list[tuple[int, int, str]] = []
        self.forward_end: int | None = None
        self._opened: dict[int, list[int]] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> _ModuleSpans:
        for path, module in _module_paths(self.model):
            self._handles.append(module.register_forward_pre_hook(self._pre))
            self._handles.append(module.register_forward_hook(self._post(path)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()

    def _pre(self, module: nn.Module, _args: Any) -> None:
        self._opened.setdefault(id(module), []).append(_next_sequence_nr())

    def _post(self, path: str):
        def hook(module: nn.Module, _args: Any, _output: Any) -> None:
            start = self._opened[id(module)].pop()
            self.spans.append((start, _next_sequence_nr(), path))

        return hook

    def owner(self, seq: int) -> str:
        """The module path that created node ``seq`` (or the loss code, or code outside)."""
        best: tuple[int, str] | None = None
        for start, end, path in self.spans:
            if start <= seq < end and (best is None or start > best[0]):
                best = (start, path)
        if best is not None:
            return best[1]
        after_forward = self.forward_end is not None and seq >= self.forward_end
        return "loss computation" if after_forward else "model code outside modules"


def locate_backward(inputs: RunInputs, seed: int = 0) -> NanOrigin | None:
    """Re-run forward and backward under hooks; name the first backward node (and the module
    that created it) whose output gradients are non-finite while its incoming ones are finite.

    Parameters' ``.grad`` are not touched (``torch.autograd.grad``)."""
    model = inputs.model
    with (
        _ModuleSpans(model) as spans,
        torch.random.fork_rng(devices=_cuda_devices(model)),
        torch.enable_grad(),
    ):
        torch.manual_seed(seed)
        outputs = inputs.loaded.forward(inputs.batch)
        spans.forward_end = _next_sequence_nr()
        terms = compute_terms(
            outputs, inputs.batch, inputs.config.weights, root_id=inputs.config.root_id
        )
    total = terms.total
    params = [p for p in model.parameters() if p.requires_grad]
    if total.grad_fn is None or not params:
        return None
    found = _first_nonfinite_node(total, params, spans.owner)
    if not found:
        return None
    return NanOrigin(
        "backward",
        found["module"],
        f"the backward of {found['node']} in '{found['module']}' turns finite gradients into"
        f" {found['kind']}",
        node=found["node"],
    )


def _first_nonfinite_node(total: torch.Tensor, params: list[Any], owner: Any) -> dict[str, Any]:
    """Backward of ``total`` with a hook on every graph node: the first node whose produced
    gradients are non-finite while the ones it received are finite (name, kind, owner)."""
    found: dict[str, Any] = {}

    def node_hook(node: Any):
        def hook(grad_inputs: tuple, grad_outputs: tuple) -> None:
            if found:
                return
            produced = [g for g in grad_inputs if isinstance(g, torch.Tensor)]
            received = [g for g in grad_outputs if isinstance(g, torch.Tensor)]
            if produced and not all_finite(produced) and all_finite(received):
                found["node"] = node.name()
                found["kind"] = _kind(produced)
                found["module"] = owner(node._sequence_nr())

        return hook

    node_handles = []
    seen: set[int] = set()
    stack = [total.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.name() != "torch::autograd::AccumulateGrad":
            node_handles.append(node.register_hook(node_hook(node)))
        stack.extend(child for child, _ in node.next_functions)
    try:
        with reentrant_checkpoint_as_input_error():
            torch.autograd.grad(total, params, allow_unused=True)
    finally:
        for handle in node_handles:
            handle.remove()
    return found
