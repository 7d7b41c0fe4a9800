"""Each run note is printed in one place: the report's tables, or stderr when no table shows it."""

from __future__ import annotations

import pytest

from utnet_diag.cli.app import main


def test_gate_batch_notes_only_in_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate"]) in (0, 1)
    captured = capsys.readouterr()
    assert "synthetic MANO batch" in captured.out  # the batch table's note row
    assert "embedded default batch" in captured.out  # the run table's batch row
    assert "synthetic MANO batch" not in captured.err
    assert "embedded default" not in captured.err


def test_loss_breakdown_prints_the_batch_note_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["loss-breakdown"]) in (0, 1)
    captured = capsys.readouterr()
    assert "note: synthetic MANO batch" in captured.err  # no batch table in this report
    assert "synthetic MANO batch" not in captured.out
    assert "embedded default" not in captured.err
