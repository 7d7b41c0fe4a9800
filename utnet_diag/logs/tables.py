"""Training logs kept as tables: CSV with a header (Lightning's ``metrics.csv``, pandas' ``to_csv``),
JSON lines (one object per logged step) and TensorBoard event files (scalars by step, through
TensorBoard's own reader: the ``tensorboard`` extra), read into the same :class:`TrainingLog` as
the text format, so every log check and plot works on them.

Each row that holds at least one loss term is a block. Columns are matched to the spec's terms by
name (:data:`COLUMN_NAMES`, after lower-casing, dropping a ``train/`` or ``train_`` prefix and a
``_step`` suffix, and writing any run of other characters as ``_``), or by the user's mapping
(``--columns loss_2d=kp2d,total=loss`` or the config's ``diag: log_columns:``). W&B exports read
as CSV: a run history (``_step``, ``train/loss_2d``) as it is, a chart panel's export with its
``<run> - `` prefix dropped and its ``__MIN``/``__MAX`` band columns left out (with several runs in
one export, the first run's column of each term is read). Epoch and step come
from ``epoch`` and ``step`` (``global_step``, ``iter``, ``iteration``); the printed precision of
each value from its text, as for the text format.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from array import array
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from utnet_diag.errors import InputError
from utnet_diag.io.files import open_regular, require_file
from utnet_diag.logs.parse import TERMS, TrainingLog, _last_digit

# Names a training script commonly gives each term (after normalize()).
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "loss_2d": ("loss_2d", "2d_loss", "loss_kp2d", "kp2d_loss", "loss_keypoints_2d",
                "2d_keypoint_loss", "keypoint_2d_loss", "loss_2d_keypoint"),
    "loss_3d_joint": ("loss_3d_joint", "loss_3d", "3d_loss", "3d_joint_loss", "joint_loss",
                      "loss_kp3d", "kp3d_loss", "loss_keypoints_3d", "loss_joints_3d"),
    "loss_3d_vert": ("loss_3d_vert", "loss_vert", "vert_loss", "vertex_loss", "3d_vertex_loss",
                     "loss_vertices", "loss_3d_vertex"),
    "shape_prior": ("shape_prior", "loss_shape_prior", "prior_loss_shape", "loss_prior",
                    "prior_loss", "loss_betas", "prior_loss_shape"),
    "pose_prior": ("pose_prior", "loss_pose_prior", "prior_loss_pose", "loss_pose"),
    "loss_aux": ("loss_aux", "aux_loss", "loss_auxiliary"),
    "total": ("total", "total_loss", "loss_total", "loss"),
}  # fmt: skip
EPOCH_NAMES = ("epoch",)
STEP_NAMES = ("step", "global_step", "iter", "iteration", "it")
MAX_LINE = 1 << 20  # one JSON object or CSV row


WANDB_BAND = re.compile(r"__(MIN|MAX)$")  # W&B panel exports: a min/max band beside each column


def normalize(name: str) -> str:
    """'train/Loss_2D_step' -> 'loss_2d'; a W&B panel export's run prefix ('run-1 - ') goes."""
    name = name.split(" - ", 1)[1] if " - " in name else name
    text = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    text = re.sub(r"^train_", "", text)
    return re.sub(r"_step$", "", text)


def parse_columns(text: str | None) -> dict[str, str]:
    """``loss_2d=kp2d,total=loss`` -> {term: column}; InputError naming a bad pair or term."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for pair in text.split(","):
        term, eq, column = pair.partition("=")
        term, column = term.strip(), column.strip()
        if not eq or not term or not column:
            raise InputError(f"--columns takes TERM=COLUMN pairs, got {pair!r}")
        if term not in TERMS:
            raise InputError(f"--columns: unknown term {term!r}; terms: {', '.join(TERMS)}")
        out[term] = column
    return out


def match_columns(names: Iterable[str], given: Mapping[str, str]) -> dict[str, str]:
    """{term: column} for the columns of a table: the user's mapping first, then common names
    (a ``_step`` column wins over its ``_epoch`` twin, which is never matched)."""
    names = list(names)
    missing = [c for c in given.values() if c not in names]
    if missing:
        raise InputError(
            f"the log has no column {missing[0]!r}; its columns: {', '.join(names[:20])}"
        )
    out = dict(given)
    taken = set(out.values())
    by_norm: dict[str, str] = {}
    for name in names:
        if name in taken or normalize(name).endswith("_epoch") or WANDB_BAND.search(name):
            continue
        by_norm.setdefault(normalize(name), name)
    for term, candidates in COLUMN_NAMES.items():
        if term in out:
            continue
        for candidate in candidates:
            if candidate in by_norm and by_norm[candidate] not in taken:
                out[term] = by_norm[candidate]
                taken.add(out[term])
                break
    return out


def _find(names: Iterable[str], wanted: tuple[str, ...]) -> str | None:
    for name in names:
        if normalize(name) in wanted:
            return name
    return None


def _rows_csv(
    handle: io.TextIOBase, path: Path
) -> tuple[list[str], Iterable[tuple[int, dict[str, str]]]]:
    """The header and the rows (line number, {column: cell}) of an open CSV file."""
    reader = csv.reader(_bounded_lines(handle, path))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("CSV log is empty", path=str(path)) from None
    rows = ((number, dict(zip(header, row))) for number, row in enumerate(reader, start=2))
    return header, rows


def _bounded_lines(handle: io.TextIOBase, path: Path) -> Iterable[str]:
    for line in iter(lambda: handle.readline(MAX_LINE + 1), ""):
        if len(line) > MAX_LINE:
            raise InputError(f"a line of the log is over {MAX_LINE} characters", path=str(path))
        yield line


def _rows_jsonl(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    rows: list[tuple[int, dict[str, str]]] = []
    names: dict[str, None] = {}
    with open(open_regular(path), encoding="utf-8") as handle:
        for number, line in enumerate(_bounded_lines(handle, path), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line, parse_float=str, parse_int=str, parse_constant=str)
            except (json.JSONDecodeError, RecursionError):
                raise InputError(f"line {number} is not a JSON object", path=str(path)) from None
            if not isinstance(record, dict):
                raise InputError(f"line {number} is not a JSON object", path=str(path))
            flat = {k: v for k, v in record.items() if isinstance(v, str)}
            names.update(dict.fromkeys(flat))
            rows.append((number, flat))
    return list(names), rows


def read_table_log(path: str | Path, columns: Mapping[str, str] | None = None) -> TrainingLog:
    """A CSV (with a header row), JSON-lines or TensorBoard log as a :class:`TrainingLog`."""
    p = Path(path)
    if is_event_log(p):
        if not p.exists():
            raise InputError("log not found", path=str(p), hint="check the path")
        names, rows = _rows_events(p)
        found = _matched(names, columns, p, "scalar tag", names[1:])  # names[0]: our "step"
        return _collect(p, rows, found, _find(names, EPOCH_NAMES), "step")
    p = require_file(path, "log file")
    try:
        if p.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            names, rows = _rows_jsonl(p)
            found = _matched(names, columns, p, "column")
            return _collect(p, rows, found, _find(names, EPOCH_NAMES), _find(names, STEP_NAMES))
        with open(open_regular(p), encoding="utf-8", newline="") as handle:
            names, rows = _rows_csv(handle, p)
            found = _matched(names, columns, p, "column")
            return _collect(p, rows, found, _find(names, EPOCH_NAMES), _find(names, STEP_NAMES))
    except UnicodeDecodeError:
        raise InputError("log is not UTF-8 text", path=str(p)) from None
    except csv.Error as err:
        raise InputError(f"not a readable CSV log ({err})", path=str(p)) from None


def _matched(
    names: list[str], columns: Mapping[str, str] | None, path: Path, what: str, shown=None
) -> dict[str, str]:
    """The term -> column mapping of a table; InputError when no ``what`` (column, scalar tag)
    is a loss term, listing the first 20 of ``shown`` (default: all names)."""
    found = match_columns(names, columns or {})
    if not found:
        listed = ", ".join(list(names if shown is None else shown)[:20])
        short = {"column": "COL", "scalar tag": "TAG"}[what]
        raise InputError(f"no {what} is a loss term; {what.split()[-1]}s: {listed}",
                         path=str(path), hint=f"map them with --columns loss_2d={short},total={short}")  # fmt: skip
    return found


def _number(text: Any) -> tuple[float, int] | None:
    """(value, printed exponent) of a cell, or None for an empty or non-numeric one."""
    token = str(text).strip()
    if not token:
        return None
    try:
        value = float(token)
    except ValueError:
        return None
    if not math.isfinite(value):
        return value, 0
    return value, _last_digit(token.encode())


def _collect(
    path: Path,
    rows: Iterable[tuple[int, dict[str, str]]],
    found: Mapping[str, str],
    epoch_col: str | None,
    step_col: str | None,
) -> TrainingLog:
    epochs, iters, lines = array("q"), array("q"), array("q")
    values = {t: array("d") for t in TERMS}
    present = {t: array("b") for t in TERMS}
    decimals = {t: array("b") for t in TERMS}
    read = skipped = malformed = 0
    examples: list[tuple[int, str]] = []
    for number, row in rows:
        read += 1
        cells = {t: row.get(c, "") for t, c in found.items()}
        parsed = {t: _number(v) for t, v in cells.items()}
        bad = [t for t, v in cells.items() if str(v).strip() and parsed[t] is None]
        if bad:
            malformed += len(bad)
            if len(examples) < 3:
                examples.append((number, f"{found[bad[0]]}={str(cells[bad[0]])[:40]}"))
        if not any(v is not None for v in parsed.values()):
            skipped += 1
            continue
        epoch = _number(row.get(epoch_col, "")) if epoch_col else None
        step = _number(row.get(step_col, "")) if step_col else None
        epochs.append(int(epoch[0]) if epoch and math.isfinite(epoch[0]) else 0)
        iters.append(int(step[0]) if step and math.isfinite(step[0]) else len(iters))
        lines.append(number)
        for term in TERMS:
            got = parsed.get(term)
            values[term].append(got[0] if got else math.nan)
            present[term].append(1 if got else 0)
            decimals[term].append(max(-127, min(127, got[1])) if got else 0)
    if not epochs:
        raise InputError("no row holds a loss value", path=str(path))
    return TrainingLog(
        path=str(path),
        epochs=np.frombuffer(epochs, dtype=np.int64),
        iters=np.frombuffer(iters, dtype=np.int64),
        lines=np.frombuffer(lines, dtype=np.int64),
        values={t: np.frombuffer(a, dtype=np.float64) for t, a in values.items()},
        present={t: np.frombuffer(a, dtype=np.int8).view(bool) for t, a in present.items()},
        decimals={t: np.frombuffer(a, dtype=np.int8) for t, a in decimals.items()},
        lines_read=read,
        lines_skipped=skipped,
        malformed=malformed,
        malformed_examples=examples,
        incomplete_blocks=int(sum(1 for p in present["total"] if not p)),
    )


def is_table_log(path: str | Path) -> bool:
    """Whether ``path`` is read as a table: a .csv, .jsonl, .ndjson or .json file, or TensorBoard
    event files (a folder, or an ``events.out.tfevents.*`` file)."""
    p = Path(path)
    return p.suffix.lower() in (".csv", ".jsonl", ".ndjson", ".json") or is_event_log(p)


def is_event_log(path: Path) -> bool:
    return path.is_dir() or "tfevents" in path.name


def _rows_events(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """TensorBoard scalars (through TensorBoard's own reader, the ``tensorboard`` extra) as rows,
    one per step; each value as float32's shortest repr (its printed precision)."""
    try:
        # deferred: TensorBoard is an optional extra and slow to import
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise InputError(
            "reading TensorBoard event files needs TensorBoard",
            path=str(path),
            hint="pip install 'utnet-diag[tensorboard]', or export the scalars to CSV",
        ) from None
    if path.is_dir() and not any(path.rglob("*tfevents*")):
        raise InputError("folder holds no TensorBoard event file (events.out.tfevents.*)",
                         path=str(path))  # fmt: skip
    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
    try:
        accumulator.Reload()
    except Exception as err:  # the reader raises its own errors for damaged records
        raise InputError(f"TensorBoard could not read the events ({err})", path=str(path)) from None
    steps: dict[int, dict[str, str]] = {}
    tags = accumulator.Tags().get("scalars", [])
    for tag in tags:
        for event in accumulator.Scalars(tag):
            steps.setdefault(int(event.step), {"step": str(int(event.step))})[tag] = repr(
                float(np.float32(event.value))
            )
    return ["step", *tags], [(step, steps[step]) for step in sorted(steps)]
