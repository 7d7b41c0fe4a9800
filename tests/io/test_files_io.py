"""Atomic writes: outputs get ordinary permissions, and keep an existing file's mode."""

from __future__ import annotations

import os
import stat

import pytest

from utnet_diag.io.files import write_bytes_atomic, write_text_atomic


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_new_output_has_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        out = write_text_atomic(tmp_path / "report.json", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert out.read_text() == "{}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_overwrite_keeps_existing_mode(tmp_path):
    target = tmp_path / "MANO_RIGHT.pkl"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_bytes_atomic(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_bytes() == b"new"
