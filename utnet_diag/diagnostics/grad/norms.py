"""Norms of gradients and parameters, taken on the device right after the backward that made them
and read back in one transfer."""

from __future__ import annotations

import math
from typing import Any

import torch

_EXACT_COUNT = (torch.float32, torch.float64)  # dtypes whose L0 norm counts exactly to 2**24


def norms_of(tensors: list[torch.Tensor]) -> list[float]:
    """The L2 norm of each tensor (one kernel for all)."""
    if not tensors:
        return []
    return torch.stack(torch._foreach_norm(tensors)).double().tolist()


class GradNorms:
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


def per_term_group_norms(
    per_term: dict[int, list[torch.Tensor | None]], names: list[str], param_gid: list[int], n: int
) -> dict[str, list[float]]:
    """Per term, the gradient norm of each of ``n`` groups; ``per_term``: parameter index ->
    one gradient per term (in ``names`` order, None where the term does not reach it)."""
    sq = [[0.0] * n for _ in names]
    for i, per in per_term.items():
        present = [(k, g) for k, g in enumerate(per) if g is not None]
        for (k, _), norm in zip(present, norms_of([g for _, g in present])):
            sq[k][param_gid[i]] += norm * norm
    return {t: [math.sqrt(v) if math.isfinite(v) else float("nan") for v in sq[k]]
            for k, t in enumerate(names)}  # fmt: skip
