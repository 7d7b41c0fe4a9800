"""Rich output on an 80-column terminal: numbers are never cut to an ellipsis."""

from __future__ import annotations

from rich.console import Console

from utnet_diag.cli.renderers import section_renderers
from utnet_diag.report.render import render_report
from utnet_diag.report.result import CheckResult, Report, Status
from utnet_diag.report.sections import GradModulesSection, LossTableSection


def _row(term, label, logged, weighted, share, per_sample, per_element=None, parts=None):
    return {"term": term, "label": label, "logged": logged, "weight": 0.001,
            "weight_source": "preset config", "weighted": weighted, "share": share,
            "per_sample": per_sample, "per_element": per_element, "unit": "mm",
            "per_element_px256": None, "parts": parts or {}}  # fmt: skip


def _render(report: Report, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    render_report(report, console, renderers=section_renderers())
    return console.export_text()


def test_loss_and_gradient_tables_keep_every_digit_at_80_columns():
    loss = LossTableSection(terms=[
        _row("loss_3d_joint", "3D joint", 6543.21, 327.16, 0.999, 817.9, 12.98),
        _row("loss_prior", "Prior", 0.000161, 1.61e-07, 0.0, None, parts={"shape_prior": 1.6e-4}),
    ], total=327.3, batch_size=8)  # fmt: skip
    grads = GradModulesSection(depth=1, total_grad_norm=4652.0, groups=[
        {"name": "coarse_head", "role": "head", "grad_norm": 1130.0, "param_norm": 4.66,
         "ratio": 242.0, "no_grad_share": 0.0, "trainable": True, "nonfinite": 0},
        {"name": "backbone", "role": "trunk", "grad_norm": 114.0, "param_norm": 24.9,
         "ratio": 4.59, "no_grad_share": 0.0, "trainable": True, "nonfinite": 0},
    ])  # fmt: skip
    balance = CheckResult("grad_balance", Status.WARN, "loss_3d_joint drowns loss_aux",
                          value={"loss_3d_joint": 0.851, "loss_prior": 6.42e-09})  # fmt: skip
    text = _render(Report("gate", [balance], {"loss_table": loss, "grad_modules": grads}), 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    for number in ("6543", "0.000161", "1.61e-07", "1.13e+03", "coarse_head", "24.9"):
        assert number in text, number
    assert "…" not in text
    assert "weights from preset config" in text  # one source: said once, not a column
    assert "loss_prior=6.42e-09" in text  # a mapping value: one key=value a line


def test_check_tables_at_80_columns_never_cut_a_word_or_a_number():
    """Each token of a message, value and threshold is on one line (wrapping goes between
    words), value and threshold under the result text; 140 columns keep their own columns."""
    checks = [
        CheckResult("loss_prior", Status.WARN, "L_prior = 1.234e+03 (shape_prior=0.000161, "
                    "pose_prior=1234.5678; a mean over the batch) above the healthy < 100",
                    value=1234.5678, threshold=100.0, hint="lower w_prior (spec 9.3)",
                    family="loss"),
        CheckResult("grad_balance", Status.WARN, "loss_3d_joint drowns loss_2d (1.92e+06x "
                    "smaller) at the model's trunk/heads boundary",
                    value={"loss_3d_joint": 0.851, "loss_prior": 6.42e-09}, family="grad"),
    ]  # fmt: skip
    text = _render(Report("gate", checks), 80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    tokens = " ".join(c.message for c in checks).split() + [
        "1235", "loss_prior=6.42e-09", "loss_3d_joint=0.851", "100"
    ]  # fmt: skip
    for token in tokens:
        assert any(token in line for line in lines), token
    assert not any("…" in line for line in lines if line.startswith("│"))  # table rows
    assert any("value 1235, threshold 100" in line for line in lines)
    wide = _render(Report("gate", checks), 140)
    header = next(line for line in wide.splitlines() if "result" in line)
    assert "value" in header and "threshold" in header
