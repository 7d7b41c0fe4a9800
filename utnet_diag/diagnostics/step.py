"""What one optimiser step does with the gradients of a training step: clipping and step size.

From the total gradient that :mod:`utnet_diag.diagnostics.grad` measured (weights and ``.grad``
untouched), with the config's optimiser (:mod:`utnet_diag.optimizer_config`):

- clipping as ``torch.nn.utils.clip_grad_norm_`` does it: the global norm over every gradient,
  the factor ``min(1, max_norm / (norm + 1e-6))``, and how much of the clipped direction each
  loss term gives (its gradient's projection on the total, ``<g_t, g> / |g|^2``; the shares sum
  to 1). Over all parameters with ``exact``; else at the trunk/heads boundary, where every term
  meets, from the Gram matrix of the per-term boundary gradients;
- the first step of the configured optimiser (from fresh state, :func:`first_update`, on each
  module group's weights and gradients flattened, sampled above 262,144 elements
  (:func:`_sample`); weights never written): per group, the norm of the update over the norm
  of the weights; and with clipping, how much the clip shrinks the whole update (for
  Adam-family optimisers it cancels unless the clipped gradients reach ``eps``).

The learning-rate scheduler is not applied: the step is taken at the configured ``lr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from utnet_diag.diagnostics.grad.summary import GradStats
from utnet_diag.optimizer_config import ADAM_FAMILY, OptimizerSettings
from utnet_diag.report.sections import StepSection

CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s


def clip_factor(total_norm: float, max_norm: float | None) -> float:
    """The factor ``clip_grad_norm_`` multiplies every gradient by (1: no clipping)."""
    if max_norm is None or not math.isfinite(total_norm):
        return 1.0
    return min(1.0, max_norm / (total_norm + CLIP_EPS))


def term_shares(stats: GradStats) -> tuple[dict[str, float], str]:
    """Each active term's share of the total gradient's direction, ``<g_t, g> / |g|^2``, and
    where it was measured ('all parameters' in exact mode, else 'the trunk/heads boundary')."""
    if stats.exact and stats.term_dots:
        total = sum(stats.term_dots.values())
        if total > 0 and math.isfinite(total):
            return {t: d / total for t, d in stats.term_dots.items()}, "all parameters"
    norms = {t["term"]: t["boundary_norm"] for t in stats.terms
             if t["active"] and t["boundary_norm"] is not None}  # fmt: skip
    if not norms:
        return {}, "unavailable"
    dots = {t: n * n for t, n in norms.items()}
    for c in stats.conflicts:  # G[a,b] = cos * |a| |b|, counted for both terms
        cross = c["cosine"] * norms[c["a"]] * norms[c["b"]]
        dots[c["a"]] += cross
        dots[c["b"]] += cross
    total = sum(dots.values())
    if not (total > 0 and math.isfinite(total)):
        return {}, "unavailable"
    return {t: d / total for t, d in dots.items()}, "the trunk/heads boundary"


RMSPROP_ALPHA = 0.99  # torch.optim.RMSprop's default


def decay_rounds_away(lr: float, weight_decay: float, dtype: torch.dtype = torch.float32) -> bool:
    """Whether AdamW's decay factor ``1 - lr*weight_decay`` is exactly 1 in ``dtype``: the
    weights are then multiplied by 1 and nothing decays (below about 6e-8 in float32)."""
    return float(torch.tensor(1.0 - lr * weight_decay, dtype=dtype)) == 1.0


def first_update(settings: OptimizerSettings, lr: float, param: torch.Tensor,
                 grad: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The change ``torch.optim.<kind>`` makes to ``param`` on its first step (fresh state) for
    gradient ``grad``, in closed form and float32, as the weights keep it (the new weight in
    the weights' own precision, minus the old); ``param`` and ``grad`` are not written.

    AdamW: ``p*(1 - lr*wd) - lr*g/(|g| + eps)`` (decay, then the bias-corrected first moment
    over the root of the second, which are ``g`` and ``|g|`` on step one); Adam: the same with
    ``g + wd*p`` and no decoupled decay; SGD: ``-lr*(g + wd*p)``, times ``1 + momentum`` with
    Nesterov (the momentum buffer starts as the gradient); RMSprop:
    ``-lr*g'/(sqrt((1-alpha)*g'^2) + eps)``. torch's own order of operations, for its float32
    rounding; in place on temporaries. Computed here rather than by stepping ``torch.optim``
    (the tests compare the two), because constructing a ``torch.optim`` optimiser imports
    ``torch._dynamo``: about a second."""
    p = param.detach()
    g = grad.detach().float()
    wd = settings.weight_decay
    base = p  # the weights the update is added to
    if settings.kind == "AdamW" and wd:
        # decoupled decay as torch applies it, p * (1 - lr*wd) in the weights' precision: at
        # lr*wd below about 6e-8 (UTNet's 1e-5 * 1e-4) the factor rounds to 1: nothing decays
        if not decay_rounds_away(lr, wd, p.dtype):
            base = p * (1.0 - lr * wd)
    elif wd:
        g = g.add(p, alpha=wd)  # as torch adds it: one rounding
    if settings.kind in ADAM_FAMILY:
        b1, b2 = settings.betas
        denom = g * (1.0 - b2)  # exp_avg_sq on step one: (1 - b2) * g * g
        denom.mul_(g).sqrt_().div_(math.sqrt(1.0 - b2)).add_(settings.eps)
        change = g * (1.0 - b1)  # exp_avg on step one
        change.div_(denom).mul_(-(lr / (1.0 - b1)))
    elif settings.kind == "SGD":
        change = g * (-lr * (1.0 + settings.momentum if settings.nesterov else 1.0))
    else:  # RMSprop
        avg = g * (1.0 - RMSPROP_ALPHA)
        avg.mul_(g).sqrt_().add_(settings.eps)
        change = g / avg
        change.mul_(-lr)
    return change.to(p.dtype).add_(base).sub_(p)


MAX_ELEMENTS = 1 << 18  # per group: larger groups are measured on a sample of this many


def _next_prime(k: int) -> int:
    """The smallest prime >= k (k >= 2)."""
    k = max(k, 2)
    while any(k % d == 0 for d in range(2, int(k**0.5) + 1)):
        k += 1
    return k


@dataclass
class _Part:
    """One module group's trainable weights of one dtype and device with a gradient: ``n``
    elements in all, ``weights`` and ``grads`` the flat pieces of their concatenation (every
    k-th element of it when it has more than ``MAX_ELEMENTS``; see :func:`_sample`)."""

    gid: int
    lr: float
    n: int
    weights: list[torch.Tensor]
    grads: list[torch.Tensor]

    @property
    def size(self) -> int:
        """Elements measured (``n`` unless sampled)."""
        return sum(w.numel() for w in self.weights)

    @property
    def sampled(self) -> bool:
        return self.size < self.n


def _sample(tensors: list[torch.Tensor], n: int) -> list[torch.Tensor]:
    """Flat views of ``tensors`` (``n`` elements in all) whose concatenation is theirs; above
    ``MAX_ELEMENTS`` only its every k-th element, k the smallest prime that keeps the sample
    within ``MAX_ELEMENTS`` (a prime so that the sample walks through every column of the
    weight matrices, whose widths are multiples of small numbers). Taken tensor by tensor, so
    the whole concatenation of a large group is never built."""
    flat = [t.detach().reshape(-1) for t in tensors]
    if n <= MAX_ELEMENTS:
        return flat
    stride = _next_prime(-(-n // MAX_ELEMENTS))
    parts, at = [], 0
    for t in flat:
        parts.append(t[(-at) % stride :: stride])
        at += t.numel()
    return parts


def _parts(stats: GradStats, lr_of: Any) -> list[_Part]:
    """Per module group, its parameters with a gradient as (sampled) flat weights and gradients,
    one part per dtype and device (so each step is taken in its own precision)."""
    found: dict[tuple[int, Any, Any], tuple[list[Any], list[Any]]] = {}
    for (_, param), gid, grad in zip(stats.trainable, stats.param_gid, stats.grads):
        if grad is not None:
            weights, grads = found.setdefault((gid, param.dtype, param.device), ([], []))
            weights.append(param)
            grads.append(grad)
    names = [g["name"] for g in stats.groups]
    parts = []
    for (gid, _, _), (weights, grads) in sorted(found.items(), key=lambda item: item[0][0]):
        n = sum(w.numel() for w in weights)
        parts.append(_Part(gid, lr_of(names[gid]), n, _sample(weights, n), _sample(grads, n)))
    return parts


def _update_sq(settings: OptimizerSettings, part: _Part,
               factors: tuple[float, ...]) -> list[float]:  # fmt: skip
    """The squared norm of one step's update of a part's weights for its gradient times each
    factor, as the weights would change (:func:`first_update`). A sampled part's sum is scaled
    by ``n / sampled``: the update is computed element by element, so the sample mean of its
    squares estimates theirs (within 3% on a million elements whose gradients span seven
    orders of magnitude, tested; the step checks' limits are orders of magnitude apart), at a
    cost that no longer grows with the model."""
    weight = torch.cat(part.weights) if len(part.weights) > 1 else part.weights[0]
    grad = torch.cat(part.grads) if len(part.grads) > 1 else part.grads[0]
    scale = part.n / weight.numel()
    out = []
    for factor in factors:
        change = first_update(settings, part.lr, weight, grad * factor if factor != 1.0 else grad)
        out.append(scale * float(torch.linalg.vector_norm(change, dtype=torch.float64)) ** 2)
    return out


def _decay_notes(settings: OptimizerSettings, lrs: list[float]) -> list[str]:
    """AdamW's decoupled decay multiplies float32 weights by ``1 - lr*wd``: below about 6e-8
    that factor rounds to exactly 1 and the configured weight decay does nothing."""
    if settings.kind != "AdamW" or not settings.weight_decay:
        return []
    lost = sorted({lr for lr in lrs if decay_rounds_away(lr, settings.weight_decay)})
    if not lost:
        return []
    products = ", ".join(f"{lr * settings.weight_decay:g}" for lr in lost)
    return [f"AdamW's weight decay does nothing on float32 weights: 1 - lr*weight_decay (lr*wd ="
            f" {products}) rounds to 1, so p * (1 - lr*wd) == p"]  # fmt: skip


def step_section(stats: GradStats, settings: OptimizerSettings) -> StepSection:
    """Clipping and one optimiser step for the gradients in ``stats`` (which must be finite)."""
    factor = clip_factor(stats.total_grad_norm, settings.clip_grad_norm)
    shares, basis = term_shares(stats)
    names = [g["name"] for g in stats.groups]
    factors = (factor, 1.0) if factor < 1.0 else (factor,)
    parts = _parts(stats, settings.lr_of)
    sums = [_update_sq(settings, part, factors) for part in parts]
    per_group: dict[int, list[float]] = {}
    for part, row in zip(parts, sums):
        acc = per_group.setdefault(part.gid, [0.0] * len(factors))
        for f, v in enumerate(row):
            acc[f] += v
    rows = []
    clipped_sq = unclipped_sq = 0.0
    for gid, sq in sorted(per_group.items()):
        clipped_sq += sq[0]
        unclipped_sq += sq[-1]
        weight = stats.groups[gid]["param_norm"]
        update = math.sqrt(sq[0])
        rows.append({"name": names[gid], "lr": settings.lr_of(names[gid]), "update_norm": update,
                     "param_norm": weight, "ratio": update / weight if weight > 0 else None})  # fmt: skip
    shrink = None
    if factor < 1.0 and unclipped_sq > 0:
        shrink = math.sqrt(clipped_sq / unclipped_sq)
    unknown = settings.unmatched_groups(names)
    notes = _decay_notes(settings, [r["lr"] for r in rows])
    sampled = list(dict.fromkeys(names[p.gid] for p in parts if p.sampled))
    if sampled:
        notes.append(f"update sizes of {', '.join(sampled)} estimated on a sample of"
                     f" {MAX_ELEMENTS} elements each (every k-th, k prime)")  # fmt: skip
    return StepSection(
        notes=notes or None,
        optimizer=settings.to_dict(),
        total_grad_norm=stats.total_grad_norm,
        clip_grad_norm=settings.clip_grad_norm,
        clip_factor=factor,
        step_shrink=shrink,
        term_shares=shares,
        share_basis=basis,
        groups=rows,
        unknown_groups=unknown or None,
    )
