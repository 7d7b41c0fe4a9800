"""RunOptions: one frozen object for which model, which batch and which config."""

from __future__ import annotations

import dataclasses

import pytest

from utnet_diag.run_options import RunOptions, given


def test_of_replaces_fields_and_refuses_unknown_names():
    base = RunOptions(batch="b.pt", device="cpu")
    opts = RunOptions.of(base, mano="MANO_RIGHT.pkl", max_samples=4)
    assert (opts.batch, opts.device, opts.mano, opts.max_samples) == ("b.pt", "cpu",
                                                                       "MANO_RIGHT.pkl", 4)  # fmt: skip
    assert base.mano is None  # the original is unchanged
    assert RunOptions.of() == RunOptions()
    with pytest.raises(TypeError, match="unexpected keyword argument.*batchh"):
        RunOptions.of(batchh="b.pt")
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.batch = "other.pt"  # type: ignore[misc]


def test_model_source_is_what_load_model_takes():
    opts = RunOptions(repo="/ckpt/UTNet", mano="m.pkl", device="cuda:1", unsafe_load=True)
    assert opts.model_source() == {"repo": "/ckpt/UTNet", "model_factory": None,
                                   "output_map": None, "mano_path": "m.pkl",
                                   "device": "cuda:1", "unsafe_load": True}  # fmt: skip


def test_given_keeps_the_arguments_passed():
    assert given(checkpoint=None, batch="b.pt", config=None) == {"batch": "b.pt"}


def test_the_api_takes_options_or_keywords_alike(tmp_path):
    from utnet_diag.diagnostics.runner import load_inputs

    by_options = load_inputs(RunOptions(max_samples=3, preset="recommended", device="cpu"))
    by_keywords = load_inputs(max_samples=3, preset="recommended", device="cpu")
    assert by_options.batch.size == by_keywords.batch.size == 3
    assert by_options.config.weights == by_keywords.config.weights
    assert by_options.config.weights.w_2d == 1.0  # the recommended preset
