"""The gradients of one training step, without touching the model's weights or ``.grad``.

- :mod:`.plan`: which parameters and module groups there are, the autograd graph walked once,
  which parameters each loss term reaches (through the trunk/heads boundary or past it);
- :mod:`.strategies`: the backward passes, one function each (the default per-term frontier
  method, exact per-term backwards with or without a boundary, the total alone);
- :mod:`.summary`: norms, per-group rows, per-term shares and the Gram matrix of the per-term
  boundary gradients (conflicts), and :func:`compute_grad_stats` that runs the three.
"""

from utnet_diag.diagnostics.grad.plan import GraphWalk, group_of, reach_sets
from utnet_diag.diagnostics.grad.strategies import reentrant_checkpoint_as_input_error
from utnet_diag.diagnostics.grad.summary import GradStats, compute_grad_stats

__all__ = [
    "GradStats",
    "GraphWalk",
    "compute_grad_stats",
    "group_of",
    "reach_sets",
    "reentrant_checkpoint_as_input_error",
]
