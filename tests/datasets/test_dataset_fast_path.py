"""HO3D annotation-only fast path: the same findings and canonical values as the per-sample path."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from planted_faults import HO3D_PLANTED

from utnet_diag.datasets.checks import run_array_checks
from utnet_diag.datasets.ho3d import HO3DReader, load_meta_fast, read_meta
from utnet_diag.datasets.scan import make_chunks, scan_chunk
from utnet_diag.errors import UnsafeInputError
from utnet_diag.synthetic.trees import py2_meta_pickle, unsafe_pickle, write_ho3d_tree

# Metas the per-sample path describes in different ways, written over frames of a clean tree.
ODD_METAS = {
    "pose_none": lambda m: {**m, "handPose": None},  # annotated, half a MANO annotation
    "beta_none": lambda m: {**m, "handBeta": None},
    "mano_none": lambda m: {**m, "handPose": None, "handBeta": None},  # annotated, no MANO
    "nan_pose": lambda m: {**m, "handPose": np.full(48, np.nan, dtype=np.float32)},  # a NaN
    "bool_pose": lambda m: {**m, "handPose": np.zeros(48, dtype=bool)},  # not numeric: schema
    "complex_joints": lambda m: {**m, "handJoints3D": m["handJoints3D"].astype(np.complex64)},
    "transposed_joints": lambda m: {**m, "handJoints3D": m["handJoints3D"].T.copy()},
    "int_cam": lambda m: {**m, "camMat": np.array([[600, 0, 320], [0, 600, 240], [0, 0, 1]])},
    "f8_joints": lambda m: {**m, "handJoints3D": m["handJoints3D"].astype(np.float64)},
    "no_cam": lambda m: {k: v for k, v in m.items() if k != "camMat"},
    "big_extra": lambda m: {**m, "objMesh": np.arange(40_000, dtype=np.float32)},  # > 64 KiB
    "root_none": lambda m: {**m, "handJoints3D": None},
    "root_only": lambda m: {"handJoints3D": m["handJoints3D"][0].copy(), "camMat": m["camMat"]},
}


@pytest.fixture(scope="module")
def odd_tree(tmp_path_factory):
    """Every planted fault, plus the odd metas above, a Python 3 protocol-2 pickle, trailing
    bytes after STOP, an empty file, a list instead of a dict, and a persistent id."""
    root = tmp_path_factory.mktemp("ho3d_odd")
    faults = {
        k: v for k, v in HO3D_PLANTED.items() if k not in ("truncated_rgb", "truncated_depth")
    }
    manifest = write_ho3d_tree(root, sequences=("ABF10", "MC1", "SM2"), frames_per_sequence=13,
                               images=False, faults=faults, seed=3)  # fmt: skip
    reader = HO3DReader(root)
    paths = [reader.paths(i)["meta"] for i in range(16, len(reader))]
    for path, make in zip(paths, ODD_METAS.values()):
        payload = py2_meta_pickle(make(read_meta(path)))
        with open(path, "wb") as handle:
            handle.write(payload)
    rest = paths[len(ODD_METAS) :]
    payload = pickle.dumps(read_meta(rest[0]), protocol=2)  # _codecs.encode for bytes
    with open(rest[0], "wb") as handle:
        handle.write(payload)
    with open(rest[1], "ab") as handle:
        handle.write(b"trailing bytes after STOP")
    open(rest[2], "wb").close()
    with open(rest[3], "wb") as handle:
        handle.write(pickle.dumps([1, 2, 3], protocol=2))
    with open(rest[4], "wb") as handle:
        handle.write(b"\x80\x02X\x03\x00\x00\x00pidQ.")  # BINUNICODE 'pid', BINPERSID
    with open(rest[5], "wb") as handle:
        handle.write(unsafe_pickle(os.path.join(str(root), "PWNED_fast")))
    os.makedirs(rest[6] + ".d", exist_ok=True)
    os.remove(rest[6])
    os.rename(rest[6] + ".d", rest[6])  # a directory where the meta file should be
    with open(rest[7], "wb") as handle:  # _codecs.encode asked for another codec than latin1
        handle.write(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x06\x00\x00\x00utf-16\x86R.")
    return manifest


def _checks_by_sample(findings) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for f in findings:
        out.setdefault(f.index, set()).add(f.check)
    return out


@pytest.mark.parametrize("chunk_size", [1, 7, 512])
def test_fast_path_findings_identical_to_per_sample_path(odd_tree, chunk_size):
    reader = HO3DReader(odd_tree.root)
    fast, slow = [], []
    for indices in make_chunks(range(len(reader)), chunk_size):
        a = scan_chunk(reader, indices, images=False, fast=True)
        b = scan_chunk(reader, indices, images=False, fast=False)
        assert a.samples == b.samples == len(indices)
        fast += a.findings
        slow += b.findings
    assert fast == slow  # Finding equality: index, id, path, check, severity, message, value
    found = _checks_by_sample(fast)
    # every kind of reading problem is present, so the comparison covers each
    kinds = {f.check for f in fast}
    assert {"meta_missing", "meta_unreadable", "meta_unsafe", "meta_schema",
            "annotation_present", "finite", "kp3d_units", "kp3d_in_front", "bone_lengths",
            "mano_shape_range"} <= kinds  # fmt: skip
    odd = dict(zip(ODD_METAS, range(16, 16 + len(ODD_METAS))))
    for name in ("bool_pose", "complex_joints", "transposed_joints", "no_cam"):
        assert found[odd[name]] == {"meta_schema"}, name
    for name in ("root_none", "root_only"):
        assert found[odd[name]] == {"annotation_present"}, name
    for name in ("pose_none", "beta_none"):  # half a MANO annotation: its own finding
        assert found[odd[name]] == {"mano_complete"}, name
    assert found[odd["nan_pose"]] == {"finite"}  # a stored NaN is a NaN
    partial = {f.index: f for f in fast if f.check == "mano_complete"}
    assert set(partial) == {odd["pose_none"], odd["beta_none"]}
    assert "MANO shape (betas) given but no MANO pose" in partial[odd["pose_none"]].message
    assert partial[odd["beta_none"]].value == "no MANO shape"
    assert partial[odd["pose_none"]].severity == "warn"
    for name in ("int_cam", "f8_joints", "big_extra", "mano_none"):
        assert odd[name] not in found, name
    rest = 16 + len(ODD_METAS)
    assert rest not in found and rest + 1 not in found  # protocol 2 from Python 3; trailing bytes
    assert found[rest + 2] == {"meta_unreadable"}  # empty file
    assert found[rest + 3] == {"meta_schema"}  # a list
    assert found[rest + 4] == {"meta_unsafe"}  # persistent id
    assert found[rest + 5] == {"meta_unsafe"}  # os.system
    assert found[rest + 6] == {"meta_unreadable"}  # a directory
    assert found[rest + 7] == {"meta_unsafe"}  # _codecs.encode(..., 'utf-16')
    assert not os.path.exists(os.path.join(odd_tree.root, "PWNED_fast"))


def test_fast_path_canonical_values_identical(odd_tree):
    reader = HO3DReader(odd_tree.root)
    indices = list(range(len(reader)))
    _, fast = reader.read_annotations(indices)
    slow = reader.canonical([reader.read(i) for i in indices])
    assert len(fast) == len(slow) == 22  # of 39 frames, 17 are unreadable or unannotated
    assert [r.index for r in fast.records] == [r.index for r in slow.records]
    assert [r.main_path for r in fast.records] == [r.main_path for r in slow.records]
    for name in ("joints_mm", "cam_k", "uv_px", "uv_given_px", "mano_pose", "mano_shape",
                 "image_wh", "depth_at_joints_mm", "has_mano", "mano_present"):  # fmt: skip
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), err_msg=name)
    assert run_array_checks(fast, False) == run_array_checks(slow, False)
    # a chunk of regular frames only takes the checked stacking; values still equal
    _, clean_fast = reader.read_annotations([0, 14, 15])
    clean_slow = reader.canonical([reader.read(i) for i in (0, 14, 15)])
    np.testing.assert_array_equal(clean_fast.joints_mm, clean_slow.joints_mm)
    np.testing.assert_array_equal(clean_fast.mano_pose, clean_slow.mano_pose)


def test_fast_path_with_batch_checks_matches(odd_tree):
    reader = HO3DReader(odd_tree.root)
    indices = list(range(16))
    a = scan_chunk(reader, indices, images=False, batch_checks=True, fast=True)
    b = scan_chunk(reader, indices, images=False, batch_checks=True, fast=False)
    assert a.findings == b.findings
    assert any(f.check.startswith("batch:") for f in a.findings)


def test_load_meta_fast_uses_the_same_allow_list(tmp_path):
    path = tmp_path / "evil.pkl"
    marker = tmp_path / "PWNED"
    path.write_bytes(unsafe_pickle(str(marker)))
    with pytest.raises(UnsafeInputError, match="os.system"):
        load_meta_fast(str(path))
    assert not marker.exists()
    # builtins that plain pickle would resolve are refused too
    path.write_bytes(b"\x80\x02c__builtin__\neval\nX\x04\x00\x00\x001+1q\x00\x85R.")
    with pytest.raises(UnsafeInputError, match="__builtin__.eval"):
        load_meta_fast(str(path))
    meta = {"camMat": np.eye(3), "handBeta": np.arange(10, dtype=np.float32), "objName": "x"}
    path.write_bytes(py2_meta_pickle(meta))
    loaded = load_meta_fast(str(path))
    np.testing.assert_array_equal(loaded["handBeta"], meta["handBeta"])
    assert loaded["objName"] == "x"


def test_partial_mano_frame_enters_a_batch_without_mano(odd_tree):
    from utnet_diag.datasets.batch import build_batch

    reader = HO3DReader(odd_tree.root)
    odd = dict(zip(ODD_METAS, range(16, 16 + len(ODD_METAS))))
    picked = [odd["pose_none"], odd["beta_none"], odd["mano_none"], 0]
    batch = build_batch(reader, picked, images=False)
    assert batch.tensors["has_mano"].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert float(batch.tensors["mano_shape"][0].abs().sum()) == 0.0  # the given half is not used
