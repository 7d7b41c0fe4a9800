"""Drawing the ``step`` (clipping, one optimiser step), ``amp`` (autocast) and ``pictures``
sections."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from utnet_diag.report.numbers import fmt_number
from utnet_diag.report.result import Report
from utnet_diag.report.sections import AmpSection, PicturesSection, StepSection


def _num(x: float | None, digits: int = 3) -> str:
    return fmt_number(x, digits, none="-")


def render_step(console: Console, section: StepSection, report: Report) -> None:
    opt = section.optimizer
    clip = section.clip_grad_norm
    title = (
        f"one {opt['type']} step (lr {_num(opt['lr'])}, weight decay {_num(opt['weight_decay'])}"
    )
    title += f", clip {_num(clip)})" if clip is not None else ", no clipping)"
    table = Table(title=title, title_justify="left")
    for name, justify in (("module", "left"), ("lr", "right"), ("update", "right"),
                          ("weights", "right"), ("update/weight", "right")):  # fmt: skip
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for g in section.groups:
        table.add_row(g["name"], _num(g["lr"]), _num(g["update_norm"]), _num(g["param_norm"]),
                      _num(g["ratio"]))  # fmt: skip
    console.print(table)
    lines = [f"global gradient norm {_num(section.total_grad_norm)}"]
    if clip is not None:
        lines.append(f"clip factor {_num(section.clip_factor)}")
        if section.step_shrink is not None:
            lines.append(f"update {_num(section.step_shrink)}x the unclipped one")
    console.print(Text("; ".join(lines), style="dim"))
    if section.term_shares:
        shares = ", ".join(f"{t} {fmt_number(100 * s, 3)}%" for t, s in sorted(
            section.term_shares.items(), key=lambda kv: -abs(kv[1])))  # fmt: skip
        console.print(Text(f"direction ({section.share_basis}): {shares}", style="dim"))
    console.print(Text(f"optimizer: {opt['source']}; clipping: {opt['clip_source']}", style="dim"))
    for note in section.notes or []:
        console.print(Text(note, style="dim"))
    if opt.get("ignored"):
        console.print(Text(f"optimizer keys not used here: {', '.join(opt['ignored'])}",
                           style="dim"))  # fmt: skip


def render_amp(console: Console, section: AmpSection, report: Report) -> None:
    table = Table(title=f"loss terms under {section.dtype} autocast ({section.device})",
                  title_justify="left")  # fmt: skip
    for name, justify in (("term", "left"), ("float32", "right"), (section.dtype, "right"),
                          ("computed in", "left"), ("change", "right")):  # fmt: skip
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for r in section.terms:
        change = "-" if r["rel_diff"] is None else f"{fmt_number(100 * r['rel_diff'], 2)}%"
        table.add_row(r["term"], _num(r["float32"], 5), _num(r["amp"], 5), r["dtype"], change)
    console.print(table)
    low = [r["output"] for r in section.outputs if r["dtype"] == section.dtype]
    if low:
        console.print(Text(f"outputs in {section.dtype}: {', '.join(low)}", style="dim"))
    scaler = section.scaler
    if scaler and scaler.get("used"):
        steps = "; ".join(f"#{a['step']} " + ("skipped" if a["skipped"] else "taken")
                         + f" at {a['scale']:g}" for a in scaler["attempts"])  # fmt: skip
        console.print(Text(f"GradScaler steps run: {steps}", style="dim"))
    if section.underflow:
        u = section.underflow
        console.print(Text(f"underflow: '{u['module']}' loses {u['lost_share']:.0%} of its"
                           f" non-zero values to zero in {u['dtype']}", style="dim"))  # fmt: skip
    if section.origin:
        console.print(Text(f"origin: {section.origin['message']}", style="dim"))


def render_pictures(console: Console, section: PicturesSection, report: Report) -> None:
    """Nothing on stdout: the command says on stderr where each picture went."""
