"""Rich renderers for the model commands' sections: run, loss table, metrics, gradients."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from utnet_diag.report.numbers import fmt_number
from utnet_diag.report.render import key_value_table
from utnet_diag.report.result import Report
from utnet_diag.report.sections import (
    CompareRunSection,
    GradModulesSection,
    GradTermsSection,
    LossTableSection,
    MetricsSection,
    RunSection,
)

BAR_WIDTH = 24


def _num(value: Any, digits: int = 4) -> str:
    return fmt_number(value, digits)


def _share(value: Any) -> str:
    return "" if value is None else f"{float(value):.1%}"


def render_run(console: Console, section: RunSection | CompareRunSection, report: Report) -> None:
    if isinstance(section, CompareRunSection):
        console.print(
            key_value_table("run", {k.replace("_", " "): v for k, v in section.to_dict().items()})
        )
        return
    table = Table(title="run", title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key in ("model", "batch", "batch_size", "device", "config", "mode", "forward_s"):
        if key in section:
            table.add_row(key.replace("_", " "), str(section[key]))
    if section.built_from is not None:
        table.add_row("built from", section.built_from)
        for name, value in (section.arguments or {}).items():
            table.add_row(f"  {name}", str(value))
    for request in section.mano_requests or []:
        outcome = "loaded" if request.get("loaded") else f"failed: {request.get('error')}"
        table.add_row(
            "MANO asked", f"{request.get('call')} -> {request.get('looked_at')}: {outcome}"
        )
    console.print(table)


AUX_MARK = "*"  # the aux weight cell: L_aux carries w_aux and enters the total with weight 1


def _is_aux(row: dict[str, Any]) -> bool:
    return row.get("term") == "loss_aux"


def _aux_note(w_aux: Any) -> Text:
    inside = f"w_aux={_num(w_aux)}" if isinstance(w_aux, (int, float)) else "w_aux"
    return Text(f"{AUX_MARK} loss_aux: {inside} is inside L_aux, which enters the total with"
                " weight 1 (added once)", style="dim")  # fmt: skip


def render_loss_table(console: Console, section: LossTableSection, report: Report) -> None:
    rows = section.terms
    # one source for every weight (the usual case): say it once under the table, not per row
    sources = {str(r["weight_source"]).replace(" (inside L_aux)", "") for r in rows}
    one_source = sources.pop() if len(sources) == 1 else None
    table = Table(title="loss breakdown", title_justify="left")
    columns = [("term", "left"), ("value", "right"), ("weight", "right"), ("weight from", "left"),
               ("weighted", "right"), ("share", "right"), ("per sample", "right"),
               ("mean error", "right")]  # fmt: skip
    for name, justify in columns:
        if name == "weight from" and one_source is not None:
            continue
        # numbers never lose digits to an ellipsis: the text columns wrap instead
        text = name in ("term", "weight from", "mean error")
        table.add_column(
            name,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=not text,
            overflow="fold" if text else "ellipsis",
        )
    for row in rows:
        if row.get("per_element") is not None:
            error = f"{_num(row['per_element'], 3)} {row['unit']}"
            if row.get("per_element_px256") is not None:
                error += f" ({_num(row['per_element_px256'], 3)} px@256)"
        else:
            error = ", ".join(f"{k} {_num(v, 3)}" for k, v in row.get("parts", {}).items())
        weight = f"1{AUX_MARK}" if _is_aux(row) else _num(row["weight"])
        cells = [row["label"], _num(row["logged"]), weight,
                 str(row["weight_source"]), _num(row["weighted"]), _share(row.get("share")),
                 _num(row.get("per_sample")), error]  # fmt: skip
        if one_source is not None:
            del cells[3]
        table.add_row(*cells)
    total = [Text("Total", style="bold"), "", "", "", _num(section.total), "", "", ""]
    if one_source is not None:
        del total[3]
    table.add_row(*total)
    console.print(table)
    if one_source is not None:
        console.print(Text(f"weights from {one_source}", style="dim"))
    aux = next((r for r in rows if _is_aux(r)), None)
    if aux is not None:
        console.print(_aux_note(aux["weight"]))
    if section.skipped:
        text = "; ".join(f"{k}: {v}" for k, v in section.skipped.items())
        console.print(Text(f"not computed: {text}", style="dim"))
    console.print(Text(f"batch size {section.batch_size}: 2D/3D/vertex values are batch"
                       " sums; prior and aux are means", style="dim"))  # fmt: skip


def render_metrics(console: Console, section: MetricsSection, report: Report) -> None:
    line = Text("metrics: ", style="bold")
    line.append(
        f"MPJPE {_num(section.mpjpe_mm)} mm, PA-MPJPE {_num(section.pa_mpjpe_mm)}"
        f" mm, Avg Metric {_num(section.avg_metric_mm)} mm"
        f" (root-relative, {section.samples} samples)"
    )
    console.print(line)
    if section.get("convention"):
        console.print(Text(f"  {section['convention']}", style="dim"))
    protocol = section.get("protocol")
    if protocol:
        values = ", ".join(
            f"{row['label']} {'n/a' if row['value'] is None else _num(row['value'])}"
            + (f" {row['unit']}" if row["unit"] else "")
            for row in protocol["metrics"]
        )
        head = Text(f"{protocol['title']} protocol: ", style="bold")
        left = protocol["samples_left_out"]
        head.append(
            f"{values} ({protocol['samples']} samples"
            + (f", {left} with an unannotated or non-finite joint left out" if left else "")
            + ")"
        )
        console.print(head)


def _bar(value: float | None, low: float, high: float, bar_width: int = BAR_WIDTH) -> Text:
    """A log-scale bar between ``low`` and ``high``, at most ``bar_width`` cells."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return Text("non-finite" if isinstance(value, str) else "", style="bold red")
    if value <= 0:
        return Text("no gradient", style="red")
    span = max(math.log10(high) - math.log10(low), 1e-9)
    frac = (math.log10(value) - math.log10(low)) / span
    width = max(1, round(bar_width * min(max(frac, 0.0), 1.0)))
    return Text("█" * width, style="cyan")


def render_grad_modules(console: Console, section: GradModulesSection, report: Report) -> None:
    groups = section.groups
    norms = [g["grad_norm"] for g in groups
             if isinstance(g["grad_norm"], (int, float)) and g["grad_norm"] > 0]  # fmt: skip
    low = min(norms) if norms else 1.0
    high = max(norms) if norms else 1.0
    if high == low:
        low = high / 10
    table = Table(title=f"gradients per module (depth {section.depth}; bar: log"
                        " gradient norm)", title_justify="left")  # fmt: skip
    show_nonfinite = any(g["nonfinite"] for g in groups)
    rows = [[g["name"], g["role"], _num(g["grad_norm"], 3), None, _num(g["param_norm"], 3),
             _num(g["ratio"], 3), _share(g["no_grad_share"]) if g["trainable"] else "frozen",
             str(g["nonfinite"]) if g["nonfinite"] else ""] for g in groups]  # fmt: skip
    headers = ["module", "role", "grad norm", "", "param norm", "grad/param", "no grad",
               "non-finite"]  # fmt: skip
    if not show_nonfinite:
        headers.pop()
        for r in rows:
            r.pop()
    # the bar takes what the terminal has left after the text and numbers (4 to BAR_WIDTH)
    fixed = sum(max([len(h)] + [len(str(r[i])) for r in rows]) + 3
                for i, h in enumerate(headers) if i != 3) + 4  # fmt: skip
    bar_width = max(4, min(BAR_WIDTH, console.width - fixed))
    for i, name in enumerate(headers):
        justify = "left" if i in (0, 1, 3) else "right"
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for g, r in zip(groups, rows):
        r[3] = _bar(g["grad_norm"], low, high, bar_width)
        table.add_row(*r)
    console.print(table)
    console.print(Text(f"total gradient norm {_num(section.total_grad_norm)}", style="dim"))


def render_grad_terms(console: Console, section: GradTermsSection, report: Report) -> None:
    boundary = section.boundary
    title = f"loss terms at the trunk/heads boundary ({boundary.get('description', '?')})"
    table = Table(title=title, title_justify="left")
    for name, justify in (("term", "left"), ("weight", "right"), ("boundary grad", "right"),
                          ("share", "right"), ("reaches", "left")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    terms = section.terms
    for t in terms:
        table.add_row(
            t["term"] + ("" if t["active"] else " (off)"),
            f"{_num(t['weight'])}{AUX_MARK}" if _is_aux(t) else _num(t["weight"]),
            _num(t["boundary_norm"], 3), _share(t["share"]), ", ".join(t["reaches"]) or "nothing",
        )  # fmt: skip
    console.print(table)
    if any(_is_aux(t) for t in terms):
        # w_aux itself is in the loss table when the report has one (gate), not in grad_terms
        loss_rows = (report.sections.get("loss_table") or {}).get("terms", [])
        aux_row = next((r for r in loss_rows if _is_aux(r)), None)
        console.print(_aux_note(aux_row["weight"] if aux_row is not None else None))
    conflicts = [c for c in section.conflicts if c["cosine"] < 0]
    if conflicts:
        text = ", ".join(f"{c['a']}/{c['b']} {c['cosine']:.2f}" for c in conflicts)
        console.print(Text(f"conflicting terms (cosine < 0): {text}", style="yellow"))
    if boundary.get("guessed"):
        console.print(Text("the trunk/heads boundary was guessed from child names", style="dim"))
    if boundary.get("unavailable"):
        console.print(Text(f"no per-term attribution: {boundary['unavailable']}", style="dim"))


def render_nan_origin(console: Console, section: dict[str, Any], report: Report) -> None:
    line = Text("first non-finite value: ", style="bold red")
    line.append(f"[{section.get('stage')}] {section.get('message')}")
    console.print(line)
