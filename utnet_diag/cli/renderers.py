"""How each report section is drawn for people: one table, section name -> renderer.

The renderer modules import rich only (no torch); they are imported when a report is drawn.
"""

from __future__ import annotations

import importlib
from typing import Any

SECTION_RENDERERS: dict[str, tuple[str, str]] = {
    "weight_advice": ("utnet_diag.cli.render_advice", "render_weight_advice"),
    "batch": ("utnet_diag.cli.render_batch", "render_batch_section"),
    "compare": ("utnet_diag.cli.render_compare", "render_compare"),
    "log": ("utnet_diag.cli.render_log", "render_log_summary"),
    "log_terms": ("utnet_diag.cli.render_log", "render_log_terms"),
    "checkpoint": ("utnet_diag.cli.render_model", "render_checkpoint"),
    "sample": ("utnet_diag.cli.render_model", "render_sample"),
    "evaluation": ("utnet_diag.cli.render_eval", "render_evaluation"),
    "grad_modules": ("utnet_diag.cli.render_run", "render_grad_modules"),
    "grad_terms": ("utnet_diag.cli.render_run", "render_grad_terms"),
    "loss_table": ("utnet_diag.cli.render_run", "render_loss_table"),
    "metrics": ("utnet_diag.cli.render_run", "render_metrics"),
    "nan_origin": ("utnet_diag.cli.render_run", "render_nan_origin"),
    "run": ("utnet_diag.cli.render_run", "render_run"),
    "scan": ("utnet_diag.cli.render_scan", "render_scan"),
    "step": ("utnet_diag.cli.render_training", "render_step"),
    "amp": ("utnet_diag.cli.render_training", "render_amp"),
    "pictures": ("utnet_diag.cli.render_training", "render_pictures"),
}


def section_renderers() -> dict[str, Any]:
    """Section name -> renderer function, for :func:`utnet_diag.report.render.render_report`."""
    return {
        name: getattr(importlib.import_module(module), function)
        for name, (module, function) in SECTION_RENDERERS.items()
    }
