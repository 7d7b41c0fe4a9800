"""Checks on a parsed training log (``parse-log``): the spec's healthy ranges and alarms per block,
non-finite values, stuck terms, divergence and plateaus, and whether the logged total is the
weighted sum of the logged terms.

Healthy ranges and alarms (spec sections 1.3, 2.3, 9.2-9.4): 2D < 500 (alarm >= 10000);
3D joint < 80000 (alarm == 0 or growing); prior (shape) < 100 (alarm about 5000); aux < 1.0
(alarm NaN); any loss NaN/Inf. Loss values are batch sums, so they scale with the batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from utnet_diag.checks.engine import CheckContext, CheckRegistry, Outcome, run_checks
from utnet_diag.config import PRESETS, DiagConfig, LossWeights, term_range
from utnet_diag.logs.parse import TERM_LABELS, TERMS, TrainingLog, downsample, parse_log
from utnet_diag.logs.plot import check_plot_path, plot_log
from utnet_diag.logs.tables import is_table_log, read_table_log
from utnet_diag.report.numbers import fmt_number
from utnet_diag.report.result import Report
from utnet_diag.report.sections import LogSection, LogTerm, LogTermsSection, pictures_section
from utnet_diag.spec import HINT_2D, HINT_3D, HINT_AUX, HINT_NONFINITE, HINT_PRIOR

LOG_CHECKS = CheckRegistry("log")

HINT_FINITE = HINT_NONFINITE + "; find the batch of the first NaN"


@dataclass(frozen=True)
class LogCheckOptions:
    """Thresholds of the log checks that the spec does not fix (all in blocks or ratios)."""

    stuck_min_blocks: int = 5  # fewer blocks than this: no verdict on stuck terms
    stuck_window: int = 20  # a run of this many equal values (fewer if the log is shorter)
    trend_min_blocks: int = 8
    trend_window: int | None = None  # default: a quarter of the blocks, at least 3
    divergence_ratio: float = 1.5  # last-window median over the best earlier window median
    plateau_tolerance: float = 0.01  # relative improvement of the last window below this
    # Tolerance of total vs weighted sum: the printed precision of every value (half a unit in
    # the last digit, weighted) plus this relative slack for float32 sums (eps ~6e-8).
    consistency_rtol: float = 1e-5
    explain_fraction: float = 0.95  # share of blocks a candidate explanation must fix
    weights_given: bool = False  # the user named the training weights (--config/--preset)
    series_points: int = 48  # points per term in the report's downsampled series


def _opts(ctx: CheckContext) -> LogCheckOptions:
    return ctx.extras.get("log_options") or LogCheckOptions()


def _log(ctx: CheckContext) -> TrainingLog:
    return ctx.extras["log"]


def _fmt(x: float) -> str:
    return fmt_number(x, 6 if abs(x) >= 1 else 4)  # loss values: the digits a log shows


def _blocks(n: int) -> str:
    return f"{n} block" if n == 1 else f"{n} blocks"


def _num(x: float) -> str:
    """A logged or computed loss value with the digits a log prints (3826.626, 73632.9062)."""
    return f"{x:.9g}" if math.isfinite(x) else repr(float(x))


def _num_printed(x: float, exponent: int, sign: bool = False) -> str:
    """``x`` with as many decimals as a value printed to ``10**exponent`` (``decimals`` of
    :class:`TrainingLog`: 3826.6260 -> -4), so a computed sum reads like the logged total."""
    if not math.isfinite(x):
        return repr(float(x))
    if exponent > 0:
        return f"{x:+.9g}" if sign else _num(x)
    return f"{x:+.{-exponent}f}" if sign else f"{x:.{-exponent}f}"


def _finite_values(log: TrainingLog, term: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into blocks) and values of the finite, printed values of a term."""
    mask = log.present[term] & np.isfinite(log.values[term])
    index = np.flatnonzero(mask)
    return index, log.values[term][index]


# --- parsing and finiteness ---------------------------------------------------------------


@LOG_CHECKS.check("log_parsed", hint="check the log format (spec section 9.4)")
def check_parsed(ctx: CheckContext) -> Outcome:
    """Loss blocks were found; reports lines skipped and term lines that could not be read."""
    log = _log(ctx)
    terms = ", ".join(TERM_LABELS[t] for t in log.terms_present())
    base = (
        f"parsed {_blocks(log.n_blocks)} (epochs {int(log.epochs.min())}-{int(log.epochs.max())})"
        f" from {log.lines_read} lines; {log.lines_skipped} other lines skipped; terms: {terms}"
    )
    details: dict[str, Any] = {
        "blocks": log.n_blocks,
        "lines_read": log.lines_read,
        "lines_skipped": log.lines_skipped,
        "malformed_term_lines": log.malformed,
        "malformed_examples": [{"line": n, "text": t} for n, t in log.malformed_examples],
        "blocks_without_total": log.incomplete_blocks,
        "headers_without_terms": log.empty_headers,
        "orphan_term_lines": log.orphan_term_lines,
    }
    problems = []
    if log.malformed:
        line, text = log.malformed_examples[0]
        problems.append(
            f"{log.malformed} term lines had no readable number (first at line {line}: '{text}')"
        )
    if log.incomplete_blocks:
        problems.append(f"{log.incomplete_blocks} blocks have no 'Total loss' line")
    if log.empty_headers:
        problems.append(f"{log.empty_headers} block headers are followed by no loss line")
    if log.orphan_term_lines:
        problems.append(
            f"{log.orphan_term_lines} loss lines were outside a block or repeated inside one"
        )
    missing = [t for t in ("loss_2d", "loss_3d_joint", "total") if not log.present[t].any()]
    if missing:
        problems.append("never printed: " + ", ".join(TERM_LABELS[t] for t in missing))
    if problems:
        return Outcome.warn(base + "; " + "; ".join(problems), value=log.n_blocks, details=details)
    return Outcome.ok(base, value=log.n_blocks, details=details)


@LOG_CHECKS.check("log_finite", hint=HINT_FINITE)
def check_finite(ctx: CheckContext) -> Outcome:
    """Every logged loss value is finite; names the first NaN/Inf by epoch, iter and term."""
    log = _log(ctx)
    bad = np.zeros(log.n_blocks, dtype=bool)
    per_term: dict[str, int] = {}
    for term in TERMS:
        term_bad = log.present[term] & ~np.isfinite(log.values[term])
        if term_bad.any():
            per_term[term] = int(term_bad.sum())
            bad |= term_bad
    if not bad.any():
        return Outcome.ok(f"all values finite in {_blocks(log.n_blocks)}", value=0)
    first = int(np.flatnonzero(bad)[0])
    first_terms = [
        f"{TERM_LABELS[t]} = {_fmt(log.values[t][first])}"
        for t in TERMS
        if log.present[t][first] and not math.isfinite(log.values[t][first])
    ]
    counts = ", ".join(f"{TERM_LABELS[t]} {n}" for t, n in per_term.items())
    return Outcome.fail(
        f"first non-finite value at {log.where(first)}: {', '.join(first_terms)};"
        f" {int(bad.sum())}/{log.n_blocks} blocks have NaN/Inf ({counts})",
        value=int(bad.sum()),
        threshold=0,
        details={
            "first_block": first,
            "first_epoch": int(log.epochs[first]),
            "first_iter": int(log.iters[first]),
            "first_line": int(log.lines[first]),
            "blocks_per_term": per_term,
        },
    )


# --- healthy ranges per block -------------------------------------------------------------


def _range_outcome(
    log: TrainingLog, term: str, healthy_below: float, alarm_at: float | None
) -> Outcome:
    """Worst block, count outside the healthy range, count at the alarm level."""
    label = TERM_LABELS[term]
    if not log.present[term].any():
        return Outcome.skip(f"no '{label}' lines in the log")
    index, values = _finite_values(log, term)
    nonfinite = int(log.present[term].sum()) - index.size
    note = f" ({nonfinite} non-finite blocks left to log_finite)" if nonfinite else ""
    if index.size == 0:
        return Outcome.skip(f"no finite '{label}' value{note}")
    worst = int(np.argmax(values))
    worst_at = log.where(int(index[worst]))
    last = _fmt(values[-1])
    outside = int((values >= healthy_below).sum())
    details = {
        "blocks": int(index.size),
        "outside_healthy": outside,
        "max": float(values[worst]),
        "max_block": int(index[worst]),
        "last": float(values[-1]),
        "healthy_below": healthy_below,
        "alarm_at": alarm_at,
    }
    if alarm_at is not None:
        alarms = int((values >= alarm_at).sum())
        details["at_alarm"] = alarms
        if alarms:
            return Outcome.fail(
                f"{label} reached the alarm level {_fmt(alarm_at)} in {alarms}/{index.size}"
                f" blocks: worst {_fmt(values[worst])} at {worst_at}; last {last}{note}",
                value=float(values[worst]),
                threshold=alarm_at,
                details=details,
            )
    if outside:
        return Outcome.warn(
            f"{label} >= {_fmt(healthy_below)} (healthy range) in {outside}/{index.size} blocks:"
            f" worst {_fmt(values[worst])} at {worst_at}; last {last}{note}",
            value=float(values[worst]),
            threshold=healthy_below,
            details=details,
        )
    return Outcome.ok(
        f"{label} < {_fmt(healthy_below)} in all {_blocks(index.size)}: max {_fmt(values[worst])}"
        f" at {worst_at}; last {last}{note}",
        value=float(values[worst]),
        threshold=healthy_below,
        details=details,
    )


def _range(ctx: CheckContext, term: str) -> tuple[float, float | None]:
    """(healthy below, alarm at) of ``term``: the config's ``diag: ranges:``, else the spec's."""
    healthy, alarm, _ = term_range(ctx.config, term)
    return healthy, alarm


@LOG_CHECKS.check("log_loss_2d", hint=HINT_2D)
def check_loss_2d(ctx: CheckContext) -> Outcome:
    """2D keypoint loss per block: healthy < 500, alarm >= 10000 (spec 9.2-9.4)."""
    healthy, alarm = _range(ctx, "loss_2d")
    return _range_outcome(_log(ctx), "loss_2d", healthy, alarm)


@LOG_CHECKS.check("log_loss_3d_joint", hint=HINT_3D)
def check_loss_3d_joint(ctx: CheckContext) -> Outcome:
    """3D joint loss per block: healthy < 80000; exactly 0 is the spec's alarm (MANO not loaded)."""
    log = _log(ctx)
    outcome = _range_outcome(log, "loss_3d_joint", *_range(ctx, "loss_3d_joint"))
    if outcome.status.value == "skip":
        return outcome
    index, values = _finite_values(log, "loss_3d_joint")
    zeros = np.flatnonzero(values == 0)
    if zeros.size:
        first = int(index[zeros[0]])
        return Outcome.fail(
            f"3D joint loss is exactly 0 in {zeros.size}/{index.size} blocks (first at"
            f" {log.where(first)}): the 3D prediction or GT is all zeros or MANO did not load",
            value=0.0,
            threshold="> 0",
            details={**outcome.details, "zero_blocks": int(zeros.size), "first_zero_block": first},
        )
    return outcome


@LOG_CHECKS.check("log_loss_prior", hint=HINT_PRIOR)
def check_loss_prior(ctx: CheckContext) -> Outcome:
    """Shape prior per block: healthy < 100, alarm at about 5000 (spec 9.2-9.4)."""
    # the log prints the shape prior, the spec's ranges are for it
    return _range_outcome(_log(ctx), "shape_prior", *_range(ctx, "loss_prior"))


@LOG_CHECKS.check("log_loss_aux", hint=HINT_AUX)
def check_loss_aux(ctx: CheckContext) -> Outcome:
    """Aux loss (already weighted by w_aux) per block: healthy < 1.0; NaN is left to log_finite."""
    return _range_outcome(_log(ctx), "loss_aux", *_range(ctx, "loss_aux"))


# --- stuck terms --------------------------------------------------------------------------


def _longest_run(values: np.ndarray, predicate: np.ndarray | None = None) -> tuple[int, int]:
    """(length, start) of the longest run of equal consecutive values (where ``predicate``)."""
    if values.size == 0:
        return 0, 0
    keep = np.ones(values.size, dtype=bool) if predicate is None else predicate
    # A run continues where the value repeats and the predicate holds on both sides.
    joined = (values[1:] == values[:-1]) & keep[1:] & keep[:-1]
    starts = np.flatnonzero(np.concatenate(([True], ~joined)))
    lengths = np.diff(np.append(starts, values.size))
    lengths = np.where(keep[starts], lengths, 0)
    best = int(np.argmax(lengths))
    return int(lengths[best]), int(starts[best])


_STUCK_SEVERE = ("loss_2d", "loss_3d_joint", "total")
_ZERO_EXPLAINED = {
    "loss_aux": "normal when the dataset has no MANO ground truth (has_mano false); otherwise"
    " the coarse head gets no supervision",
    "loss_3d_vert": "expected when use_vertex_loss is false",
    "shape_prior": "the predicted betas are exactly 0 or shape_weight is 0",
}


@LOG_CHECKS.check(
    "log_stuck",
    hint="a loss that does not move: check the learning rate, that the optimizer steps, that no"
    " module is frozen by mistake (utnet-diag grad-flow), and that the data loader changes batches",
)
def check_stuck(ctx: CheckContext) -> Outcome:
    """No loss term is exactly 0 or constant over many consecutive blocks."""
    log, opts = _log(ctx), _opts(ctx)
    findings: list[tuple[str, str, str]] = []  # (status, term, text)
    judged = []
    for term in TERMS:
        index, values = _finite_values(log, term)
        if index.size < opts.stuck_min_blocks:
            continue
        judged.append(term)
        window = min(opts.stuck_window, index.size)
        label = TERM_LABELS[term]
        zero_run, zero_start = _longest_run(values, values == 0)
        if zero_run >= window:
            span = "all" if zero_run == index.size else f"{zero_run} consecutive"
            where = log.where(int(index[zero_start]))
            if term == "pose_prior":
                continue  # pose_weight is 0 by default (spec section 3): a 0 pose prior is normal
            reason = _ZERO_EXPLAINED.get(term)
            status = "fail" if term in _STUCK_SEVERE or reason is None else "warn"
            text = f"{label} is exactly 0 in {span} of {index.size} blocks (from {where})"
            findings.append((status, term, text + (f": {reason}" if reason else "")))
            continue
        const_run, const_start = _longest_run(values, values != 0)
        if const_run >= window:
            span = "all" if const_run == index.size else f"{const_run} consecutive"
            status = "fail" if term in _STUCK_SEVERE else "warn"
            findings.append(
                (
                    status,
                    term,
                    f"{label} stays at {_fmt(values[const_start])} in {span} of {index.size} blocks"
                    f" (from {log.where(int(index[const_start]))})",
                )
            )
    if not judged:
        return Outcome.skip(
            f"only {_blocks(log.n_blocks)}; need at least {opts.stuck_min_blocks} to judge stuck terms"
        )
    details = {"stuck": [{"term": t, "status": s, "message": m} for s, t, m in findings]}
    if not findings:
        return Outcome.ok(
            f"no term stuck at 0 or a constant over {min(opts.stuck_window, log.n_blocks)}"
            f" consecutive blocks ({len(judged)} terms judged)",
            details=details,
        )
    text = "; ".join(m for _, _, m in findings)
    if any(s == "fail" for s, _, _ in findings):
        return Outcome.fail(text, value=len(findings), threshold=0, details=details)
    aux_only = all(t == "loss_aux" for _, t, _ in findings)
    return Outcome.warn(
        text,
        value=len(findings),
        threshold=0,
        details=details,
        hint="if the dataset has MANO GT, check has_mano and use_aux_loss" if aux_only else None,
    )


# --- trends over iterations ---------------------------------------------------------------


def _window_medians(values: np.ndarray, window: int) -> np.ndarray:
    """Medians of consecutive windows, aligned to end at the last value (oldest first)."""
    n = values.size // window
    tail = values[values.size - n * window :]
    return np.median(tail.reshape(n, window), axis=1)


@LOG_CHECKS.check(
    "log_trend",
    hint="divergence: lower the learning rate, add gradient clipping, check for bad samples;"
    " plateau: fine at the end of training, otherwise check the learning rate and that w_2d and"
    " w_3d_joint are not too small (spec 5.2 recommends 1.0)",
)
def check_trend(ctx: CheckContext) -> Outcome:
    """Total, 3D joint and 2D losses do not grow over the last part of the log; total is not flat."""
    log, opts = _log(ctx), _opts(ctx)
    trends: dict[str, dict[str, Any]] = {}
    diverging: list[str] = []
    plateau: list[str] = []
    for term in ("total", "loss_3d_joint", "loss_2d"):
        index, values = _finite_values(log, term)
        if index.size < opts.trend_min_blocks:
            continue
        window = opts.trend_window or max(3, index.size // 4)
        window = min(window, index.size // 2)
        medians = _window_medians(values, window)
        last, prev, best = medians[-1], medians[-2], medians[:-1].min()
        start = medians[0]
        label = TERM_LABELS[term]
        info = {
            "window": int(window),
            "last_median": float(last),
            "previous_median": float(prev),
            "best_median": float(best),
            "first_median": float(start),
        }
        trends[term] = info
        if best > 0 and last > opts.divergence_ratio * best and last > prev:
            info["trend"] = "diverging"
            diverging.append(
                f"{label} is growing: median of the last {window} blocks {_fmt(last)} is"
                f" {last / best:.2f}x its best window ({_fmt(best)}; previous window {_fmt(prev)})"
            )
            continue
        change = (prev - last) / prev if prev > 0 else 0.0
        info["relative_improvement"] = float(change)
        info["trend"] = "falling"
        if term == "total" and change < opts.plateau_tolerance:
            info["trend"] = "plateau"
            since_start = (start - last) / start if start > 0 else 0.0
            plateau.append(
                f"{label} plateaued: median of the last {window} blocks {_fmt(last)} vs"
                f" {_fmt(prev)} for the {window} before ({change:+.1%}, below"
                f" {opts.plateau_tolerance:.0%}); {since_start:.0%} lower than the first window"
            )
    if not trends:
        return Outcome.skip(
            f"only {_blocks(log.n_blocks)}; need at least {opts.trend_min_blocks} with finite"
            " values to judge a trend"
        )
    details = {"trends": trends}
    if diverging:
        return Outcome.fail(
            "; ".join(diverging + plateau), value=len(diverging), threshold=0, details=details
        )
    if plateau:
        return Outcome.warn("; ".join(plateau), details=details)
    falls = ", ".join(
        f"{TERM_LABELS[t]} {(i['first_median'] - i['last_median']) / i['first_median']:.0%} lower"
        for t, i in trends.items()
        if i["first_median"] > 0
    )
    return Outcome.ok(f"losses fall without divergence or plateau ({falls})", details=details)


# --- total = weighted sum of terms --------------------------------------------------------

# Components of the total, each with the weight name it enters with.
_COMPONENTS: tuple[tuple[str, str], ...] = (
    ("loss_2d", "w_2d"),
    ("loss_3d_joint", "w_3d_joint"),
    ("loss_3d_vert", "w_3d_vert"),
    ("loss_prior", "w_prior"),
    ("loss_aux", "aux multiplier"),
)
_COMPONENT_LABELS = {
    "loss_2d": TERM_LABELS["loss_2d"],
    "loss_3d_joint": TERM_LABELS["loss_3d_joint"],
    "loss_3d_vert": TERM_LABELS["loss_3d_vert"],
    "loss_prior": "Prior loss (shape + pose)",
    "loss_aux": TERM_LABELS["loss_aux"],
}


def _weight_vector(weights: LossWeights) -> np.ndarray:
    return np.array([weights.weight_of(term) for term, _ in _COMPONENTS], dtype=np.float64)


def _describe_weights(weights: LossWeights) -> str:
    w = _weight_vector(weights)
    parts = [f"{name}={_fmt(v)}" for (_, name), v in zip(_COMPONENTS[:4], w[:4])]
    parts.append(f"aux x{_fmt(w[4])}")
    return ", ".join(parts)


def _round_candidates(value: float) -> list[float]:
    """``value`` rounded to 1 and 2 significant digits (the 'round' weights people type)."""
    if not math.isfinite(value) or value <= 0:
        return []
    out = []
    for digits in (1, 2):
        rounded = float(f"{value:.{digits - 1}e}")
        if rounded > 0 and rounded not in out:
            out.append(rounded)
    return out


@dataclass(frozen=True)
class _Blocks:
    """The blocks the consistency check can use: (M, 5) components and their printed resolution,
    (M,) logged totals and theirs."""

    index: np.ndarray
    components: np.ndarray
    resolution: np.ndarray
    total: np.ndarray
    total_resolution: np.ndarray
    rtol: float

    def tolerance(self, weights: np.ndarray) -> np.ndarray:
        """(M,) the largest gap printing and float32 rounding can explain."""
        scale = np.maximum(np.abs(self.total), np.abs(self.components) @ np.abs(weights))
        return self.total_resolution + self.resolution @ np.abs(weights) + self.rtol * scale

    def consistent(self, weights: np.ndarray) -> np.ndarray:
        predicted = self.components @ weights
        return np.abs(self.total - predicted) <= self.tolerance(weights)

    def fraction(self, weights: np.ndarray) -> float:
        return float(self.consistent(weights).mean())


def _usable_blocks(log: TrainingLog, opts: LogCheckOptions) -> tuple[_Blocks, int]:
    """Blocks with a finite total and finite printed components; absent components count 0."""
    columns, resolutions = [], []
    ok = log.present["total"] & np.isfinite(log.values["total"])
    for term, _ in _COMPONENTS:
        parts = ("shape_prior", "pose_prior") if term == "loss_prior" else (term,)
        column = np.zeros(log.n_blocks)
        resolution = np.zeros(log.n_blocks)
        for part in parts:
            printed = log.present[part]
            ok &= ~printed | np.isfinite(log.values[part])
            column = column + np.where(printed, log.values[part], 0.0)
            resolution = resolution + log.resolution(part)
        columns.append(column)
        resolutions.append(resolution)
    index = np.flatnonzero(ok)
    blocks = _Blocks(
        index=index,
        components=np.stack(columns, axis=1)[index],
        resolution=np.stack(resolutions, axis=1)[index],
        total=log.values["total"][index],
        total_resolution=log.resolution("total")[index],
        rtol=opts.consistency_rtol,
    )
    return blocks, int(log.present["total"].sum()) - index.size


def _describe_change(
    term: str, weight_name: str, value: float, k: int, weights: LossWeights
) -> tuple[str, str]:
    """(text, severity) for 'the total adds up when component k enters with ``value``'."""
    label = _COMPONENT_LABELS[term]
    if value == 0.0:
        return f"{label} is left out of the total", "fail"
    if term == "loss_aux" and value == weights.w_aux:
        return f"{label} enters the total multiplied by w_aux={_fmt(value)} a second time", "fail"
    presets = [p for p in PRESETS if _weight_vector(LossWeights.from_preset(p))[k] == value]
    origin = f" (preset {', '.join(presets)})" if presets else " (a round value)"
    current = _fmt(float(_weight_vector(weights)[k]))
    text = f"it adds up with {weight_name}={_fmt(value)}{origin} instead of {current}"
    if term == "loss_3d_vert" and not weights.use_vertex_loss:
        text += "; the total includes the vertex loss though use_vertex_loss is false"
    return text, "warn"


def _explain(
    blocks: _Blocks, weights: LossWeights, opts: LogCheckOptions
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Search for one change that makes the totals add up.

    Candidates: each preset; and for each component alone, 0 (left out), w_aux for the aux term
    (weighted twice), the presets' values, and the weight solved from the gap rounded to 1-2
    significant digits. A candidate counts when it makes at least ``explain_fraction`` of the
    blocks consistent; among those the best fit (smallest median gap over tolerance) is reported,
    naming the others that fit too. Returns (explanation or None, search details).
    """
    base = _weight_vector(weights)
    gap = blocks.total - blocks.components @ base
    details: dict[str, Any] = {"presets": {}, "solved_weights": {}}
    fits: list[dict[str, Any]] = []

    def consider(candidate: np.ndarray, info: dict[str, Any]) -> float:
        fraction = blocks.fraction(candidate)
        if fraction >= opts.explain_fraction and not np.array_equal(candidate, base):
            residual = np.abs(blocks.total - blocks.components @ candidate)
            info.update(
                fraction=fraction,
                misfit=float(np.median(residual / blocks.tolerance(candidate))),
            )
            fits.append(info)
        return fraction

    for name in PRESETS:
        preset = LossWeights.from_preset(name)
        text = f"the totals add up under preset '{name}' ({_describe_weights(preset)})"
        details["presets"][name] = consider(
            _weight_vector(preset),
            {"kind": "preset", "preset": name, "text": text, "severity": "warn"},
        )
    for k, (term, weight_name) in enumerate(_COMPONENTS):
        column = blocks.components[:, k]
        usable = column != 0
        if not usable.any():
            continue
        solved = float(np.median(base[k] + gap[usable] / column[usable]))
        details["solved_weights"][weight_name] = solved
        preset_values = [float(_weight_vector(LossWeights.from_preset(p))[k]) for p in PRESETS]
        special = [0.0] + ([weights.w_aux] if term == "loss_aux" else [])
        tried: set[float] = {float(base[k])}
        for value in special + sorted(set(preset_values)) + _round_candidates(solved):
            if value in tried:
                continue
            tried.add(value)
            candidate = base.copy()
            candidate[k] = value
            text, severity = _describe_change(term, weight_name, value, k, weights)
            info = {"kind": "weight", "weight": weight_name, "value": value}
            consider(candidate, {**info, "text": text, "severity": severity})
    if not fits:
        return None, details
    fits.sort(key=lambda f: (-f["fraction"], f["misfit"], f["kind"] != "preset"))
    best = dict(fits[0])
    others = [f["text"] for f in fits[1:]]
    if others:
        best["text"] += f" (best fit; within the printed precision also: {'; '.join(others[:2])})"
    best["alternatives"] = others
    return best, details


@LOG_CHECKS.check(
    "log_total_consistency",
    hint="pass --config with the config training used (or --preset); otherwise check how the"
    " training script sums the terms (L_aux already carries w_aux and is added once)",
)
def check_total_consistency(ctx: CheckContext) -> Outcome:
    """The logged total equals w_2d*2D + w_3d_joint*3D + w_3d_vert*vert + w_prior*prior + aux."""
    log, opts = _log(ctx), _opts(ctx)
    config: DiagConfig = ctx.config or DiagConfig()
    weights = config.weights
    if not log.present["total"].any():
        return Outcome.skip("no 'Total loss' lines in the log")
    blocks, dropped = _usable_blocks(log, opts)
    if blocks.index.size == 0:
        return Outcome.skip("no block with a finite total and finite terms (see log_finite)")
    described = (
        f"preset {weights.preset}"
        + (f" + {config.path}" if config.path else "")
        + f": {_describe_weights(weights)}"
    )
    base = _weight_vector(weights)
    predicted = blocks.components @ base
    gap = blocks.total - predicted
    consistent = blocks.consistent(base)
    dropped_note = f"; {dropped} blocks with NaN/Inf not compared" if dropped else ""
    details: dict[str, Any] = {
        "weights": _describe_weights(weights),
        "blocks_compared": int(blocks.index.size),
        "blocks_mismatched": int((~consistent).sum()),
        "rtol": opts.consistency_rtol,
        "max_tolerance": float(blocks.tolerance(base).max()),
    }
    if weights.use_vertex_loss and not log.present["loss_3d_vert"].any():
        details["note"] = "use_vertex_loss is true but no '3D vertex loss' line is printed"
    if consistent.all():
        return Outcome.ok(
            f"Total loss equals the weighted sum of its terms in all {_blocks(blocks.index.size)}"
            f" ({described}); max gap {_fmt(float(np.abs(gap).max()))}{dropped_note}",
            value=float(np.abs(gap).max()),
            threshold=float(blocks.tolerance(base).max()),
            details=details,
        )
    bad = np.flatnonzero(~consistent)
    worst = int(bad[np.argmax(np.abs(gap[bad]))])
    block = int(blocks.index[worst])
    relative = gap[worst] / blocks.total[worst] if blocks.total[worst] else math.inf
    printed = int(log.decimals["total"][block])  # the logged total's precision, e.g. -4
    head = (
        f"Total loss differs from the weighted sum in {bad.size}/{blocks.index.size} blocks"
        f" ({described}); worst at {log.where(block)}: logged"
        f" {_num_printed(blocks.total[worst], printed)} vs weighted sum"
        f" {_num_printed(predicted[worst], printed)} (gap"
        f" {_num_printed(gap[worst], printed, sign=True)}, {relative:+.2%})"
    )
    details.update(
        worst_block=block,
        worst_logged=float(blocks.total[worst]),
        worst_predicted=float(predicted[worst]),
        worst_gap=float(gap[worst]),
    )
    explanation, search = _explain(blocks, weights, opts)
    details["search"] = search
    details["explanation"] = explanation
    return _mismatch_outcome(head, explanation, search, gap[bad], float(gap[worst]),
                             dropped_note, opts.weights_given, details)  # fmt: skip


def _mismatch_outcome(
    head: str,
    explanation: dict[str, Any] | None,
    search: dict[str, Any],
    gaps: np.ndarray,
    worst_gap: float,
    dropped_note: str,
    weights_given: bool,
    details: dict[str, Any],
) -> Outcome:
    """The verdict on a total that is not the weighted sum: the explanation found (a term, a
    weight) with its severity; else the weights that would close the gap, failing only when
    the weights were given (assumed weights only warn)."""
    if explanation is not None:
        text = f"{head}; {explanation['text']}{dropped_note}"
        status = Outcome.fail if explanation["severity"] == "fail" else Outcome.warn
        return status(text, value=worst_gap, threshold=0.0, details=details)
    solved = ", ".join(f"{k}={_fmt(v)}" for k, v in search["solved_weights"].items())
    unlogged = ""
    if (gaps > 0).all():
        unlogged = (
            f"; an unlogged term worth {_fmt(float(np.median(gaps)))} per block"
            " (median) would close it"
        )
    text = (
        f"{head}; no single term or weight explains it (weights that would: {solved}; none is a"
        f" preset or round value){unlogged}{dropped_note}"
    )
    if weights_given:
        return Outcome.fail(text, value=worst_gap, threshold=0.0, details=details)
    return Outcome.warn(
        text + "; the weights were assumed (no --config/--preset)",
        value=worst_gap, threshold=0.0, details=details,
    )  # fmt: skip


# --- the report ---------------------------------------------------------------------------


def summarize_terms(log: TrainingLog, points: int = 48) -> LogTermsSection:
    """Per printed term: label, count, first/last/min/max of finite values, NaN/Inf count and a
    downsampled series for sparklines."""
    summary: dict[str, LogTerm] = {}
    for term in log.terms_present():
        index, values = _finite_values(log, term)
        printed = int(log.present[term].sum())
        summary[term] = LogTerm(
            label=TERM_LABELS[term],
            blocks=printed,
            nonfinite=printed - int(index.size),
            first=float(values[0]) if values.size else None,
            last=float(values[-1]) if values.size else None,
            min=float(values.min()) if values.size else None,
            max=float(values.max()) if values.size else None,
            series=downsample(log.values[term], log.present[term], points),
        )
    return LogTermsSection(summary)


def check_log(
    log: TrainingLog, config: DiagConfig | None = None, options: LogCheckOptions | None = None
) -> Report:
    """Run the log checks over a parsed log; the report's sections hold a per-term summary."""
    options = options or LogCheckOptions()
    config = config or DiagConfig()
    ctx = CheckContext(config=config, extras={"log": log, "log_options": options})
    checks = run_checks(LOG_CHECKS.specs, ctx)
    sections = {
        "log": LogSection(
            path=log.path,
            blocks=log.n_blocks,
            lines_read=log.lines_read,
            lines_skipped=log.lines_skipped,
            epochs=[int(log.epochs.min()), int(log.epochs.max())],
            first_iter=int(log.iters[0]),
            last_iter=int(log.iters[-1]),
            first_epoch=int(log.epochs[0]),
            last_epoch=int(log.epochs[-1]),
            iter_range=[int(log.iters.min()), int(log.iters.max())],
            weights=config.weights.to_dict(),
        ),
        "log_terms": summarize_terms(log, options.series_points),
    }
    return Report(command="parse-log", checks=checks, sections=sections)


def diagnose_log(
    path: str | Path,
    config: DiagConfig | None = None,
    options: LogCheckOptions | None = None,
    plot_path: str | Path | None = None,
    columns: dict[str, str] | None = None,
) -> Report:
    """Parse a training log (the spec's text format, or a CSV / JSON-lines table, see
    :mod:`utnet_diag.logs.tables`), run the log checks, and optionally draw per-term curves to
    ``plot_path`` (PNG/SVG/PDF, written atomically). ``columns`` (term -> column) maps a table's
    columns, over the config's ``diag: log_columns:``."""
    if plot_path is not None:
        check_plot_path(plot_path)
    if is_table_log(path):
        given = {**(config.log_columns if config is not None else {}), **(columns or {})}
        log = read_table_log(path, given)
    else:
        log = parse_log(path)
    report = check_log(log, config, options)
    if plot_path is not None:
        plot_log(log, plot_path, config)
        report.sections["log"] = replace(report.sections["log"], plot=str(plot_path))
        report.sections.update(pictures_section({"kind": "plot", "path": str(plot_path)}))
    return report


__all__ = [
    "LOG_CHECKS",
    "LogCheckOptions",
    "check_log",
    "diagnose_log",
    "summarize_terms",
]
