"""The log checks' rules at their limits, on logs written here block by block: how many blocks
make a verdict, the divergence ratio, and the printing tolerance of the total."""

from __future__ import annotations

from pathlib import Path

import pytest

from utnet_diag.config import DiagConfig, LossWeights
from utnet_diag.logs.checks import LogCheckOptions, diagnose_log


def write_log(path: Path, blocks: list[dict[str, float]]) -> Path:
    labels = {"2d": "2D keypoint loss", "3d": "3D joint loss", "prior": "Prior loss (shape)",
              "aux": "Aux loss", "total": "Total loss"}  # fmt: skip
    lines = []
    for i, block in enumerate(blocks):
        lines.append(f"[Epoch 0, Iter {i * 10}] Loss breakdown:")
        lines += [f"  {labels[k]}: {v:.4f}" for k, v in block.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def block(d2: float, d3: float, prior: float = 1.0, aux: float = 0.1, w=(1.0, 1.0, 0.001)):
    total = w[0] * d2 + w[1] * d3 + w[2] * prior + aux
    return {"2d": d2, "3d": d3, "prior": prior, "aux": aux, "total": total}


RECOMMENDED = DiagConfig(weights=LossWeights.from_preset("recommended"))


def check(path: Path, check_id: str, **options):
    report = diagnose_log(path, RECOMMENDED, LogCheckOptions(weights_given=True, **options))
    return report.check(check_id)


def falling(n: int) -> list[dict[str, float]]:
    return [block(400.0 - 10 * i, 60000.0 - 1000 * i, prior=2.0 + 0.1 * i, aux=0.5 - 0.01 * i)
            for i in range(n)]  # fmt: skip


def test_stuck_needs_five_blocks_and_a_whole_window(tmp_path):
    # the aux loss exactly 0 in every block: judged from 5 blocks (stuck_min_blocks) on
    four = [dict(b, aux=0.0, total=b["total"] - b["aux"]) for b in falling(4)]
    assert check(write_log(tmp_path / "a.log", four), "log_stuck").status.value == "skip"
    five = [dict(b, aux=0.0, total=b["total"] - b["aux"]) for b in falling(5)]
    result = check(write_log(tmp_path / "b.log", five), "log_stuck")
    assert result.status.value == "warn" and "Aux loss is exactly 0 in all of 5" in result.message
    # a run of 19 equal 2D values in 30 blocks is shorter than the window of 20: not stuck
    blocks = falling(30)
    for b in blocks[5:24]:
        b.update(block(300.0, b["3d"], b["prior"], b["aux"]))
    assert check(write_log(tmp_path / "c.log", blocks), "log_stuck").status.value == "pass"
    blocks[24].update(block(300.0, blocks[24]["3d"], blocks[24]["prior"], blocks[24]["aux"]))
    result = check(write_log(tmp_path / "d.log", blocks), "log_stuck")
    assert (
        result.status.value == "fail" and "stays at 300 in 20 consecutive of 30" in result.message
    )


def test_divergence_is_the_last_window_over_1_5x_the_best(tmp_path):
    # 16 blocks, windows of 4: window medians 1000, 800, 600 and then the last window
    def log(last: float) -> Path:
        totals = [1000.0] * 4 + [800.0] * 4 + [600.0] * 4 + [last] * 4
        blocks = [block(0.0, t, prior=0.0, aux=0.0) for t in totals]
        return write_log(tmp_path / f"{last}.log", blocks)

    at = check(log(900.0), "log_trend")  # 900 = 1.5 x 600: not above it, only no progress
    assert at.status.value == "warn" and at.details["trends"]["total"]["trend"] == "plateau"
    above = check(log(901.0), "log_trend")
    assert above.status.value == "fail" and "1.50x its best window" in above.message
    assert above.details["trends"]["total"]["best_median"] == 600.0


def test_total_consistency_tolerates_exactly_the_printing(tmp_path):
    # Values printed with 4 decimals are off by at most half a unit, 0.00005 each: with weights
    # (1, 1, 0.001, aux 1) that is 0.00005 * 3.001 for the terms and 0.00005 for the total, plus
    # 1e-5 of the larger of |total| and the weighted sum for float32 sums.
    rows = [(40.0, 60.0, 2.0, 0.5), (50.0, 70.0, 20.0, 0.4), (45.0, 80.0, 200.0, 0.3)]
    exact = [d2 + d3 + 0.001 * prior + aux for d2, d3, prior, aux in rows]
    # (the logged total, e + gap, is the larger)
    tolerance = [0.00005 * 3.001 + 0.00005 + 1e-5 * (e + 0.0011) for e in exact]

    def log(gap: float) -> Path:
        blocks = [{"2d": d2, "3d": d3, "prior": prior, "aux": aux, "total": e + gap}
                  for (d2, d3, prior, aux), e in zip(rows, exact)]  # fmt: skip
        return write_log(tmp_path / f"{gap}.log", blocks)

    ok = check(log(0.0011), "log_total_consistency")
    assert ok.status.value == "pass" and ok.threshold == pytest.approx(max(tolerance))
    one = check(log(0.0013), "log_total_consistency")  # over the first block's tolerance only
    assert one.details["blocks_mismatched"] == 1
    off = check(log(0.01), "log_total_consistency")
    assert off.status.value == "fail" and off.details["blocks_mismatched"] == 3
    assert "no single term or weight explains it" in off.message


def test_vertex_loss_enabled_but_never_logged_is_named(tmp_path):
    config = DiagConfig(weights=LossWeights.from_preset("code"))  # w_3d_vert 0.5
    config = DiagConfig(weights=__import__("dataclasses").replace(config.weights,
                                                                  use_vertex_loss=True))  # fmt: skip
    blocks = [block(10.0, 100.0, w=(1.0, 1.0, 0.01)) for _ in range(3)]
    report = diagnose_log(write_log(tmp_path / "v.log", blocks), config,
                          LogCheckOptions(weights_given=True))  # fmt: skip
    details = report.check("log_total_consistency").details
    assert details["note"] == "use_vertex_loss is true but no '3D vertex loss' line is printed"


@pytest.mark.parametrize("n", [7, 8])
def test_trend_needs_eight_blocks(tmp_path, n):
    result = check(write_log(tmp_path / "t.log", falling(n)), "log_trend")
    assert result.status.value == ("skip" if n < 8 else "pass")
