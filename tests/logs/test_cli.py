"""``utnet-diag parse-log``: exit codes, stdout/stderr discipline, plots, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from utnet_diag.cli.app import main
from utnet_diag.cli.render_log import compact, resample, sparkline

FIXTURES = Path(__file__).parents[1] / "fixtures" / "logs"


def test_healthy_log_exit_0_and_rich_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse-log", str(FIXTURES / "tqdm_debug.log")]) == 0
    out = capsys.readouterr().out
    assert "40 loss blocks" in out
    assert "loss terms over the log" in out
    assert "▁" in out and "█" in out  # sparklines
    assert "PASSED" in out


def test_json_only_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse-log", str(FIXTURES / "spec_abnormal.log"), "--json"]) == 1
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["command"] == "parse-log"
    assert data["status"] == "fail"
    failed = {c["id"] for c in data["checks"] if c["status"] == "fail"}
    assert failed == {"log_finite", "log_loss_2d", "log_loss_3d_joint", "log_loss_prior"}
    assert captured.err == ""


def test_spec_normal_warns_and_fail_on_warn_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(FIXTURES / "spec_normal.log")
    assert main(["parse-log", path]) == 0
    assert main(["parse-log", path, "--fail-on", "warn"]) == 1
    assert main(["parse-log", path, "--preset", "config"]) == 1  # weights named: a real mismatch
    capsys.readouterr()


def test_config_option_and_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "log.xml"
    args = ["parse-log", str(FIXTURES / "vertex_pose.log"), "--json", "--junit", str(junit)]
    assert main(args + ["--config", str(FIXTURES / "vertex_pose.yaml")]) == 0
    assert '<testcase name="log_total_consistency"' in junit.read_text()
    assert json.loads(capsys.readouterr().out)["status"] == "pass"


@pytest.mark.slow
def test_plot_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "curves.png"
    assert main(["parse-log", str(FIXTURES / "nan_midway.log"), "--plot", str(plot), "--json"]) == 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(capsys.readouterr().out)["log"]["plot"] == str(plot)
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary left behind


def _assert_input_error(capsys: pytest.CaptureFixture[str], code: int, *needles: str) -> None:
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("utnet-diag: error:")
    assert "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("empty.log", "log file is empty (0 bytes)"),
        (
            "no_blocks.log",
            "no loss blocks found; expected lines like '[Epoch 0, Iter 0] Loss breakdown:'",
        ),
        ("binary.log", "not a text log"),
        ("does_not_exist.log", "log file not found"),
    ],
)
def test_bad_log_files_exit_2(name: str, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    _assert_input_error(capsys, main(["parse-log", str(FIXTURES / name)]), needle)


def test_bad_plot_path_exit_2_before_parsing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = str(FIXTURES / "tqdm_debug.log")
    code = main(["parse-log", log, "--plot", str(tmp_path / "curves.jpg")])
    _assert_input_error(capsys, code, "unsupported plot extension '.jpg'")
    code = main(["parse-log", log, "--plot", str(tmp_path / "missing" / "c.png")])
    _assert_input_error(capsys, code, "output directory does not exist")


def test_plot_without_matplotlib_says_how_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_matplotlib: None
) -> None:
    code = main(["parse-log", str(FIXTURES / "spec_normal.log"), "--plot", str(tmp_path / "c.png")])
    _assert_input_error(capsys, code, "pip install 'utnet-diag[plot]'")
    assert not (tmp_path / "c.png").exists()


def test_bad_config_and_preset_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = str(FIXTURES / "spec_normal.log")
    bad = tmp_path / "config.yaml"
    bad.write_text("loss:\n  w_2dd: 1.0\n")
    _assert_input_error(capsys, main(["parse-log", log, "--config", str(bad)]), "w_2dd")
    code = main(["parse-log", log, "--preset", "nope"])
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err and captured.out == ""


def test_sparkline_scales_and_marks_nan() -> None:
    assert sparkline([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]).plain == "▁▂▃▄▅▆▇█"
    assert sparkline([1.0, None, float("nan"), 1.0]).plain == "▁ ×▁"
    # log scale when positive values span more than 100x
    assert sparkline([1.0, 10.0, 100.0, 1000.0]).plain == "▁▃▆█"
    assert sparkline([]).plain == ""


def test_resample_and_compact() -> None:
    assert resample([1.0, 3.0, 5.0, float("nan"), None, None], 3)[0] == 2.0
    assert resample([1.0, 3.0, 5.0, float("nan"), None, None], 3)[2] is None
    assert compact(73632.9062) == "73.6k" and compact(334.8019) == "334.8"
    assert compact(2.5e6) == "2.5M" and compact(float("nan")) == "nan" and compact(None) == "-"


def test_one_block_is_singular(capsys: pytest.CaptureFixture[str]) -> None:
    main(["parse-log", str(FIXTURES / "spec_normal.log")])
    out = capsys.readouterr().out
    assert "1 loss block from" in out and "1 loss blocks" not in out


def test_the_summary_states_where_the_log_starts_and_ends_and_the_iteration_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Iterations restart each epoch: 'iters 10..280' for a log that runs 10..5000 in every
    epoch was wrong; the summary names the first and last block and the range within an epoch."""
    block = "[Epoch {e}, Iter {i}] Loss breakdown:\n  2D keypoint loss: 100.0\n"
    text = "".join(block.format(e=e, i=i) for e in range(3) for i in (10, 5000, 280))
    log = tmp_path / "train.log"
    log.write_text(text)
    main(["parse-log", str(log), "--json"])
    section = json.loads(capsys.readouterr().out)["log"]
    assert (section["first_epoch"], section["first_iter"]) == (0, 10)
    assert (section["last_epoch"], section["last_iter"]) == (2, 280)
    assert section["iter_range"] == [10, 5000]
    main(["parse-log", str(log)])
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "9 loss blocks from epoch 0 iter 10 to epoch 2 iter 280 (epochs 0-2, iters 10..5000" in out
    )
