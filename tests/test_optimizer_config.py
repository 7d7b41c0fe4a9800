"""The ``optimizer:`` section: UTNet's defaults, the values a config gives, and every bad value."""

from __future__ import annotations

import pytest

from utnet_diag.config import load_config
from utnet_diag.errors import InputError
from utnet_diag.optimizer_config import OptimizerSettings, parse_optimizer


def test_without_a_section_the_step_is_utnets():
    # UTNet's config.yaml: AdamW, lr 1e-5, weight_decay 1e-4, betas (0.9, 0.999); its train.py
    # clips the global norm to 1.0 in code
    s = parse_optimizer(None, "c.yaml")
    assert (s.kind, s.lr, s.weight_decay, s.betas, s.clip_grad_norm) == (
        "AdamW", 1e-5, 1e-4, (0.9, 0.999), 1.0)  # fmt: skip
    assert "UTNet" in s.source and "train.py" in s.clip_source
    assert load_config().optimizer == OptimizerSettings()


def test_a_utnet_style_section_is_read(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "loss: {w_2d: 0.01}\noptimizer:\n  type: 'AdamW'\n  lr: 3.0e-4\n"
        "  weight_decay: 0.05\n  betas: [0.8, 0.99]\n  amsgrad: false\n"
    )
    s = load_config(path).optimizer
    assert (s.kind, s.lr, s.weight_decay, s.betas) == ("AdamW", 3e-4, 0.05, (0.8, 0.99))
    assert s.clip_grad_norm == 1.0 and "train.py" in s.clip_source  # not given: UTNet's
    assert s.ignored == ("amsgrad",) and s.source == f"{path} optimizer"
    assert s.to_dict()["ignored"] == ["amsgrad"]


@pytest.mark.parametrize(("given", "expected"), [(None, None), (0, None), (2.5, 2.5)])
def test_clipping_can_be_set_or_turned_off(given, expected):
    s = parse_optimizer({"clip_grad_norm": given}, "c.yaml")
    assert s.clip_grad_norm == expected and s.clip_source == "c.yaml optimizer.clip_grad_norm"
    assert s.with_clip(0.0, "--clip-grad-norm").clip_grad_norm is None
    assert s.with_clip(3.0, "--clip-grad-norm").clip_source == "--clip-grad-norm"


def test_types_group_learning_rates_and_sgd_options():
    s = parse_optimizer({"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                         "groups": {"refine": {"lr": 0.01}}}, "c.yaml")  # fmt: skip
    assert (s.kind, s.momentum, s.nesterov) == ("SGD", 0.9, True)
    assert s.lr_of("refine") == 0.01 and s.lr_of("backbone") == 0.1
    assert "betas" not in s.to_dict() and s.to_dict()["momentum"] == 0.9
    assert parse_optimizer({"type": "RMSprop"}, "c").kind == "RMSprop"
    assert parse_optimizer({"type": "adam"}, "c").adam_family


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ([1, 2], "'optimizer' must be a mapping"),
        ({"type": "AdamWW"}, "did you mean 'AdamW'"),
        ({"type": "LBFGS"}, "is not one utnet-diag steps"),
        ({"lr": 0}, "'optimizer.lr' must be a positive number"),
        ({"lr": -1e-3}, "'optimizer.lr' must be a positive number"),
        ({"lr": True}, "'optimizer.lr'"),
        ({"lr": "1e-3"}, "'optimizer.lr'"),
        ({"weight_decay": float("nan")}, "'optimizer.weight_decay'"),
        ({"eps": 0}, "'optimizer.eps'"),
        ({"betas": [0.9]}, "two numbers"),
        ({"betas": [0.9, 1.0]}, "below 1"),
        ({"nesterov": "yes"}, "true or false"),
        ({"clip_grad_norm": -1}, "'optimizer.clip_grad_norm'"),
        ({"groups": [1]}, "'optimizer.groups' must map"),
        ({"groups": {"refine": 0.01}}, "'optimizer.groups.refine' must be {lr: <number>}"),
        ({"groups": {"refine": {"lr": 0.01, "wd": 1}}}, "'optimizer.groups.refine'"),
        ({"groups": {"refine": {"lr": -1}}}, "'optimizer.groups.refine.lr'"),
        ({"momentum": 10**400}, "'optimizer.momentum'"),
    ],
)
def test_bad_values_name_the_key(section, fragment):
    with pytest.raises(InputError, match=None) as err:
        parse_optimizer(section, "c.yaml")
    assert fragment in str(err.value), str(err.value)
    assert err.value.path == "c.yaml"


def test_a_bad_section_in_a_file_exits_2_with_one_line(tmp_path, capsys):
    from utnet_diag.cli.app import main

    path = tmp_path / "config.yaml"
    path.write_text("optimizer: {type: AdamW, lr: -1}\n")
    assert main(["grad-flow", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'optimizer.lr' must be a positive number" in err[0], err


def test_the_torch_keyword_arguments_of_each_type():
    adamw = parse_optimizer({"lr": 1e-3, "betas": [0.8, 0.9], "eps": 1e-6}, "c").torch_kwargs()
    assert adamw == {"lr": 1e-3, "weight_decay": 1e-4, "betas": (0.8, 0.9), "eps": 1e-6}
    sgd = parse_optimizer({"type": "SGD", "lr": 0.1, "momentum": 0.9}, "c").torch_kwargs()
    assert sgd == {"lr": 0.1, "weight_decay": 1e-4, "momentum": 0.9, "nesterov": False}
    rms = parse_optimizer({"type": "RMSprop"}, "c").torch_kwargs()
    assert rms == {"lr": 1e-5, "weight_decay": 1e-4, "momentum": 0.0}


def test_a_group_learning_rate_covers_the_modules_below_it():
    s = parse_optimizer({"lr": 1e-5, "groups": {"refine": {"lr": 1e-3},
                                                "refine.1": {"lr": 1e-2}}}, "c")  # fmt: skip
    assert s.lr_of("refine") == 1e-3 and s.lr_of("refine.0") == 1e-3
    assert s.lr_of("refine.1") == 1e-2 and s.lr_of("refine_head") == 1e-5
    assert s.unmatched_groups(["backbone.0", "refine.0"]) == ["refine.1"]
    assert s.unmatched_groups(["refiner"]) == ["refine", "refine.1"]


def test_zero_is_a_valid_weight_decay_momentum_and_clip():
    settings = parse_optimizer(
        {"type": "SGD", "lr": 0.01, "weight_decay": 0, "momentum": 0.0, "clip_grad_norm": 0},
        "config.yaml",
    )
    assert settings.weight_decay == 0 and settings.momentum == 0.0
    assert settings.clip_grad_norm is None  # 0: no clipping


def test_a_bad_value_is_quoted_up_to_40_characters():
    text = "w" * 38  # its repr, quotes included, is 40 characters
    with pytest.raises(InputError, match=f"got '{text}'"):
        parse_optimizer({"weight_decay": text}, "config.yaml")
    with pytest.raises(InputError, match="got a huge number"):
        parse_optimizer({"weight_decay": 10**400}, "config.yaml")  # a YAML integer
