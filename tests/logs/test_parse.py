"""The streaming log parser: block format, tolerated noise, precision, bad files."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from utnet_diag.errors import InputError
from utnet_diag.logs.parse import NO_BLOCKS_MESSAGE, downsample, parse_log

FIXTURES = Path(__file__).parents[1] / "fixtures" / "logs"


def test_spec_normal_example_values() -> None:
    log = parse_log(FIXTURES / "spec_normal.log")
    assert log.n_blocks == 1
    assert log.values["loss_2d"][0] == 334.8019
    assert log.values["loss_3d_joint"][0] == 73632.9062
    assert log.values["shape_prior"][0] == 70.4138
    assert log.values["loss_aux"][0] == 0.0
    assert log.values["total"][0] == 3826.6260
    assert not log.present["loss_3d_vert"][0] and not log.present["pose_prior"][0]
    assert log.decimals["total"][0] == -4
    assert log.resolution("total")[0] == pytest.approx(0.5e-4)
    assert log.lines_read == 6 and log.lines_skipped == 0


def test_spec_abnormal_example_reads_nan() -> None:
    log = parse_log(FIXTURES / "spec_abnormal.log")
    assert log.values["loss_2d"][0] == 10000.0
    assert log.decimals["loss_2d"][0] == -1
    assert math.isnan(log.values["loss_aux"][0]) and log.present["loss_aux"][0]
    assert math.isnan(log.values["total"][0])


def test_tqdm_and_debug_lines_are_skipped_not_parsed() -> None:
    log = parse_log(FIXTURES / "tqdm_debug.log")
    assert log.n_blocks == 40
    assert log.lines_skipped == 52  # 2 header lines, 40 tqdm lines, 6 debug prints, 4 val lines
    assert log.malformed == 0 and log.incomplete_blocks == 0
    # iterations restart each epoch of 500 iterations, logged every 50
    assert log.epochs.tolist()[:12] == [0] * 10 + [1] * 2
    assert log.iters.tolist()[:3] == [0, 50, 100]
    # the header after a timestamp prefix is found and its line number is right
    assert log.lines[0] == 4


def test_optional_vertex_and_pose_lines() -> None:
    log = parse_log(FIXTURES / "vertex_pose.log")
    assert log.terms_present() == [
        "loss_2d",
        "loss_3d_joint",
        "loss_3d_vert",
        "shape_prior",
        "pose_prior",
        "loss_aux",
        "total",
    ]
    assert log.present["loss_3d_vert"].all() and log.present["pose_prior"].all()


def _write(tmp_path: Path, text: str | bytes, name: str = "train.log") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_carriage_returns_tensor_values_and_malformed_lines(tmp_path: Path) -> None:
    text = (
        "100%|██████| 5/5\r[Epoch 2, Iter 30] Loss breakdown:\r\n"
        "  2D keypoint loss: tensor(12.5000, device='cuda:0')\r\n"
        "  3D joint loss: 1.5e+03\r\n"
        "  Aux loss: None\r\n"
        "  Total loss: 90.125\r\n"
    )
    log = parse_log(_write(tmp_path, text))
    assert log.n_blocks == 1
    assert (log.epochs[0], log.iters[0]) == (2, 30)
    assert log.values["loss_2d"][0] == 12.5
    assert log.values["loss_3d_joint"][0] == 1500.0 and log.decimals["loss_3d_joint"][0] == 2
    assert not log.present["loss_aux"][0]
    assert log.malformed == 1 and log.malformed_examples[0] == (4, "Aux loss: None")


def test_incomplete_repeated_and_orphan_lines(tmp_path: Path) -> None:
    text = (
        "  Total loss: 5.0\n"  # before any block: orphan
        "[Epoch 0, Iter 0] Loss breakdown:\n"
        "  2D keypoint loss: 1.0\n"
        "[Epoch 0, Iter 1] Loss breakdown:\n"  # previous block had no total
        "[Epoch 0, Iter 2] Loss breakdown:\n"  # previous header had no terms
        "  2D keypoint loss: 2.0\n"
        "  Total loss: 3.0\n"
        "  Total loss: 4.0\n"  # repeated: closes the block, counted as orphan
    )
    log = parse_log(_write(tmp_path, text))
    assert log.n_blocks == 2
    assert log.values["loss_2d"].tolist() == [1.0, 2.0]
    assert log.incomplete_blocks == 1 and log.empty_headers == 1 and log.orphan_term_lines == 2
    assert log.values["total"][1] == 3.0


def test_gzip_log(tmp_path: Path) -> None:
    raw = (FIXTURES / "spec_normal.log").read_bytes()
    log = parse_log(_write(tmp_path, gzip.compress(raw), "train.log.gz"))
    assert log.values["total"].tolist() == [3826.626]


def test_large_log_values_stay_in_arrays(tmp_path: Path) -> None:
    block = (
        "[Epoch {e}, Iter {i}] Loss breakdown:\n  2D keypoint loss: {v:.4f}\n"
        "  3D joint loss: 1.0\n  Total loss: 2.0\n"
    )
    text = "".join(block.format(e=i // 100, i=i % 100, v=i / 7) for i in range(5000))
    log = parse_log(_write(tmp_path, text))
    assert log.n_blocks == 5000
    assert log.values["loss_2d"].dtype == np.float64
    np.testing.assert_allclose(log.values["loss_2d"], np.round(np.arange(5000) / 7, 4))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.log", "log file is empty (0 bytes)"),
        ("no_blocks.log", NO_BLOCKS_MESSAGE),
        ("binary.log", "not a text log: binary data (NUL bytes)"),
        ("missing.log", "log file not found"),
    ],
)
def test_bad_files_raise_input_error(name: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_log(FIXTURES / name)
    assert message in str(caught.value)
    assert caught.value.path == str(FIXTURES / name)


def test_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        parse_log(tmp_path)


def test_downsample_marks_nonfinite_buckets() -> None:
    import numpy as np

    values = np.array([1.0, 3.0, np.nan, 5.0, 7.0, 9.0])
    present = np.array([True, True, True, True, False, False])
    assert downsample(values, present, 3) == [2.0, pytest.approx(float("nan"), nan_ok=True), None]
    series = downsample(np.arange(100.0), np.ones(100, bool), 4)
    assert series == [12.0, 37.0, 62.0, 87.0]


def _random_log(rng, blocks: int) -> str:
    """A log mixing canonical blocks with every variation the line parser handles."""
    labels = ["2D keypoint loss", "3D joint loss", "3D vertex loss", "Prior loss (shape)",
              "Prior loss (pose)", "Aux loss", "Total loss"]  # fmt: skip
    out = []
    for b in range(blocks):
        kind = rng.integers(0, 40)  # 1-7: an unusual block; the rest canonical
        prefix = "2024-01-01 12:00:00 " if kind == 1 else ""
        out.append(f"{prefix}[Epoch {b // 50}, Iter {b % 50 * 10}] Loss breakdown:\n")
        for i, label in enumerate(labels):
            if i in (2, 4) and rng.random() < 0.5:
                continue  # optional terms
            if i == 6 and kind == 2:
                continue  # a block without its total
            value = f"{rng.uniform(0, 1e5):.{int(rng.integers(0, 6))}f}"
            if kind == 3 and i == 1:
                value = f"tensor({value}, device='cuda:0')"
            if kind == 4 and i == 0:
                value = "oops"
            if kind == 5 and i == 5:
                value = f"{rng.uniform(0, 9):.3e}"
            out.append(f"  {label.upper() if kind == 6 else label}: {value}\n")
        if kind == 7:
            out.append("  Total loss: 1.0\n")  # a repeated term: an orphan
        if rng.random() < 0.03:
            out.append("Epoch 0:  45%|####5     | 1/2 [00:01<00:01]\rEpoch 0:  50%|#####\n")
        if rng.random() < 0.03:
            out.append("debug: the loss looks fine\n")
    return "".join(out)


@pytest.mark.parametrize("seed", range(6))
def test_chunked_regex_parse_equals_the_line_parser(tmp_path, monkeypatch, seed):
    """The fast path (whole chunks of canonical blocks) gives exactly the line parser's result,
    whatever the chunk size and the mix of canonical and unusual blocks."""
    import numpy as np

    from utnet_diag.logs import parse

    rng = np.random.default_rng(seed)
    text = _random_log(rng, 400)
    if seed % 2:
        text = text.rstrip("\n")  # no final newline
    path = tmp_path / "train.log"
    path.write_text(text)
    monkeypatch.setattr(parse, "_CHUNK", int(rng.integers(300, 3000)))
    taken = []
    real = parse._scan_chunk
    monkeypatch.setattr(
        parse, "_scan_chunk", lambda chunk, scan: taken.append(real(chunk, scan)) or taken[-1]
    )
    fast, slow = parse.parse_log(path), parse.parse_log(path, fast=False)
    assert any(taken) and not all(taken)  # both paths ran
    for name in ("epochs", "iters", "lines"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    for term in parse.TERMS:
        assert np.array_equal(fast.values[term], slow.values[term], equal_nan=True), term
        assert np.array_equal(fast.present[term], slow.present[term]), term
        assert np.array_equal(fast.decimals[term], slow.decimals[term]), term
    for name in ("lines_read", "lines_skipped", "malformed", "malformed_examples",
                 "incomplete_blocks", "empty_headers", "orphan_term_lines"):  # fmt: skip
        assert getattr(fast, name) == getattr(slow, name), name
    assert len(fast.epochs) > 300
