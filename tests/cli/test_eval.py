"""``utnet-diag eval`` end to end: exit codes, the report at 80 columns, JSON, bad inputs."""

from __future__ import annotations

import json

import numpy as np

from utnet_diag.cli.app import main
from utnet_diag.synthetic.benchmark_files import hands, mesh, noisy, write_gt_folder, write_pred


def _files(tmp_path, factor: float = 1.0):
    xyz = hands(10, seed=3)
    verts = mesh(xyz)
    gt = write_gt_folder(tmp_path / "gt", xyz, verts)
    pred = write_pred(tmp_path / "pred.json", noisy(xyz) * factor, noisy(verts, seed=4) * factor)
    return pred, gt


def test_clean_file_exits_0_and_prints_the_official_metrics(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    pred, gt = _files(tmp_path)
    assert main(["eval", str(pred), "--gt", str(gt), "--protocol", "freihand"]) == 0
    out = capsys.readouterr().out
    assert "FreiHAND protocol: 10 samples" in out
    assert "joint error, aligned (cm)" in out and "F@15mm" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_a_file_in_millimetres_exits_1_and_shows_both_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    pred, gt = _files(tmp_path, factor=1000.0)
    assert main(["eval", str(pred), "--gt", str(gt), "--protocol", "freihand"]) == 1
    out = capsys.readouterr().out
    assert "once fixed" in out and "multiply by 0.001" in out


def test_json_report_and_per_sample_file(tmp_path, capsys):
    pred, gt = _files(tmp_path)
    rows = tmp_path / "rows.jsonl"
    code = main(["eval", str(pred), "--gt", str(gt), "--protocol", "freihand", "--json",
                 "--per-sample", str(rows)])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    section = report["evaluation"]
    assert section["protocol"] == "freihand" and section["samples"] == 10
    assert [r["metric"] for r in section["metrics"]][:2] == ["xyz_mean3d", "xyz_auc3d"]
    assert section["per_sample"] == str(rows)
    assert len(rows.read_text().splitlines()) == 10
    assert "per-sample errors written to" in captured.err


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    pred, gt = _files(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    cases = [
        ["eval", str(bad), "--gt", str(gt), "--protocol", "freihand"],
        ["eval", str(pred), "--gt", str(gt), "--protocol", "freihnd"],
        ["eval", str(pred), "--gt", str(tmp_path / "missing"), "--protocol", "ho3d"],
        ["eval", str(pred), "--gt", str(gt), "--protocol", "dexycb"],
        ["eval", str(pred), "--gt", str(gt), "--protocol", "freihand", "--per-sample", str(gt)],
        ["eval", str(pred), "--gt", str(gt), "--protocol", "freihand", "--max-file-mb", "0"],
        ["loss-breakdown", "--metric-protocol", "freihnd"],
        ["gate", "--metric-protocol", "coco"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("utnet-diag: error:"), err
        assert "Traceback" not in err[0]


def test_the_protocol_typo_suggests_the_name(tmp_path, capsys):
    pred, gt = _files(tmp_path)
    main(["eval", str(pred), "--gt", str(gt), "--protocol", "freihnd"])
    assert "did you mean 'freihand'" in capsys.readouterr().err


def test_the_mesh_can_be_missing(tmp_path, capsys):
    xyz = hands(6, seed=1)
    gt = write_gt_folder(tmp_path / "gt", xyz, mesh(xyz))
    pred = write_pred(tmp_path / "p.json", noisy(xyz), None)
    assert main(["eval", str(pred), "--gt", str(gt), "--protocol", "freihand", "-q"]) == 0
    assert "WARN eval_mesh" in capsys.readouterr().out
    assert np.isfinite(xyz).all()
