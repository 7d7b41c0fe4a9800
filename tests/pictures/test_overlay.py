"""The --overlay sheet: the image as a person sees it, the camera fit, per-sample losses equal to
the spec's, worst samples first, every bad output path, the options on the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from utnet_diag.cli.app import main
from utnet_diag.config import load_config
from utnet_diag.diagnostics.check_batch import check_batch
from utnet_diag.errors import InputError
from utnet_diag.losses import compute_terms
from utnet_diag.pictures.overlay import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    batch_views,
    camera_fit,
    display_rgb,
    flagged_samples,
    per_sample_losses,
    write_overlay,
)
from utnet_diag.report.result import CheckResult, Status
from utnet_diag.synthetic.sample import default_batch


def test_the_normalized_rgb_is_shown_as_it_was():
    grey = np.array([0.5, 0.25, 0.75])
    normalized = ((grey - IMAGENET_MEAN) / IMAGENET_STD)[:, None, None] * np.ones((3, 4, 5))
    shown = display_rgb(normalized)
    assert shown.shape == (4, 5, 3)
    assert np.abs(shown[0, 0].astype(int) - np.round(grey * 255)).max() <= 1
    assert tuple(display_rgb(np.full((3, 2, 2), 200.0))[0, 0]) == (200, 200, 200)  # 0-255
    assert tuple(display_rgb(np.full((3, 2, 2), 0.25))[0, 0]) == (64, 64, 64)  # [0, 1]
    assert tuple(display_rgb(np.full((3, 2, 2), np.nan))[0, 0]) == (0, 0, 0)


def test_the_camera_fit_reprojects_the_ground_truth():
    rng = np.random.default_rng(0)
    joints = rng.normal(0, 40, (21, 3))
    xy = np.stack([0.004 * joints[:, 0] + 0.1, -0.003 * joints[:, 1] - 0.05], -1)
    fit = camera_fit(joints, xy, np.ones(21))
    assert np.allclose(fit, [[0.004, 0.1], [-0.003, -0.05]])
    conf = np.zeros(21)
    conf[:2] = 1
    assert camera_fit(joints, xy, conf) is None  # fewer than 3 joints


def test_per_sample_losses_sum_to_the_spec_terms():
    batch = default_batch()
    g = torch.Generator().manual_seed(1)
    pred2d = batch["keypoints_2d"][..., :2] + 0.01 * torch.randn(8, 21, 2, generator=g)
    pred3d = batch["keypoints_3d"][..., :3] + 5.0 * torch.randn(8, 21, 3, generator=g)
    terms = compute_terms({"keypoints_2d": pred2d, "keypoints_3d": pred3d}, batch,
                          load_config().weights).terms  # fmt: skip
    kp2, kp3 = batch["keypoints_2d"].numpy(), batch["keypoints_3d"].numpy()
    ours = per_sample_losses(pred2d.numpy(), kp2[..., :2], kp2[..., 2], pred3d.numpy(),
                             kp3[..., :3], kp3[..., 3], 0)  # fmt: skip
    assert np.isclose(ours["L2D"].sum(), float(terms["loss_2d"]), rtol=1e-5)
    assert np.isclose(ours["L3D"].sum(), float(terms["loss_3d_joint"]), rtol=1e-5)


def test_flagged_samples_are_read_from_lists_of_indices_only():
    checks = [
        CheckResult("kp2d_range", Status.FAIL, "", details={"samples_out": [2, 5]}),
        CheckResult("coord_frame", Status.FAIL, "", details={"samples_behind": 1}),  # a count
        CheckResult("finite", Status.PASS, "", details={"samples": [3]}),  # passed
        CheckResult("image_range", Status.WARN, "", details={"samples_out": [5]}),
    ]
    assert flagged_samples(checks) == {2: ["kp2d_range"], 5: ["kp2d_range", "image_range"]}


def test_the_worst_samples_come_first():
    batch = default_batch()
    outputs = {"keypoints_2d": batch["keypoints_2d"][..., :2].clone(),
               "keypoints_3d": batch["keypoints_3d"][..., :3].clone()}  # fmt: skip
    outputs["keypoints_3d"][5, 8] += 300.0  # sample 5's index tip 30 cm off
    outputs["keypoints_3d"][2, 8] += 30.0
    flag = [CheckResult("x", Status.FAIL, "", details={"samples": [7]})]
    views = batch_views(batch, outputs, flag, load_config().weights, 0, samples=3)
    assert [v.index for v in views] == [7, 5, 2] and views[0].sample_id.startswith("sample 7")
    assert views[0].caption[-1] == "flagged by x"
    assert "L3D 900 mm" in views[1].caption[0]  # 300 mm on each of 3 coordinates... of one joint
    assert views[1].proj3d is not None and views[1].depth is not None


def test_write_overlay_writes_one_png_of_the_samples(tmp_path):
    out = tmp_path / "sheet.png"
    record = write_overlay(out, default_batch(), samples=3)
    assert record == {"kind": "overlay", "path": str(out), "samples": [0, 1, 2]}
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[1] > 3 * 224


@pytest.mark.parametrize(
    ("name", "samples", "fragment"),
    [("sheet.jpg", 8, "ending in .png"), ("missing/sheet.png", 8, "does not exist"),
     ("sheet.png", 0, "--overlay-samples must be 1..64"), ("sheet.png", 65, "1..64")],
)  # fmt: skip
def test_bad_overlay_paths_fail_before_work_and_leave_no_file(tmp_path, name, samples, fragment):
    with pytest.raises(InputError) as err:
        check_batch(default_batch(), overlay=tmp_path / name, overlay_samples=samples)
    assert fragment in str(err.value)
    assert sorted(os.listdir(tmp_path)) == []


def test_a_folder_and_an_unwritable_folder_are_refused(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        write_overlay(tmp_path / "d.png" if (tmp_path / "d.png").mkdir() is None else None,
                      default_batch())  # fmt: skip
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(InputError, match="not writable"):
            write_overlay(locked / "sheet.png", default_batch())
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)


def test_check_batch_cli_writes_the_sheet_and_says_where(tmp_path, capsys, write_batch):
    batch = write_batch({k: v for k, v in default_batch().tensors.items()})
    out = tmp_path / "sheet.png"
    code = main(["check-batch", str(batch), "--overlay", str(out), "--overlay-samples", "2",
                 "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code in (0, 1) and out.is_file()
    report = json.loads(captured.out)
    assert report["pictures"]["files"] == [{"kind": "overlay", "path": str(out),
                                            "samples": [0, 1]}]  # fmt: skip
    assert f"wrote overlay {out} (samples 0, 1)" in " ".join(captured.err.split())


@pytest.mark.parametrize("argv", [["check-batch", "b.pt", "--overlay", "x.gif"],
                                  ["gate", "--overlay", "/nonexistent/x.png"],
                                  ["loss-breakdown", "--overlay", "x.png", "--overlay-samples",
                                   "0"]])  # fmt: skip
def test_bad_overlay_options_exit_2_with_one_line(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("utnet-diag: error:"), err
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_gate_draws_the_predictions(tmp_path, capsys):
    """The same samples with a model drawn have more skeleton pixels than the ground truth alone
    (the predicted 2D squares and the projected 3D crosses)."""
    from utnet_diag.pictures.draw import JOINT_COLORS

    gate_png, gt_png = tmp_path / "gate.png", tmp_path / "gt.png"
    assert main(["gate", "--max-samples", "1", "--overlay", str(gate_png), "-q"]) == 0
    assert "wrote overlay" in capsys.readouterr().err
    record = write_overlay(gt_png, default_batch().subset(1))  # the same sample, no model
    assert record["samples"] == [0]

    def skeleton_pixels(path, row_height=224 + 34 + 8):
        with Image.open(path) as image:
            crop = np.asarray(image.convert("RGB"))[40 : 40 + row_height, : 8 + 224]
        return sum(int((crop == np.array(c)).all(-1).sum()) for c in set(JOINT_COLORS))

    assert skeleton_pixels(gate_png) > skeleton_pixels(gt_png)


def test_an_unwritable_folder_exits_2_for_each_picture_option(tmp_path, capsys, monkeypatch):
    """As root every folder is writable: the folder's answer to os.access is what is planted."""
    import utnet_diag.io.files as files
    import utnet_diag.pictures.gallery as gallery

    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access

    def access(path, mode):
        return False if str(path) == str(locked) and mode == os.W_OK else real(path, mode)

    for module in (files, gallery):
        monkeypatch.setattr(module.os, "access", access)
    cases = [["check-batch", "b.pt", "--overlay", str(locked / "s.png")],
             ["gate", "--overlay", str(locked / "s.png")],
             ["grad-flow", "--plot", str(locked / "p.png")],
             ["parse-log", "x.log", "--plot", str(locked / "p.png")],
             ["scan", "--dataset", "ho3d", "--root", str(tmp_path), "--gallery",
              str(locked / "g")]]  # fmt: skip
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not writable" in err[0], (argv, err)
    assert os.listdir(locked) == []


def test_3d_without_confidence_counts_every_joint_and_a_zero_confidence_joint_none():
    batch = default_batch()
    tensors = dict(batch.tensors)
    outputs = {"keypoints_3d": tensors["keypoints_3d"][..., :3].clone()}
    outputs["keypoints_3d"][:, 1:] += 1.0  # every joint but the root 1 mm off on every axis
    no_conf = type(batch)({**tensors, "keypoints_3d": tensors["keypoints_3d"][..., :3]},
                          batch.sample_ids)  # fmt: skip
    views = batch_views(no_conf, outputs, samples=1)
    # 20 joints x 3 axes x 1 mm
    assert "L3D 60 mm" in views[0].caption[0] and np.allclose(views[0].gt3d[0], 0.0)
    kp3 = tensors["keypoints_3d"].clone()
    kp3[:, 5, 3] = 0.0  # joint 5 unannotated
    outputs = {"keypoints_3d": kp3[..., :3].clone()}
    outputs["keypoints_3d"][:, 5] += 100.0  # a wild guess where there is no label
    views = batch_views(type(batch)({**tensors, "keypoints_3d": kp3}, batch.sample_ids),
                        outputs, samples=1)  # fmt: skip
    assert "L3D 0 mm" in views[0].caption[0]
