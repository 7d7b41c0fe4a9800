"""Synthetic sample batch: frames and consistency of 2D/3D/MANO/images; make_sample files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from utnet_diag.errors import InputError
from utnet_diag.synthetic.sample import (
    SAMPLE_FILES,
    default_batch,
    make_sample,
    make_sample_batch,
)


@pytest.fixture(scope="module")
def batch():
    return make_sample_batch(6, seed=3, image_size=(64, 48))


def test_shapes_and_flags(batch) -> None:
    t = batch.tensors
    assert t["rgb"].shape == (6, 3, 64, 48) and t["depth"].shape == (6, 1, 64, 48)
    assert t["keypoints_2d"].shape == (6, 21, 3) and t["keypoints_3d"].shape == (6, 21, 4)
    assert t["mano_pose"].shape == (6, 48) and t["mano_shape"].shape == (6, 10)
    assert t["vertices_3d"].shape == (6, 778, 3)
    assert torch.equal(t["n_i"], torch.ones(6)) and torch.equal(t["has_mano"], torch.ones(6))
    assert (t["keypoints_2d"][..., 2] == 1).all() and (t["keypoints_3d"][..., 3] == 1).all()
    assert batch.sample_ids == [f"synthetic-3-{i}" for i in range(6)]


def test_2d_is_the_wilor_projection_of_the_camera_frame_joints(batch) -> None:
    xyz = batch["keypoints_3d"][..., :3]
    expected = (5000.0 / 256) * xyz[..., :2] / xyz[..., 2:3]
    assert torch.allclose(batch["keypoints_2d"][..., :2], expected, atol=1e-6)
    assert batch["keypoints_2d"][..., :2].abs().max() < 0.45
    # the image is 48/64 of the crop wide: joints stay inside its width too
    assert batch["keypoints_2d"][..., 0].abs().max() < 0.375


def test_3d_is_mano_of_the_gt_parameters_plus_a_translation(batch) -> None:
    from utnet_diag.mano import ManoLayer

    out = ManoLayer()(batch["mano_pose"][:, :3], batch["mano_pose"][:, 3:], batch["mano_shape"])
    offset = batch["keypoints_3d"][..., :3] - out.joints
    assert torch.allclose(offset, offset[:, :1].expand_as(offset), atol=1e-3)
    assert torch.allclose(
        batch["vertices_3d"] - out.vertices, offset[:, :1].expand(-1, 778, -1), atol=1e-3
    )
    # millimetres, in front of the camera
    assert (batch["keypoints_3d"][..., 2] > 1000).all()


def test_rendered_depth_and_rgb_show_the_hand_where_the_joints_are(batch) -> None:
    h, w = 64, 48
    kp = batch["keypoints_2d"][..., :2]
    cols = (kp[..., 0] * h + w / 2).floor().long().clamp(0, w - 1)
    rows = (kp[..., 1] * h + h / 2).floor().long().clamp(0, h - 1)
    depth = batch["depth"][:, 0]
    joint_depth = torch.stack([depth[i, rows[i], cols[i]] for i in range(6)])  # metres
    background = depth.amax(dim=(1, 2))
    on_hand = joint_depth < background[:, None] - 0.2
    assert on_hand.float().mean() > 0.9
    z_m = batch["keypoints_3d"][..., 2] / 1000
    assert ((joint_depth - z_m).abs()[on_hand] < 0.1).all()
    rgb = batch["rgb"]
    assert rgb.mean().abs() < 1.5 and rgb.std() > 0.3  # ImageNet-normalized


def test_deterministic_per_seed() -> None:
    a, b, c = (make_sample_batch(2, s, (64, 48)) for s in (0, 0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["mano_pose"], c["mano_pose"])
    with pytest.raises(InputError):
        make_sample_batch(0)


def test_default_batch_is_fresh_each_call() -> None:
    first = default_batch()
    first.tensors["rgb"].zero_()
    second = default_batch()
    assert second.size == 8 and second["rgb"].abs().sum() > 0
    assert tuple(second["rgb"].shape[-2:]) == (64, 48)


def test_make_sample_writes_loadable_files(tmp_path: Path) -> None:
    from utnet_diag.io.batch import load_batch
    from utnet_diag.model.sources import load_model

    report = make_sample(tmp_path / "out", n=4, seed=1)
    assert report.check("checkpoint_keys").status.value == "pass"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(SAMPLE_FILES)
    batch = load_batch(tmp_path / "out" / "batch.pt")
    assert batch.size == 4 and batch.sample_ids[0] == "synthetic-1-0"
    loaded = load_model(
        tmp_path / "out" / "reference.pt", mano_path=tmp_path / "out" / "MANO_RIGHT.pkl"
    )
    assert loaded.checks[0].status.value == "pass"
    out = loaded.forward(batch)
    assert out["keypoints_2d"].abs().max() <= 0.5
    from utnet_diag.config import load_config

    cfg = load_config(tmp_path / "out" / "config.yaml")
    assert cfg.model["embed_dim"] == 64
    # the same weights as a run without --config: the spec's shipped config.yaml (DIGEST table)
    default = load_config(None)
    assert (cfg.weights.w_2d, cfg.weights.w_3d_joint, cfg.weights.w_prior) == (0.01, 0.05, 0.001)
    for key in ("w_2d", "w_3d_joint", "w_3d_vert", "w_prior", "w_aux", "use_vertex_loss",
                "use_aux_loss"):  # fmt: skip
        assert getattr(cfg.weights, key) == getattr(default.weights, key), key


@pytest.mark.slow
def test_make_sample_refuses_to_overwrite_and_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "out"
    make_sample(out, n=2)
    before = (out / "batch.pt").read_bytes()
    with pytest.raises(InputError, match="refusing to overwrite"):
        make_sample(out, n=2, seed=5)
    assert (out / "batch.pt").read_bytes() == before
    make_sample(out, n=2, seed=5, force=True)
    assert (out / "batch.pt").read_bytes() != before

    import utnet_diag.synthetic.sample as sample_module

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(sample_module, "save_batch", broken)
    fresh = tmp_path / "fresh"
    with pytest.raises(OSError):
        make_sample(fresh, n=2)
    assert list(fresh.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        make_sample(tmp_path / "file")
