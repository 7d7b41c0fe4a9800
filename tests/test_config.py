"""Loss-weight presets, config.yaml overrides and the errors a config can cause."""

from __future__ import annotations

import re

import pytest

from utnet_diag.config import PRESETS, LossWeights, load_config
from utnet_diag.errors import InputError, UnsafeInputError


def write(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_presets_match_the_spec_table():
    config = LossWeights.from_preset("config")
    assert (config.w_2d, config.w_3d_joint, config.w_3d_vert, config.w_prior, config.w_aux) == (
        0.01, 0.05, 0.0, 0.001, 0.001,
    )  # fmt: skip
    code = LossWeights.from_preset("code")
    assert (code.w_2d, code.w_3d_joint, code.w_3d_vert, code.w_prior, code.w_aux) == (
        1.0, 1.0, 0.5, 0.01, 0.1,
    )  # fmt: skip
    rec = LossWeights.from_preset("recommended")
    assert (rec.w_2d, rec.w_3d_joint, rec.w_prior) == (1.0, 1.0, 0.001)
    assert 0.001 <= rec.w_aux <= 0.1
    assert config.source["w_2d"] == "preset config"
    assert set(PRESETS) == {"config", "code", "recommended"}


def test_weight_of_adds_aux_once_and_vertex_only_when_enabled():
    w = LossWeights.from_preset("code")
    assert w.weight_of("loss_aux") == 1.0  # L_aux already carries w_aux
    assert w.weight_of("loss_3d_vert") == 0.0  # use_vertex_loss false
    on = w.with_overrides({"use_vertex_loss": True}, "x")
    assert on.weight_of("loss_3d_vert") == 0.5
    off = w.with_overrides({"use_aux_loss": False}, "x")
    assert off.weight_of("loss_aux") == 0.0


def test_unknown_preset_suggests_the_nearest():
    with pytest.raises(InputError, match="did you mean 'recommended'"):
        LossWeights.from_preset("recomended")


def test_config_overrides_preset_and_records_sources(tmp_path):
    path = write(tmp_path, "loss:\n  w_2d: 1.0\n  w_aux: 0.01\n  use_vertex_loss: true\n"
                           "data:\n  root: /somewhere\n")  # fmt: skip
    cfg = load_config(path)
    assert cfg.weights.w_2d == 1.0 and cfg.weights.w_aux == 0.01
    assert cfg.weights.use_vertex_loss is True
    assert cfg.weights.w_3d_joint == 0.05  # from the config preset
    assert cfg.weights.source["w_2d"] == str(path)
    assert cfg.weights.source["w_3d_joint"] == "preset config"
    assert cfg.raw["data"] == {"root": "/somewhere"}
    code = load_config(path, preset="code")
    assert code.weights.w_3d_joint == 1.0 and code.weights.w_2d == 1.0


def test_diag_section(tmp_path):
    path = write(tmp_path, "diag:\n  preset: recommended\n  root_id: 0\n  max_samples: 4\n"
                           "  key_map:\n    keypoints_3d: joints_xyz\n")  # fmt: skip
    cfg = load_config(path)
    assert cfg.weights.preset == "recommended"
    assert cfg.key_map == {"keypoints_3d": "joints_xyz"}
    assert cfg.max_samples == 4 and cfg.root_id == 0


def test_no_path_gives_the_preset():
    assert load_config(None).weights == LossWeights.from_preset("config")
    assert load_config(None, "code").weights.w_2d == 1.0


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("loss:\n  w2d: 1.0\n", "unknown key 'loss.w2d'.*did you mean 'w_2d'"),
        ("loss:\n  w_2d: -1\n", "finite number >= 0"),
        ("loss:\n  w_2d: .inf\n", "finite number >= 0"),
        ("loss:\n  w_2d: one\n", "must be a number"),
        ("loss:\n  use_vertex_loss: 1\n", "must be true or false"),
        ("loss: [1, 2]\n", "'loss' must be a mapping"),
        ("los:\n  w_2d: 1.0\n", "did you mean 'loss'"),
        ("- a\n- b\n", "YAML mapping at the top level"),
        ("diag:\n  keymap: {}\n", "did you mean 'key_map'"),
        ("diag:\n  root_id: 21\n", "root_id"),
        ("diag:\n  max_samples: 0\n", "max_samples"),
        ("diag:\n  key_map: [a]\n", "key_map"),
        ("diag:\n  preset: cod\n", "did you mean 'code'"),
        ("loss: {w_2d: 1.0\n", "not valid YAML"),
    ],
)
def test_bad_configs_raise_one_line_input_errors(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=match) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_python_yaml_tags_are_refused(tmp_path):
    path = write(tmp_path, "loss: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UnsafeInputError, match="refused a YAML tag"):
        load_config(path)


def test_missing_empty_and_binary_configs(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="empty"):
        load_config(write(tmp_path, "", "empty.yaml"))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00loss")
    with pytest.raises(InputError, match="not UTF-8"):
        load_config(binary)
    with pytest.raises(InputError, match="directory"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("ranges", "fragment"),
    [
        (
            "{loss_2: {healthy_below: 1}}",
            "unknown term 'diag.ranges.loss_2'; did you mean 'loss_2d'?",
        ),
        ("{loss_2d: {healthy: 1}}", "unknown key 'diag.ranges.loss_2d.healthy'; did you mean"),
        ("{loss_2d: {healthy_below: -5}}", "must be a positive number, got -5"),
        ("{loss_2d: {healthy_below: .inf}}", "must be a positive number, got inf"),
        ("{loss_2d: {alarm_at: 100}}", "alarm_at 100 is below healthy_below 500"),
        ("[1, 2]", "'diag.ranges' must map loss terms"),
    ],
)
def test_bad_ranges_are_input_errors(tmp_path, ranges, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(f"diag:\n  ranges: {ranges}\n")
    with pytest.raises(InputError, match=re.escape(fragment)):
        load_config(path)


def test_ranges_default_to_the_spec_and_the_config_sets_them_per_term(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("diag:\n  ranges:\n    loss_prior: {healthy_below: 250}\n")
    config = load_config(path)
    assert config.range_of("loss_prior") == (250.0, 5000.0, f"{path} diag.ranges")
    assert config.range_of("loss_2d") == (500.0, 10000.0, "the spec")  # spec 9.2 / 9.4
    assert load_config(None).range_of("loss_3d_joint") == (80000.0, None, "the spec")
