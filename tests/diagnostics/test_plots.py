"""grad-flow and overfit --plot: what the figures hold, and their bad paths before any model work."""

from __future__ import annotations

import numpy as np
import pytest
import utnet_toy

from utnet_diag.cli.app import main
from utnet_diag.diagnostics.grad_flow import grad_figure, grad_flow
from utnet_diag.diagnostics.overfit import overfit_figure
from utnet_diag.report.result import CheckResult, Report, Status

pytest.importorskip("matplotlib")


@pytest.mark.parametrize("exact", [True, False])
def test_the_heat_map_is_the_reports_attribution(toy_batch, exact):
    report = grad_flow(utnet_toy.ToyUTNet(), toy_batch, exact=exact)
    fig = grad_figure(report)
    heat = fig.axes[2].images[0].get_array()
    groups = report.sections["grad_modules"]["groups"]
    terms = [t for t in report.sections["grad_terms"]["terms"] if t["active"]]
    if exact:
        expected = [[g["term_norms"][t["term"]] for t in terms] for g in groups]
        got = np.ma.filled(heat, 0.0)
        assert np.allclose(got, np.where(np.isfinite(got), expected, 0.0))
        assert "(--exact)" in fig.axes[2].get_title()
    else:
        expected = [[float(g["name"] in t["reaches"]) for t in terms] for g in groups]
        assert np.array_equal(np.asarray(heat), expected)
    assert [t.get_text() for t in fig.axes[2].get_yticklabels()] == [g["name"] for g in groups]


def test_the_overfit_figure_has_the_pass_lines_and_mpjpe_apart():
    curves = {"total": [100.0, 50.0, 8.0], "loss_2d": [10.0, 5.0, 1.0],
              "loss_3d_joint": [1000.0, 400.0, 60.0], "mpjpe_mm": [30.0, 15.0, 6.0]}  # fmt: skip
    checks = [CheckResult("overfit_total_drop", Status.PASS, "", threshold=0.1),
              CheckResult("overfit_mpjpe", Status.PASS, "", threshold=10.0)]  # fmt: skip
    fig = overfit_figure(Report("overfit", checks, {"overfit_curves": curves}))
    losses, errors = fig.axes
    lines = {line.get_label(): line for line in losses.lines}
    assert list(lines["pass: total < 10% of its start"].get_ydata()) == [10.0, 10.0]
    total = lines["total (weighted)"]
    assert total.get_zorder() > max(lines[k].get_zorder() for k in ("2D keypoint loss",
                                                                     "3D joint loss"))  # fmt: skip
    assert errors.get_ylabel() == "MPJPE (mm)"
    assert list(errors.lines[0].get_ydata()) == [30.0, 15.0, 6.0]
    assert list(errors.lines[1].get_ydata()) == [10.0, 10.0]


@pytest.mark.parametrize("command", ["grad-flow", "overfit"])
@pytest.mark.parametrize(("name", "fragment"), [("p.jpg", "unsupported plot extension '.jpg'"),
                                                ("missing/p.png", "does not exist")])  # fmt: skip
def test_bad_plot_paths_exit_2_before_the_model(command, name, fragment, tmp_path, capsys,
                                                monkeypatch):  # fmt: skip
    import utnet_diag.diagnostics.runner as runner

    monkeypatch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    assert main([command, "--plot", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


@pytest.mark.parametrize("command", ["grad-flow", "overfit"])
def test_plot_without_matplotlib_exits_2_with_the_install_hint(command, tmp_path, capsys,
                                                               no_matplotlib):  # fmt: skip
    assert main([command, "--plot", str(tmp_path / "p.png")]) == 2
    assert "pip install 'utnet-diag[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def test_a_group_without_gradient_has_no_bar():
    # a detached coarse head: no gradient there; its bar must not be drawn at 1 (or anything)
    groups = [
        {"name": "backbone", "role": "trunk", "grad_norm": 3.0, "ratio": 0.2},
        {"name": "coarse_head", "role": "head", "grad_norm": 0.0, "ratio": 0.0},
        {"name": "refine", "role": "head", "grad_norm": float("nan"), "ratio": None},
    ]
    report = Report("grad-flow", [], {"grad_modules": {"groups": groups},
                                      "grad_terms": {"terms": []}})  # fmt: skip
    fig = grad_figure(report)
    norms = [bar.get_width() for bar in fig.axes[0].patches]
    ratios = [bar.get_width() for bar in fig.axes[1].patches]
    assert norms == [3.0, 1e-30, 1e-30] and ratios == [0.2, 1e-30, 1e-30]
    assert fig.axes[2].get_title() == "per-term attribution: no active loss term"
