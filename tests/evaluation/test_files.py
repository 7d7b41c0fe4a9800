"""Bad prediction and ground-truth files: one InputError each, naming the file and the fix."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from utnet_diag.errors import InputError, ResourceError
from utnet_diag.evaluation.run import evaluate
from utnet_diag.synthetic.benchmark_files import write_lines, write_pred


def _fails(pred, gt, protocol="freihand", match=None, **kw):
    with pytest.raises(InputError, match=match) as info:
        evaluate(pred, gt, protocol, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_malformed_json(tmp_path, gt_dir):
    bad = tmp_path / "p.json"
    bad.write_text("[[[0.1, 0.2, 0.3]], [")
    assert "not valid JSON" in _fails(bad, gt_dir)


def test_not_a_pair(tmp_path, gt_dir):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"xyz": []}))
    assert "[xyz, verts]" in _fails(bad, gt_dir)


def test_wrong_count(tmp_path, gt_dir, clean):
    message = _fails(write_pred(tmp_path / "p.json", clean[0][:-1], clean[1][:-1]), gt_dir)
    assert "23 predictions for 24" in message


def test_a_sample_of_the_wrong_shape_is_named(tmp_path, gt_dir, clean):
    data = [clean[0].tolist(), clean[1].tolist()]
    data[0][5] = data[0][5][:20]
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps(data))
    assert "sample 5 has shape (20, 3)" in _fails(bad, gt_dir)


def test_strings_instead_of_numbers(tmp_path, gt_dir, clean):
    data = [clean[0].tolist(), clean[1].tolist()]
    data[0][3][0][0] = "x"
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps(data))
    assert "sample 3" in _fails(bad, gt_dir)


def test_nan_is_refused_with_the_first_sample(tmp_path, gt_dir, clean):
    xyz = clean[0].copy()
    xyz[4, 2, 1] = np.nan
    message = _fails(write_pred(tmp_path / "p.json", xyz, clean[1]), gt_dir)
    assert "NaN or Inf in 1 of 24 samples (first: sample 4)" in message


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path, gt_dir, clean):
    pred = write_pred(tmp_path / "p.json", *clean)
    with pytest.raises(ResourceError, match="--max-file-mb"):
        evaluate(pred, gt_dir, "freihand", max_file_mb=1)


def test_a_fifo_is_refused_by_name(tmp_path, gt_dir):
    fifo = tmp_path / "p.json"
    os.mkfifo(fifo)
    assert "not a regular file" in _fails(fifo, gt_dir)


def test_a_gt_folder_without_the_pair(tmp_path, clean):
    folder = tmp_path / "gt"
    folder.mkdir()
    (folder / "evaluation_xyz.json").write_text("[]")
    assert "evaluation_xyz.json and evaluation_verts.json" in _fails(
        write_pred(tmp_path / "p.json", *clean), folder
    )


def test_missing_files(tmp_path, gt_dir):
    assert "not found" in _fails(tmp_path / "none.json", gt_dir)


def test_dexycb_line_of_the_wrong_length(tmp_path, truth):
    gt = write_lines(tmp_path / "gt.txt", range(3), truth[0][:3] * 1000)
    bad = tmp_path / "res.txt"
    bad.write_text("0," + ",".join(["1.0"] * 62) + "\n")
    assert "line 1 has 63 comma-separated values, expected 64" in _fails(bad, gt, "dexycb")


def test_dexycb_non_numbers_and_nan(tmp_path, truth):
    gt = write_lines(tmp_path / "gt.txt", range(3), truth[0][:3] * 1000)
    bad = tmp_path / "res.txt"
    bad.write_text("0," + ",".join(["abc"] * 63) + "\n")
    assert "not a number" in _fails(bad, gt, "dexycb")
    bad.write_text("0," + ",".join(["nan"] * 63) + "\n")
    assert "NaN or Inf" in _fails(bad, gt, "dexycb")


def test_dexycb_a_missing_image_is_named(tmp_path, truth):
    gt = write_lines(tmp_path / "gt.txt", [10, 11, 12], truth[0][:3] * 1000)
    pred = write_lines(tmp_path / "res.txt", [10, 12], truth[0][[0, 2]] * 1000)
    assert "no result line for 1 of 3 ground-truth images (first: image id 11)" in _fails(
        pred, gt, "dexycb"
    )


def test_dexycb_an_endless_line_is_refused(tmp_path, truth):
    gt = write_lines(tmp_path / "gt.txt", range(3), truth[0][:3] * 1000)
    bad = tmp_path / "res.txt"
    bad.write_text("1" * 100_000)
    assert "over 8192 characters" in _fails(bad, gt, "dexycb")


def test_per_sample_output_is_checked_before_any_work(tmp_path, gt_dir, clean):
    pred = write_pred(tmp_path / "p.json", *clean)
    assert "is a directory" in _fails(pred, gt_dir, per_sample=tmp_path)
    assert "an input of this run" in _fails(pred, gt_dir, per_sample=pred)
    assert "does not exist" in _fails(pred, gt_dir, per_sample=tmp_path / "no" / "x.jsonl")


def test_per_sample_rows_are_written_worst_first(tmp_path, gt_dir, clean):
    out = tmp_path / "rows.jsonl"
    evaluate(write_pred(tmp_path / "p.json", *clean), gt_dir, "freihand", per_sample=out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 24
    errors = [r["joint_error_aligned"] for r in rows]
    assert errors == sorted(errors, reverse=True)
    assert sorted(r["sample"] for r in rows) == list(range(24))
