"""torchrun with 2 CPU processes (gloo): the same findings as a single-process scan."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from utnet_diag.synthetic.trees import write_ho3d_tree


@pytest.mark.slow
def test_torchrun_two_processes_match_single_process(tmp_path):
    root = tmp_path / "ho3d"
    write_ho3d_tree(
        root,
        sequences=("ABF10", "MC1"),
        frames_per_sequence=7,
        images=False,
        faults={"nan_joints": [1, 4, 9], "unsafe_meta": [3], "huge_betas": [10, 11, 12],
                "missing_meta": [13]},
    )  # fmt: skip
    common = ["scan", "--dataset", "ho3d", "--root", str(root), "--no-images", "--json",
              "--max-findings-per-check", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    dist_out, single_out = tmp_path / "dist.jsonl", tmp_path / "single.jsonl"
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "utnet_diag", *common, "--chunk-size", "2", "--out", str(dist_out)],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    single = subprocess.run(
        [sys.executable, "-m", "utnet_diag", *common, "--chunk-size", "5", "--out", str(single_out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert single.returncode == 1, single.stderr[-2000:]
    # torchrun reports rank 0's exit code 1 (a check failed) as a child failure
    assert launched.returncode != 0 and dist_out.exists(), launched.stderr[-3000:]
    assert dist_out.read_text() == single_out.read_text()
    lines = [json.loads(line) for line in dist_out.read_text().splitlines()]
    assert [x["index"] for x in lines if x["check"] == "finite"] == [1, 4]  # capped at 2 of 3
    dist_report = json.loads(launched.stdout)  # only rank 0 printed
    single_report = json.loads(single.stdout)
    assert dist_report["scan"]["world_size"] == 2
    assert dist_report["scan"]["samples_scanned"] == single_report["scan"]["samples_scanned"] == 14
    assert dist_report["scan"]["by_check"] == single_report["scan"]["by_check"]
    assert dist_report["scan"]["by_check"]["finite"] == {
        "count": 3, "by_severity": {"fail": 3}, "suppressed": 1,
        "first_ids": ["train/ABF10/0001", "train/ABF10/0004"],
    }  # fmt: skip
    assert [c["status"] for c in dist_report["checks"]] == [
        c["status"] for c in single_report["checks"]
    ]
