"""``weight_advice`` in loss-breakdown and grad-flow, and ``--target-shares`` on the CLI."""

from __future__ import annotations

import json

import pytest

from utnet_diag.cli.app import main


@pytest.mark.parametrize("command", ["loss-breakdown", "grad-flow"])
def test_weight_advice_section_on_the_embedded_default(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--json", "--target-shares", "2d=0.25,3d=0.75"]) in (0, 1)
    section = json.loads(capsys.readouterr().out)["weight_advice"]
    rows = {r["term"]: r for r in section["rows"]}
    assert section["target_shares"] == {"loss_2d": 0.25, "loss_3d_joint": 0.75}
    assert rows["loss_3d_joint"]["share"] > 0.99 and rows["loss_2d"]["weight"] == 0.01
    # w'_2d / w'_3d = (w_2d * 0.25 / s_2d) / (w_3d * 0.75 / s_3d)
    ratio = rows["loss_2d"]["recommended"] / rows["loss_3d_joint"]["recommended"]
    expected = (0.01 * 0.25 / rows["loss_2d"]["share"]) / (
        0.05 * 0.75 / rows["loss_3d_joint"]["share"]
    )
    assert ratio == pytest.approx(expected, rel=1e-9)
    assert "millimetres" in section["explanation"]


def test_rendered_advice(capsys: pytest.CaptureFixture[str]) -> None:
    main(["grad-flow"])
    out = capsys.readouterr().out
    assert "loss-weight advice" in out and "same 3D weight" in out and "millimetres" in out


@pytest.mark.parametrize("command", ["loss-breakdown", "grad-flow"])
@pytest.mark.parametrize(
    ("value", "message"),
    [("2d:0.5", "has no '='"), ("2d=x", "is not a number"), ("foo=1", "unknown term 'foo'")],
)
def test_malformed_target_shares_exit_2(
    command: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--target-shares", value]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err
