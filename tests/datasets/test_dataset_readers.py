"""Readers: canonical values equal what the writers put in, in the spec's conventions."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from utnet_diag.datasets.batch import build_batch, open_reader, parse_indices
from utnet_diag.datasets.dexycb import DexYCBReader
from utnet_diag.datasets.ho3d import HO3DReader, read_meta
from utnet_diag.errors import InputError
from utnet_diag.joints import MANO_TO_SPEC
from utnet_diag.mano import ManoLayer, load_mano_data
from utnet_diag.synthetic.trees import write_dexycb_tree, write_ho3d_tree


def _mano_joints(pose48: np.ndarray, betas: np.ndarray) -> np.ndarray:
    layer = ManoLayer(flat_hand_mean=True)
    with torch.no_grad():
        out = layer(
            torch.as_tensor(pose48[:, :3], dtype=torch.float32),
            torch.as_tensor(pose48[:, 3:], dtype=torch.float32),
            torch.as_tensor(betas, dtype=torch.float32),
        )
    return out.joints.double().numpy()


@pytest.mark.slow
def test_ho3d_meta_is_opengl_metres_in_mano_order(ho3d_tree):
    sample = ho3d_tree.sample_ids[0]
    meta = read_meta(os.path.join(ho3d_tree.root, "train", "ABF10", "meta", "0000.pkl"))
    joints_cv_mm = ho3d_tree.joints_mm[sample]
    # handJoints3D[MANO_TO_SPEC] in OpenCV mm is the hand the writer made
    back = meta["handJoints3D"][list(MANO_TO_SPEC)] * np.array([1, -1, -1]) * 1000.0
    np.testing.assert_allclose(back, joints_cv_mm, atol=0.05)
    assert meta["handJoints3D"][:, 2].max() < 0  # OpenGL: the camera looks down -z
    assert meta["camMat"].shape == (3, 3) and 600 < meta["camMat"][0, 0] < 630
    assert meta["handPose"].shape == (48,) and meta["handBeta"].shape == (10,)


def test_ho3d_reader_gives_canonical_joints_pose_and_projection(ho3d_tree):
    reader = HO3DReader(ho3d_tree.root, "train")
    assert reader.sample_ids == ho3d_tree.sample_ids
    assert reader.rgb_suffix == ".jpg"
    clean = [0, 14, 15]
    chunk = reader.canonical([reader.read(i) for i in clean])
    assert len(chunk) == 3
    for row, i in enumerate(clean):
        sample = ho3d_tree.sample_ids[i]
        np.testing.assert_allclose(chunk.joints_mm[row], ho3d_tree.joints_mm[sample], atol=0.05)
        np.testing.assert_allclose(chunk.mano_pose[row], ho3d_tree.mano_pose[sample], atol=1e-5)
    # MANO on the canonical (OpenCV) pose reproduces the root-relative joints
    mano = _mano_joints(chunk.mano_pose, chunk.mano_shape)
    rel = chunk.joints_mm - chunk.joints_mm[:, :1]
    np.testing.assert_allclose(mano - mano[:, :1], rel, atol=0.05)
    # the 2D projection is camMat applied to the OpenCV points
    k = chunk.cam_k[0]
    p = chunk.joints_mm[0, 5]
    np.testing.assert_allclose(chunk.uv_px[0, 5], (k @ p)[:2] / p[2], rtol=1e-9)


def test_ho3d_unannotated_and_root_only_frames_are_info_not_errors(ho3d_tree):
    reader = HO3DReader(ho3d_tree.root)
    for index in (6, 7):
        record = reader.read(index)
        assert not record.annotated
        assert [(p.check, p.severity) for p in record.problems] == [("annotation_present", "info")]


def test_ho3d_v2_png_and_evaluation_split(tmp_path):
    manifest = write_ho3d_tree(
        tmp_path, sequences=("SM1",), frames_per_sequence=2, split="evaluation", rgb_format="png"
    )
    reader = open_reader("ho3d", tmp_path, "evaluation")
    assert reader.rgb_suffix == ".png" and reader.sample_ids == manifest.sample_ids
    record = reader.read(1, images=True)
    assert record.annotated and record.image_wh == (640, 480) and record.problems == []
    assert record.depth_m.dtype == np.float32
    assert np.median(record.depth_m) == pytest.approx(1.0, abs=1.3e-4)  # the background
    assert 0.3 < record.depth_m.min() < 0.75  # the hand


def test_ho3d_without_split_list_lists_meta_folders(tmp_path):
    write_ho3d_tree(tmp_path, sequences=("B",), frames_per_sequence=2, images=False)
    os.remove(tmp_path / "train.txt")
    reader = HO3DReader(tmp_path)
    assert reader.sample_ids == ["train/B/0000", "train/B/0001"]
    assert "no train.txt" in reader.notes[0]


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda root: None, "HO3D root not found"),
        (lambda root: root.mkdir(), "no 'train' folder"),
        (lambda root: ((root / "train").mkdir(parents=True), (root / "train.txt").write_text("ABF10\n")),
         "line 1 is 'ABF10'; expected 'SEQ/FRAME'"),
        (lambda root: ((root / "train").mkdir(parents=True), (root / "train.txt").write_text("\n")),
         "has no frames"),
    ],
)  # fmt: skip
def test_ho3d_bad_roots_are_input_errors(tmp_path, setup, match):
    root = tmp_path / "ho3d"
    setup(root)
    with pytest.raises(InputError, match=match):
        HO3DReader(root)


def test_unknown_split_and_dataset_are_input_errors(ho3d_tree):
    with pytest.raises(InputError, match="unknown HO3D split 'val'"):
        HO3DReader(ho3d_tree.root, "val")
    with pytest.raises(InputError, match="did you mean 'ho3d'"):
        open_reader("ho3", ho3d_tree.root)


def test_dexycb_reader_decodes_pca_pose_and_calibration(dexycb_tree):
    reader = DexYCBReader(dexycb_tree.root)
    assert reader.sample_ids == dexycb_tree.sample_ids
    assert len(reader) == 12 and reader.sample_ids[0].endswith("836212060125/000000")
    record = reader.read(0)
    assert record.annotated and record.problems == []
    chunk = reader.canonical([record])
    sample = dexycb_tree.sample_ids[0]
    np.testing.assert_allclose(chunk.joints_mm[0], dexycb_tree.joints_mm[sample], atol=0.05)
    # pose_m's 45 PCA coefficients @ hands_components + hands_mean = the absolute hand pose
    np.testing.assert_allclose(chunk.mano_pose[0], dexycb_tree.mano_pose[sample], atol=1e-4)
    data = load_mano_data()
    assert not np.allclose(chunk.mano_pose[0, 3:], record.raw["pose_m"][3:48])
    assert np.abs(data["hands_mean"]).max() > 0
    assert chunk.cam_k[0, 0, 0] == pytest.approx(615.9)
    np.testing.assert_allclose(chunk.uv_given_px[0], chunk.uv_px[0], atol=0.01)
    mano = _mano_joints(chunk.mano_pose, chunk.mano_shape)
    np.testing.assert_allclose(
        mano - mano[:, :1], chunk.joints_mm - chunk.joints_mm[:, :1], atol=0.05
    )


def test_dexycb_split_prefix_and_bad_roots(dexycb_tree, tmp_path):
    reader = DexYCBReader(dexycb_tree.root, "20200813-subject-02/20200709_141754/839512060362")
    assert len(reader) == 3 and all("839512060362" in s for s in reader.sample_ids)
    with pytest.raises(InputError, match="no DexYCB frames found under 'nobody'"):
        DexYCBReader(dexycb_tree.root, "nobody")
    with pytest.raises(InputError, match="DexYCB root not found"):
        DexYCBReader(tmp_path / "missing")


def test_dexycb_missing_meta_yml_is_a_finding_and_missing_intrinsics_per_sample(tmp_path):
    write_dexycb_tree(tmp_path, subjects=("s1", "s2"), sequences=("q",), num_frames=1,
                      images=False)  # fmt: skip
    os.remove(tmp_path / "s2" / "q" / "meta.yml")
    os.remove(tmp_path / "calibration" / "intrinsics" / "839512060362_640x480.yml")
    reader = DexYCBReader(tmp_path)
    assert len(reader) == 2
    assert [(f.index, f.sample_id, f.check) for f in reader.index_findings] == [
        (-1, "s2/q", "meta_missing")  # -1: a sequence, not a sample
    ]
    record = reader.read(1)
    assert not record.annotated
    assert record.problems[0].check == "calibration_present"


def test_build_batch_is_canonical_and_in_range(ho3d_tree):
    reader = HO3DReader(ho3d_tree.root)
    batch = build_batch(reader, [0, 6, 14, 15])
    assert batch.size == 3  # the unannotated frame 6 is left out, and said so
    assert any("left out train/ABF10/0006" in n for n in batch.notes)
    assert batch["keypoints_2d"].shape == (3, 21, 3) and batch["keypoints_3d"].shape == (3, 21, 4)
    assert batch["rgb"].shape == (3, 3, 256, 256) and batch["depth"].shape == (3, 1, 256, 256)
    assert float(batch["keypoints_2d"][..., :2].abs().max()) <= 0.5
    assert float(batch["keypoints_2d"][..., :2].abs().max()) > 0.3
    assert batch.sample_ids == ["train/ABF10/0000", "train/MC1/0006", "train/MC1/0007"]
    # ImageNet-normalised: the grey background (96) maps to (96/255 - mean) / std
    assert float(batch["rgb"][0, 0, 0, 0]) == pytest.approx((96 / 255 - 0.485) / 0.229, abs=1e-5)
    depth = batch["depth"][0, 0]
    assert 0.3 < float(depth[128, 128]) < 1.0 and float(batch["n_i"][0]) == 1.0
    np.testing.assert_allclose(
        batch["keypoints_3d"][0, :, :3].numpy(), ho3d_tree.joints_mm["train/ABF10/0000"], atol=0.05
    )


def test_parse_indices():
    assert parse_indices("0,3-5,9", 10) == [0, 3, 4, 5, 9]
    assert parse_indices(None, 40) == list(range(16))
    for bad, match in (("3-1", "end before start"), ("a", "bad --indices item"),
                       ("10", "has 10 samples")):  # fmt: skip
        with pytest.raises(InputError, match=match):
            parse_indices(bad, 10)
