"""The in-memory file the HO3D meta unpickler reads: it behaves like io.BytesIO."""

from __future__ import annotations

import io

from utnet_diag.datasets.ho3d import _PeekableBytes


def test_reads_like_bytesio():
    data = b"first line\nsecond\nlast"
    ours, ref = _PeekableBytes(data), io.BytesIO(data)
    assert ours.peek() == data
    assert ours.read(3) == ref.read(3) == b"fir"
    assert ours.readline(4) == ref.readline(4) == b"st l"
    assert ours.readline() == ref.readline() == b"ine\n"
    buffer, expected = bytearray(4), bytearray(4)
    assert ours.readinto(buffer) == ref.readinto(expected) == 4 and buffer == expected
    assert ours.readline(-1) == ref.readline(-1) == b"nd\n"
    assert ours.read() == ref.read() == b"last"
    assert ours.read(5) == ref.read(5) == b"" and ours.readline() == b""


def test_a_zero_size_readline_reads_nothing_as_bytesio():
    data = b"one\ntwo\n"
    ours, ref = _PeekableBytes(data), io.BytesIO(data)
    assert ours.readline(0) == ref.readline(0) == b""
    assert ours.readline() == ref.readline() == b"one\n"
