"""``utnet-diag scan`` and ``check-batch --dataset``: exit codes, stdout/stderr, bad inputs."""

from __future__ import annotations

import json

import pytest

from utnet_diag.cli.app import main


@pytest.mark.slow
def test_scan_json_report_and_findings_file(ho3d_tree, tmp_path, capsys):
    out = tmp_path / "findings.jsonl"
    code = main(
        ["scan", "--dataset", "ho3d", "--root", ho3d_tree.root, "--no-images", "--json",
         "--out", str(out)]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    report = json.loads(captured.out)  # stdout is only the JSON report
    assert report["command"] == "scan"
    assert report["scan"]["samples_scanned"] == 16
    assert report["scan"]["by_check"]["meta_unsafe"]["first_ids"] == ["train/MC1/0002"]
    lines = out.read_text().splitlines()
    assert len(lines) == report["scan"]["findings_written"] > 5


def test_scan_rich_output_names_checks_and_samples(dexycb_tree, capsys):
    code = main(["scan", "--dataset", "dexycb", "--root", dexycb_tree.root, "--limit", "4"])
    captured = capsys.readouterr()
    assert code == 1
    assert "findings by check" in captured.out and "kp2d_agrees" in captured.out
    assert "4 samples" in captured.out
    assert "FAILED" in captured.out


def test_scan_of_a_clean_tree_exits_zero(tmp_path, capsys):
    from utnet_diag.synthetic.trees import write_ho3d_tree

    write_ho3d_tree(tmp_path, sequences=("A",), frames_per_sequence=3)
    assert main(["scan", "--dataset", "ho3d", "--root", str(tmp_path)]) == 0
    assert "no findings" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["scan", "--root", "{root}"], "scan needs --dataset and --root"),
        (["scan", "--dataset", "ho3d", "--root", "{root}/nope"], "HO3D root not found"),
        (["scan", "--dataset", "ho3d", "--root", "{root}", "--split", "val"],
         "unknown HO3D split 'val'"),
        (["scan", "--dataset", "coco", "--root", "{root}"], "--dataset"),
        (["scan", "--dataset", "ho3d", "--root", "{root}", "--workers", "-1"], "--workers"),
        (["scan", "--dataset", "ho3d", "--root", "{root}", "--out", "{root}/no/dir/f.jsonl"],
         "output directory does not exist"),
        (["check-batch"], "give a BATCH file, or --dataset and --root"),
        (["check-batch", "--dataset", "ho3d"], "--dataset and --root go together"),
        (["check-batch", "--dataset", "ho3d", "--root", "{root}", "--indices", "99"],
         "the dataset has 16 samples"),
        (["check-batch", "b.pt", "--dataset", "ho3d", "--root", "{root}"], "one batch source"),
        (["check-batch", "--dataset", "ho3d", "--root", "{root}", "--indices", "6-7"],
         "none of the 2 selected ho3d frames has a usable annotation"),
    ],
)  # fmt: skip
def test_bad_inputs_exit_2_with_one_line(ho3d_tree, capsys, args, match):
    argv = [a.replace("{root}", ho3d_tree.root) for a in args]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert match in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_check_batch_on_dataset_frames(ho3d_tree, capsys):
    code = main(
        ["check-batch", "--dataset", "ho3d", "--root", ho3d_tree.root, "--indices", "0,14-15",
         "--json"]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["batch"]["size"] == 3
    assert report["batch"]["format"] == "ho3d"
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    # clean frames: the batch checks pass on the canonical conversion
    for check_id in ("finite", "kp2d_range", "kp3d_units", "mano_pose", "mano_shape"):
        assert statuses[check_id] == "pass", (check_id, report["checks"])
    assert code in (0, 1)


def test_check_batch_on_dataset_frames_catches_a_planted_fault(ho3d_tree, capsys):
    code = main(
        ["check-batch", "--dataset", "ho3d", "--root", ho3d_tree.root, "--indices", "0,2",
         "--json", "--fail-on", "warn"]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    units = next(c for c in report["checks"] if c["id"] == "kp3d_units")
    # sample 2 holds millimetres in the metres field: its hand is 1000x too large
    assert code == 1 and units["status"] in ("warn", "fail")
    assert "train/ABF10/0002" in units["message"]


def _check_batch_json(root, indices, capsys, *extra):
    code = main(["check-batch", "--dataset", "ho3d", "--root", root, "--indices", indices,
                 "--json", *extra])  # fmt: skip
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_check_batch_fails_on_frames_whose_files_are_bad(ho3d_tree, capsys):
    # 0 clean, 8 meta missing, 10 unsafe meta, 11 truncated RGB (kept, its image dropped)
    code, report, _ = _check_batch_json(ho3d_tree.root, "0,8,10-11", capsys)
    files = report["checks"][0]
    assert code == 1 and files["id"] == "dataset_files" and files["status"] == "fail"
    assert files["value"] == 3 and files["hint"]
    frames = {f["sample_id"]: f for f in files["details"]["frames"]}
    assert set(frames) == {"train/MC1/0000", "train/MC1/0002", "train/MC1/0003"}
    assert frames["train/MC1/0000"]["check"] == "meta_missing"
    assert frames["train/MC1/0000"]["path"].endswith("train/MC1/meta/0000.pkl")
    assert frames["train/MC1/0002"]["check"] == "meta_unsafe"
    assert frames["train/MC1/0003"]["check"] == "rgb_readable"
    assert "3/4 selected frames" in files["message"] and "train/MC1/0000" in files["message"]
    assert report["batch"]["size"] == 2  # frames 0 and 11 (annotated) are still checked


def test_check_batch_of_only_bad_files_fails_and_lists_every_other_check_as_skipped(
    ho3d_tree, capsys
):
    from utnet_diag.diagnostics.check_batch import check_specs

    code, report, err = _check_batch_json(ho3d_tree.root, "8-10", capsys)
    assert code == 1 and "Traceback" not in err
    assert [(c["id"], c["status"]) for c in report["checks"][:1]] == [("dataset_files", "fail")]
    assert report["checks"][0]["value"] == 3
    rest = report["checks"][1:]
    assert [c["id"] for c in rest] == [s.id for s in check_specs()] and len(rest) >= 16
    assert {c["status"] for c in rest} == {"skip"}
    assert rest[0]["message"] == "not evaluated: no selected frame is usable (see dataset_files)"


def test_check_batch_no_images_checks_annotations_without_image_files(tmp_path, capsys):
    from utnet_diag.synthetic.trees import write_ho3d_tree

    write_ho3d_tree(tmp_path, sequences=("A",), frames_per_sequence=3, seed=4)
    for image in [*tmp_path.rglob("*.jpg"), *tmp_path.rglob("*.png")]:
        image.unlink()  # an annotation-only copy of the dataset
    code, report, _ = _check_batch_json(str(tmp_path), "0-2", capsys)
    assert code == 1 and report["checks"][0]["status"] == "fail"  # the images are missing
    code, report, _ = _check_batch_json(str(tmp_path), "0-2", capsys, "--no-images")
    by_id = {c["id"]: c for c in report["checks"]}
    assert code == 0 and by_id["dataset_files"]["status"] == "pass"
    assert by_id["kp3d_units"]["status"] == "pass" and by_id["joint_order"]["status"] == "pass"
    assert by_id["image_range"]["status"] == "skip" and report["batch"]["size"] == 3


def test_check_batch_unannotated_frame_is_a_warning_not_a_failure(ho3d_tree, capsys):
    code, report, _ = _check_batch_json(ho3d_tree.root, "0,6,14", capsys)
    files = report["checks"][0]
    assert files["id"] == "dataset_files" and files["status"] == "warn"
    assert files["details"]["unannotated"] == ["train/ABF10/0006"]
    assert files["details"]["frames"] == []
    assert code == 0 and report["batch"]["size"] == 2
    code, _, _ = _check_batch_json(ho3d_tree.root, "0,6,14", capsys, "--fail-on", "warn")
    assert code == 1


def test_check_batch_of_clean_frames_passes_dataset_files(ho3d_tree, capsys):
    code, report, _ = _check_batch_json(ho3d_tree.root, "0,14-15", capsys)
    files = report["checks"][0]
    assert (files["id"], files["status"], files["value"]) == ("dataset_files", "pass", 0)
