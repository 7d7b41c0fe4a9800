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
from utnet_diag.spec import LOG_LINES

# Term keys in block order, with the label the training script prints for each (the spec's).
TERMS: tuple[str, ...] = tuple(LOG_LINES)
TERM_LABELS: dict[str, str] = dict(LOG_LINES)
_LABEL_TO_INDEX = {label.lower().encode(): i for i, label in enumerate(TERM_LABELS.values())}
_TOTAL = TERMS.index("total")

NO_BLOCKS_MESSAGE = "no loss blocks found; expected lines like '[Epoch 0, Iter 0] Loss breakdown:'"

_HEADER = re.compile(
    rb"\[\s*Epoch\s+(\d+)\s*,\s*Iter(?:ation)?\s+(\d+)\s*\]\s*Loss\s+breakdown", re.IGNORECASE
)
# A label, then a printed number (bare or as ``tensor(1.5, device='cuda:0')``, nan/inf in any
# case) in group 2, or whatever else stands there in group 3 (a malformed value).
_TERM = re.compile(
    rb"(?<![\w])(2D keypoint loss|3D joint loss|3D vertex loss|Prior loss \((?:shape|pose)\)"
    rb"|Aux loss|Total loss)\s*:\s*(?:(?:tensor\()?([-+]?(?:nan|inf(?:inity)?"
    rb"|\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))(?![\w.])|(\S*))",
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


_NAN = math.nan
_N_TERMS = len(TERMS)


class _Builder:
    """Accumulates blocks into typed arrays while the file streams by (terms by index in TERMS):
    flat arrays with one row of ``len(TERMS)`` slots per block (three ``extend`` calls per block,
    not three appends per term), reshaped when the file is read."""

    def __init__(self) -> None:
        self.epochs = array("q")
        self.iters = array("q")
        self.lines = array("q")
        self.values = array("d")
        self.present = array("b")
        self.decimals = array("b")
        self.current: list[float] | None = None  # the open block's values (NaN: not printed)
        self.current_present: list[int] = [0] * _N_TERMS
        self.current_decimals: list[int] = [0] * _N_TERMS
        self.filled = 0
        self.header: tuple[int, int, int] = (0, 0, 0)
        self.incomplete = 0
        self.empty_headers = 0
        self.orphans = 0

    def open(self, epoch: int, iteration: int, line_no: int) -> None:
        self.close()
        self.current = [_NAN] * _N_TERMS
        self.current_present = [0] * _N_TERMS
        self.current_decimals = [0] * _N_TERMS
        self.filled = 0
        self.header = (epoch, iteration, line_no)

    def add(self, term: int, value: float, exponent: int) -> bool:
        """Store a value in the open block; False when there is none or the term repeats."""
        current = self.current
        if current is None:
            self.orphans += 1
            return False
        if self.current_present[term]:
            self.orphans += 1
            self.close()
            return False
        current[term] = value
        self.current_present[term] = 1
        self.current_decimals[term] = exponent
        self.filled += 1
        return True

    def close(self) -> None:
        block = self.current
        if block is None:
            return
        self.current = None
        if not self.filled:
            self.empty_headers += 1
            return
        if not self.current_present[_TOTAL]:
            self.incomplete += 1
        epoch, iteration, line_no = self.header
        self.epochs.append(epoch)
        self.iters.append(iteration)
        self.lines.append(line_no)
        self.values.extend(block)
        self.present.extend(self.current_present)
        self.decimals.extend(self.current_decimals)

    def columns(self, array_: array, dtype: type) -> dict[str, np.ndarray]:
        """Per term, its column of a flat (blocks x terms) array, contiguous (the checks read
        each column many times; a strided view made them 2x slower)."""
        table = np.frombuffer(array_, dtype=dtype).reshape(-1, _N_TERMS)
        return {t: np.ascontiguousarray(table[:, i]) for i, t in enumerate(TERMS)}


def _open_log(path: Path):
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _last_digit(number: bytes) -> int:
    """Power of ten of the last printed digit: b'334.8019' -> -4, b'10000' -> 0, b'1.5e+03' -> 2."""
    if b"e" not in number and b"E" not in number:
        dot = number.find(b".")
        return 0 if dot < 0 else max(-127, dot + 1 - len(number))
    mantissa, _, exponent = number.lower().partition(b"e")
    digits = -len(mantissa.partition(b".")[2])
    return max(-127, min(127, digits + int(exponent)))


def _printable(raw: bytes, limit: int = 80) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# A canonical block, exactly as the training script prints it: the header, then the term lines
# in the spec's order (each but the total optional). A chunk whose every "oss" lies in such
# blocks is parsed by one regex pass and numpy; any other chunk goes line by line.
_NUMBER = rb"[ \t]*:[ \t]*([-+]?\d+(?:\.\d*)?)[ \t]*\n"
_BLOCK = re.compile(
    rb"\[Epoch (\d+), Iter (\d+)\] Loss breakdown:[ \t]*\n"
    + b"".join(
        rb"(?:[ \t]*" + re.escape(label.encode()) + _NUMBER + rb")" + (b"" if i == _TOTAL else b"?")
        for i, label in enumerate(TERM_LABELS.values())
    ),
)
_CHUNK = 4 << 20
_HEADER_END = b"] Loss breakdown:"  # how a block's first line ends


@dataclass
class _Scan:
    """What the reading has found so far (shared by the chunk and the line scanners)."""

    builder: _Builder = field(default_factory=_Builder)
    lines_read: int = 0
    skipped: int = 0
    malformed: int = 0
    examples: list[tuple[int, str]] = field(default_factory=list)


def _scan_chunk(chunk: bytes, scan: _Scan) -> bool:
    """Parse whole lines of canonical blocks with one regex pass and numpy; False (nothing
    changed) when the chunk holds anything else that mentions a loss, or a block an earlier
    chunk left open: then it is read line by line."""
    if b"\r" in chunk:
        return False
    rows = _BLOCK.findall(chunk)  # one tuple of groups per block (b"" where a term is absent)
    if not rows:
        return False
    # the blocks' first lines: those that end in "Loss breakdown:" (found with numpy; a count
    # that differs from the blocks found sends the chunk to the line reader)
    data = np.frombuffer(chunk, dtype=np.uint8)
    newlines = np.flatnonzero(data == 10)
    ends = newlines[newlines >= len(_HEADER_END)]
    header = np.ones(len(ends), dtype=bool)
    for k, byte in enumerate(_HEADER_END):
        header &= data[ends - len(_HEADER_END) + k] == byte
    header_lines = np.flatnonzero(header) + (len(newlines) - len(ends))
    if len(header_lines) != len(rows):
        return False
    tokens = np.array(rows, dtype="S32")  # (blocks, 2 + terms)
    terms = tokens[:, 2:]
    present = terms != b""
    if int(present.sum()) + len(rows) != chunk.count(b"oss"):  # every line with a loss counted
        return False
    builder = scan.builder
    builder.close()  # the chunk's first header would close an open block
    values = np.full(terms.shape, np.nan)
    values[present] = terms[present].astype(np.float64)
    dot = np.char.find(terms, b".")
    decimals = np.where(dot < 0, 0, np.maximum(-127, dot + 1 - np.char.str_len(terms)))
    lines = scan.lines_read + header_lines + 1
    builder.epochs.frombytes(tokens[:, 0].astype(np.int64).tobytes())
    builder.iters.frombytes(tokens[:, 1].astype(np.int64).tobytes())
    builder.lines.frombytes(lines.astype(np.int64).tobytes())
    builder.values.frombytes(values.tobytes())
    builder.present.frombytes(present.astype(np.int8).tobytes())
    builder.decimals.frombytes(np.where(present, decimals, 0).astype(np.int8).tobytes())
    scan.lines_read += len(newlines)
    scan.skipped += len(newlines) - len(rows) - int(present.sum())
    return True


def _scan_lines(lines: list[bytes], scan: _Scan) -> None:
    """Parse lines one by one: tqdm's carriage returns, timestamps before a line, tensor(...)
    values, any case, malformed values. The per-line loop is the slow path: kept in one piece
    (a function per segment made it 12% slower, measured)."""
    builder, examples = scan.builder, scan.examples
    for raw_line in lines:
        scan.lines_read += 1
        lines_read = scan.lines_read
        # tqdm redraws with carriage returns: each segment is a line of its own.
        raw_line = raw_line.rstrip(b"\r\n")
        segments = raw_line.split(b"\r") if b"\r" in raw_line else (raw_line,)
        matched = False
        for segment in segments:
            if b"oss" not in segment:  # every header and label contains "oss"
                continue
            if b"reakdown" in segment:
                header = _HEADER.search(segment)
                if header is not None:
                    builder.open(int(header.group(1)), int(header.group(2)), lines_read)
                    matched = True
                    continue
            # Fast path for the usual '  3D joint loss: 73632.9062' line.
            label, colon, rest = segment.partition(b":")
            term = _LABEL_TO_INDEX.get(label.strip().lower()) if colon else None
            if term is not None:
                token = rest.split(None, 1)
                try:
                    value = float(token[0]) if token else None
                except ValueError:
                    value = None
                if value is not None:
                    if builder.add(term, value, _last_digit(token[0])):
                        matched = True
                    continue
            for term_match in _TERM.finditer(segment):
                text = term_match.group(2)
                if text is None:
                    if builder.current is not None:
                        scan.malformed += 1
                        if len(examples) < _MAX_EXAMPLES:
                            examples.append((lines_read, _printable(segment)))
                    continue
                term = _LABEL_TO_INDEX[term_match.group(1).lower()]
                if builder.add(term, float(text), _last_digit(text)):
                    matched = True
        if not matched:
            scan.skipped += 1


def parse_log(path: str | Path, *, fast: bool = True) -> TrainingLog:
    """Read every loss block of a training log (plain text, or gzip-compressed text).

    The file is read in 4 MiB pieces of whole lines: a piece of canonical blocks (as the
    training script prints them) is parsed with one regex pass, any other line by line; both
    give the same result (``fast=False`` reads every line by line).
    Raises InputError for a missing, empty or binary file, and for a log without any block.
    """
    p = require_file(path, "log file")
    scan = _Scan()
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
            tail = b""
            while piece := handle.read(_CHUNK):
                data = tail + piece
                # cut before the last header, so that blocks do not straddle two chunks
                cut = data.rfind(b"\n[Epoch ") + 1 or data.rfind(b"\n") + 1
                chunk, tail = data[:cut], data[cut:]
                if chunk and not (fast and _scan_chunk(chunk, scan)):
                    _scan_lines(chunk.split(b"\n")[:-1], scan)
            if tail:
                lines = tail.split(b"\n")
                if not lines[-1]:
                    lines.pop()
                _scan_lines(lines, scan)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise InputError(f"could not read the log ({err})", path=str(p)) from None
    builder = scan.builder
    builder.close()
    if not builder.epochs:
        raise InputError(NO_BLOCKS_MESSAGE, path=str(p))
    return TrainingLog(
        path=str(p),
        epochs=np.frombuffer(builder.epochs, dtype=np.int64),
        iters=np.frombuffer(builder.iters, dtype=np.int64),
        lines=np.frombuffer(builder.lines, dtype=np.int64),
        values=builder.columns(builder.values, np.float64),
        decimals=builder.columns(builder.decimals, np.int8),
        present={t: c.view(bool) for t, c in builder.columns(builder.present, np.int8).items()},
        lines_read=scan.lines_read,
        lines_skipped=scan.skipped,
        malformed=scan.malformed,
        malformed_examples=scan.examples,
        incomplete_blocks=builder.incomplete,
        empty_headers=builder.empty_headers,
        orphan_term_lines=builder.orphans,
    )


def downsample(values: np.ndarray, present: np.ndarray, points: int) -> list[float | None]:
    """(N,) values -> at most ``points`` bucket means, in order. A bucket holding a NaN/Inf gives
    NaN (so it shows); one with no printed value gives None."""
    n = values.size
    if n == 0:
        return []
    edges = np.linspace(0, n, min(points, n) + 1).astype(np.int64)
    starts = edges[:-1]
    filled = np.where(present, values, 0.0)
    finite = np.isfinite(filled)
    sums = np.add.reduceat(np.where(finite, filled, 0.0), starts)
    counts = np.add.reduceat(present.astype(np.int64), starts)
    nonfinite = np.add.reduceat((~finite).astype(np.int64), starts)
    out: list[float | None] = []
    for s, c, bad in zip(sums, counts, nonfinite):
        if bad:
            out.append(math.nan)
        elif c == 0:
            out.append(None)
        else:
            out.append(float(s / c))
    return out
