"""Per-term loss curves of a parsed training log (matplotlib, an optional dependency)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from utnet_diag.errors import InputError
from utnet_diag.io.files import write_bytes_atomic
from utnet_diag.logs.parse import TERM_LABELS, TrainingLog, downsample

PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
MAX_POINTS = 4000  # per curve; longer logs are averaged into this many buckets


def _require_format(path: Path) -> str:
    fmt = PLOT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"unsupported plot extension '{path.suffix or '(none)'}'",
            path=str(path),
            hint="use .png, .svg or .pdf",
        )
    return fmt


def check_plot_path(path: str | Path) -> Path:
    """Fail early (before a long parse) on a bad extension, a missing folder or no matplotlib."""
    target = Path(path)
    _require_format(target)
    if target.is_dir():
        raise InputError("--plot must name a file, not a directory", path=str(target))
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise InputError("output directory does not exist", path=str(parent))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(
            "--plot needs matplotlib, which is not installed",
            hint="pip install 'utnet-diag[plot]'",
        ) from None
    return target


def plot_log(log: TrainingLog, path: str | Path) -> Path:
    """Draw one panel per printed term (x: block index, y: loss, log scale when positive) and
    write it atomically to ``path``. NaN/Inf blocks are marked with red crosses."""
    target = Path(path)
    fmt = _require_format(target)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError(
            "--plot needs matplotlib, which is not installed",
            hint="pip install 'utnet-diag[plot]'",
        ) from None

    terms = log.terms_present()
    fig = Figure(figsize=(8, 1.9 * len(terms) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(terms), 1, sharex=True, squeeze=False)[:, 0]
    n = log.n_blocks
    points = min(n, MAX_POINTS)
    x = (np.linspace(0, n, points + 1)[:-1] + np.linspace(0, n, points + 1)[1:] - 1) / 2
    epoch_starts = np.flatnonzero(np.diff(log.epochs) != 0) + 1
    for ax, term in zip(axes, terms):
        series = np.array(
            [
                np.nan if v is None else v
                for v in downsample(log.values[term], log.present[term], points)
            ],
            dtype=np.float64,
        )
        finite = np.isfinite(series)
        ax.plot(x[finite], series[finite], lw=1.0, color="tab:blue")
        if finite.any() and (series[finite] > 0).all():
            ax.set_yscale("log")
        bad = log.present[term] & ~np.isfinite(log.values[term])
        if bad.any():
            top = series[finite].max() if finite.any() else 1.0
            where = np.flatnonzero(bad)[:MAX_POINTS]
            ax.plot(where, np.full(where.size, top), "x", color="red", label="NaN/Inf")
            ax.legend(loc="upper right", fontsize=7)
        for start in epoch_starts[:200]:
            ax.axvline(start, color="0.85", lw=0.5, zorder=0)
        ax.set_ylabel(TERM_LABELS[term], fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("logged block (grey lines: epoch starts)", fontsize=8)
    fig.suptitle(Path(log.path).name, fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=110)
    return write_bytes_atomic(target, buffer.getvalue())
