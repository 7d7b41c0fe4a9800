"""Log checks on the fixture logs: each planted fault is caught, healthy logs pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from utnet_diag.config import DiagConfig, LossWeights, load_config
from utnet_diag.logs.checks import LogCheckOptions, check_log, diagnose_log
from utnet_diag.logs.parse import parse_log
from utnet_diag.report.result import Report

FIXTURES = Path(__file__).parents[1] / "fixtures" / "logs"


def run(name: str, **kw) -> Report:
    return diagnose_log(FIXTURES / name, **kw)


def statuses(report: Report) -> dict[str, str]:
    return {c.id: c.status.value for c in report.checks}


def test_spec_normal_passes_ranges_and_reports_total_mismatch_honestly() -> None:
    report = run("spec_normal.log")
    assert statuses(report) == {
        "log_parsed": "pass",
        "log_finite": "pass",
        "log_loss_2d": "pass",
        "log_loss_3d_joint": "pass",
        "log_loss_prior": "pass",
        "log_loss_aux": "pass",
        "log_stuck": "skip",
        "log_trend": "skip",
        "log_total_consistency": "warn",
    }
    total = report.check("log_total_consistency")
    # 0.01*334.8019 + 0.05*73632.9062 + 0.001*70.4138 + 0 = 3685.0637428, logged 3826.6260
    assert total.details["worst_predicted"] == pytest.approx(3685.0637428, abs=1e-9)
    assert total.value == pytest.approx(141.5622572, abs=1e-6)
    assert "no single term or weight explains it" in total.message
    assert "the weights were assumed" in total.message
    # numbers at the logged total's precision (4 decimals), not float noise
    assert "logged 3826.6260 vs weighted sum 3685.0637 (gap +141.5623, +3.70%)" in total.message
    solved = total.details["search"]["solved_weights"]
    assert solved["w_2d"] == pytest.approx(0.01 + 141.5622572 / 334.8019)
    assert solved["w_3d_joint"] == pytest.approx(0.05 + 141.5622572 / 73632.9062)
    assert "aux multiplier" not in solved  # the aux loss is 0: no weight can be solved for it
    assert total.details["explanation"] is None
    assert report.exit_code() == 0


def test_spec_normal_mismatch_fails_when_weights_are_given() -> None:
    report = run("spec_normal.log", options=LogCheckOptions(weights_given=True))
    assert report.check("log_total_consistency").status.value == "fail"


def test_spec_abnormal_flags_each_alarm() -> None:
    report = run("spec_abnormal.log")
    s = statuses(report)
    assert s["log_finite"] == "fail"
    assert s["log_loss_2d"] == "fail" and report.check("log_loss_2d").value == 10000.0
    assert s["log_loss_3d_joint"] == "fail"
    assert "exactly 0" in report.check("log_loss_3d_joint").message
    assert s["log_loss_prior"] == "fail" and report.check("log_loss_prior").threshold == 5000.0
    assert s["log_loss_aux"] == "skip"  # NaN belongs to log_finite
    assert s["log_total_consistency"] == "skip"
    finite = report.check("log_finite")
    assert "Aux loss = nan" in finite.message and "Total loss = nan" in finite.message


def test_healthy_log_with_tqdm_noise_passes_everything() -> None:
    report = run("tqdm_debug.log")
    assert set(statuses(report).values()) == {"pass"}
    consistency = report.check("log_total_consistency")
    assert consistency.details["blocks_compared"] == 40
    assert consistency.value < 1e-3


def test_nan_midway_names_first_bad_block() -> None:
    report = run("nan_midway.log")
    finite = report.check("log_finite")
    assert finite.status.value == "fail"
    assert finite.details["first_block"] == 17
    assert finite.details["first_iter"] == 170
    assert finite.details["first_line"] == 17 * 6 + 1
    assert finite.details["blocks_per_term"] == {"loss_aux": 13, "total": 13}
    assert report.check("log_total_consistency").details["blocks_compared"] == 17


def test_diverging_log_fails_trend_for_total_and_3d() -> None:
    report = run("diverging.log")
    trend = report.check("log_trend")
    assert trend.status.value == "fail"
    assert trend.details["trends"]["loss_3d_joint"]["trend"] == "diverging"
    assert trend.details["trends"]["total"]["trend"] == "diverging"
    assert trend.details["trends"]["loss_2d"]["trend"] == "falling"
    info = trend.details["trends"]["loss_3d_joint"]
    assert info["last_median"] > 1.5 * info["best_median"]
    assert report.check("log_total_consistency").status.value == "pass"


def test_plateau_log_warns() -> None:
    report = run("plateau.log")
    trend = report.check("log_trend")
    assert trend.status.value == "warn"
    assert "plateaued" in trend.message
    assert abs(trend.details["trends"]["total"]["relative_improvement"]) < 0.01


def test_stuck_zero_3d_fails_range_and_stuck() -> None:
    report = run("stuck_zero_3d.log")
    assert report.check("log_loss_3d_joint").status.value == "fail"
    assert report.check("log_loss_3d_joint").details["zero_blocks"] == 30
    stuck = report.check("log_stuck")
    assert stuck.status.value == "fail"
    assert [f["term"] for f in stuck.details["stuck"]] == ["loss_3d_joint"]


def test_vertex_and_pose_lines_add_up_under_their_config() -> None:
    config = load_config(FIXTURES / "vertex_pose.yaml")
    report = run("vertex_pose.log", config=config)
    assert set(statuses(report).values()) == {"pass"}
    # without the config the default weights do not explain the totals
    assert run("vertex_pose.log").check("log_total_consistency").status.value == "warn"


def test_aux_weighted_twice_is_named() -> None:
    check = run("aux_double_weighted.log").check("log_total_consistency")
    assert check.status.value == "fail"
    assert check.details["explanation"]["weight"] == "aux multiplier"
    assert check.details["explanation"]["value"] == 0.001
    assert "a second time" in check.message


def test_totals_of_another_preset_are_recognised() -> None:
    check = run("code_preset.log").check("log_total_consistency")
    assert check.status.value == "warn"
    assert check.details["explanation"]["preset"] == "code"
    assert (
        run("code_preset.log", config=load_config(None, "code"))
        .check("log_total_consistency")
        .status.value
        == "pass"
    )


def _write_blocks(tmp_path: Path, rows: list[dict[str, float]]) -> Path:
    labels = {
        "l2d": "2D keypoint loss",
        "l3d": "3D joint loss",
        "vert": "3D vertex loss",
        "shape": "Prior loss (shape)",
        "pose": "Prior loss (pose)",
        "aux": "Aux loss",
        "total": "Total loss",
    }
    text = []
    for i, row in enumerate(rows):
        text.append(f"[Epoch 0, Iter {i}] Loss breakdown:\n")
        text += [f"  {labels[k]}: {v:.4f}\n" for k, v in row.items()]
    path = tmp_path / "train.log"
    path.write_text("".join(text))
    return path


def _row(l2d: float, l3d: float, shape: float, aux: float, **extra: float) -> dict[str, float]:
    row = {"l2d": l2d, "l3d": l3d, "shape": shape, "aux": aux, **extra}
    w = LossWeights.from_preset("config")
    row["total"] = w.w_2d * l2d + w.w_3d_joint * l3d + w.w_prior * shape + aux
    row["total"] += extra.get("vert_in_total", 0.0)
    row.pop("vert_in_total", None)
    return row


def test_vertex_loss_in_total_though_flag_is_off(tmp_path: Path) -> None:
    rows = []
    for i in range(6):
        vert = 9000.0 - 500 * i
        row = _row(200.0 - i, 40000.0 - 1000 * i, 20.0, 0.3, vert_in_total=0.5 * vert)
        row = {**row, "vert": vert}
        rows.append(row)
    report = check_log(parse_log(_write_blocks(tmp_path, rows)))
    check = report.check("log_total_consistency")
    assert check.details["explanation"]["weight"] == "w_3d_vert"
    assert check.details["explanation"]["value"] == 0.5
    assert "use_vertex_loss is false" in check.message


def test_constant_total_is_stuck_and_zero_aux_only_warns(tmp_path: Path) -> None:
    rows = [_row(100.0 - i, 30000.0 - 10 * i, 10.0, 0.0) for i in range(25)]
    report = check_log(parse_log(_write_blocks(tmp_path, rows)))
    stuck = report.check("log_stuck")
    assert stuck.status.value == "warn"
    assert "Aux loss is exactly 0" in stuck.message and "no MANO ground truth" in stuck.message
    # the constant shape prior is suspicious but not fatal; the moving terms are not flagged
    assert {f["term"]: f["status"] for f in stuck.details["stuck"]} == {
        "shape_prior": "warn",
        "loss_aux": "warn",
    }

    frozen = [_row(100.0, 30000.0, 10.0, 0.2) for _ in range(25)]
    stuck = check_log(parse_log(_write_blocks(tmp_path, frozen))).check("log_stuck")
    assert stuck.status.value == "fail"
    terms = {f["term"]: f["status"] for f in stuck.details["stuck"]}
    assert terms["total"] == "fail" and terms["loss_2d"] == "fail"
    assert terms["loss_aux"] == "warn"
    assert "Total loss stays at 1501.21 in all of 25 blocks" in stuck.message


def test_zero_pose_prior_is_normal(tmp_path: Path) -> None:
    rows = [
        {**_row(100.0 - i, 30000.0 - 100 * i, 10.0 + i, 0.2 + i / 100), "pose": 0.0}
        for i in range(10)
    ]
    report = check_log(parse_log(_write_blocks(tmp_path, rows)))
    assert report.check("log_stuck").status.value == "pass"


def test_range_warning_reports_worst_block_and_count(tmp_path: Path) -> None:
    values = [450.0, 900.0, 600.0, 300.0, 200.0]
    rows = [_row(v, 30000.0, 10.0, 0.2) for v in values]
    check = check_log(parse_log(_write_blocks(tmp_path, rows))).check("log_loss_2d")
    assert check.status.value == "warn"
    assert check.value == 900.0 and check.threshold == 500.0
    assert check.details["outside_healthy"] == 2 and check.details["max_block"] == 1
    assert "in 2/5 blocks: worst 900 at epoch 0, iter 1, line 7; last 200" in check.message


def test_report_is_json_ready() -> None:
    report = run("nan_midway.log", config=DiagConfig())
    data = report.to_dict()
    assert data["command"] == "parse-log"
    assert data["log"]["blocks"] == 30
    assert data["log_terms"]["loss_aux"]["nonfinite"] == 13
    assert "nan" in data["log_terms"]["loss_aux"]["series"]
    report.to_json()  # allow_nan=False: would raise on a raw NaN


def test_the_config_ranges_replace_the_spec_ranges_in_the_log_checks(tmp_path) -> None:
    """spec_abnormal.log has the spec's 2D alarm value 10000 in a block: with the alarm raised
    above it (and the healthy bound too) the block is healthy."""
    assert run("spec_abnormal.log").check("log_loss_2d").status.value == "fail"
    config = tmp_path / "config.yaml"
    config.write_text("diag:\n  ranges:\n    loss_2d: {healthy_below: 20000, alarm_at: 50000}\n")
    check = run("spec_abnormal.log", config=load_config(config)).check("log_loss_2d")
    assert check.status.value == "pass" and check.threshold == 20000.0
