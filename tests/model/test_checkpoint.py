"""Checkpoint loading: wrappers, prefixes, weights-only refusal, bad files, key reports."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from utnet_diag.errors import InputError, UnsafeInputError
from utnet_diag.model.checkpoint import (
    apply_state_dict,
    key_report,
    load_checkpoint,
    save_checkpoint,
)
from utnet_diag.report.result import Status

SIDE_EFFECT = Path("/tmp") / "utnet_diag_test_side_effect_h3"


def plant_side_effect(text: str) -> None:
    SIDE_EFFECT.write_text(text)


class Payload:
    """A custom class whose unpickling calls a function; weights-only loading must refuse it."""

    def __reduce__(self):
        return (plant_side_effect, ("pwned",))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model_state_dict": sd, "optimizer": {"lr": 1e-3}},
        lambda sd: {"model": sd},
        lambda sd: {"state_dict": {"model": sd}},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {"model_state_dict": {f"module._orig_mod.{k}": v for k, v in sd.items()}},
        lambda sd: {f"_orig_mod.module.{k}": v for k, v in sd.items()},
    ],
)
def test_unwrap_and_strip(tmp_path: Path, wrap) -> None:
    net = _net()
    torch.save(wrap(net.state_dict()), tmp_path / "c.pt")
    data = load_checkpoint(tmp_path / "c.pt")
    assert set(data.state_dict) == set(net.state_dict())
    other = _net()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    apply_state_dict(other, data.state_dict)
    x = torch.randn(5, 4)
    net.eval(), other.eval()
    assert torch.equal(net(x), other(x))
    assert key_report(other, data.state_dict).status is Status.PASS


def test_metadata_config_and_summary(tmp_path: Path) -> None:
    net = _net()
    save_checkpoint(net, tmp_path / "c.pt", {"embed_dim": 4}, epoch=7)
    data = load_checkpoint(tmp_path / "c.pt")
    assert data.config == {"embed_dim": 4}
    assert data.metadata["epoch"] == 7
    summary = data.summary()
    n_elements = sum(t.numel() for t in net.state_dict().values())
    assert summary["elements"] == n_elements
    assert summary["dtypes"] == {"float32": 8, "int64": 1}
    assert summary["wrappers"] == ["model_state_dict"]


def test_weights_only_refuses_custom_class_without_running_it(tmp_path: Path) -> None:
    SIDE_EFFECT.unlink(missing_ok=True)
    torch.save({"model_state_dict": _net().state_dict(), "extra": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeInputError) as info:
        load_checkpoint(tmp_path / "evil.pt")
    message = str(info.value)
    assert "plant_side_effect" in message and "--unsafe-load" in message
    assert "\n" not in message
    assert not SIDE_EFFECT.exists()


def test_unsafe_load_returns_a_warning(tmp_path: Path) -> None:
    torch.save({"model_state_dict": _net().state_dict(), "note": "plain"}, tmp_path / "c.pt")
    data = load_checkpoint(tmp_path / "c.pt", unsafe=True)
    assert len(data.warnings) == 1 and "runs any code" in data.warnings[0]
    assert load_checkpoint(tmp_path / "c.pt").warnings == []


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="directory"):
        load_checkpoint(tmp_path)
    torch.save(_net().state_dict(), tmp_path / "full.pt")
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "full.pt").read_bytes()[:200])
    with pytest.raises(InputError, match="truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "text.pt").write_text("hello world")
    with pytest.raises(InputError, match="not a readable torch checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "notensors.pt")
    with pytest.raises(InputError, match="no tensors found"):
        load_checkpoint(tmp_path / "notensors.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(InputError, match="stores a Tensor"):
        load_checkpoint(tmp_path / "tensor.pt")


def test_key_report_missing_unexpected_and_shapes() -> None:
    net = _net()
    sd = dict(net.state_dict())
    del sd["2.weight"]
    sd["head.extra"] = torch.zeros(1)
    result = key_report(net, sd)
    assert result.status is Status.FAIL
    assert result.id == "checkpoint_keys"
    assert "1 of 6 model parameters missing" in result.message and "2.weight" in result.message
    assert result.details["unexpected"] == ["head.extra"]
    assert result.value == len(net.state_dict()) - 1

    only_unexpected = dict(net.state_dict(), extra=torch.zeros(2))
    assert key_report(net, only_unexpected).status is Status.WARN

    only_buffer = dict(net.state_dict())
    del only_buffer["1.num_batches_tracked"]
    warn = key_report(net, only_buffer)
    assert warn.status is Status.WARN and "buffers missing" in warn.message

    wrong = dict(net.state_dict(), **{"0.weight": torch.zeros(3, 5)})
    bad = key_report(net, wrong)
    assert bad.status is Status.FAIL and "'0.weight'" in bad.message and "(3,5)" in bad.message
    with pytest.raises(InputError, match=r"'0.weight' has shape \(3,5\)"):
        apply_state_dict(net, wrong)


def test_key_report_spots_extra_prefix() -> None:
    net = _net()
    sd = {f"model.{k}": v for k, v in net.state_dict().items()}
    result = key_report(net, sd)
    assert result.status is Status.FAIL
    assert "prefix 'model.'" in (result.hint or "")
