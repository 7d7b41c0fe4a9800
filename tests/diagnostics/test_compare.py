"""``compare``: two reference-model checkpoints on the embedded batch, deltas and the gate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from utnet_diag.diagnostics.compare import compare, delta_row, regression_checks
from utnet_diag.model.checkpoint import save_checkpoint
from utnet_diag.model.reference import build_reference


def _save(model, path: Path) -> Path:
    return save_checkpoint(model, path, config=model.config.to_dict())


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """``base`` (seed 0), ``perturbed`` (coarse head + noise), ``trained`` (base after 15 AdamW
    steps on the embedded batch) and ``narrow`` (another embed_dim)."""
    from utnet_diag.diagnostics.runner import load_inputs
    from utnet_diag.losses import compute_terms

    folder = tmp_path_factory.mktemp("ckpts")
    base = build_reference("tiny", seed=0)
    out = {"base": _save(base, folder / "base.pt")}

    perturbed = build_reference("tiny", seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in perturbed.coarse_head.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    out["perturbed"] = _save(perturbed, folder / "perturbed.pt")

    trained = build_reference("tiny", seed=0)
    inputs = load_inputs(model=trained)
    optimizer = torch.optim.AdamW(trained.parameters(), lr=1e-3, weight_decay=0.0)
    torch.manual_seed(0)
    for _ in range(15):
        terms = compute_terms(inputs.loaded.forward(inputs.batch), inputs.batch,
                              inputs.config.weights)  # fmt: skip
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
    out["trained"] = _save(trained, folder / "trained.pt")

    narrow = build_reference({"preset": "tiny", "embed_dim": 32}, seed=0)
    out["narrow"] = _save(narrow, folder / "narrow.pt")
    return out


def rows_of(report) -> dict[str, dict]:
    return {row["name"]: row for row in report.sections["compare"]["rows"]}


@pytest.mark.slow
def test_identical_checkpoints_give_zero_deltas(checkpoints) -> None:
    report = compare(checkpoints["base"], checkpoints["base"], max_regression=0.0)
    rows = rows_of(report)
    assert {"total", "loss_2d", "loss_3d_joint", "mpjpe_mm", "pa_mpjpe_mm", "grad_norm",
            "grad_norm:backbone", "grad_share:loss_3d_joint"} <= set(rows)  # fmt: skip
    for row in rows.values():
        assert row["delta"] == 0.0 and row["relative"] == 0.0, row
    assert rows["total"]["a"] == pytest.approx(327.35, rel=1e-3)  # the embedded default's total
    assert rows["mpjpe_mm"]["a"] == pytest.approx(27.52, rel=1e-3)
    assert report.status.value == "pass"
    gated = [c.id for c in report.checks if c.id.startswith("compare_regression:")]
    assert sorted(gated) == sorted(
        "compare_regression:" + n
        for n in (
            "total",
            "loss_2d",
            "loss_3d_joint",
            "loss_prior",
            "loss_aux",
            "mpjpe_mm",
            "pa_mpjpe_mm",
            "avg_metric_mm",
        )
    )  # fmt: skip  -- every term is gated, the prior too


def test_perturbed_checkpoint_is_a_regression(checkpoints) -> None:
    files = {k: p.read_bytes() for k, p in checkpoints.items()}
    report = compare(checkpoints["base"], checkpoints["perturbed"], max_regression=0.05)
    rows = rows_of(report)
    mpjpe = rows["mpjpe_mm"]
    assert mpjpe["delta"] == pytest.approx(mpjpe["b"] - mpjpe["a"])
    assert mpjpe["relative"] == pytest.approx(mpjpe["delta"] / mpjpe["a"])
    assert mpjpe["relative"] > 0.05
    check = report.check("compare_regression:mpjpe_mm")
    assert check.status.value == "fail"
    assert check.message.startswith(f"MPJPE: A {mpjpe['a']:.6g} mm -> B {mpjpe['b']:.6g} mm")
    assert "over the limit +5.0%" in check.message
    assert report.check("compare_regression:total").status.value == "fail"
    # inputs are never written
    assert all(p.read_bytes() == files[k] for k, p in checkpoints.items())

    # the other way round, B is the better one: nothing regresses beyond 5%
    reverse = compare(checkpoints["perturbed"], checkpoints["base"], max_regression=0.05)
    assert reverse.check("compare_regression:mpjpe_mm").status.value == "pass"
    assert rows_of(reverse)["mpjpe_mm"]["delta"] == pytest.approx(-mpjpe["delta"])


def test_trained_checkpoint_improves_and_passes_the_gate(checkpoints) -> None:
    report = compare(checkpoints["base"], checkpoints["trained"], max_regression=0.05)
    rows = rows_of(report)
    assert rows["total"]["relative"] < -0.2, rows["total"]
    assert rows["mpjpe_mm"]["b"] < rows["mpjpe_mm"]["a"]
    assert report.check("compare_regression:total").status.value == "pass"
    assert report.check("compare_regression:mpjpe_mm").status.value == "pass"
    assert any(row["delta"] != 0 for n, row in rows.items() if n.startswith("grad_norm:"))


def test_delta_rows_and_regression_rule_by_hand() -> None:
    rows = [
        delta_row("total", "total loss", "loss", 10.0, 10.4),  # +4%: within 5%
        delta_row("loss_2d", "2D keypoint loss", "loss", 10.0, 10.6),  # +6%: over
        delta_row("loss_aux", "aux loss", "loss", 0.0, 1.0),  # from 0: worse, no ratio
        delta_row("loss_3d_joint", "3D joint loss", "loss", 0.0, 0.0),
        delta_row("mpjpe_mm", "MPJPE", "metric", 20.0, float("nan"), "mm"),
        delta_row("grad_norm", "gradient norm (all)", "grad", 1.0, 100.0),  # not gated
        delta_row("loss_prior", "prior loss", "loss", 1e-4, 0.2),  # 2000x, but healthy (< 100)
    ]
    assert rows[0]["delta"] == pytest.approx(0.4) and rows[0]["relative"] == pytest.approx(0.04)
    assert rows[2]["relative"] is None and rows[3]["relative"] == 0.0
    checks = {c.id.split(":")[1]: c for c in regression_checks(rows, 0.05)}
    assert set(checks) == {"total", "loss_2d", "loss_aux", "loss_3d_joint", "mpjpe_mm",
                           "loss_prior"}  # fmt: skip
    prior = checks["loss_prior"]
    assert prior.status.value == "pass" and "prior loss: A 0.0001 -> B 0.2" in prior.message
    assert "within the spec's healthy < 100, so it does not fail" in prior.message
    unhealthy = delta_row("loss_prior", "prior loss", "loss", 50.0, 150.0)
    (beyond,) = regression_checks([unhealthy], 0.05)
    assert beyond.status.value == "fail" and "over the limit +5.0%" in beyond.message
    assert checks["total"].status.value == "pass"
    assert checks["loss_2d"].status.value == "fail" and checks["loss_2d"].value == pytest.approx(
        0.06
    )
    assert (
        checks["loss_aux"].status.value == "fail"
        and "A is 0, B is not" in checks["loss_aux"].message
    )
    assert checks["loss_3d_joint"].status.value == "pass"
    assert (
        checks["mpjpe_mm"].status.value == "fail"
        and "B is not finite" in checks["mpjpe_mm"].message
    )
    assert math.isnan(checks["mpjpe_mm"].details["b"])


def test_cli_json_gate_and_junit(
    checkpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from utnet_diag.cli.app import main

    a, b = str(checkpoints["base"]), str(checkpoints["perturbed"])
    assert main(["compare", a, b, "--json"]) == 0  # no gate: a report only
    data = json.loads(capsys.readouterr().out)
    assert data["command"] == "compare" and data["compare"]["max_regression"] is None
    junit = tmp_path / "compare.xml"
    assert main(["compare", a, b, "--max-regression", "0.05", "--json", "--junit", str(junit)]) == 1
    data = json.loads(capsys.readouterr().out)
    failed = {c["id"] for c in data["checks"] if c["status"] == "fail"}
    assert "compare_regression:mpjpe_mm" in failed
    assert "compare_regression:mpjpe_mm" in junit.read_text()
    assert main(["compare", a, a, "--max-regression", "0"]) == 0
    out = capsys.readouterr().out
    assert "MPJPE" in out and "+0.0%" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{base}", "{missing}"], "checkpoint not found"),
        (["{base}", "{narrow}"], "the two checkpoints build different models"),
        (["{base}", "{base}", "--max-regression", "-0.1"], "--max-regression must be a finite"),
        (["{base}", "{base}", "--max-regression", "nan"], "--max-regression must be a finite"),
        (["{base}", "{base}", "--max-regression", "abc"], "--max-regression"),
        (["{base}"], "Missing argument"),
    ],
)
def test_cli_bad_inputs_exit_2(
    checkpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str], args, message
) -> None:
    from utnet_diag.cli.app import main

    paths = {k: str(v) for k, v in checkpoints.items()} | {"missing": str(tmp_path / "no.pt")}
    assert main(["compare", *(a.format(**paths) for a in args)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert message in lines[0]
