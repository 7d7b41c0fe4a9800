"""Issue 8: every malformed or hostile input gets exit 2, one line naming the file, no traceback,
no partial output, no side effect, and the input left unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from utnet_diag.cli.app import main

from .corpus import ENTRY_NAMES, build


def _digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build(tmp_path_factory.mktemp("corpus"))


def test_corpus_is_large_and_varied(corpus):
    assert len(corpus) >= 30
    assert {e.kind for e in corpus} >= {"batch", "config", "checkpoint", "mano", "log", "option"}


def test_entry_names_match_corpus(corpus):
    assert [e.name for e in corpus] == list(ENTRY_NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("name", ENTRY_NAMES)
def test_bad_input_exit_2_one_line(name, corpus, capsys, monkeypatch):
    monkeypatch.delenv("UTNET_DIAG_DEBUG", raising=False)
    entry = next(e for e in corpus if e.name == name)
    before = _digest(entry.input_path)
    code = main(entry.argv)
    captured = capsys.readouterr()
    err_lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, f"{name}: exit {code}; stderr: {captured.err[-400:]}"
    assert len(err_lines) == 1, f"{name}: expected one line, got: {captured.err!r}"
    assert "Traceback" not in captured.err
    needle = entry.names or entry.input_path.name
    assert needle in err_lines[0], f"{name}: error line does not name {needle!r}: {err_lines[0]}"
    assert captured.out == ""
    assert _digest(entry.input_path) == before
    for output in entry.outputs:
        assert not output.exists(), f"{name}: partial output {output} left behind"
        leftovers = list(output.parent.glob(f".{output.name}.*"))
        assert not leftovers, f"{name}: temporary files left: {leftovers}"
    for marker in entry.markers:
        assert not marker.exists(), f"{name}: the payload ran and created {marker}"


def test_debug_env_shows_traceback(corpus, capsys, monkeypatch):
    monkeypatch.setenv("UTNET_DIAG_DEBUG", "1")
    entry = next(e for e in corpus if e.name == "truncated")
    assert main(entry.argv) == 2  # the same exit code as without the variable
    err = capsys.readouterr().err
    assert "Traceback" in err and "InputError" in err


def test_unreadable_file_is_named(tmp_path, capsys, monkeypatch):
    """Permission denied (simulated: root reads anything) gives exit 2 naming the file."""
    import os

    path = tmp_path / "locked.pt"
    path.write_bytes(b"x" * 10)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(path) else real_access(p, mode)
    )
    assert main(["check-batch", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert ("permission denied" in err or "not readable" in err) and str(path) in err
    assert "\n" not in err


def test_successful_runs_change_no_input(tmp_path, capsys):
    """gate over make-sample's files leaves every input byte-identical."""
    sample = tmp_path / "sample"
    assert main(["make-sample", str(sample)]) == 0
    inputs = sorted(p for p in sample.iterdir() if p.is_file())
    before = {p.name: _digest(p) for p in inputs}
    argv = ["gate", "--checkpoint", str(sample / "reference.pt"), "--batch", str(sample / "batch.pt"),
            "--mano", str(sample / "MANO_RIGHT.pkl"), "--config", str(sample / "config.yaml"), "--json"]  # fmt: skip
    assert main(argv) in (0, 1)
    assert main(["check-batch", str(sample / "batch.pt"), "--json"]) in (0, 1)
    assert main(["inspect-checkpoint", str(sample / "reference.pt"), "--json"]) in (0, 1)
    capsys.readouterr()
    assert {p.name: _digest(p) for p in inputs} == before
    assert sorted(p for p in sample.iterdir() if p.is_file()) == inputs
