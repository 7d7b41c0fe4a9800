"""Loading official-structure MANO pickles without chumpy, and refusing anything else."""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess

import numpy as np
import pytest

from utnet_diag.errors import InputError, UnsafeInputError
from utnet_diag.mano import ManoLayer, load_mano_data
from utnet_diag.mano.official import load_mano_file

from .official_pickles import official_structure_bytes


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official")
    data, expected = official_structure_bytes()
    path = folder / "MANO_RIGHT.pkl"
    path.write_bytes(data)
    return path, expected


def test_chumpy_is_not_installed_here():
    assert importlib.util.find_spec("chumpy") is None


def test_official_structure_loads_to_plain_arrays(official):
    path, expected = official
    before = path.read_bytes()
    data, info = load_mano_file(path)
    assert info["converted"] == {
        "shapedirs": "chumpy.reordering.Select",
        "weights": "chumpy.ch.Ch",
        "J_regressor": "scipy.sparse.csc.csc_matrix",
    }
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            assert isinstance(data[key], np.ndarray), key
            np.testing.assert_array_equal(data[key], value, err_msg=key)
        else:
            assert data[key] == value
    assert data["shapedirs"].shape == (778, 3, 10)
    assert path.read_bytes() == before  # input untouched


def test_load_mano_data_and_layer_accept_a_file_or_its_folder(official, tmp_path):
    path, expected = official
    for where in (path, path.parent):
        data = load_mano_data(where)
        np.testing.assert_array_equal(data["J_regressor"], expected["J_regressor"])
    (tmp_path / "mano").mkdir()
    (tmp_path / "mano" / "MANO_RIGHT.pkl").write_bytes(path.read_bytes())
    assert load_mano_data(tmp_path)["v_template"].shape == (778, 3)
    layer = ManoLayer(path)
    reference = ManoLayer()
    import torch

    pose = torch.randn(2, 48, generator=torch.Generator().manual_seed(0)) * 0.3
    assert torch.allclose(layer(pose[:, :3], pose[:, 3:]).vertices,
                          reference(pose[:, :3], pose[:, 3:]).vertices, atol=1e-4)  # fmt: skip


def test_side_and_name_mismatch_is_an_input_error(official, tmp_path):
    path, _ = official
    with pytest.raises(InputError, match="left hand but the file is named MANO_RIGHT"):
        load_mano_data(path, side="left")
    with pytest.raises(InputError, match="no MANO_LEFT.pkl"):
        load_mano_data(path.parent, side="left")


class _Exploit:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.slow
@pytest.mark.parametrize(
    "make",
    [
        lambda marker: _Exploit(os.system, (f"touch {marker}",)),
        lambda marker: _Exploit(eval, (f"open({str(marker)!r}, 'w')",)),
        lambda marker: _Exploit(subprocess.Popen, (["touch", str(marker)],)),
    ],
    ids=["os.system", "builtins.eval", "subprocess.Popen"],
)
def test_forbidden_globals_are_refused_and_do_not_run(tmp_path, make):
    marker = tmp_path / "pwned"
    for placement in ("top", "nested"):
        if placement == "top":
            payload = pickle.dumps(make(marker), protocol=2)
        else:

            def plant(d, classes, exploit=make(marker)):
                d["shapedirs"].__dict__["a"].__dict__["x"] = exploit

            payload, _ = official_structure_bytes(mutate=plant)
        path = tmp_path / f"MANO_RIGHT_{placement}.pkl"
        path.write_bytes(payload)
        with pytest.raises(UnsafeInputError, match="not allowed") as err:
            load_mano_file(path)
        # the message names the refused global: posix.system, __builtin__.eval, subprocess.Popen
        assert any(f".{n}'" in str(err.value) for n in ("system", "eval", "Popen"))
        assert not marker.exists()


def test_numpy_reconstruct_of_a_foreign_class_is_refused(tmp_path):
    payload = (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00cchumpy.ch\nCh\nq\x01K\x00\x85"
        b"U\x01b\x87R."
    )
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafeInputError, match="subtype"):
        load_mano_file(path)


def test_truncated_and_garbage_pickles_are_input_errors(official, tmp_path):
    path, _ = official
    whole = path.read_bytes()
    for name, payload, match in (
        ("cut.pkl", whole[: len(whole) // 2], "truncated"),
        ("text.pkl", b"this is not a pickle\n", "corrupt or not a pickle"),
    ):
        bad = tmp_path / name
        bad.write_bytes(payload)
        with pytest.raises(InputError, match=match) as err:
            load_mano_file(bad)
        assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_missing_keys_and_bad_shapes_are_named(tmp_path):
    data = dict(load_mano_data())
    del data["posedirs"], data["weights"]
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    with pytest.raises(InputError, match="missing keys weights, posedirs") as err:
        load_mano_file(path)
    assert str(path) in str(err.value)
    data = dict(load_mano_data())
    data["v_template"] = np.zeros((700, 3))
    path.write_bytes(pickle.dumps(data, protocol=4))
    with pytest.raises(InputError, match=r"'v_template' has shape \(700, 3\)"):
        load_mano_file(path)
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    with pytest.raises(InputError, match="not a dict"):
        load_mano_file(path)


@pytest.mark.slow
def test_malformed_chumpy_and_sparse_states_are_input_errors(tmp_path):
    def bad_select(d, classes):
        d["shapedirs"].__dict__["idxs"] = np.array([0, 10**9])

    def bad_sparse(d, classes):
        d["J_regressor"].__dict__["indptr"] = np.array([5, 1])

    def no_x(d, classes):
        del d["weights"].__dict__["x"]

    for mutate, match in ((bad_select, "shapedirs"), (bad_sparse, "sparse"), (no_x, "'x'")):
        payload, _ = official_structure_bytes(mutate=mutate)
        path = tmp_path / "MANO_RIGHT.pkl"
        path.write_bytes(payload)
        with pytest.raises(InputError, match=match):
            load_mano_file(path)


def test_missing_file_and_wrong_extension(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_mano_data(tmp_path / "MANO_RIGHT.pkl")
    other = tmp_path / "MANO_RIGHT.json"
    other.write_text("{}")
    with pytest.raises(InputError, match="extension"):
        load_mano_data(other)


def test_face_indices_out_of_range(tmp_path):
    data = dict(load_mano_data())
    data["f"] = data["f"].astype(np.int64) + 1
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    with pytest.raises(InputError, match=r"faces index vertices 1\.\.778"):
        load_mano_file(path)


def test_sparse_state_from_old_scipy_with_shape_key(tmp_path):
    """Pickles from scipy < 0.14 keep the csc shape under 'shape', not '_shape'."""

    def old_scipy(official, classes):
        state = official["J_regressor"].__dict__
        state["shape"] = state.pop("_shape")

    data, expected = official_structure_bytes(mutate=old_scipy)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(data)
    loaded, _ = load_mano_file(path)
    np.testing.assert_array_equal(loaded["J_regressor"], expected["J_regressor"])
