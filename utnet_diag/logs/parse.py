"""Streaming parser for UTNet training logs (spec section 9.4).

Training prints blocks like::

    [Epoch 0, Iter 0] Loss breakdown:
      2D keypoint loss: 334.8019
      3D joint loss: 73632.9062
      Prior loss (shape): 70.4138
      Aux loss: 0.0000
      Total loss: 3826.6260

``3D vertex loss`` and ``Prior loss (pose)`` are optional. Any other line (tqdm bars, debug prints,
timestamps before a line) is tolerated and counted. The file is read line by line in binary, so
logs of hundreds of MB parse in bounded memory: values go into typed arrays, one slot per block.
"""

from __future__ import annotations

import gzip
import math
import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utnet_diag.errors import InputError
from utnet_diag.io.files import require_file

# Term keys in block order, with the label the training script prints for each.
TERMS: tuple[str, ...] = (
    "loss_2d",
    "loss_3d_joint",
    "loss_3d_vert",
    "shape_prior",
    "pose_prior",
    "loss_aux",
    "total",
)
TERM_LABELS: dict[str, str] = {
    "loss_2d": "2D keypoint loss",
    "loss_3d_joint": "3D joint loss",
    "loss_3d_vert": "3D vertex loss",
    "shape_prior": "Prior loss (shape)",
    "pose_prior": "Prior loss (pose)",
    "loss_aux": "Aux loss",
    "total": "Total loss",
}
_LABEL_TO_TERM = {label.lower(): term for term, label in TERM_LABELS.items()}

NO_BLOCKS_MESSAGE = "no loss blocks found; expected lines like '[Epoch 0, Iter 0] Loss breakdown:'"

_HEADER = re.compile(
    rb"\[\s*Epoch\s+(\d+)\s*,\s*Iter(?:ation)?\s+(\d+)\s*\]\s*Loss\s+breakdown", re.IGNORECASE
)
_TERM = re.compile(
    rb"(?<![\w])(2D keypoint loss|3D joint loss|3D vertex loss|Prior loss \((?:shape|pose)\)"
    rb"|Aux loss|Total loss)\s*:\s*(\S*)",
    re.IGNORECASE,
)
# A printed number, bare or as ``tensor(1.5, device='cuda:0')``; nan/inf in any case.
_NUMBER = re.compile(
    rb"(?:tensor\()?([-+]?(?:nan|inf(?:inity)?|\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))"
    rb"(?:[,)]|$)",
    re.IGNORECASE,
)
_BINARY_PROBE = 64 * 1024
_MAX_EXAMPLES = 3


@dataclass
class TrainingLog:
    """Loss blocks read from a log: one row per block, numbers in arrays.

    ``values[term]`` is (N,) float64 (NaN also where a term was not printed: see ``present``);
    ``present[term]`` is (N,) bool; ``decimals[term]`` is (N,) int8, the printed precision as a
    power of ten (``334.8019`` -> -4, so the printed value is exact to 0.5e-4); ``epochs``, ``iters``, ``lines`` are (N,) int64 (``lines`` is
    the 1-based line number of each block's header).
    """

    path: str
    epochs: np.ndarray
    iters: np.ndarray
    lines: np.ndarray
    values: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    decimals: dict[str, np.ndarray]
    lines_read: int = 0
    lines_skipped: int = 0
    malformed: int = 0
    malformed_examples: list[tuple[int, str]] = field(default_factory=list)
    incomplete_blocks: int = 0  # blocks without a Total loss line
    empty_headers: int = 0  # headers followed by no term line
    orphan_term_lines: int = 0  # term lines outside any block, or repeated within one

    @property
    def n_blocks(self) -> int:
        return int(self.epochs.shape[0])

    def terms_present(self) -> list[str]:
        """Terms printed in at least one block, in block order."""
        return [t for t in TERMS if self.present[t].any()]

    def resolution(self, term: str) -> np.ndarray:
        """(N,) half a unit in the last printed digit of each value (0 where not printed)."""
        return np.where(self.present[term], 0.5 * 10.0 ** self.decimals[term].astype(float), 0.0)

    def where(self, index: int) -> str:
        """Human position of block ``index``: 'epoch 0, iter 40, line 123'."""
        return (
            f"epoch {int(self.epochs[index])}, iter {int(self.iters[index])},"
            f" line {int(self.lines[index])}"
        )


class _Builder:
    """Accumulates blocks into typed arrays while the file streams by."""

    def __init__(self) -> None:
        self.epochs = array("q")
        self.iters = array("q")
        self.lines = array("q")
        self.values = {t: array("d") for t in TERMS}
        self.present = {t: array("b") for t in TERMS}
        self.decimals = {t: array("b") for t in TERMS}
        self.current: dict[str, tuple[float, int]] | None = None
        self.header: tuple[int, int, int] | None = None
        self.incomplete = 0
        self.empty_headers = 0
        self.orphans = 0

    def open(self, epoch: int, iteration: int, line_no: int) -> None:
        self.close()
        self.current = {}
        self.header = (epoch, iteration, line_no)

    def add(self, term: str, value: float, exponent: int) -> bool:
        """Store a value in the open block; False when there is none or the term repeats."""
        if self.current is None:
            self.orphans += 1
            return False
        if term in self.current:
            self.orphans += 1
            self.close()
            return False
        self.current[term] = (value, exponent)
        return True

    def close(self) -> None:
        if self.current is None or self.header is None:
            return
        block, (epoch, iteration, line_no) = self.current, self.header
        self.current, self.header = None, None
        if not block:
            self.empty_headers += 1
            return
        if "total" not in block:
            self.incomplete += 1
        self.epochs.append(epoch)
        self.iters.append(iteration)
        self.lines.append(line_no)
        for term in TERMS:
            value, exponent = block.get(term, (math.nan, 0))
            self.values[term].append(value)
            self.present[term].append(term in block)
            self.decimals[term].append(exponent)


def _open_log(path: Path):
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _last_digit(number: bytes) -> int:
    """Power of ten of the last printed digit: b'334.8019' -> -4, b'10000' -> 0, b'1.5e+03' -> 2."""
    mantissa, _, exponent = number.lower().partition(b"e")
    digits = -len(mantissa.partition(b".")[2])
    try:
        shift = int(exponent) if exponent else 0
    except ValueError:
        shift = 0
    return max(-127, min(127, digits + shift))


def _printable(raw: bytes, limit: int = 80) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_log(path: str | Path) -> TrainingLog:
    """Read every loss block of a training log (plain text, or gzip-compressed text).

    Raises InputError for a missing, empty or binary file, and for a log without any block.
    """
    p = require_file(path, "log file")
    builder = _Builder()
    lines_read = skipped = malformed = 0
    examples: list[tuple[int, str]] = []
    try:
        with _open_log(p) as handle:
            head = handle.read(_BINARY_PROBE)
            if b"\x00" in head:
                raise InputError(
                    "not a text log: binary data (NUL bytes) in the first 64 KiB",
                    path=str(p),
                    hint="pass the plain-text file your training script printed to",
                )
            handle.seek(0)
            for raw_line in handle:
                lines_read += 1
                # tqdm redraws with carriage returns: each segment is a line of its own.
                raw_line = raw_line.rstrip(b"\r\n")
                segments = raw_line.split(b"\r") if b"\r" in raw_line else (raw_line,)
                matched = False
                for segment in segments:
                    if b"oss" not in segment:  # every header and label contains "oss"
                        continue
                    header = _HEADER.search(segment)
                    if header is not None:
                        builder.open(int(header.group(1)), int(header.group(2)), lines_read)
                        matched = True
                        continue
                    for term_match in _TERM.finditer(segment):
                        term = _LABEL_TO_TERM[term_match.group(1).lower().decode()]
                        number = _NUMBER.match(term_match.group(2))
                        if number is None:
                            if builder.current is not None:
                                malformed += 1
                                if len(examples) < _MAX_EXAMPLES:
                                    examples.append((lines_read, _printable(segment)))
                            continue
                        text = number.group(1)
                        value = float(text)
                        matched = builder.add(term, value, _last_digit(text)) or matched
                if not matched:
                    skipped += 1
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise InputError(f"could not read the log ({err})", path=str(p)) from None
    builder.close()
    if not builder.epochs:
        raise InputError(NO_BLOCKS_MESSAGE, path=str(p))
    return TrainingLog(
        path=str(p),
        epochs=np.frombuffer(builder.epochs, dtype=np.int64).copy(),
        iters=np.frombuffer(builder.iters, dtype=np.int64).copy(),
        lines=np.frombuffer(builder.lines, dtype=np.int64).copy(),
        values={t: np.frombuffer(a, dtype=np.float64).copy() for t, a in builder.values.items()},
        decimals={t: np.frombuffer(a, dtype=np.int8).copy() for t, a in builder.decimals.items()},
        present={
            t: np.frombuffer(a, dtype=np.int8).astype(bool) for t, a in builder.present.items()
        },
        lines_read=lines_read,
        lines_skipped=skipped,
        malformed=malformed,
        malformed_examples=examples,
        incomplete_blocks=builder.incomplete,
        empty_headers=builder.empty_headers,
        orphan_term_lines=builder.orphans,
    )
