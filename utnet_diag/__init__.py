"""utnet-diag: loss debugging and diagnostics for UTNet (3D hand pose and mesh).

The public API is imported lazily, so ``import utnet_diag`` (and ``utnet-diag --help``) does not
import torch::

    import utnet_diag
    batch = utnet_diag.load_batch("batch.pt")
    report = utnet_diag.check_batch(batch)
    print(report.status, [c.id for c in report.checks if c.status == "fail"])
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_batch": "utnet_diag.io.batch",
    "Batch": "utnet_diag.io.batch",
    "load_config": "utnet_diag.config",
    "LossWeights": "utnet_diag.config",
    "DiagConfig": "utnet_diag.config",
    "Report": "utnet_diag.report.result",
    "CheckResult": "utnet_diag.report.result",
    "Status": "utnet_diag.report.result",
    "InputError": "utnet_diag.errors",
    "check_batch": "utnet_diag.diagnostics.check_batch",
    "load_model": "utnet_diag.model.sources",
    "loss_breakdown": "utnet_diag.diagnostics.loss_breakdown",
    "grad_flow": "utnet_diag.diagnostics.grad_flow",
    "gate": "utnet_diag.diagnostics.gate",
    "compare": "utnet_diag.diagnostics.compare",
    "RunOptions": "utnet_diag.run_options",
    "evaluate": "utnet_diag.evaluation.run",
}
_SUBMODULES = (
    "losses", "joints", "checks", "report", "io", "mano", "model", "diagnostics", "evaluation",
)  # fmt: skip

__all__ = sorted(_LAZY) + list(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"utnet_diag.{name}")
    raise AttributeError(f"module 'utnet_diag' has no attribute {name!r}")
