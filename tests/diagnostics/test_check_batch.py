"""check-batch: each planted fault trips its check and no other batch check; CLI exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from utnet_diag.checks.batch import BATCH_CHECKS, THRESHOLDS, hand_spans
from utnet_diag.cli.app import main
from utnet_diag.config import load_config
from utnet_diag.diagnostics.check_batch import batch_check_results, check_batch
from utnet_diag.io.batch import coerce_batch
from utnet_diag.joints import MANO_TO_SPEC, invert
from utnet_diag.report.result import Status
from utnet_diag.synthetic.skeleton import FAULT_CHECK, FAULTS, make_skeleton_batch, plant_fault

BATCH_IDS = set(BATCH_CHECKS.ids())


def statuses(report) -> dict[str, Status]:
    return {c.id: c.status for c in report.checks}


def test_registry_has_the_stable_ids():
    assert BATCH_CHECKS.ids() == [
        "schema", "finite", "conf_range", "kp2d_range", "kp3d_units", "image_range",
        "image_content", "depth_content", "mano_pose", "mano_shape",
    ]  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_batch_passes_every_check(seed):
    report = check_batch(make_skeleton_batch(16, seed=seed))
    assert report.command == "check-batch"
    failing = {c.id: c.message for c in report.checks if c.status in (Status.FAIL, Status.WARN)}
    assert failing == {}
    assert {c.id for c in report.checks if c.status is Status.PASS} >= BATCH_IDS
    section = report.sections["batch"]
    assert section["size"] == 16 and section["keys"]["keypoints_3d"] == [16, 21, 4]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_planted_fault_fails_its_check_and_no_other_batch_check(clean_batch, fault):
    report = check_batch(plant_fault(clean_batch, fault))
    got = statuses(report)
    expected = FAULT_CHECK[fault]
    assert got[expected] is Status.FAIL, report.check(expected).message
    others = {i: report.check(i).message for i in BATCH_IDS - {expected}
              if got[i] in (Status.FAIL, Status.WARN)}  # fmt: skip
    assert others == {}
    assert report.check(expected).hint  # every failure says what to do


def test_plant_fault_copies_and_rejects_unknown(clean_batch):
    before = clean_batch["keypoints_3d"].clone()
    plant_fault(clean_batch, "kp3d_metres")
    assert torch.equal(clean_batch["keypoints_3d"], before)
    with pytest.raises(ValueError, match="unknown fault"):
        plant_fault(clean_batch, "nope")


def test_skeleton_geometry():
    batch = make_skeleton_batch(32, seed=5)
    joints = batch["keypoints_3d"][..., :3]
    wrist_to_middle1 = (joints[:, 9] - joints[:, 0]).norm(dim=-1)
    assert wrist_to_middle1.min() > 80 and wrist_to_middle1.max() < 100
    assert (joints[..., 2] > 250).all()  # in front of the camera, +z forward
    assert batch["keypoints_2d"][..., :2].abs().max() <= 0.5
    assert batch["mano_shape"].abs().max() < 2
    assert batch["rgb"].shape == (32, 3, 64, 48) and batch["depth"].shape == (32, 1, 64, 48)
    assert batch["depth"].min() > 0.3 and batch["depth"].max() < 2.0  # metres
    plain = make_skeleton_batch(2, with_conf=False)
    assert plain["keypoints_2d"].shape == (2, 21, 2) and plain["keypoints_3d"].shape == (2, 21, 3)


def test_messages_name_the_fix(clean_batch):
    def message(fault, check):
        result = check_batch(plant_fault(clean_batch, fault)).check(check)
        return result.message + " | " + (result.hint or "")

    assert "multiply by 1000" in message("kp3d_metres", "kp3d_units")
    assert "multiply by 10" in message("kp3d_centimetres", "kp3d_units")
    assert "pixel coordinates" in message("kp2d_pixels", "kp2d_range")
    assert "crop center" in message("kp2d_pixels", "kp2d_range")
    assert "subtract 0.5" in message("kp2d_unit01", "kp2d_range")
    assert "divide x and y by 2" in message("kp2d_pm1", "kp2d_range")
    assert "degrees" in message("mano_pose_degrees", "mano_pose")
    assert "0-255" in message("rgb_0_255", "image_range")
    text = message("nan_kp3d", "finite")
    assert "keypoints_3d" in text and "sample 1" in text and "joint 5 (index1)" in text
    text = message("conf_out_of_range", "conf_range")
    assert "sample 0, joint 8 (index_tip)" in text and "sample 7, joint 3 (thumb3)" in text


def test_kp3d_units_decides_from_hand_size_not_a_single_value(clean_batch):
    far = dict(clean_batch)
    far["keypoints_3d"] = clean_batch["keypoints_3d"].clone()
    far["keypoints_3d"][..., 2] += 5000.0  # 5 m away: the max coordinate is large, still mm
    assert check_batch(far).check("kp3d_units").status is Status.PASS
    near_metres = plant_fault(clean_batch, "kp3d_metres")
    near_metres["keypoints_3d"][..., :3] -= near_metres["keypoints_3d"][:, :1, :3]  # root-relative
    assert check_batch(near_metres).check("kp3d_units").status is Status.FAIL


def test_kp3d_units_is_independent_of_joint_order(clean_batch):
    coords = clean_batch["keypoints_3d"][..., :3]
    mano_order = coords[:, list(invert(MANO_TO_SPEC))]
    visible = torch.ones(8, 21, dtype=torch.bool)
    assert torch.allclose(hand_spans(coords, visible, 5), hand_spans(mano_order, visible, 5))
    metres = dict(clean_batch, keypoints_3d=mano_order / 1000)
    assert "metres" in check_batch(metres).check("kp3d_units").message


def test_kp3d_units_mixed_units_and_collapsed_joints(clean_batch):
    mixed = dict(clean_batch, keypoints_3d=clean_batch["keypoints_3d"].clone())
    mixed["keypoints_3d"][2:4, :, :3] /= 1000
    result = check_batch(mixed).check("kp3d_units")
    assert result.status is Status.FAIL and "mixed units" in result.message
    assert result.details["samples_out"] == [2, 3]
    zeros = dict(clean_batch, keypoints_3d=torch.zeros(8, 21, 4))
    zeros["keypoints_3d"][..., 3] = 1.0  # visible joints, all at the origin
    result = check_batch(zeros).check("kp3d_units")
    assert result.status is Status.FAIL and "exactly 0" in result.message


def test_invisible_joints_are_ignored(clean_batch):
    hidden = dict(clean_batch)
    hidden["keypoints_2d"] = clean_batch["keypoints_2d"].clone()
    hidden["keypoints_2d"][:, 4, :2] = 300.0  # garbage where conf is 0
    hidden["keypoints_2d"][:, 4, 2] = 0.0
    hidden["keypoints_3d"] = clean_batch["keypoints_3d"].clone()
    hidden["keypoints_3d"][:, 20, :3] = 1e6
    hidden["keypoints_3d"][:, 20, 3] = 0.0
    got = statuses(check_batch(hidden))
    assert got["kp2d_range"] is Status.PASS and got["kp3d_units"] is Status.PASS


def test_kp2d_slightly_outside_the_crop_warns(clean_batch):
    truncated = dict(clean_batch, keypoints_2d=clean_batch["keypoints_2d"].clone())
    truncated["keypoints_2d"][3, 8, 0] = 0.58  # one fingertip past the crop border
    result = check_batch(truncated).check("kp2d_range")
    assert result.status is Status.WARN
    assert "1/8 samples exceed 0.5" in result.message and "sample 3, joint 8" in result.message


def test_conf_zero_everywhere_in_a_sample_warns(clean_batch):
    batch = dict(clean_batch, keypoints_2d=clean_batch["keypoints_2d"].clone())
    batch["keypoints_2d"][5, :, 2] = 0.0
    result = check_batch(batch).check("conf_range")
    assert result.status is Status.WARN and "sample 5" in result.message


def test_image_range_warnings(clean_batch):
    unit = dict(clean_batch, rgb=torch.rand(8, 3, 8, 8))
    assert check_batch(unit).check("image_range").status is Status.WARN
    blank = dict(clean_batch, rgb=torch.zeros(8, 3, 8, 8))
    result = check_batch(blank).check("image_content")
    assert result.status is Status.FAIL and "one colour (0, 0, 0), black" in result.message


def test_mano_pose_edge_cases(clean_batch):
    huge = dict(clean_batch, mano_pose=clean_batch["mano_pose"].clone())
    huge["mano_pose"][2, 10] = 9.0  # one joint at 9 rad, the rest radians
    result = check_batch(huge).check("mano_pose")
    assert result.status is Status.FAIL and "sample 2, MANO joint 3" in result.message
    zero = dict(clean_batch, mano_pose=torch.zeros(8, 48))
    assert check_batch(zero).check("mano_pose").status is Status.WARN
    no_mano = dict(
        clean_batch, has_mano=torch.zeros(8), mano_pose=torch.rad2deg(clean_batch["mano_pose"])
    )
    got = statuses(check_batch(no_mano))
    assert got["mano_pose"] is Status.SKIP and got["mano_shape"] is Status.SKIP
    # Degrees only in samples without MANO ground truth: not checked.
    partial = dict(clean_batch, has_mano=torch.tensor([1.0] * 4 + [0.0] * 4))
    partial["mano_pose"] = clean_batch["mano_pose"].clone()
    partial["mano_pose"][4:] = torch.rad2deg(partial["mano_pose"][4:])
    assert check_batch(partial).check("mano_pose").status is Status.PASS


def test_mano_shape_warn_band(clean_batch):
    shape = clean_batch["mano_shape"].clone()
    shape[1, 2] = 4.5
    result = check_batch(dict(clean_batch, mano_shape=shape)).check("mano_shape")
    assert result.status is Status.WARN and "sample 1, beta 2" in result.message
    assert THRESHOLDS.beta_warn_abs < 4.5 < THRESHOLDS.beta_fail_abs


def test_missing_keys_skip_their_checks(clean_batch):
    report = check_batch({"keypoints_2d": clean_batch["keypoints_2d"]})
    got = statuses(report)
    assert got["kp2d_range"] is Status.PASS
    for skipped in ("kp3d_units", "image_range", "mano_pose", "mano_shape"):
        assert got[skipped] is Status.SKIP
    assert report.check("kp3d_units").message == "no keypoints_3d in batch"
    assert got["schema"] is Status.WARN and "keypoints_3d" in report.check("schema").message


def test_utnet_dataloader_batch(clean_batch):
    raw = {
        "rgb": clean_batch["rgb"], "depth": clean_batch["depth"], "n_i": clean_batch["n_i"],
        "joint_img": torch.cat([clean_batch["keypoints_2d"][..., :2], torch.rand(8, 21, 1) * 50], -1),
        "joints_3d_gt": clean_batch["keypoints_3d"][..., :3],
        "mano_pose": clean_batch["mano_pose"], "mano_shape": clean_batch["mano_shape"],
    }  # fmt: skip
    report = check_batch(raw)
    got = statuses(report)
    assert got["conf_range"] is Status.SKIP  # third column of joint_img is not a confidence
    assert all(got[i] is Status.PASS for i in BATCH_IDS - {"conf_range"})
    assert report.sections["batch"]["format"] == "utnet-dataloader"
    assert any("not a confidence" in n for n in report.sections["batch"]["notes"])


def test_raw_mapping_schema_problems_fail_schema_and_others_still_run(clean_batch):
    raw = dict(clean_batch, mano_pose=torch.zeros(8, 16, 3, 3), mano_shape=torch.zeros(5, 10))
    report = check_batch(raw)
    schema = report.check("schema")
    assert schema.status is Status.FAIL
    assert (
        "flattened rotation matrices" in schema.message and "batch sizes differ" in schema.message
    )
    assert report.check("kp3d_units").status is Status.PASS
    assert report.check("mano_pose").status is Status.SKIP


def test_batch_check_results_for_gate(clean_batch):
    batch, problems = coerce_batch(clean_batch)
    results = batch_check_results(batch, load_config(None), problems=["'x' is odd"])
    assert results[0].id == "schema" and results[0].status is Status.FAIL
    assert "'x' is odd" in results[0].message


def test_max_samples_and_key_map_from_config(clean_batch, write_batch, tmp_path):
    raw = dict(clean_batch)
    raw["joints_mm"] = raw.pop("keypoints_3d")
    path = write_batch(raw)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("diag:\n  key_map:\n    keypoints_3d: joints_mm\n  max_samples: 3\n")
    report = check_batch(path, cfg)
    assert report.sections["batch"]["size"] == 3
    assert report.check("kp3d_units").status is Status.PASS
    assert check_batch(path, cfg, max_samples=2).sections["batch"]["size"] == 2


# ---------------------------------------------------------------- CLI


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["check-batch", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_input_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("utnet-diag: error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_clean_batch_exit_0(capsys, clean_batch, write_batch):
    code, out, err = run_cli(capsys, write_batch(clean_batch))
    assert code == 0
    assert "batch checks" in out and "PASSED" in out and "kp3d_units" in out
    assert err == ""


def test_cli_fault_exit_1_with_hint(capsys, clean_batch, write_batch):
    code, out, _ = run_cli(capsys, write_batch(plant_fault(clean_batch, "kp3d_metres")))
    assert code == 1
    assert "FAILED" in out and "multiply by 1000" in out


def test_cli_json_prints_only_json(capsys, clean_batch, write_batch):
    code, out, _ = run_cli(
        capsys, write_batch(plant_fault(clean_batch, "betas_huge"), "b.npz"), "--json"
    )
    assert code == 1
    data = json.loads(out)
    assert data["command"] == "check-batch" and data["status"] == "fail"
    assert {c["id"]: c["status"] for c in data["checks"]}["mano_shape"] == "fail"
    assert data["batch"]["size"] == 8


def test_cli_junit_and_fail_on_warn(capsys, clean_batch, write_batch, tmp_path):
    unit = dict(clean_batch, rgb=torch.rand(8, 3, 8, 8))  # [0,1] images: a warning only
    path = write_batch(unit)
    junit = tmp_path / "out.xml"
    code, _, _ = run_cli(capsys, path, "--junit", junit)
    assert code == 0
    cases = ET.parse(junit).getroot().find("testsuite").findall("testcase")
    assert {c.get("name") for c in cases} >= BATCH_IDS
    code, _, _ = run_cli(capsys, path, "--fail-on", "warn", "--json")
    assert code == 1


def test_cli_config_preset_and_max_samples(capsys, clean_batch, write_batch, tmp_path):
    raw = dict(clean_batch)
    raw["joints_mm"] = raw.pop("keypoints_3d")
    path = write_batch(raw)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("loss:\n  w_2d: 1.0\ndiag:\n  key_map:\n    keypoints_3d: joints_mm\n")
    code, out, _ = run_cli(
        capsys, path, "--config", cfg, "--preset", "code", "--max-samples", "2", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["batch"]["size"] == 2 and "keypoints_3d" in data["batch"]["keys"]


def test_cli_bad_inputs_exit_2_one_line(capsys, clean_batch, write_batch, tmp_path):
    code, _, err = run_cli(capsys, tmp_path / "missing.pt")
    assert_input_error(code, err, "missing.pt", "not found")
    code, _, err = run_cli(capsys, tmp_path)
    assert_input_error(code, err, "directory")
    wrong = tmp_path / "batch.txt"
    wrong.write_text("x")
    code, _, err = run_cli(capsys, wrong)
    assert_input_error(code, err, "extension '.txt'")
    empty = tmp_path / "empty.npz"
    empty.touch()
    code, _, err = run_cli(capsys, empty)
    assert_input_error(code, err, "empty")
    truncated = write_batch(clean_batch, "cut.pt")
    truncated.write_bytes(truncated.read_bytes()[:1000])
    code, _, err = run_cli(capsys, truncated)
    assert_input_error(code, err, "cut.pt")
    objects = tmp_path / "objects.npz"
    np.savez(objects, keypoints_2d=np.zeros((1, 21, 3)), meta=np.array([{"a": 1}], dtype=object))
    code, _, err = run_cli(capsys, objects)
    assert_input_error(code, err, "object")
    code, _, err = run_cli(capsys, write_batch({"keypoint_3d": torch.zeros(2, 21, 4)}, "typo.pt"))
    assert_input_error(code, err, "did you mean 'keypoint_3d'->'keypoints_3d'")
    code, _, err = run_cli(capsys, write_batch({"keypoints_2d": torch.zeros(0, 21, 3)}, "zero.pt"))
    assert_input_error(code, err, "0 samples")
    code, _, err = run_cli(
        capsys, write_batch(dict(clean_batch, has_mano=torch.ones(3)), "sizes.pt")
    )
    assert_input_error(code, err, "batch sizes differ", "has_mano=3")
    ints = dict(clean_batch, keypoints_2d=clean_batch["keypoints_2d"].int())
    code, _, err = run_cli(capsys, write_batch(ints, "int.pt"))
    assert_input_error(code, err, "int32")
    pose = dict(clean_batch, mano_pose=torch.zeros(8, 144))
    code, _, err = run_cli(capsys, write_batch(pose, "rotmat.pt"))
    assert_input_error(code, err, "flattened rotation matrices")


def test_cli_bad_options_exit_2(capsys, clean_batch, write_batch, tmp_path):
    path = write_batch(clean_batch)
    code, _, err = run_cli(capsys, path, "--preset", "best")
    assert_input_error(code, err)
    code, _, err = run_cli(capsys, path, "--max-samples", "0")
    assert_input_error(code, err)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("diag:\n  rootid: 0\n")
    code, _, err = run_cli(capsys, path, "--config", cfg)
    assert_input_error(code, err, "did you mean 'root_id'")
    cfg.write_text("diag:\n  key_map:\n    keypoints3d: joints\n")
    code, _, err = run_cli(capsys, path, "--config", cfg)
    assert_input_error(code, err, "did you mean 'keypoints_3d'")
    code, _, err = run_cli(capsys)
    assert code == 2


def test_example_script_writes_clean_and_faulty_batches(tmp_path, capsys):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "make_clean_batch.py"
    run = runpy.run_path(str(script))["main"]
    assert (
        run(["--out", str(tmp_path), "--n", "3", "--faults", "kp3d_metres", "--format", "npz"]) == 0
    )
    err = capsys.readouterr().err
    assert "clean.npz" in err and "kp3d_metres.npz" in err
    assert check_batch(tmp_path / "clean.npz").status is Status.PASS
    assert check_batch(tmp_path / "kp3d_metres.npz").check("kp3d_units").status is Status.FAIL


def _natural_poses(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(whitened PCA coefficients (n, 45), the same poses as absolute axis-angle (n, 45)) from
    the embedded MANO, whose components carry each component's spread as MANO's do."""
    from utnet_diag.mano import load_mano_data

    data = load_mano_data()
    gen = torch.Generator().manual_seed(seed)
    coeffs = torch.randn(n, 45, generator=gen)
    comps = torch.tensor(np.array(data["hands_components"]), dtype=torch.float32)
    mean = torch.tensor(np.array(data["hands_mean"]), dtype=torch.float32)
    return coeffs, coeffs @ comps + mean


@pytest.mark.parametrize("seed", range(5))
def test_pca_coefficients_are_told_from_axis_angle_without_mano(clean_batch, seed):
    coeffs, axis_angle = _natural_poses(8, seed)
    pose = clean_batch["mano_pose"].clone()
    pose[:, 3:] = axis_angle
    passed = check_batch(dict(clean_batch, mano_pose=pose)).check("mano_pose")
    assert passed.status is Status.PASS, passed.message
    assert passed.details["median_abs_hand_value"] < THRESHOLDS.pose_pca_ambiguous
    pose[:, 3:] = coeffs  # DexYCB's pose_m: 45 PCA coefficients
    failed = check_batch(dict(clean_batch, mano_pose=pose)).check("mano_pose")
    assert failed.status is Status.FAIL, failed.message
    assert "looks like 45 PCA coefficients" in failed.message
    assert failed.value >= THRESHOLDS.pose_pca_median_abs


def test_pca_looking_pose_with_mano_or_few_samples_only_warns(clean_batch):
    from utnet_diag.mano import ManoLayer

    coeffs, _ = _natural_poses(8, 7)
    pose = clean_batch["mano_pose"].clone()
    pose[:, 3:] = coeffs
    batch = dict(clean_batch, mano_pose=pose)
    with_mano = batch_check_results(coerce_batch(batch)[0], load_config(None), ManoLayer())
    check = next(c for c in with_mano if c.id == "mano_pose")
    assert check.status is Status.WARN and "mano_consistency decides" in check.message
    few = {k: v[:2] for k, v in batch.items()}
    assert check_batch(few).check("mano_pose").status is Status.WARN
