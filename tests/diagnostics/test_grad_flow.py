"""grad-flow on the toy UTNet: exact norms, weights untouched, reach, balance, planted faults."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import utnet_toy

from utnet_diag.config import load_config
from utnet_diag.diagnostics.grad import group_of
from utnet_diag.diagnostics.grad_flow import grad_flow
from utnet_diag.io.batch import Batch
from utnet_diag.report.result import Status


def _reference_group_norms(model, batch, weights, seed: int = 0) -> dict[str, float]:
    """Plain training-step gradients (train mode, same seed) summed per top-level group."""
    from utnet_diag.losses import compute_terms

    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model.train()
        out = model(batch["rgb"], batch["depth"])
        total = compute_terms(out, batch, weights).total
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(total, [p for _, p in named], allow_unused=True)
    model.load_state_dict(state)
    sq: dict[str, float] = {}
    for (name, _), g in zip(named, grads):
        if g is not None:
            sq[group_of(name, 1)] = sq.get(group_of(name, 1), 0.0) + float(g.double().norm()) ** 2
    return {k: math.sqrt(v) for k, v in sq.items()}


@pytest.mark.parametrize("model_cls", [utnet_toy.ToyUTNet, utnet_toy.NoProtocol])
@pytest.mark.parametrize("exact", [False, True])
def test_group_norms_equal_a_plain_backward(toy_batch, model_cls, exact) -> None:
    model = model_cls()
    expected = _reference_group_norms(model, toy_batch, load_config().weights)
    report = grad_flow(model, toy_batch, exact=exact)
    groups = {g["name"]: g for g in report.sections["grad_modules"]["groups"]}
    assert set(expected) == {"backbone", "coarse_head", "refine"}
    for name, norm in expected.items():
        assert math.isclose(groups[name]["grad_norm"], norm, rel_tol=1e-4), name
    assert groups["backbone"]["role"] == "trunk" and groups["refine"]["role"] == "head"
    guessed = report.sections["grad_terms"]["boundary"]["guessed"]
    assert guessed is (model_cls is utnet_toy.NoProtocol)


def test_exact_per_term_norms_and_boundary_shares_agree(toy_batch) -> None:
    fast = grad_flow(utnet_toy.ToyUTNet(), toy_batch)
    exact = grad_flow(utnet_toy.ToyUTNet(), toy_batch, exact=True)
    fast_terms = {t["term"]: t for t in fast.sections["grad_terms"]["terms"]}
    exact_terms = {t["term"]: t for t in exact.sections["grad_terms"]["terms"]}
    for term, row in exact_terms.items():
        assert math.isclose(fast_terms[term]["boundary_norm"], row["boundary_norm"],
                            rel_tol=1e-4, abs_tol=1e-12), term  # fmt: skip
    aux = {g["name"]: g["term_norms"]["loss_aux"] for g in exact.sections["grad_modules"]["groups"]}
    assert aux["refine"] == 0.0 and aux["coarse_head"] > 0  # aux supervises the coarse head only
    assert fast_terms["loss_aux"]["reaches"] == ["backbone", "coarse_head"]
    assert fast_terms["loss_2d"]["reaches"] == ["backbone", "coarse_head", "refine"]


def test_weights_grads_modes_and_buffers_unchanged(toy_batch) -> None:
    model = utnet_toy.ToyUTNet()
    model.eval()
    first = next(model.parameters())
    first.grad = torch.full_like(first, 7.0)
    before = utnet_toy.state_hash(model)
    for exact in (False, True):
        grad_flow(model, toy_batch, exact=exact)
    assert utnet_toy.state_hash(model) == before
    assert torch.equal(first.grad, torch.full_like(first, 7.0))
    assert all(p.grad is None for p in list(model.parameters())[1:])
    assert not any(m.training for m in model.modules())


def test_reentrant_checkpoint_in_the_trunk_gives_the_plain_gradients(toy_batch) -> None:
    # torch.autograd.grad cannot run through torch.utils.checkpoint(use_reentrant=True); the
    # trunk's backward then goes through backward() with every .grad set aside and put back.
    plain = _reference_group_norms(utnet_toy.ToyUTNet(checkpoint="non-reentrant"), toy_batch,
                                   load_config().weights)  # fmt: skip
    model = utnet_toy.ToyUTNet(checkpoint="reentrant")
    first = next(model.parameters())
    first.grad = torch.full_like(first, 7.0)
    report = grad_flow(model, toy_batch)
    groups = {g["name"]: g for g in report.sections["grad_modules"]["groups"]}
    for name, norm in plain.items():
        assert math.isclose(groups[name]["grad_norm"], norm, rel_tol=1e-4), name
    assert groups["backbone"]["grad_norm"] > 0 and report.check("grad_dead").status is Status.PASS
    plain_reach = {
        t["term"]: t["reaches"]
        for t in grad_flow(utnet_toy.ToyUTNet(checkpoint="non-reentrant"), toy_batch).sections[
            "grad_terms"
        ]["terms"]
    }
    assert {t["term"]: t["reaches"] for t in report.sections["grad_terms"]["terms"]} == plain_reach
    assert torch.equal(first.grad, torch.full_like(first, 7.0))
    assert all(p.grad is None for p in list(model.parameters())[1:])


def test_reentrant_checkpoint_with_post_accumulate_hooks_is_refused(toy_batch) -> None:
    # backward() would run the hook (an optimizer step in the backward changes the weights)
    from utnet_diag.errors import InputError

    model = utnet_toy.ToyUTNet(checkpoint="reentrant")
    calls = []
    next(model.parameters()).register_post_accumulate_grad_hook(calls.append)
    with pytest.raises(InputError, match="post-accumulate-grad hooks"):
        grad_flow(model, toy_batch)
    assert calls == []


@pytest.mark.parametrize("exact, head", [(True, False), (False, True)])
def test_reentrant_checkpoint_where_grad_is_needed_is_an_input_error(toy_batch, exact, head):
    from utnet_diag.errors import InputError

    model = utnet_toy.ToyUTNet(checkpoint="reentrant", checkpoint_head=head)
    with pytest.raises(InputError, match="use_reentrant=True") as info:
        grad_flow(model, toy_batch, exact=exact)
    assert "use_reentrant=False" in info.value.hint
    assert all(p.grad is None for p in model.parameters())


def test_detached_head_fails_dead_and_reach(toy_batch) -> None:
    report = grad_flow(utnet_toy.ToyUTNet(detach_coarse=True), toy_batch)
    dead = report.check("grad_dead")
    assert dead.status is Status.FAIL and dead.value == ["coarse_head"]
    reach = report.check("grad_reach")
    assert reach.status is Status.FAIL and "loss_aux reaches no parameter" in reach.message


def test_backward_nan_is_located(toy_batch) -> None:
    report = grad_flow(utnet_toy.ToyUTNet(backward_nan=True), toy_batch)
    check = report.check("grad_finite")
    assert check.status is Status.FAIL
    origin = check.details["nan_origin"]
    assert origin["stage"] == "backward" and origin["where"] == "refine.1"
    assert origin["node"] == "_NaNGradBackward"
    assert report.check("grad_reach").status is Status.SKIP


def test_forward_nan_is_located(toy_batch) -> None:
    report = grad_flow(utnet_toy.ToyUTNet(poison="backbone"), toy_batch)
    origin = report.check("grad_finite").details["nan_origin"]
    assert origin["stage"] == "forward" and origin["where"] == "backbone.7"


def test_config_weights_drown_the_2d_term(toy_batch) -> None:
    report = grad_flow(utnet_toy.ToyUTNet(), toy_batch)
    balance = report.check("grad_balance")
    assert balance.status is Status.WARN
    assert balance.message.startswith("loss_3d_joint drowns loss_2d")
    shares = [t["share"] for t in report.sections["grad_terms"]["terms"]]
    assert math.isclose(sum(shares), 1.0, rel_tol=1e-6)


def test_huge_weights_explode(toy_batch) -> None:
    cfg = load_config()
    cfg = replace(cfg, weights=replace(cfg.weights, w_3d_joint=1e7))
    report = grad_flow(utnet_toy.ToyUTNet(), toy_batch, config=cfg)
    check = report.check("grad_exploding")
    assert check.status is Status.FAIL and check.value > 1e9


def test_depth_two_groups(toy_batch) -> None:
    report = grad_flow(utnet_toy.ToyUTNet(), toy_batch, depth=2)
    names = [g["name"] for g in report.sections["grad_modules"]["groups"]]
    assert names == ["backbone.0", "backbone.3", "backbone.4", "coarse_head", "refine.0"]
    assert report.check("grad_reach").status is Status.PASS  # refine.0 counts as refinement


def test_frozen_backbone_is_not_dead(toy_batch) -> None:
    model = utnet_toy.ToyUTNet()
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    report = grad_flow(model, toy_batch)
    assert report.check("grad_dead").status is Status.PASS
    groups = {g["name"]: g for g in report.sections["grad_modules"]["groups"]}
    assert groups["backbone"]["trainable"] == 0 and groups["backbone"]["frozen"] > 0
    assert "no trainable trunk" in report.check("grad_reach").message


def test_reentrant_checkpoint_keeps_what_each_term_reaches_outside_the_segment(toy_batch) -> None:
    # at depth 2 the backbone's conv (before the checkpointed segment, in the graph) and the
    # layers inside the segment (found by backward()) are groups of their own
    def reaches(checkpoint: str) -> dict[str, list[str]]:
        report = grad_flow(utnet_toy.ToyUTNet(checkpoint=checkpoint), toy_batch, depth=2)
        return {t["term"]: t["reaches"] for t in report.sections["grad_terms"]["terms"]}

    plain = reaches("non-reentrant")
    assert "backbone.0" in plain["loss_3d_joint"] and "backbone.3" in plain["loss_3d_joint"]
    assert reaches("reentrant") == plain


def test_finite_outputs_with_a_non_finite_loss_point_at_the_loss(toy_batch) -> None:
    # a MANO pose label of 3e38: the model's outputs stay finite, the pose loss overflows; the
    # origin is the loss computation, not a backward node
    tensors = dict(toy_batch.tensors)
    tensors["mano_pose"] = tensors["mano_pose"].clone()
    tensors["mano_pose"][1, 5] = 3e38
    report = grad_flow(
        utnet_toy.ToyUTNet(), Batch(tensors=tensors, sample_ids=toy_batch.sample_ids)
    )
    assert report.check("grad_finite").status is Status.FAIL
    origin = report.sections["nan_origin"]
    assert origin["stage"] == "loss" and origin["where"] == "loss_aux"
    assert "the model outputs are finite" in origin["message"]
