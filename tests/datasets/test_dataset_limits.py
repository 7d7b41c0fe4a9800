"""Where the readers draw lines: the size of a DexYCB labels file, the length of a quoted error,
and which HO3D frames the annotation-only fast path reads without the per-sample reader."""

from __future__ import annotations

import numpy as np
import pytest

from utnet_diag.datasets.dexycb import DexYCBReader
from utnet_diag.datasets.ho3d import HO3DReader, read_meta
from utnet_diag.synthetic.trees import py2_meta_pickle, write_dexycb_tree, write_ho3d_tree


def _labels_with_joints(tmp_path, joints: np.ndarray):
    write_dexycb_tree(tmp_path, images=False, num_frames=1)
    reader = DexYCBReader(tmp_path)
    path = reader.paths(0)["labels"]
    labels = dict(np.load(path))
    labels["joint_3d"] = joints
    np.savez(path, **labels)
    return [(f.check, f.message) for f in reader.read(0).problems]


def test_a_dexycb_labels_file_claiming_over_a_mebibyte_is_not_read(tmp_path):
    # 1.5 MiB of joints: over the 1 MiB a frame's labels may claim (they hold about 1 KB)
    problems = _labels_with_joints(tmp_path, np.zeros((1, 131_072, 3), np.float32))
    assert [c for c, _ in problems] == ["labels_unreadable"]
    assert "claim 2 MiB, over the 1 MiB" in problems[0][1]


def test_a_dexycb_labels_file_under_a_mebibyte_is_read_and_judged(tmp_path):
    problems = _labels_with_joints(tmp_path, np.zeros((1, 80_000, 3), np.float32))
    assert problems == [("labels_schema", "unexpected label arrays: joint_3d float32(1, 80000, 3)")]


def test_a_refused_metas_long_reason_is_quoted_to_200_characters(tmp_path):
    write_ho3d_tree(tmp_path, sequences=("ABF10",), frames_per_sequence=1, images=False)
    reader = HO3DReader(tmp_path)
    module = "m" * 300
    with open(reader.paths(0)["meta"], "wb") as handle:  # a global the allow-list refuses
        handle.write(b"\x80\x02c" + module.encode() + b"\nsystem\n.")
    (problem,) = [f for f in reader.read(0).problems if f.check == "meta_unsafe"]
    prefix = "refused, not executed: "
    assert problem.message.startswith(prefix + "pickle refers to 'mmm")
    assert len(problem.message) == len(prefix) + 200


@pytest.fixture()
def counted_tree(tmp_path, monkeypatch):
    """Six HO3D frames: four regular, one whose joints are None, one with the root only; and
    a count of the per-sample reads the fast path falls back to."""
    write_ho3d_tree(tmp_path, sequences=("ABF10",), frames_per_sequence=6, images=False)
    reader = HO3DReader(tmp_path)
    for index, make in ((1, lambda m: {**m, "handJoints3D": None}),
                        (2, lambda m: {**m, "handJoints3D": m["handJoints3D"][0].copy()})):  # fmt: skip
        path = reader.paths(index)["meta"]
        payload = py2_meta_pickle(make(read_meta(path)))
        with open(path, "wb") as handle:
            handle.write(payload)
    calls: list[int] = []
    per_sample = HO3DReader.read

    def counting(self, index):
        calls.append(index)
        return per_sample(self, index)

    monkeypatch.setattr(HO3DReader, "read", counting)
    return reader, calls


def test_regular_and_unannotated_frames_never_take_the_per_sample_path(counted_tree):
    reader, calls = counted_tree
    findings, chunk = reader.read_annotations(range(len(reader)))
    assert calls == []
    assert sorted(f.index for f in findings) == [1, 2]
    assert chunk.joints_mm.shape == (4, 21, 3)


def test_a_frame_with_odd_values_takes_the_per_sample_path(counted_tree):
    reader, calls = counted_tree
    path = reader.paths(4)["meta"]
    meta = read_meta(path)
    with open(path, "wb") as handle:
        handle.write(py2_meta_pickle({**meta, "handBeta": np.zeros(20, np.float32)}))
    reader.read_annotations(range(len(reader)))
    assert calls == [4]
