"""First-NaN localisation: in the batch, in a module, between modules, in the backward."""

from __future__ import annotations

import torch
import utnet_toy
from torch import nn

from utnet_diag.config import load_config
from utnet_diag.diagnostics.nan_origin import batch_origin, locate_backward, locate_forward
from utnet_diag.diagnostics.runner import RunInputs, as_loaded


def _inputs(model: nn.Module, batch) -> RunInputs:
    return RunInputs(as_loaded(model), batch, load_config())


def test_nan_in_the_batch(toy_batch) -> None:
    toy_batch.tensors["depth"][2, 0, 3, 3] = float("inf")
    origin = locate_forward(_inputs(utnet_toy.ToyUTNet(), toy_batch))
    assert origin is not None and origin.stage == "input" and origin.where == "depth"
    assert "first at sample 2" in origin.message and "Inf" in origin.message


def test_nan_in_a_module(toy_batch) -> None:
    origin = locate_forward(_inputs(utnet_toy.ToyUTNet(poison="refine"), toy_batch))
    assert origin is not None and (origin.stage, origin.where) == ("forward", "refine.1")


class _BetweenModules(utnet_toy.ToyUTNet):
    """NaN made by plain code in the forward (a log of a negative), not by a submodule."""

    def forward(self, rgb, depth, n_i=None):
        return super().forward(rgb, torch.log(depth - 2.0), n_i)


def test_nan_between_modules(toy_batch) -> None:
    origin = locate_forward(_inputs(_BetweenModules(), toy_batch))
    assert origin is not None and origin.stage == "model-code"
    assert origin.where == "backbone"  # the first module that received it


def test_finite_run_has_no_origin(toy_batch) -> None:
    inputs = _inputs(utnet_toy.ToyUTNet(), toy_batch)
    assert locate_forward(inputs) is None
    assert locate_backward(inputs) is None
    assert batch_origin(toy_batch) is None


def test_backward_origin_names_the_module(toy_batch) -> None:
    model = utnet_toy.ToyUTNet(backward_nan=True)
    first = next(model.parameters())
    origin = locate_backward(_inputs(model, toy_batch))
    assert origin is not None and origin.where == "refine.1"
    assert first.grad is None  # no .grad written
