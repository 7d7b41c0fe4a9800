"""Model sources: the embedded default, checkpoints, a UTNet checkout, a factory, the protocol."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from utnet_diag.errors import InputError
from utnet_diag.model.checkpoint import save_checkpoint
from utnet_diag.model.reference import build_reference
from utnet_diag.model.sources import load_model, map_outputs, parse_output_map
from utnet_diag.report.result import Status


def _perturbed_reference():
    model = build_reference("tiny")
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    return model.eval()


def _outputs(model, batch):
    with torch.no_grad():
        return model(batch["rgb"], batch["depth"], batch["n_i"])


def test_embedded_default(sample_batch) -> None:
    loaded = load_model(device="cpu")
    assert loaded.source == "reference UTNet (tiny, random init, seed 0)"
    assert loaded.checks == [] and loaded.warnings == []
    assert loaded.image_size == (64, 48) and loaded.mano is not None
    assert loaded.config["embed_dim"] == 64
    out = loaded.forward(sample_batch)
    assert out["keypoints_2d"].shape == (8, 21, 2)
    assert out["mano_params"]["hand_pose"].shape == (8, 15, 3, 3)


@pytest.mark.parametrize(
    "layout",
    ["bare", "state_dict", "model_state_dict", "model", "module", "orig_mod"],
)
def test_checkpoint_round_trip_gives_identical_outputs(
    tmp_path: Path, sample_batch, layout
) -> None:
    model = _perturbed_reference()
    sd = model.state_dict()
    path = tmp_path / "ckpt.pt"
    if layout == "bare":
        torch.save(sd, path)
    elif layout == "module":
        torch.save({"model_state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    elif layout == "orig_mod":
        torch.save({"state_dict": {f"_orig_mod.{k}": v for k, v in sd.items()}}, path)
    else:
        torch.save({layout: sd, "epoch": 2}, path)
    loaded = load_model(path, device="cpu")
    assert loaded.checks[0].id == "checkpoint_keys" and loaded.checks[0].status is Status.PASS
    loaded.model.eval()
    expected, got = _outputs(model, sample_batch), loaded.forward(sample_batch)
    for key in ("keypoints_2d", "keypoints_3d", "vertices", "coarse_pose"):
        assert torch.equal(expected[key], got[key]), key
    default = load_model(device="cpu").forward(sample_batch)
    assert not torch.equal(default["keypoints_3d"], got["keypoints_3d"])


def test_stored_config_rebuilds_another_size(tmp_path: Path, sample_batch) -> None:
    model = build_reference({"embed_dim": 32, "vit_num_heads": 2, "gcn_dim": 16}, seed=4)
    save_checkpoint(model, tmp_path / "c.pt", model.config.to_dict())
    loaded = load_model(tmp_path / "c.pt", device="cpu")
    assert loaded.config["embed_dim"] == 32 and loaded.checks[0].status is Status.PASS
    assert torch.equal(
        loaded.forward(sample_batch)["vertices"], _outputs(model, sample_batch)["vertices"]
    )


def test_config_model_section_sizes_a_checkpoint_without_stored_config(tmp_path: Path) -> None:
    from utnet_diag.config import DiagConfig

    small = build_reference({"embed_dim": 32, "vit_num_heads": 2})
    torch.save(small.state_dict(), tmp_path / "c.pt")
    cfg = DiagConfig(model={"embed_dim": 32, "vit_num_heads": 2, "mano_path": "x.pkl", "lr": 1})
    loaded = load_model(tmp_path / "c.pt", config=cfg, device="cpu")
    assert loaded.checks[0].status is Status.PASS and loaded.config["embed_dim"] == 32
    # without a checkpoint the embedded tiny default is used whatever the config says
    assert load_model(config=cfg, device="cpu").config["embed_dim"] == 64


def test_nested_stored_config_uses_its_model_section(tmp_path: Path) -> None:
    model = build_reference({"embed_dim": 32, "vit_num_heads": 2})
    stored = {"model": {"embed_dim": 32, "vit_num_heads": 2}, "loss": {"w_2d": 1.0}}
    torch.save({"model_state_dict": model.state_dict(), "config": stored}, tmp_path / "c.pt")
    loaded = load_model(tmp_path / "c.pt", device="cpu")
    assert loaded.config["embed_dim"] == 32 and loaded.checks[0].status is Status.PASS


def test_missing_and_unexpected_keys_are_reported(tmp_path: Path) -> None:
    sd = dict(build_reference("tiny").state_dict())
    removed = [k for k in sd if k.startswith("refiner.layers.1.")]
    for key in removed:
        del sd[key]
    sd["old_head.weight"] = torch.zeros(2)
    torch.save(sd, tmp_path / "c.pt")
    check = load_model(tmp_path / "c.pt", device="cpu").checks[0]
    assert check.status is Status.FAIL
    assert f"{len(removed)} of " in check.message and "refiner.layers.1." in check.message
    assert "1 unexpected checkpoint keys ignored: old_head.weight" in check.message


def test_shape_mismatch_names_the_first_key(tmp_path: Path) -> None:
    small = build_reference({"embed_dim": 32, "vit_num_heads": 2})
    torch.save(small.state_dict(), tmp_path / "c.pt")  # no stored config: built as tiny
    with pytest.raises(
        InputError,
        match=r"'fusion\.pos_embed' has shape \(1,48,32\) but the model expects \(1,48,64\)",
    ):
        load_model(tmp_path / "c.pt", device="cpu")


def test_fake_repo_builds_from_its_config(fake_repo: Path, sample_batch, tmp_path: Path) -> None:
    loaded = load_model(repo=fake_repo, device="cpu")
    assert loaded.source == f"repo {fake_repo} (src.models.utnet.UTNet)"
    assert loaded.image_size == (64, 48) and loaded.config["embed_dim"] == 32
    assert loaded.config["mano_path"] == str(fake_repo / "mano" / "MANO_RIGHT.pkl")
    out = loaded.forward(sample_batch)
    assert out["vertices"].shape == (8, 778, 3)
    assert "src" not in sys.modules  # the checkout's package does not leak
    # its checkpoint (train.py layout) loads back; the reference model rejects it
    loaded.model.eval()
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.add_(0.01)
    torch.save({"model_state_dict": loaded.model.state_dict(), "epoch": 1}, tmp_path / "u.pt")
    again = load_model(tmp_path / "u.pt", repo=fake_repo, device="cpu")
    assert again.checks[0].status is Status.PASS
    again.model.eval()
    expected = loaded.model(sample_batch["rgb"], sample_batch["depth"], sample_batch["n_i"])
    assert torch.equal(again.forward(sample_batch)["keypoints_3d"], expected["keypoints_3d"])
    # no tensor in common with the reference model: another architecture, an input error
    with pytest.raises(InputError, match="another architecture") as err:
        load_model(tmp_path / "u.pt", device="cpu")
    assert str(tmp_path / "u.pt") in str(err.value) and "init_pose" in str(err.value)


def test_repo_errors(fake_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_model(repo=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="src/models/utnet.py is missing"):
        load_model(repo=tmp_path / "empty")
    config = fake_repo / "config" / "config.yaml"
    config.write_text(config.read_text().replace("  embed_dim: 32\n", ""))
    with pytest.raises(InputError, match="no value for UTNet argument.*embed_dim"):
        load_model(repo=fake_repo)
    config.write_text(config.read_text().replace("model:\n", "model:\n  embed_dim: 32\n"))
    (fake_repo / "mano" / "MANO_RIGHT.pkl").unlink()
    with pytest.raises(InputError, match="building src.models.utnet.UTNet failed"):
        load_model(repo=fake_repo)
    with pytest.raises(InputError, match="not both"):
        load_model(repo=fake_repo, model_factory="x:y")


FACTORY = """
import torch
from utnet_diag.model.reference import build_reference


class Renamed(torch.nn.Module):
    def __init__(self, bad_shape=False):
        super().__init__()
        self.inner = build_reference("tiny")
        self.bad_shape = bad_shape

    def forward(self, rgb, depth, n_i):
        out = self.inner(rgb, depth, n_i)
        mano = out["mano_params"]
        return {
            "joints2d": out["keypoints_2d"][:, :20] if self.bad_shape else out["keypoints_2d"],
            "joints3d": out["keypoints_3d"],
            "verts": out["vertices"],
            "mano": {"global_orient": mano["global_orient"], "hand_pose": mano["hand_pose"],
                     "betas": mano["betas"]},
            "pose_coarse": out["coarse_pose"],
            "shape_coarse": out["coarse_shape"],
            "cam_coarse": out["coarse_cam"],
        }


def build():
    return Renamed()


def build_bad():
    return Renamed(bad_shape=True)


def build_aa():
    model = Renamed()
    forward = model.forward

    def as_axis_angle(rgb, depth, n_i):
        out = forward(rgb, depth, n_i)
        out["mano"]["hand_pose"] = torch.zeros(rgb.shape[0], 45)
        return out

    model.forward = as_axis_angle
    return model


def not_a_model():
    return 42
"""
OUTPUT_MAP = (
    "keypoints_2d=joints2d,keypoints_3d=joints3d,vertices=verts,mano_params=mano,"
    "coarse_pose=pose_coarse,coarse_shape=shape_coarse,coarse_cam=cam_coarse"
)


@pytest.fixture
def factory_dir(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "my_models_h3.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("my_models_h3", None)


def test_model_factory_with_output_map(factory_dir: Path, sample_batch) -> None:
    loaded = load_model(model_factory="my_models_h3:build", output_map=OUTPUT_MAP, device="cpu")
    assert loaded.source == "factory my_models_h3:build"
    out = loaded.forward(sample_batch)
    reference = _outputs(build_reference("tiny"), sample_batch)
    assert torch.equal(out["keypoints_3d"], reference["keypoints_3d"])
    assert torch.equal(out["mano_params"]["betas"], reference["mano_params"]["betas"])

    unmapped = load_model(model_factory="my_models_h3:build", device="cpu")
    with pytest.raises(InputError, match="lack keypoints_2d.*--output-map"):
        unmapped.forward(sample_batch)
    bad = load_model(model_factory="my_models_h3:build_bad", output_map=OUTPUT_MAP)
    with pytest.raises(
        InputError, match=r"'joints2d' has shape \(8,20,2\), expected keypoints_2d \(8,21,2\)"
    ):
        bad.forward(sample_batch)
    aa = load_model(model_factory="my_models_h3:build_aa", output_map=OUTPUT_MAP)
    assert torch.equal(
        aa.forward(sample_batch)["mano_params"]["hand_pose"], torch.eye(3).expand(8, 15, 3, 3)
    )
    assert aa.notes and "axis-angle" in aa.notes[0]


def test_model_factory_errors(factory_dir: Path) -> None:
    with pytest.raises(InputError, match="module:callable"):
        load_model(model_factory="my_models_h3")
    with pytest.raises(InputError, match="module 'no_such_mod_h3' not found"):
        load_model(model_factory="no_such_mod_h3:build")
    with pytest.raises(InputError, match="has no attribute 'nope'"):
        load_model(model_factory="my_models_h3:nope")
    with pytest.raises(InputError, match="returned a int, not an nn.Module"):
        load_model(model_factory="my_models_h3:not_a_model")
    with pytest.raises(InputError, match="did you mean 'keypoints_2d'"):
        load_model(model_factory="my_models_h3:build", output_map="keypoint_2d=x")
    with pytest.raises(InputError, match="bad --output-map entry"):
        parse_output_map("keypoints_2d")


def test_protocol_errors(sample_batch) -> None:
    loaded = load_model(device="cpu")
    batch = dict(sample_batch.tensors)
    del batch["rgb"]
    with pytest.raises(InputError, match="no 'rgb'"):
        loaded.forward(batch)
    small = dict(sample_batch.tensors, rgb=torch.zeros(8, 3, 32, 24))
    with pytest.raises(
        InputError,
        match=r"rejected the batch: rgb is \(32, 24\) pixels but the model expects \(64, 48\)",
    ):
        loaded.forward(small)
    with pytest.raises(InputError, match="not a dict"):
        map_outputs((torch.zeros(1),), {}, 1)
    partial = {"keypoints_2d": torch.zeros(2, 21, 2), "keypoints_3d": torch.zeros(2, 21, 3)}
    out, _ = map_outputs(partial, {}, 2, strict=False)
    assert set(out) == {"keypoints_2d", "keypoints_3d"}
    with pytest.raises(InputError, match="lack vertices"):
        map_outputs(partial, {}, 2, strict=True)
