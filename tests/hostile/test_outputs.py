"""Outputs under failure: a full disk, a read-only folder, two scans writing one file, SIGTERM."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from utnet_diag.cli.app import main
from utnet_diag.synthetic.trees import write_ho3d_tree


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def batch(tmp_path):
    from tests.hostile.corpus_two import _batch

    path = tmp_path / "b.pt"
    torch.save(_batch(), path)
    return path


def _one_error_line(capsys, *needles: str) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("utnet-diag: error:"), err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def test_junit_on_a_full_disk_is_an_input_error_and_leaves_nothing(
    tmp_path, batch, capsys, monkeypatch
):
    junit = tmp_path / "report.xml"
    monkeypatch.setattr(os, "replace", _full_disk)
    assert main(["check-batch", str(batch), "--junit", str(junit)]) == 2
    _one_error_line(capsys, str(junit), "No space left on device")
    assert not junit.exists() and not list(tmp_path.glob(".report.xml.*"))


def test_junit_in_a_read_only_folder_is_refused_before_any_work(
    tmp_path, batch, capsys, monkeypatch
):
    folder = tmp_path / "ro"
    folder.mkdir()
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(folder) else real(p, mode)
    )
    assert main(["check-batch", str(batch), "--junit", str(folder / "r.xml")]) == 2
    _one_error_line(capsys, str(folder), "not writable")
    assert capsys.readouterr().out == ""


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("ho3d")
    write_ho3d_tree(root, sequences=("ABF10", "MC1"), frames_per_sequence=6, seed=3,
                    faults={"mm_joints": [1, 7]})  # fmt: skip
    return root


def test_scan_findings_on_a_full_disk_leave_no_partial_file(tmp_path, tree, capsys, monkeypatch):
    out = tmp_path / "findings.jsonl"
    from utnet_diag.datasets import sink

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

        def close(self):
            self.handle.close()

    real_init = sink.FindingSink.__post_init__

    def full_after_open(self) -> None:
        real_init(self)
        if self._handle is not None:
            self._handle = Full(self._handle)

    monkeypatch.setattr(sink.FindingSink, "__post_init__", full_after_open)
    assert main(["scan", "--dataset", "ho3d", "--root", str(tree), "--out", str(out)]) == 2
    _one_error_line(capsys, str(out), "No space left on device")
    assert not out.exists() and not list(tmp_path.glob(".findings.jsonl.*"))


def _scan(tree, out, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "utnet_diag", "scan", "--dataset", "ho3d", "--root", str(tree),
         "--out", str(out), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.slow
def test_two_scans_writing_one_file_both_finish(tmp_path, tree):
    out = tmp_path / "findings.jsonl"
    runs = [_scan(tree, out), _scan(tree, out)]
    codes = [run.wait(timeout=120) for run in runs]
    assert codes == [1, 1], [run.stderr.read()[-300:] for run in runs]
    lines = out.read_text().splitlines()
    assert lines and all(json.loads(line)["check"] for line in lines)
    assert not list(tmp_path.glob(".findings.jsonl.*"))


@pytest.mark.slow
def test_sigterm_keeps_the_findings_so_far_and_says_so(tmp_path_factory):
    root = tmp_path_factory.mktemp("big_ho3d")
    write_ho3d_tree(root, sequences=("ABF10",), frames_per_sequence=1500, seed=4, images=False,
                    faults={"mm_joints": list(range(0, 1500, 3))})  # fmt: skip
    out = root.parent / "findings_term.jsonl"
    run = _scan(root, out, "--max-findings-per-check", "1000", "--no-images")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and run.poll() is None:  # until findings stream
        partial = list(out.parent.glob(".findings_term.jsonl.*.partial"))
        if partial and partial[0].stat().st_size > 0:
            break
        time.sleep(0.02)
    if run.poll() is not None:
        pytest.fail(f"the scan ended (exit {run.returncode}) before SIGTERM could be sent")
    run.send_signal(signal.SIGTERM)
    code = run.wait(timeout=60)
    stderr = run.stderr.read()
    assert code == 130, stderr[-400:]
    assert "interrupted" in stderr
    kept = out.read_text().splitlines()
    assert 0 < len(kept) < 500  # some of the 500 planted findings, not all
    assert not list(out.parent.glob(".findings_term.jsonl.*"))
