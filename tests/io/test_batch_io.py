"""Loading batches: formats, key maps, the UTNet dataloader layout, and every bad-input error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utnet_diag.errors import InputError, UnsafeInputError
from utnet_diag.io.batch import coerce_batch, load_batch


def test_pt_and_npz_round_trip(clean_batch, write_batch):
    for name in ("b.pt", "b.npz"):
        batch = load_batch(write_batch(clean_batch, name))
        assert batch.size == 8 and batch.format == "canonical"
        assert batch.sample_ids == [str(i) for i in range(8)]
        for key, value in clean_batch.items():
            assert torch.equal(batch[key], value.float()), key


def test_float64_is_read_as_float32(clean_batch, write_batch):
    doubled = {k: v.double() for k, v in clean_batch.items()}
    batch = load_batch(write_batch(doubled))
    assert batch["keypoints_3d"].dtype == torch.float32


def test_utnet_dataloader_batch_is_mapped_with_conf_one(clean_batch):
    raw = {
        "rgb": clean_batch["rgb"],
        "depth": clean_batch["depth"],
        "n_i": clean_batch["n_i"],
        # third column of joint_img is NOT a confidence (e.g. relative depth)
        "joint_img": torch.cat(
            [clean_batch["keypoints_2d"][..., :2], torch.full((8, 21, 1), 7.0)], -1
        ),
        "joints_3d_gt": clean_batch["keypoints_3d"][..., :3],
        "mano_pose": clean_batch["mano_pose"],
        "mano_shape": clean_batch["mano_shape"],
    }
    batch, problems = coerce_batch(raw, "dump.pt")
    assert problems == []
    assert batch.format == "utnet-dataloader"
    assert batch["keypoints_2d"].shape == (8, 21, 2)  # conf 1 implied
    assert torch.equal(batch["keypoints_2d"], clean_batch["keypoints_2d"][..., :2])
    assert batch["keypoints_3d"].shape == (8, 21, 3)
    assert any("not a confidence" in note for note in batch.notes)


def test_key_map_renames_user_keys(clean_batch, write_batch):
    raw = dict(clean_batch)
    raw["xyz_mm"] = raw.pop("keypoints_3d")
    batch = load_batch(write_batch(raw), key_map={"keypoints_3d": "xyz_mm"})
    assert torch.equal(batch["keypoints_3d"], clean_batch["keypoints_3d"])
    assert any("xyz_mm" in note for note in batch.notes)
    with pytest.raises(InputError, match="did you mean 'keypoints_3d'"):
        coerce_batch(raw, key_map={"keypoint_3d": "xyz_mm"})
    with pytest.raises(InputError, match="which the batch lacks"):
        coerce_batch(raw, key_map={"keypoints_3d": "nope"})


def test_max_samples_and_sample_ids(clean_batch, write_batch):
    raw = dict(clean_batch, sample_id=np.array([f"img_{i:03d}" for i in range(8)]))
    batch = load_batch(write_batch(raw, "ids.npz"), max_samples=3)
    assert batch.size == 3 and batch["rgb"].shape[0] == 3
    assert batch.sample_ids == ["img_000", "img_001", "img_002"]
    assert any("first 3 of 8" in note for note in batch.notes)


def test_missing_optional_keys_are_fine(clean_batch):
    batch, problems = coerce_batch({"keypoints_2d": clean_batch["keypoints_2d"]})
    assert problems == [] and set(batch) == {"keypoints_2d"}


def test_unknown_keys_are_kept_as_extra(clean_batch):
    batch, _ = coerce_batch(dict(clean_batch, camera=torch.eye(3)))
    assert "camera" in batch.extra and "camera" not in batch


def test_mano_pose_16x3_is_reshaped(clean_batch):
    raw = dict(clean_batch, mano_pose=clean_batch["mano_pose"].reshape(8, 16, 3))
    batch, problems = coerce_batch(raw)
    assert problems == [] and torch.equal(batch["mano_pose"], clean_batch["mano_pose"])


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((8, 144), "flattened rotation matrices; convert to axis-angle"),
        ((8, 16, 3, 3), "flattened rotation matrices; convert to axis-angle"),
        ((8, 135), "flattened rotation matrices; convert to axis-angle"),
        ((8, 15, 3, 3), "flattened rotation matrices; convert to axis-angle"),
        ((8, 16, 4), "quaternions"),
        ((8, 45), "without the global orient"),
        ((8, 47), r"must have shape \(B,48\), got \(8,47\)"),
    ],
)
def test_mano_pose_shapes_get_specific_messages(clean_batch, shape, match):
    raw = dict(clean_batch, mano_pose=torch.zeros(shape))
    with pytest.raises(InputError, match=match):
        coerce_batch(raw, "b.pt")
    batch, problems = coerce_batch(raw, strict=False)
    assert "mano_pose" not in batch and len(problems) == 1


def one_line_error(path, match, error=InputError, **kw):
    with pytest.raises(error, match=match) as info:
        load_batch(path, **kw)
    text = str(info.value)
    assert "\n" not in text and str(path) in text
    return text


def test_missing_file_directory_extension_and_empty(tmp_path):
    one_line_error(tmp_path / "nope.pt", "batch file not found")
    one_line_error(tmp_path, "found a directory")
    wrong = tmp_path / "batch.json"
    wrong.write_text("{}")
    one_line_error(wrong, r"unsupported batch file extension '\.json'.*\.pt, \.pth, \.npz")
    empty = tmp_path / "empty.pt"
    empty.touch()
    one_line_error(empty, r"empty \(0 bytes\)")


def test_truncated_pt_and_npz(clean_batch, write_batch):
    for name in ("cut.pt", "cut.npz"):
        path = write_batch(clean_batch, name)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        one_line_error(path, "not a readable|truncated or corrupt")


def test_garbage_pt(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a torch file at all")
    one_line_error(path, "not a readable torch file")


class Planted:
    """A class outside the weights-only allow-list: loading it would run code."""


def test_pt_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"keypoints_2d": torch.zeros(1, 21, 3), "obj": Planted()}, path)
    one_line_error(path, "refused to load", UnsafeInputError)


def test_npz_with_object_array_is_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, keypoints_2d=np.zeros((1, 21, 3)), meta=np.array([{"a": 1}], dtype=object))
    one_line_error(path, "holds Python objects", UnsafeInputError)


def test_single_array_npz_and_non_mapping_pt(tmp_path):
    single = tmp_path / "single.npz"
    with open(single, "wb") as handle:
        np.save(handle, np.zeros((2, 21, 3)))
    one_line_error(single, "single array")
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(1, 21, 3)], listed)
    one_line_error(listed, "must be a mapping of tensors, found list")


def test_unknown_keys_suggest_canonical_names(write_batch):
    path = write_batch({"keypoint_2d": torch.zeros(2, 21, 3), "foo": torch.zeros(2)})
    text = one_line_error(path, "no known batch keys")
    assert "did you mean 'keypoint_2d'->'keypoints_2d'" in text


def test_batch_of_zero_samples(write_batch):
    path = write_batch({"keypoints_2d": torch.zeros(0, 21, 3)})
    one_line_error(path, "0 samples")


def test_mismatched_batch_sizes(clean_batch, write_batch):
    raw = dict(clean_batch, mano_shape=torch.zeros(5, 10))
    path = write_batch(raw)
    one_line_error(path, r"batch sizes differ across keys \(.*mano_shape=5")
    batch, problems = coerce_batch(raw, strict=False)
    assert batch.size == 5 and "batch sizes differ" in problems[0]


def test_int_and_half_dtypes(clean_batch, write_batch):
    ints = dict(clean_batch, keypoints_3d=clean_batch["keypoints_3d"].long())
    one_line_error(write_batch(ints, "int.pt"), "'keypoints_3d' has dtype int64; expected floating")
    half = dict(clean_batch, keypoints_3d=clean_batch["keypoints_3d"].half())
    one_line_error(write_batch(half, "half.pt"), "dtype float16; expected float32")


def test_wrong_keypoint_shapes(clean_batch, write_batch):
    raw = dict(clean_batch, keypoints_2d=torch.zeros(8, 21, 5))
    one_line_error(
        write_batch(raw), r"'keypoints_2d' must have shape \(B,21,2\|3\), got \(8,21,5\)"
    )
    raw = dict(clean_batch, keypoints_3d=torch.zeros(8, 16, 3))
    one_line_error(write_batch(raw, "b16.pt"), r"\(B,21,3\|4\), got \(8,16,3\)")
    raw = dict(clean_batch, rgb=torch.zeros(8, 64, 48))
    one_line_error(write_batch(raw, "rank.pt"), r"'rgb' must have rank 4, got shape \(8,64,48\)")


def test_uint8_rgb_is_converted_with_a_note(clean_batch):
    raw = dict(clean_batch, rgb=torch.zeros(8, 3, 4, 4, dtype=torch.uint8))
    batch, _ = coerce_batch(raw)
    assert batch["rgb"].dtype == torch.float32
    assert any("uint8" in note for note in batch.notes)


def test_input_file_is_not_modified(clean_batch, write_batch):
    path = write_batch(clean_batch)
    before = path.read_bytes()
    load_batch(path, max_samples=2)
    assert path.read_bytes() == before


def test_float64_beyond_float32_range(clean_batch, write_batch):
    huge = dict(clean_batch, keypoints_3d=clean_batch["keypoints_3d"].double() * 1e300)
    one_line_error(
        write_batch(huge), r"'keypoints_3d' holds 672 value\(s\) beyond the float32 range"
    )
