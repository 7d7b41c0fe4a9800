"""The loss and prediction checks on hand-built loss tables and outputs: the spec's numbers (9.2
healthy, 9.4 alarms) are written here as the spec gives them, and each is probed on both sides."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch

from utnet_diag.checks import loss as L
from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.config import DiagConfig, LossWeights
from utnet_diag.diagnostics.loss_table import LossSummary
from utnet_diag.report.result import Status


def row(term: str, logged: float, **kw: Any) -> dict[str, Any]:
    return {"term": term, "logged": logged, "weight": kw.pop("weight", 1.0), "batch_size": 16,
            "per_sample": logged / 16, "per_element": None, "unit": None, "share": None,
            "parts": {}, **kw}  # fmt: skip


def summary(*rows: dict[str, Any], skipped: dict[str, str] | None = None) -> LossSummary:
    total = sum(r["logged"] for r in rows)
    return LossSummary(list(rows), total, 16, skipped or {})


def run(check_id: str, losses: Any = None, config: Any = None, **kw: Any):
    registry = L.PREDICTION_CHECKS if check_id.startswith("pred_") else L.LOSS_CHECKS
    ctx = CheckContext(losses=losses, config=config or DiagConfig(), **kw)
    (result,) = run_checks([s for s in registry.specs if s.id == check_id], ctx)
    return result


# --- the spec's numbers, independent of spec.py ------------------------------------------------


@pytest.mark.parametrize(
    ("check_id", "term", "cases"),
    [
        # spec 9.2: L_2D < 500; spec 9.4: 10000 "too large"
        ("loss_2d", "loss_2d", [(499.9, Status.PASS), (500.0, Status.WARN), (9999.0, Status.WARN),
                                (10000.0, Status.FAIL)]),
        # spec 9.2: L_3D_joint < 80000; 9.4: exactly 0 is an alarm
        ("loss_3d_joint", "loss_3d_joint", [(1e-9, Status.PASS), (79999.0, Status.PASS),
                                            (80000.0, Status.WARN), (0.0, Status.FAIL)]),
        # spec 9.2: L_prior < 100; 9.4: 5000 "too large"
        ("loss_prior", "loss_prior", [(99.9, Status.PASS), (100.0, Status.WARN),
                                      (4999.0, Status.WARN), (5000.0, Status.FAIL)]),
        # spec 9.2: L_aux < 1.0
        ("loss_aux", "loss_aux", [(0.999, Status.PASS), (1.0, Status.WARN)]),
    ],
)  # fmt: skip
def test_spec_ranges(check_id: str, term: str, cases: list[tuple[float, Status]]):
    for value, status in cases:
        parts = {"aux_pose": 1.0} if term == "loss_aux" else {}
        result = run(check_id, summary(row(term, value, parts=parts)))
        assert result.status is status, (value, result.message)
        assert result.value == value


def test_thresholds_reported_are_the_ones_crossed():
    assert run("loss_2d", summary(row("loss_2d", 600.0))).threshold == 500
    assert run("loss_2d", summary(row("loss_2d", 2e4))).threshold == 10000
    assert run("loss_prior", summary(row("loss_prior", 6000.0))).threshold == 5000


def test_messages_state_the_batch_and_the_per_sample_figure():
    r = row("loss_2d", 320.0, per_element=0.03125, unit="crop", per_element_px256=8.0)
    text = run("loss_2d", summary(r)).message
    assert "batch sum over 16 samples; 20 a sample" in text
    assert "mean error 0.03125 crop = 8 px@256" in text


def test_aux_zero_without_ground_truth_mano_is_normal_and_vertices_zero_is_not():
    result = run("loss_aux", summary(row("loss_aux", 0.0)))
    assert result.status is Status.PASS and "no sample has ground-truth MANO" in result.message
    assert run("loss_vert", summary(row("loss_3d_vert", 0.0))).status is Status.FAIL
    assert run("loss_vert", summary(row("loss_3d_vert", 1.0))).status is Status.PASS


def test_a_term_turned_off_skips_and_a_term_missing_its_inputs_fails():
    """Nothing passes by omission: a spec term with missing inputs fails and says which keys."""
    missing = summary(skipped={"loss_2d": "the batch has no keypoints_2d"})
    result = run("loss_2d", missing)
    assert result.status is Status.FAIL and "the batch has no keypoints_2d" in result.message
    assert "diag: {key_map: {keypoints_2d: <your key>}}" in result.hint
    assert "--ignore loss_2d" in result.hint
    prior = run("loss_prior", summary(skipped={"loss_prior": "the model output has no betas"}))
    assert prior.status is Status.FAIL and "mano_params.betas" in prior.hint
    assert "--output-map" in prior.hint
    vert = run("loss_vert", summary(skipped={"loss_3d_vert": "the batch has no vertices_3d"}))
    assert vert.status is Status.FAIL and "--ignore loss_vert" in vert.hint
    for check_id, term in (("loss_3d_joint", "loss_3d_joint"), ("loss_prior", "loss_prior"),
                           ("loss_aux", "loss_aux"), ("loss_vert", "loss_3d_vert")):  # fmt: skip
        assert run(check_id, summary()).status is Status.FAIL, check_id
        off = summary(skipped={term: "use_x is false"})
        off.off = frozenset({term})
        result = run(check_id, off)
        assert result.status is Status.SKIP and "use_x is false" in result.message, check_id


def test_non_finite_term_fails_finite_and_skips_the_rest():
    s = summary(row("loss_2d", math.nan), row("loss_3d_joint", 10.0))
    results = run_checks(L.LOSS_CHECKS.specs, CheckContext(losses=s, config=DiagConfig()))
    by_id = {r.id: r for r in results}
    assert by_id["loss_finite"].status is Status.FAIL and by_id["loss_finite"].value == [
        "loss_2d",
        "total",
    ]
    for check_id in ("loss_2d", "loss_3d_joint", "loss_prior", "loss_aux"):
        assert by_id[check_id].status is Status.SKIP
    only_total = summary(row("loss_2d", 1.0))
    only_total.total = math.inf
    assert run("loss_finite", only_total).value == ["total"]


# --- loss_weights -----------------------------------------------------------------------------


def _weights(**values: float) -> DiagConfig:
    return DiagConfig(weights=dataclasses.replace(LossWeights.from_preset("recommended"), **values))


def test_recommended_weights_pass_and_each_range_edge_is_inclusive():
    shares = summary(row("loss_2d", 1.0, share=0.5), row("loss_3d_joint", 1.0, share=0.5))
    assert run("loss_weights", shares, _weights()).status is Status.PASS
    # spec 9.1: w_prior 0.001-0.01, w_aux 0.001-0.1, w_2d and w_3d_joint 1.0
    for key, value in (("w_prior", 0.001), ("w_prior", 0.01), ("w_aux", 0.001), ("w_aux", 0.1)):
        assert run("loss_weights", shares, _weights(**{key: value})).status is Status.PASS
    for key, value in (("w_prior", 0.0009), ("w_prior", 0.011), ("w_aux", 0.2), ("w_2d", 0.5),
                       ("w_3d_joint", 2.0)):  # fmt: skip
        result = run("loss_weights", shares, _weights(**{key: value}))
        assert result.status is Status.WARN and result.value == {key: value}, key


def test_config_preset_is_flagged_with_the_factor():
    result = run("loss_weights", summary(row("loss_2d", 1.0)), DiagConfig())
    assert result.status is Status.WARN
    assert "w_2d=0.01 is 100x below the recommended 1" in result.message
    assert "w_3d_joint=0.05 is 20x below the recommended 1" in result.message


def test_dominance_above_ninety_percent_is_information_with_recommended_weights():
    rows = [row("loss_2d", 1.0, share=0.09, per_element=0.01),
            row("loss_3d_joint", 1.0, share=0.91, per_element=5.0)]  # fmt: skip
    result = run("loss_weights", summary(*rows), _weights())
    assert result.status is Status.PASS and result.details["dominant"] == "loss_3d_joint"
    assert "loss_3d_joint makes 91.0% of the weighted total" in result.message
    assert "500x smaller per element" in result.message
    rows[0]["share"], rows[1]["share"] = 0.11, 0.89
    assert run("loss_weights", summary(*rows), _weights()).details["dominant"] is None
    # with weights outside the ranges, the dominance joins the warning
    rows[0]["share"], rows[1]["share"] = 0.05, 0.95
    result = run("loss_weights", summary(*rows), _weights(w_2d=0.01))
    assert result.status is Status.WARN and "95.0% of the weighted total" in result.message


def test_shares_are_not_claimed_when_a_term_is_not_finite():
    rows = [row("loss_2d", math.nan, share=None), row("loss_3d_joint", 1.0, share=1.0)]
    result = run("loss_weights", summary(*rows), _weights())
    assert result.details["shares"] == {} and "loss_2d non-finite" in result.message


# --- predictions ------------------------------------------------------------------------------


def _hand(b: int = 4, scale: float = 1.0) -> torch.Tensor:
    """(b, 21, 3) joints spanning exactly 100 * scale: the wrist at the origin, the middle tip at
    (0, 100, 0) and the other joints inside the ball those two are the diameter of."""
    gen = torch.Generator().manual_seed(0)
    direction = torch.nn.functional.normalize(torch.randn(b, 21, 3, generator=gen), dim=-1)
    joints = direction * torch.rand(b, 21, 1, generator=gen) * 45.0 + torch.tensor([0, 50.0, 0])
    joints[:, 0] = 0.0
    joints[:, 12] = torch.tensor([0.0, 100.0, 0.0])
    return joints * scale


def test_degenerate_predictions():
    ok = {"keypoints_3d": _hand()}
    assert run("pred_degenerate", outputs=ok).status is Status.PASS
    result = run("pred_degenerate", outputs={"keypoints_3d": torch.zeros(4, 21, 3)})
    assert result.status is Status.FAIL and "all zero in 4/4 samples" in result.message
    collapsed = _hand()
    collapsed[1] = collapsed[1, :1]  # every joint of sample 1 at one point
    result = run("pred_degenerate", outputs={"keypoints_3d": collapsed})
    assert "collapse to one point in 1/4 samples" in result.message
    same = _hand()[:1].repeat(3, 1, 1)
    assert "identical for all 3 samples" in run("pred_degenerate",
                                               outputs={"keypoints_3d": same}).message  # fmt: skip
    assert run("pred_degenerate", outputs={}).status is Status.SKIP


def test_kp3d_units_against_the_ground_truth_and_alone():
    gt = {"keypoints_3d": _hand()}
    metres = run("pred_kp3d_units", outputs={"keypoints_3d": _hand(scale=1e-3)}, batch=gt)
    assert metres.status is Status.FAIL and "predictions look like metres, GT mm" in metres.message
    assert metres.value == pytest.approx(1e-3)
    cm = run("pred_kp3d_units", outputs={"keypoints_3d": _hand(scale=10.0)}, batch=gt)
    assert cm.status is Status.FAIL and "GT looks like centimetres" in cm.message
    for scale, status in ((4.9, Status.PASS), (5.1, Status.FAIL), (0.21, Status.PASS),
                          (0.19, Status.FAIL)):  # fmt: skip
        result = run("pred_kp3d_units", outputs={"keypoints_3d": _hand(scale=scale)}, batch=gt)
        assert result.status is status, scale
    # without GT: an adult hand spans 50-400 mm; 5-40 is centimetres, 0.05-0.4 metres
    for scale, status in ((1.0, Status.PASS), (0.5, Status.PASS), (4.0, Status.PASS),
                          (0.45, Status.WARN), (4.1, Status.WARN), (0.2, Status.FAIL),
                          (3e-3, Status.FAIL)):  # fmt: skip
        result = run("pred_kp3d_units", outputs={"keypoints_3d": _hand(scale=scale)})
        assert result.status is status, scale
    assert run("pred_kp3d_units", outputs={"keypoints_3d": _hand()}).value == pytest.approx(100.0)
    assert (
        "centimetres, not mm? (multiply by 10)"
        in run("pred_kp3d_units", outputs={"keypoints_3d": _hand(scale=0.2)}).message
    )


def test_kp2d_range_and_spread():
    torch.manual_seed(1)
    gt = torch.rand(4, 21, 2) * 0.6 - 0.3
    batch = {"keypoints_2d": torch.cat([gt, torch.ones(4, 21, 1)], -1)}
    ok = run("pred_kp2d_range", outputs={"keypoints_2d": gt * 1.2}, batch=batch)
    assert ok.status is Status.PASS and "spread 1.2x the ground truth's" in ok.message
    # confidences weight the ground truth's spread; the prediction's counts the same joints
    half = {"keypoints_2d": torch.cat([gt, torch.full((4, 21, 1), 0.5)], -1)}
    half["keypoints_2d"][:, :10, 2] = 1.0
    weighted = run("pred_kp2d_range", outputs={"keypoints_2d": gt * 1.2}, batch=half)
    assert "spread 1.2x the ground truth's" in weighted.message
    small = run("pred_kp2d_range", outputs={"keypoints_2d": gt / 11.0}, batch=batch)
    assert small.status is Status.FAIL and "11x too small" in small.message
    nine = run("pred_kp2d_range", outputs={"keypoints_2d": gt / 9.0}, batch=batch)
    assert nine.status is Status.PASS and "spread 0.111x" in nine.message
    # no GT: beyond 0.5 warns, beyond 1.0 fails, beyond 10 says pixels
    pred = torch.zeros(2, 21, 2)
    pred[:, 1] = 0.1
    for worst, status in ((0.5, Status.PASS), (0.6, Status.WARN), (1.01, Status.FAIL)):
        pred[1, 5, 0] = worst
        result = run("pred_kp2d_range", outputs={"keypoints_2d": pred})
        assert result.status is status and result.value == pytest.approx(worst), worst
    pred[1, 5, 0] = 128.0
    result = run("pred_kp2d_range", outputs={"keypoints_2d": pred})
    assert "1/2 samples" in result.message and "at sample 1, joint 5" in result.message
    assert "looks like pixels" in result.message


def test_aux_target_convention_needs_coarse_pose_and_a_target():
    from utnet_diag.checks.conventions import PREDICTION_CONVENTION_CHECKS

    def aux(outputs, batch):
        ctx = CheckContext(outputs=outputs, batch=batch, config=DiagConfig())
        specs = [s for s in PREDICTION_CONVENTION_CHECKS.specs if s.id == "aux_target_convention"]
        return run_checks(specs, ctx)[0]

    coarse = {"coarse_pose": torch.zeros(2, 48)}
    assert (
        aux({}, {"mano_pose": torch.zeros(2, 48)}).message == "no coarse_pose in the model outputs"
    )
    assert aux(coarse, {"keypoints_3d": _hand(2)}).message == "no mano_pose in batch"
    assert aux(coarse, None).message == "no mano_pose in batch"
    wrong = aux(coarse, {"mano_pose": torch.zeros(2, 51)})
    assert wrong.status is Status.FAIL and "(2, 48)" in wrong.message and "(2, 51)" in wrong.message


def test_the_config_ranges_replace_the_spec_ranges_and_say_so():
    config = DiagConfig(ranges={"loss_2d": {"healthy_below": 1000.0}}, path="cfg.yaml")
    assert run("loss_2d", summary(row("loss_2d", 800.0))).status is Status.WARN  # spec: < 500
    result = run("loss_2d", summary(row("loss_2d", 800.0)), config)
    assert result.status is Status.PASS and result.threshold == 1000.0
    assert result.message.endswith("(range from cfg.yaml diag.ranges)")
    alarm = run("loss_2d", summary(row("loss_2d", 12000.0)), config)  # the spec's alarm stays
    assert alarm.status is Status.FAIL and alarm.threshold == 10000.0
    aux = DiagConfig(ranges={"loss_aux": {"healthy_below": 0.5, "alarm_at": 2.0}}, path="c")
    assert run("loss_aux", summary(row("loss_aux", 3.0, parts={"aux_pose_mse": 1.0})),
               aux).status is Status.FAIL  # fmt: skip
