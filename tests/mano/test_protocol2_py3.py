"""A MANO file re-saved by Python 3 with ``pickle.dump(..., protocol=2)`` (numpy array data is
stored as ``_codecs.encode(str, 'latin1')``) loads; other ``_codecs`` uses are refused."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from utnet_diag.errors import UnsafeInputError
from utnet_diag.io.safe_pickle import BYTES_GLOBALS, restricted_load
from utnet_diag.mano import load_mano_data


def test_python3_protocol2_mano_file_loads(tmp_path):
    data = {k: (v if isinstance(v, str) else np.asarray(v)) for k, v in load_mano_data().items()}
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    assert b"_codecs" in path.read_bytes()  # the structure this test is about
    loaded = load_mano_data(path)
    np.testing.assert_array_equal(loaded["v_template"], data["v_template"])
    np.testing.assert_array_equal(loaded["shapedirs"], data["shapedirs"])


def test_codecs_encode_other_than_latin1_is_refused(tmp_path):
    # _codecs.encode('x', 'rot13') built by hand: GLOBAL, two strings, TUPLE2, REDUCE
    payload = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(UnsafeInputError, match="rot13"):
        restricted_load(io.BytesIO(payload), BYTES_GLOBALS)
