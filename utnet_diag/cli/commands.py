"""Every command of utnet-diag, registered from one table: (name, module, function).

A command module defines its function with typer annotations and no decorator; :func:`register`
puts them on the app in this order. Importing a command module must not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# The groups of `utnet-diag --help`, in order.
GROUPS = ("Data", "Model", "Training", "Evaluation", "Dataset", "Assets", "About")

COMMANDS: tuple[tuple[str, str, str, str], ...] = (
    ("check-batch", "utnet_diag.cli.check_batch", "check_batch_command", "Data"),
    ("gate", "utnet_diag.cli.gate", "gate_command", "Model"),
    ("loss-breakdown", "utnet_diag.cli.loss_breakdown", "loss_breakdown_command", "Model"),
    ("grad-flow", "utnet_diag.cli.grad_flow", "grad_flow_command", "Model"),
    ("compare", "utnet_diag.cli.compare", "compare_command", "Model"),
    ("overfit", "utnet_diag.cli.overfit", "overfit_command", "Training"),
    ("parse-log", "utnet_diag.cli.parse_log", "parse_log_command", "Training"),
    ("eval", "utnet_diag.cli.eval", "eval_command", "Evaluation"),
    ("scan", "utnet_diag.cli.scan", "scan_command", "Dataset"),
    ("make-sample", "utnet_diag.cli.make_sample", "make_sample_command", "Assets"),
    (
        "inspect-checkpoint",
        "utnet_diag.cli.inspect_checkpoint",
        "inspect_checkpoint_command",
        "Assets",
    ),  # fmt: skip
    ("convert-mano", "utnet_diag.cli.convert_mano", "convert_mano_command", "Assets"),
    ("mano-info", "utnet_diag.cli.mano_info", "mano_info_command", "Assets"),
    ("checks", "utnet_diag.cli.checks", "checks_command", "About"),
    ("explain", "utnet_diag.cli.explain", "explain_command", "About"),
    ("version", "utnet_diag.cli.version", "version_command", "About"),
)
GROUP_OF = {name: group for name, _, _, group in COMMANDS}


def register(app: Any) -> None:
    """Add every command of :data:`COMMANDS` to ``app`` (once)."""
    known = {info.name for info in app.registered_commands}
    for name, module, function, _ in COMMANDS:
        if name not in known:
            app.command(name)(getattr(importlib.import_module(module), function))
