"""CSV and JSON-lines logs: the same run logged three ways gives the same findings."""

from __future__ import annotations

import json

import pytest

from utnet_diag.cli.app import main
from utnet_diag.errors import InputError
from utnet_diag.logs.checks import diagnose_log
from utnet_diag.logs.tables import match_columns, normalize, parse_columns

LABELS = {"loss_2d": "2D keypoint loss", "loss_3d_joint": "3D joint loss",
          "shape_prior": "Prior loss (shape)", "loss_aux": "Aux loss", "total": "Total loss"}  # fmt: skip
WEIGHTS = {"loss_2d": 0.01, "loss_3d_joint": 0.05, "shape_prior": 0.001, "loss_aux": 1.0}


def _run(blocks: int = 60) -> list[dict[str, str]]:
    """Printed values of a run: the 3D term far over its range, a NaN at block 40, the total the
    weighted sum (config preset) except in block 50, where it is 10 off."""
    rows = []
    for i in range(blocks):
        v = {"loss_2d": 300.0 - i, "loss_3d_joint": 90000.0 - 100 * i, "shape_prior": 70.0,
             "loss_aux": 5.0 + 0.01 * i}  # fmt: skip
        total = sum(WEIGHTS[t] * x for t, x in v.items()) + (10.0 if i == 50 else 0.0)
        row = {t: f"{x:.4f}" for t, x in v.items()}
        row["total"] = f"{total:.4f}"
        if i == 40:
            row["loss_2d"] = "nan"
        rows.append({"epoch": str(i // 20), "step": str(i % 20 * 10), **row})
    return rows


def _write_text(path, rows):
    with open(path, "w") as handle:
        for r in rows:
            handle.write(f"[Epoch {r['epoch']}, Iter {r['step']}] Loss breakdown:\n")
            for term, label in LABELS.items():
                handle.write(f"  {label}: {r[term]}\n")
    return path


def _write_csv(path, rows, names):
    with open(path, "w") as handle:
        handle.write("epoch,step," + ",".join(names[t] for t in LABELS) + ",lr\n")
        for r in rows:
            handle.write(
                ",".join([r["epoch"], r["step"]] + [r[t] for t in LABELS] + ["0.001"]) + "\n"
            )
    return path


def _write_jsonl(path, rows, names):
    with open(path, "w") as handle:
        for r in rows:
            # numbers as JSON numbers, keeping their printed digits
            body = ", ".join(f'"{names[t]}": {r[t] if r[t] != "nan" else "NaN"}' for t in LABELS)
            handle.write(f'{{"epoch": {r["epoch"]}, "step": {r["step"]}, {body}}}\n')
    return path


def _findings(report) -> dict[str, tuple[str, object]]:
    return {c.id: (c.status.value, c.value) for c in report.checks}


def test_text_csv_and_jsonl_give_the_same_findings(tmp_path):
    from utnet_diag.config import load_config

    rows = _run()
    common = {"loss_2d": "train/loss_2d_step", "loss_3d_joint": "train/loss_3d_joint_step",
              "shape_prior": "train/loss_prior_step", "loss_aux": "train/loss_aux_step",
              "total": "train/loss_step"}  # fmt: skip
    config = load_config(None, "config")
    text = diagnose_log(_write_text(tmp_path / "train.log", rows), config)
    csv_ = diagnose_log(_write_csv(tmp_path / "metrics.csv", rows, common), config)
    jsonl = diagnose_log(_write_jsonl(tmp_path / "metrics.jsonl", rows, common), config)
    expected = _findings(text)
    assert expected["log_finite"][0] == "fail" and expected["log_loss_3d_joint"][0] in (
        "warn",
        "fail",
    )
    assert expected["log_total_consistency"][0] != "pass"
    assert _findings(csv_) == expected
    assert _findings(jsonl) == expected
    assert csv_.sections["log"]["blocks"] == text.sections["log"]["blocks"] == 60


def test_wandb_exports_give_the_same_findings(tmp_path):
    """A W&B chart panel's CSV export: 'Step', '<run> - <metric>' and __MIN/__MAX band columns
    (which hold the same values here, as for a single run, and must not be read as terms)."""
    from utnet_diag.config import load_config

    rows = _run()
    config = load_config(None, "config")
    expected = _findings(diagnose_log(_write_text(tmp_path / "train.log", rows), config))
    path = tmp_path / "wandb_export.csv"
    metric = {"loss_2d": "train/loss_2d", "loss_3d_joint": "train/loss_3d_joint",
              "shape_prior": "train/loss_prior", "loss_aux": "train/loss_aux",
              "total": "train/loss"}  # fmt: skip
    head = ["Step"]
    for t in LABELS:
        head += [f"run-7 - {metric[t]}", f"run-7 - {metric[t]}__MIN", f"run-7 - {metric[t]}__MAX"]
    with open(path, "w") as handle:
        handle.write(",".join(head) + "\n")
        for r in rows:
            # W&B numbers steps globally: epoch e, iteration i -> one step count
            cells = [str(int(r["epoch"]) * 1000 + int(r["step"]))]
            for t in LABELS:
                cells += [r[t]] * 3
            handle.write(",".join(cells) + "\n")
    report = diagnose_log(path, config)
    assert _findings(report) == expected
    assert report.sections["log"]["blocks"] == 60
    assert normalize("run-7 - train/loss_2d") == "loss_2d"


def test_names_are_matched_after_normalizing():
    assert normalize("train/Loss_2D_step") == "loss_2d"
    found = match_columns(
        ["epoch", "step", "train_loss_step", "train_loss_epoch", "val/kp3d_loss"], {}
    )
    assert found == {"total": "train_loss_step"}  # the epoch mean and validation left alone
    assert match_columns(["a", "b"], {"total": "b"}) == {"total": "b"}


def test_lightning_rows_with_empty_cells_are_blocks_where_a_term_is_logged(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train_loss_step,val_loss\n0,0,12.5,\n0,1,,11.0\n0,2,12.25,\n")
    report = diagnose_log(path)
    assert report.sections["log"]["blocks"] == 2


def test_bad_tables_and_mappings(tmp_path, capsys):
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(InputError):
        diagnose_log(empty)
    nothing = tmp_path / "n.csv"
    nothing.write_text("epoch,lr\n0,0.1\n")
    with pytest.raises(InputError, match="no column is a loss term"):
        diagnose_log(nothing)
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"loss": 1.0}\n[1, 2]\n')
    with pytest.raises(InputError, match="line 2 is not a JSON object"):
        diagnose_log(broken)
    for text, match in (("loss_2d", "TERM=COLUMN"), ("loss_2dd=x", "unknown term")):
        with pytest.raises(InputError, match=match):
            parse_columns(text)
    ok = tmp_path / "ok.csv"
    ok.write_text("step,my_total\n0,1.5\n1,1.25\n")
    assert main(["parse-log", str(ok), "--columns", "total=nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert main(["parse-log", str(ok), "--columns", "total=my_total", "--json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["log"]["blocks"] == 2


def test_the_config_maps_columns_and_the_command_line_wins(tmp_path):
    from utnet_diag.config import load_config

    log = tmp_path / "m.csv"
    log.write_text("step,a,b\n0,1.5,2.5\n1,1.25,2.25\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("diag:\n  log_columns: {total: a}\n")
    config = load_config(cfg)
    assert config.log_columns == {"total": "a"}
    first = diagnose_log(log, config)
    assert first.sections["log_terms"]["total"]["last"] == pytest.approx(1.25)
    second = diagnose_log(log, config, columns={"total": "b"})
    assert second.sections["log_terms"]["total"]["last"] == pytest.approx(2.25)
    bad = tmp_path / "bad.yaml"
    bad.write_text("diag:\n  log_columns: {totl: a}\n")
    with pytest.raises(InputError, match="unknown term"):
        diagnose_log(log, load_config(bad))


def test_tensorboard_events_give_the_same_findings(tmp_path):
    """The same run written by torch's SummaryWriter (float32 scalars by step)."""
    pytest.importorskip("tensorboard")  # the dev extra installs it; the tensorboard extra too
    from torch.utils.tensorboard import SummaryWriter

    from utnet_diag.config import load_config

    rows = _run()
    writer = SummaryWriter(str(tmp_path / "run"))
    tags = {"loss_2d": "train/loss_2d", "loss_3d_joint": "train/loss_3d_joint",
            "shape_prior": "train/loss_prior", "loss_aux": "train/loss_aux", "total": "train/loss"}  # fmt: skip
    for i, r in enumerate(rows):
        for term, tag in tags.items():
            writer.add_scalar(tag, float(r[term]), i)
        writer.add_scalar("epoch", float(r["epoch"]), i)
    writer.close()
    config = load_config(None, "config")
    text = diagnose_log(_write_text(tmp_path / "train.log", rows), config)
    events = diagnose_log(tmp_path / "run", config)
    assert {k: v[0] for k, v in _findings(events).items()} == {
        k: v[0] for k, v in _findings(text).items()
    }
    assert events.sections["log"]["blocks"] == 60


def test_event_logs_without_events_or_terms(tmp_path):
    pytest.importorskip("tensorboard")
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(InputError, match="no TensorBoard event file"):
        diagnose_log(empty)


def test_event_logs_without_tensorboard_say_how_to_get_it(tmp_path, monkeypatch):
    import sys

    run = tmp_path / "run"
    run.mkdir()
    (run / "events.out.tfevents.1.host").write_bytes(b"\x00" * 16)
    monkeypatch.setitem(sys.modules, "tensorboard.backend.event_processing.event_accumulator", None)
    with pytest.raises(InputError, match=r"utnet-diag\[tensorboard\]"):
        diagnose_log(run)
