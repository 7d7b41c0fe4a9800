"""parse-log --plot: the iteration on the x axis, the spec's ranges as bands, NaN/Inf marked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from utnet_diag.config import load_config
from utnet_diag.logs.parse import parse_log
from utnet_diag.logs.plot import iteration_axis, log_figure

pytest.importorskip("matplotlib")


def test_a_global_step_count_is_the_axis_itself():
    x, label = iteration_axis(np.array([0, 0, 1, 1]), np.array([10, 20, 30, 40]))
    assert label == "iteration" and list(x) == [10, 20, 30, 40]


def test_iterations_that_restart_each_epoch_become_fractional_epochs():
    epochs = np.array([0, 0, 0, 1, 1, 1])
    iters = np.array([0, 100, 200, 0, 100, 200])
    x, label = iteration_axis(epochs, iters)
    # the largest iteration (200) plus the step between blocks (100): 300 per epoch
    assert np.allclose(x, [0, 1 / 3, 2 / 3, 1, 4 / 3, 5 / 3])
    assert label == "epoch (+ iteration / 300 within it)"


def _log(tmp_path, values_2d):
    path = tmp_path / "train.log"
    with open(path, "w") as h:
        for k, v in enumerate(values_2d):
            e, i = divmod(k, 5)
            h.write(f"[Epoch {e}, Iter {i * 10}] Loss breakdown:\n  2D keypoint loss: {v}\n"
                    f"  3D joint loss: 70000.0\n  Prior loss (shape): 70.0\n  Aux loss: 0.5\n"
                    f"  Total loss: 3800.0\n")  # fmt: skip
    return parse_log(path)


def test_bands_alarm_and_nan_crosses(tmp_path):
    values = [9000.0, 6000.0, 4000.0, "nan", 2000.0, 1200.0, 800.0, 600.0, 450.0, 400.0]
    fig = log_figure(_log(tmp_path, values), load_config())
    ax = fig.axes[0]  # the 2D keypoint loss
    assert ax.get_ylabel() == "2D keypoint loss"
    assert fig.axes[-1].get_xlabel() == "epoch (+ iteration / 50 within it)"
    labels = ax.get_legend_handles_labels()[1]
    assert "healthy < 500 (the spec)" in labels and "alarm 10000" in labels
    assert "NaN/Inf (1 blocks)" in labels
    band = next(p for p in ax.patches)
    assert math.isclose(band.get_path().get_extents(band.get_transform()).y1,
                        ax.transData.transform((0, 500))[1], rel_tol=1e-6)  # fmt: skip
    cross = next(line for line in ax.lines if line.get_marker() == "x")
    assert list(cross.get_xdata()) == [3 / 5]  # block 3: epoch 0, iter 30 of 50
    # the prior (70) is 70x below its alarm (5000): no alarm line to flatten its curve
    prior = fig.axes[2]
    assert "alarm 5000" not in prior.get_legend_handles_labels()[1]


def test_the_configs_ranges_are_drawn(tmp_path):
    config_file = tmp_path / "config.yaml"
    config_file.write_text("diag:\n  ranges:\n    loss_2d: {healthy_below: 3000}\n")
    fig = log_figure(_log(tmp_path, [5000.0, 4000.0, 2500.0]), load_config(config_file))
    assert any(label.startswith("healthy < 3000 (") and "diag.ranges" in label
               for label in fig.axes[0].get_legend_handles_labels()[1])  # fmt: skip
