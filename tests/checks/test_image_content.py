"""image_content and depth_content: crops that miss the hand, per sample, and the depth
convention named against the 3D joints (the HO3D loader's black crop and constant depth)."""

from __future__ import annotations

import pytest
import torch

from utnet_diag.diagnostics.check_batch import check_batch
from utnet_diag.report.result import Status
from utnet_diag.synthetic.sample import make_sample_batch

BLACK = torch.tensor([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225])


@pytest.fixture(scope="module")
def batch() -> dict:
    """8 rendered MANO hands, 32x32 crops, depth in metres."""
    return dict(make_sample_batch(8, seed=4, image_size=(32, 32)).tensors)


def _copy(batch: dict) -> dict:
    return {k: v.clone() for k, v in batch.items()}


def test_rendered_crops_pass_and_name_metres(batch):
    report = check_batch(batch)
    image, depth = report.check("image_content"), report.check("depth_content")
    assert image.status is Status.PASS, image.message
    assert depth.status is Status.PASS, depth.message
    assert depth.details["convention"] == "metres"
    assert "follows their 3D depth in 8 samples" in depth.message


def test_a_failed_crop_is_black_with_constant_depth(batch):
    """What the HO3D loader handed over: the crop missed the image (black, -2.12..-1.8) and the
    depth crop is the constant background."""
    bad = _copy(batch)
    bad["rgb"][[2, 5]] = BLACK[:, None, None]
    bad["depth"][[2, 5]] = 1.0
    report = check_batch(bad)
    image, depth = report.check("image_content"), report.check("depth_content")
    assert report.check("image_range").status is Status.PASS  # the range alone looks fine
    assert image.status is Status.FAIL and image.details["one_colour"] == [2, 5]
    assert "sample 2: one colour (-2.12, -2.04, -1.8), black after ImageNet" in image.message
    assert depth.status is Status.FAIL and depth.details["constant"] == [2, 5]
    assert "sample 5: constant (1)" in depth.message


def test_padding_share_warns_then_fails(batch):
    half, most = _copy(batch), _copy(batch)
    half["rgb"][1, :, :, :20] = BLACK[:, None, None]  # 62% of the crop outside the image
    most["rgb"][1, :, :, :30] = BLACK[:, None, None]
    warned = check_batch(half).check("image_content")
    assert warned.status is Status.WARN and "sample 1: 62% padding" in warned.message
    assert check_batch(most).check("image_content").status is Status.FAIL


def test_samples_without_depth_in_use_are_left_out(batch):
    dropped = _copy(batch)
    dropped["depth"][3] = 0.0
    dropped["n_i"][3] = 0.0  # the loader dropped this sample's depth (n_i = 0)
    assert check_batch(dropped).check("depth_content").status is Status.PASS


@pytest.mark.parametrize(
    ("convert", "name"),
    [(lambda d, z: d * 1000.0, "millimetres"), (lambda d, z: _normalised(d, z), "normalised")],
)
def test_depth_conventions_are_named(batch, convert, name):
    other = _copy(batch)
    other["depth"] = convert(batch["depth"], batch["keypoints_3d"][..., 2])
    check = check_batch(other).check("depth_content")
    assert check.status is Status.PASS, check.message
    assert check.details["convention"] == name


def _normalised(depth_m: torch.Tensor, z_mm: torch.Tensor, half_cube_mm: float = 140.0):
    """As UTNet's loaders: around the hand's mean depth, clipped to [-1, 1], background 1."""
    centre = z_mm.mean(dim=1).reshape(-1, 1, 1, 1)
    hand = depth_m * 1000.0 < centre + half_cube_mm
    norm = ((depth_m * 1000.0 - centre) / half_cube_mm).clamp(-1.0, 1.0)
    return torch.where(hand, norm, torch.ones_like(norm))


def test_depth_that_does_not_show_the_hand_at_its_joints_fails(batch):
    shifted = _copy(batch)
    shifted["depth"] = torch.roll(batch["depth"], shifts=12, dims=-1)  # cut elsewhere
    check = check_batch(shifted).check("depth_content")
    assert check.status is Status.FAIL
    assert "mm off" in check.message and check.details["disagree"]


def test_normalised_depth_whose_joints_land_on_the_background_fails(batch):
    norm = _copy(batch)
    norm["depth"] = torch.roll(_normalised(batch["depth"], batch["keypoints_3d"][..., 2]), 14, -1)
    check = check_batch(norm).check("depth_content")
    assert check.status is Status.FAIL and check.details["convention"] == "normalised"
    assert "of the joints fall on the background (1.0)" in check.message
