"""Per-term loss curves of a parsed training log (matplotlib, an optional dependency)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from utnet_diag.config import term_range
from utnet_diag.errors import InputError
from utnet_diag.io.files import check_output_path, write_bytes_atomic
from utnet_diag.logs.parse import TERM_LABELS, TrainingLog, downsample

PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
NO_MATPLOTLIB = "--plot needs matplotlib, which is not installed"
INSTALL_PLOT = "pip install 'utnet-diag[plot]'"
MAX_POINTS = 4000  # per curve; longer logs are averaged into this many buckets
ALARM_NEAR = 10.0  # the alarm line is drawn when the curve comes within this factor of it


def _require_format(path: Path, formats: tuple[str, ...] = tuple(PLOT_FORMATS)) -> str:
    fmt = PLOT_FORMATS.get(path.suffix.lower())
    if fmt is None or path.suffix.lower() not in formats:
        raise InputError(
            f"unsupported plot extension '{path.suffix or '(none)'}'",
            path=str(path),
            hint=f"use {', '.join(formats[:-1]) + ' or ' if len(formats) > 1 else ''}{formats[-1]}",
        )
    return fmt


def check_plot_path(path: str | Path, formats: tuple[str, ...] = tuple(PLOT_FORMATS)) -> Path:
    """Fail early (before a long parse or any model work) on an extension not in ``formats``, a
    directory, a missing or unwritable folder, or no matplotlib."""
    target = Path(path)
    _require_format(target, formats)
    check_output_path(target, "--plot")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(NO_MATPLOTLIB, hint=INSTALL_PLOT) from None
    return target


def new_figure(**kwargs: Any) -> Any:
    """A matplotlib ``Figure(**kwargs)`` on its own Agg canvas: no pyplot, so neither its
    global figure list nor the user's backend is touched. InputError with the install hint
    when matplotlib (the ``plot`` extra) is missing. Every ``--plot`` draws on one."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError(NO_MATPLOTLIB, hint=INSTALL_PLOT) from None
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


# the spec range that holds each logged term (the logged shape prior is the prior term)
RANGE_OF_LOG_TERM = {"loss_2d": "loss_2d", "loss_3d_joint": "loss_3d_joint",
                     "shape_prior": "loss_prior", "loss_aux": "loss_aux"}  # fmt: skip


def iteration_axis(epochs: np.ndarray, iters: np.ndarray) -> tuple[np.ndarray, str]:
    """The x of each block and its label: the iteration itself when it never goes back (one
    epoch, or a global step count); otherwise the epoch plus the fraction of it done,
    ``epoch + iter / per_epoch`` (``per_epoch``: the largest iteration logged plus the usual
    step between two blocks)."""
    epochs = np.asarray(epochs, dtype=np.float64)
    iters = np.asarray(iters, dtype=np.float64)
    if iters.size < 2 or (np.diff(iters) >= 0).all():
        return iters, "iteration"
    steps = np.diff(iters)
    step = float(np.median(steps[steps > 0])) if (steps > 0).any() else 1.0
    per_epoch = float(iters.max()) + step
    return epochs + iters / per_epoch, f"epoch (+ iteration / {per_epoch:g} within it)"


def _bucket_means(x: np.ndarray, points: int) -> np.ndarray:
    edges = np.linspace(0, x.size, min(points, x.size) + 1).astype(np.int64)
    sums = np.add.reduceat(x, edges[:-1])
    return sums / np.diff(edges)


def plot_log(log: TrainingLog, path: str | Path, config: Any = None) -> Path:
    """Draw :func:`log_figure` and write it atomically to ``path`` (.png, .svg or .pdf)."""
    target = Path(path)
    fmt = _require_format(target)
    fig = log_figure(log, config)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=110)
    return write_bytes_atomic(target, buffer.getvalue())


def log_figure(log: TrainingLog, config: Any = None) -> Any:
    """One panel per printed term against the iteration (:func:`iteration_axis`; log scale
    when every value is positive): the healthy range as a green band and the alarm as a red
    line when the curve comes within 10x of it (the spec's, or ``config``'s ``diag: ranges:``
    where it sets them), blocks with NaN/Inf as red crosses at the top. Long logs are averaged
    into 4000 points per curve. Returns the matplotlib Figure."""
    terms = log.terms_present()
    fig = new_figure(figsize=(8, 1.9 * len(terms) + 0.6), layout="constrained")
    axes = fig.subplots(len(terms), 1, sharex=True, squeeze=False)[:, 0]
    n = log.n_blocks
    points = min(n, MAX_POINTS)
    x_all, x_label = iteration_axis(log.epochs, log.iters)
    x = _bucket_means(x_all, points)
    for ax, term in zip(axes, terms):
        series = np.array([np.nan if v is None else v
                           for v in downsample(log.values[term], log.present[term], points)],
                          dtype=np.float64)  # fmt: skip
        finite = np.isfinite(series)
        ax.plot(x[finite], series[finite], lw=1.0, color="tab:blue")
        positive = finite.any() and bool((series[finite] > 0).all())
        if positive:
            ax.set_yscale("log")
        if term in RANGE_OF_LOG_TERM:
            healthy, alarm, source = term_range(config, RANGE_OF_LOG_TERM[term])
            floor = float(series[finite].min()) if positive else 0.0
            ax.axhspan(min(floor, healthy) if positive else 0.0, healthy, color="tab:green",
                       alpha=0.12, lw=0, label=f"healthy < {healthy:g} ({source})")  # fmt: skip
            top = float(series[finite].max()) if finite.any() else 0.0
            if alarm is not None and top * ALARM_NEAR >= alarm:  # a far alarm would flatten it
                ax.axhline(alarm, color="tab:red", lw=0.8, ls="--", label=f"alarm {alarm:g}")
        bad = log.present[term] & ~np.isfinite(log.values[term])
        if bad.any():
            top = series[finite].max() if finite.any() else 1.0
            where = np.flatnonzero(bad)[:MAX_POINTS]
            ax.plot(x_all[where], np.full(where.size, top), "x", color="red",
                    label=f"NaN/Inf ({int(bad.sum())} blocks)")  # fmt: skip
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=7)
        ax.set_ylabel(TERM_LABELS[term], fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel(x_label, fontsize=8)
    fig.suptitle(Path(log.path).name, fontsize=9)
    return fig
