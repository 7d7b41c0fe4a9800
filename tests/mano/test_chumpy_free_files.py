"""Chumpy-free MANO files written the usual ways load through the restricted unpickler.

Users who removed chumpy themselves pickle the official arrays in a dict with whatever SciPy and
protocol they have: ``J_regressor`` stays a scipy sparse matrix (``scipy.sparse._csc.csc_matrix``
since SciPy 1.8, ``scipy.sparse.csc.csc_matrix`` before), or becomes dense. Every such file that
smplx itself loads must load here too, with the same arrays, and nothing outside numpy, scipy's
sparse containers and chumpy's data classes may be resolved.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from utnet_diag.errors import UnsafeInputError
from utnet_diag.mano import synthetic_mano_data
from utnet_diag.mano.official import load_mano_file

SPARSE = {
    "csc_matrix": sp.csc_matrix,
    "csr_matrix": sp.csr_matrix,
    "coo_matrix": sp.coo_matrix,
    "csc_array": sp.csc_array,
    "coo_array": sp.coo_array,
    "dense": np.asarray,
}


def _plain_dict(layout: str) -> tuple[dict, dict]:
    data = synthetic_mano_data("right")
    plain = {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in data.items()}
    plain["J_regressor"] = SPARSE[layout](np.asarray(data["J_regressor"]))
    return plain, data


@pytest.mark.slow
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("layout", list(SPARSE))
def test_every_layout_and_protocol_loads_like_smplx(tmp_path, layout, protocol):
    import smplx
    import torch

    plain, expected = _plain_dict(layout)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(plain, protocol=protocol))
    data, info = load_mano_file(path)
    for key in ("v_template", "shapedirs", "posedirs", "weights", "hands_mean"):
        np.testing.assert_array_equal(data[key], expected[key], err_msg=key)
    np.testing.assert_allclose(data["J_regressor"], expected["J_regressor"], atol=0, rtol=0)
    if layout != "dense":
        assert info["converted"]["J_regressor"].startswith("scipy.sparse._")
    # smplx reads the same file with its own plain pickle.load: same joints
    model = smplx.MANO(str(path), use_pca=False, flat_hand_mean=True)
    regressed = data["J_regressor"] @ data["v_template"]
    np.testing.assert_allclose(
        model.J_regressor.numpy() @ model.v_template.numpy(), regressed, atol=1e-6
    )
    assert torch.isfinite(model().joints).all()


def test_scipy_before_1_8_module_names_load(tmp_path):
    """SciPy < 1.8 pickles name 'scipy.sparse.csc' (no underscore); protocol 2 text globals."""
    plain, expected = _plain_dict("csc_matrix")
    raw = pickle.dumps(plain, protocol=2)
    assert b"scipy.sparse._csc\ncsc_matrix" in raw
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(raw.replace(b"scipy.sparse._csc\n", b"scipy.sparse.csc\n"))
    data, info = load_mano_file(path)
    assert info["converted"]["J_regressor"] == "scipy.sparse.csc.csc_matrix"
    np.testing.assert_array_equal(data["J_regressor"], expected["J_regressor"])


def test_sparse_state_out_of_range_is_refused_as_malformed(tmp_path):
    plain, _ = _plain_dict("coo_matrix")
    matrix = plain["J_regressor"]
    matrix.col[0] = 10_000  # an index past the 778 columns
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(plain, protocol=4))
    with pytest.raises(Exception, match="malformed sparse matrix"):
        load_mano_file(path)


def test_a_foreign_global_beside_sparse_data_is_still_refused(tmp_path):
    plain, _ = _plain_dict("csc_matrix")
    plain["extra"] = pickle.loads  # any callable outside the allow-list
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(plain, protocol=5))
    with pytest.raises(UnsafeInputError, match="_pickle.loads"):
        load_mano_file(path)
