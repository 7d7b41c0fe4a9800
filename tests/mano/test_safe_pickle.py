"""utnet_diag.io.safe_pickle: the generic restricted unpickler."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from utnet_diag.errors import InputError, UnsafeInputError
from utnet_diag.io.safe_pickle import NUMPY_GLOBALS, restricted_load


def test_numpy_arrays_scalars_and_plain_types_load_from_path_bytes_and_file(tmp_path):
    value = {"a": np.arange(6.0).reshape(2, 3), "b": np.float32(2.5), "c": [1, "x", (2, 3)]}
    for protocol in (2, 4):
        data = pickle.dumps(value, protocol=protocol if protocol != 2 else 4)
        path = tmp_path / "meta.pkl"
        path.write_bytes(data)
        for source in (path, str(path), data, io.BytesIO(data)):
            loaded = restricted_load(source, NUMPY_GLOBALS)
            np.testing.assert_array_equal(loaded["a"], value["a"])
            assert loaded["b"] == np.float32(2.5) and loaded["c"] == [1, "x", (2, 3)]


def test_refused_global_is_named_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with pytest.raises(UnsafeInputError, match=r"'io\.open'"):
        restricted_load(pickle.dumps(Exploit(), protocol=4), NUMPY_GLOBALS)
    assert not marker.exists()


def test_only_the_given_allow_list_applies():
    from collections import OrderedDict

    data = pickle.dumps(OrderedDict(a=1), protocol=4)
    with pytest.raises(UnsafeInputError, match="collections.OrderedDict"):
        restricted_load(data, NUMPY_GLOBALS)
    assert restricted_load(data, {("collections", "OrderedDict"): OrderedDict}) == {"a": 1}


def test_persistent_ids_are_refused():
    buffer = io.BytesIO()

    class Persisting(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if obj == "secret" else None

    Persisting(buffer, protocol=4).dump(["secret"])
    with pytest.raises(UnsafeInputError, match="persistent"):
        restricted_load(buffer.getvalue(), NUMPY_GLOBALS)


def test_truncated_corrupt_and_missing_inputs(tmp_path):
    whole = pickle.dumps({"a": np.zeros(100)}, protocol=4)
    with pytest.raises(InputError, match="truncated|corrupt"):
        restricted_load(whole[:-30], NUMPY_GLOBALS)
    with pytest.raises(InputError, match="truncated"):
        restricted_load(b"\x80\x04", NUMPY_GLOBALS)
    path = tmp_path / "junk.pkl"
    path.write_bytes(b"\x00\x01garbage")
    with pytest.raises(InputError, match="corrupt") as err:
        restricted_load(path, NUMPY_GLOBALS, what="meta pickle")
    assert str(path) in str(err.value) and "meta pickle" in str(err.value)
    with pytest.raises(InputError, match="not found"):
        restricted_load(tmp_path / "absent.pkl", NUMPY_GLOBALS)
