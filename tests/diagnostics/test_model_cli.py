"""CLI of loss-breakdown, grad-flow and gate: exit codes, pure JSON, JUnit, bad inputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import torch

from utnet_diag.cli.app import main


def _one_error_line(err: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("utnet-diag: error:")
    assert "Traceback" not in err


def test_gate_embedded_default_exit_0_json_and_junit(tmp_path, capsys) -> None:
    junit = tmp_path / "gate.xml"
    assert main(["gate", "--json", "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)  # stdout is the JSON document and nothing else
    assert doc["command"] == "gate" and doc["counts"]["fail"] == 0
    assert {"loss_table", "metrics", "grad_modules", "grad_terms"} <= set(doc)
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests")) == len(doc["checks"])
    assert int(suite.get("failures")) == 0


def test_gate_rich_output_and_fail_on_warn(capsys) -> None:
    # The embedded default warns (config weights are below the spec's recommendation).
    assert main(["gate", "--fail-on", "warn"]) == 1
    out = capsys.readouterr().out
    assert "loss breakdown" in out and "gradients per module" in out
    assert "utnet-diag gate: FAILED" in out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("factory", "failing"),
    [
        ("utnet_toy:build_nan", "loss_finite"),
        ("utnet_toy:build_detached", "grad_dead"),
        ("utnet_toy:build_mano_bypass", "pred_degenerate"),
    ],
)
def test_planted_faults_exit_1(factory, failing, capsys) -> None:
    assert main(["gate", "--model-factory", factory, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    status = {c["id"]: c["status"] for c in doc["checks"]}
    assert status[failing] == "fail"
    if failing == "grad_dead":
        assert status["grad_reach"] == "fail"


@pytest.mark.slow
def test_loss_breakdown_and_grad_flow_commands(tmp_path, capsys) -> None:
    import utnet_toy

    from utnet_diag.io.batch import save_batch

    # Ground truth from the toy's own hand, so its joint order agrees with the predictions.
    batch = save_batch(utnet_toy.make_batch(6).tensors, tmp_path / "toy.pt")
    args = ["--model-factory", "utnet_toy:build", "--batch", str(batch)]
    assert main(["loss-breakdown", *args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["command"] == "loss-breakdown" and doc["loss_table"]["batch_size"] == 6
    plot = tmp_path / "grad.png"
    code = main(["grad-flow", *args, "--exact", "--depth", "2", "--plot", str(plot)])
    assert code == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "loss terms at the trunk/heads boundary" in capsys.readouterr().out


def _bad_batch(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"not a torch file at all")
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--checkpoint", "/nonexistent/ckpt.pt"], "not found"),
        (["--device", "tpu"], "unknown device"),
        (["--batch", "/nonexistent/batch.pt"], "not found"),
        (["--batch", "GARBAGE"], "garbage.pt"),
        (["--model-factory", "no_such_module_xyz:build"], "no_such_module_xyz"),
        (["--model-factory", "utnet_toy:build", "--output-map", "keypoints_3d"], "output"),
        (["--depth", "0"], "depth"),
        (["--config", "/nonexistent/config.yaml"], "not found"),
    ],
)
@pytest.mark.parametrize("command", ["gate", "grad-flow"])
def test_bad_inputs_exit_2(command, args, needle, tmp_path, capsys) -> None:
    args = [_bad_batch(tmp_path) if a == "GARBAGE" else a for a in args]
    assert main([command, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _one_error_line(captured.err)
    assert needle in captured.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_machine_exit_2(capsys) -> None:
    assert main(["loss-breakdown", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    _one_error_line(err)
    assert "no CUDA GPU" in err


@pytest.mark.slow
def test_gate_fails_a_batch_without_3d_supervision_unless_the_user_ignores_it(
    tmp_path, capsys
) -> None:
    """Nothing passes by omission: no keypoints_3d means no 3D joint term, and the gate fails."""
    from utnet_diag.synthetic.sample import default_batch

    batch = {k: v for k, v in default_batch().tensors.items() if k != "keypoints_3d"}
    path = tmp_path / "no3d.pt"
    torch.save(batch, path)
    assert main(["gate", "--batch", str(path), "--json"]) == 1
    checks = {c["id"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["loss_3d_joint"]["status"] == "fail"
    assert "the batch has no keypoints_3d" in checks["loss_3d_joint"]["message"]
    assert main(["gate", "--batch", str(path), "--json", "--ignore", "loss_3d_joint"]) == 0
    checks = {c["id"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["loss_3d_joint"]["status"] == "skip"
    assert "deselected" in checks["loss_3d_joint"]["message"]
