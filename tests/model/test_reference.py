"""The reference UTNet: protocol shapes and units, 2D in the crop, gradients, groups, configs."""

from __future__ import annotations

import pytest
import torch

from utnet_diag.config import LossWeights
from utnet_diag.errors import InputError
from utnet_diag.losses import compute_terms
from utnet_diag.model.reference import ReferenceConfig, ReferenceUTNet, build_reference


def _run(model, batch, depth=True):
    return model(batch["rgb"], batch["depth"] if depth else None, batch["n_i"])


def test_forward_protocol_shapes_and_units(reference_model, sample_batch) -> None:
    out = _run(reference_model, sample_batch)
    b = sample_batch.size
    assert out["keypoints_2d"].shape == (b, 21, 2)
    assert out["keypoints_3d"].shape == (b, 21, 3)
    assert out["vertices"].shape == (b, 778, 3)
    assert out["mano_params"]["global_orient"].shape == (b, 1, 3, 3)
    assert out["mano_params"]["hand_pose"].shape == (b, 15, 3, 3)
    assert out["mano_params"]["betas"].shape == (b, 10)
    assert out["coarse_pose"].shape == (b, 48)
    assert out["coarse_shape"].shape == (b, 10)
    assert out["coarse_cam"].shape == (b, 3)
    # millimetres: a hand spans roughly 100-250 mm, a wrist-to-middle-tip length of 150-220 mm
    span = out["vertices"].amax(1) - out["vertices"].amin(1)
    assert ((span.amax(-1) > 100) & (span.amax(-1) < 300)).all()
    length = (out["keypoints_3d"][:, 12] - out["keypoints_3d"][:, 0]).norm(dim=-1)
    assert ((length > 120) & (length < 260)).all(), length
    rot = out["mano_params"]["hand_pose"]
    assert torch.allclose(rot @ rot.transpose(-1, -2), torch.eye(3).expand_as(rot), atol=1e-4)


def test_untrained_model_puts_a_plausible_hand_inside_the_crop(
    reference_model, sample_batch
) -> None:
    kp2d = _run(reference_model, sample_batch)["keypoints_2d"]
    assert kp2d.abs().max() <= 0.5
    span = kp2d.amax(1) - kp2d.amin(1)  # (B, 2)
    assert (span.amax(-1) > 0.3).all() and (span.amax(-1) < 0.8).all()
    # starts near the mean parameters: betas near 0, coarse and final pose close
    out = _run(reference_model, sample_batch)
    assert out["mano_params"]["betas"].abs().max() < 0.1


def test_projection_matches_the_wilor_formula(reference_model, sample_batch) -> None:
    out = _run(reference_model, sample_batch)
    cam = out["cam"]
    tz = 2 * 5000.0 / (256 * cam[:, 0] + 1e-9)
    t = torch.stack((cam[:, 1], cam[:, 2], tz), -1)
    p = out["keypoints_3d"] / 1000.0 + t[:, None]
    expected = (5000.0 / 256) * p[..., :2] / p[..., 2:]
    assert torch.allclose(out["keypoints_2d"], expected, atol=1e-6)
    assert torch.allclose(out["cam_translation"], t * 1000.0)


def test_every_trainable_parameter_gets_a_finite_gradient(sample_batch) -> None:
    model = build_reference("tiny")
    model.train()
    out = _run(model, sample_batch)
    terms = compute_terms(out, sample_batch, LossWeights.from_preset("recommended"))
    assert set(terms.terms) == {"loss_2d", "loss_3d_joint", "loss_prior", "loss_aux"}
    terms.total.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) > 20
    for name, param in trainable:
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    nonzero = sum(bool(p.grad.abs().sum() > 0) for _, p in trainable)
    assert nonzero == len(trainable)
    assert not any(p.requires_grad for p in model.mano.parameters())


def test_trunk_features_carry_each_term_gradient(sample_batch) -> None:
    model = build_reference("tiny")
    out = _run(model, sample_batch)
    trunk = model.last_trunk_features
    cfg = model.config
    tokens = (cfg.img_size[0] // cfg.patch_size) * (cfg.img_size[1] // cfg.patch_size)
    assert trunk.shape == (sample_batch.size, tokens, cfg.embed_dim)
    terms = compute_terms(out, sample_batch, LossWeights.from_preset("recommended"))
    for name in ("loss_2d", "loss_3d_joint", "loss_aux"):
        (grad,) = torch.autograd.grad(terms.terms[name], trunk, retain_graph=True)
        assert grad.abs().sum() > 0, name


def test_module_groups_name_the_children(reference_model) -> None:
    groups = ReferenceUTNet.module_groups()
    children = dict(reference_model.named_children())
    assert set(groups) == {"trunk", "heads"}
    assert set(groups["trunk"]) | set(groups["heads"]) | {"mano"} == set(children)
    assert sum(p.numel() for p in children["mano"].parameters() if p.requires_grad) == 0


def test_depth_is_used_and_optional(reference_model, sample_batch) -> None:
    with_depth = _run(reference_model, sample_batch)["keypoints_3d"]
    without = reference_model(sample_batch["rgb"], None, None)["keypoints_3d"]
    assert without.shape == with_depth.shape
    assert not torch.equal(with_depth, without)
    n_zero = reference_model(sample_batch["rgb"], sample_batch["depth"], torch.zeros(8))
    assert torch.allclose(n_zero["keypoints_3d"], without, atol=1e-5)


def test_init_is_deterministic_and_leaves_global_rng(reference_model) -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    other = build_reference("tiny")
    assert torch.equal(torch.rand(1), before)
    for (name, a), (_, b) in zip(reference_model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), name


def test_axis_angle_heads(sample_batch) -> None:
    model = build_reference({"joint_rep_type": "aa"})
    out = model(sample_batch["rgb"], sample_batch["depth"], sample_batch["n_i"])
    assert out["coarse_pose"].shape == (8, 48)
    assert out["keypoints_2d"].abs().max() <= 0.5


def test_config_presets_and_errors() -> None:
    real = ReferenceConfig.preset("real")
    assert real.img_size == (256, 192)
    assert (real.embed_dim, real.vit_depth, real.vit_num_heads) == (1280, 32, 16)
    tiny = ReferenceConfig.from_dict(ReferenceConfig.preset("tiny").to_dict())
    assert tiny == ReferenceConfig.preset("tiny")
    utnet_style = ReferenceConfig.from_dict(
        {"img_size": [128, 96], "patch_size": 16, "mano_path": "x.pkl", "num_scales": 2}
    )
    assert utnet_style.img_size == (128, 96)
    with pytest.raises(InputError, match="did you mean 'embed_dim'"):
        ReferenceConfig.from_dict({"embed_dims": 64})
    with pytest.raises(InputError, match="multiples of patch_size"):
        ReferenceConfig.from_dict({"img_size": [60, 48]})
    with pytest.raises(InputError, match="invalid reference model config"):
        ReferenceConfig.from_dict({"patch_size": "8"})
    with pytest.raises(InputError, match="unknown reference model preset"):
        ReferenceConfig.preset("huge")
    with pytest.raises(ValueError, match="expects"):
        build_reference("tiny")(torch.zeros(1, 3, 32, 32))
