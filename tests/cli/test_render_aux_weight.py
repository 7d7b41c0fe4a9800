"""The aux row of the loss and gradient tables: weight 1 in the total, w_aux named in a note."""

from __future__ import annotations

from rich.console import Console

from utnet_diag.cli.renderers import section_renderers
from utnet_diag.report.render import render_report
from utnet_diag.report.result import Report
from utnet_diag.report.sections import GradTermsSection, LossTableSection


def _render(report: Report) -> str:
    console = Console(width=100, record=True, color_system=None)
    render_report(report, console, renderers=section_renderers())
    return console.export_text()


def _loss_row(term: str, weight: float, source: str) -> dict:
    return {"term": term, "label": term, "logged": 0.000493, "weight": weight,
            "weight_source": source, "weighted": 0.000493, "share": 0.0, "per_sample": None,
            "per_element": None, "unit": None, "per_element_px256": None, "parts": {}}  # fmt: skip


def _grad_row(term: str, weight: float) -> dict:
    return {"term": term, "weight": weight, "active": True, "reaches": ["backbone"],
            "boundary_norm": 1e-7, "share": 0.0}  # fmt: skip


def _grad_terms(rows: list[dict], boundary: dict) -> GradTermsSection:
    return GradTermsSection(terms=rows, conflicts=[], boundary=boundary, exact=False, seconds=0.0)


def test_aux_weight_is_one_with_w_aux_in_a_note() -> None:
    loss = LossTableSection(terms=[_loss_row("loss_2d", 0.01, "preset config"),
                                   _loss_row("loss_aux", 0.003, "preset config (inside L_aux)")],
                            total=1.0, batch_size=8)  # fmt: skip
    grads = _grad_terms([_grad_row("loss_2d", 0.01), _grad_row("loss_aux", 1.0)],
                        {"description": "backbone"})  # fmt: skip
    text = _render(Report("gate", [], {"loss_table": loss, "grad_terms": grads}))
    aux_lines = [line for line in text.splitlines() if line.startswith("│ loss_aux")]
    assert len(aux_lines) == 2 and all("1*" in line for line in aux_lines)
    assert "0.003" not in "".join(aux_lines)  # w_aux is not shown as the row's weight
    note = "* loss_aux: w_aux=0.003 is inside L_aux, which enters the total with weight 1"
    assert text.count(note) == 2  # under each table, w_aux from the loss table


def test_grad_table_alone_names_w_aux_without_a_number() -> None:
    grads = _grad_terms([_grad_row("loss_aux", 1.0)], {})
    text = _render(Report("grad-flow", [], {"grad_terms": grads}))
    assert "* loss_aux: w_aux is inside L_aux, which enters the total with weight 1" in text
