"""Resource bounds: a batch too large for the device is refused with its size and --max-samples."""

from __future__ import annotations

import pytest
import torch

from utnet_diag.diagnostics import resources
from utnet_diag.errors import InputError, ResourceError


def test_tensor_bytes_counts_every_tensor():
    tensors = {
        "a": torch.zeros(4, 3, dtype=torch.float32),
        "b": torch.zeros(2, dtype=torch.float64),
    }
    assert resources.tensor_bytes(tensors) == 4 * 3 * 4 + 2 * 8


def test_available_memory_on_cpu_is_positive():
    free = resources.available_memory(torch.device("cpu"))
    assert free is None or free > 0


def test_batch_over_half_the_free_memory_is_refused(monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda device: 1000 * 2**20)
    big = {"rgb": torch.empty(64, 3, 1024, 1024)}  # 768 MiB
    with pytest.raises(ResourceError) as err:
        resources.check_batch_fits(big, 64, torch.device("cpu"))
    text = str(err.value)
    assert "64 samples" in text and "768 MiB" in text and "--max-samples 16" in text
    assert isinstance(err.value, InputError)  # exit code 2
    resources.check_batch_fits({"rgb": torch.empty(1, 3, 64, 64)}, 1, torch.device("cpu"))


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory"),
    ],
)
def test_out_of_memory_becomes_an_input_error(error):
    with (
        pytest.raises(ResourceError, match=r"32 samples ran out of memory on cpu.*--max-samples 8"),
        resources.out_of_memory_as_input_error(32, torch.device("cpu")),
    ):
        raise error


def test_other_errors_pass_through():
    guard = resources.out_of_memory_as_input_error(32, torch.device("cpu"))
    with pytest.raises(ValueError), guard:
        raise ValueError("not memory")


def test_gate_refuses_a_batch_too_large_for_the_device(monkeypatch, capsys):
    """End to end: exit 2, one line with the size and --max-samples, before any forward."""
    from utnet_diag.cli.app import main

    monkeypatch.setattr(resources, "available_memory", lambda device: 2**18)  # 256 KiB free
    assert main(["gate"]) == 2
    err = capsys.readouterr().err.strip()
    assert "8 samples" in err and "--max-samples 2" in err and "\n" not in err


def test_repo_config_is_used_when_no_config_is_given(tmp_path):
    """--repo without --config reads the checkout's config/config.yaml (its loss weights)."""
    from utnet_diag.diagnostics.runner import load_inputs

    repo = tmp_path / "UTNet"
    (repo / "config").mkdir(parents=True)
    (repo / "config" / "config.yaml").write_text("loss:\n  w_2d: 0.25\n")
    from utnet_diag.model.sources import load_model

    inputs = load_inputs(model=load_model(device="cpu"), repo=repo, device="cpu")
    assert inputs.config.weights.w_2d == 0.25
    assert any("config.yaml" in note for note in inputs.notes)
