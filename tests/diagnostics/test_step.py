"""One optimiser step on the toy UTNet: clipping and update sizes against torch.optim itself."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import pytest
import torch
import utnet_toy

from utnet_diag.config import load_config
from utnet_diag.diagnostics.grad import group_of
from utnet_diag.diagnostics.grad_flow import grad_flow
from utnet_diag.diagnostics.step import clip_factor, first_update
from utnet_diag.losses import compute_terms
from utnet_diag.optimizer_config import OptimizerSettings
from utnet_diag.report.result import Status

KINDS = [
    OptimizerSettings(kind="AdamW", lr=1e-3, weight_decay=1e-2),
    OptimizerSettings(kind="AdamW", lr=1e-5, weight_decay=1e-4),  # decay rounds away in float32
    OptimizerSettings(kind="Adam", lr=1e-3, weight_decay=1e-2, betas=(0.8, 0.99), eps=1e-6),
    OptimizerSettings(kind="SGD", lr=1e-2, weight_decay=1e-3),
    OptimizerSettings(kind="SGD", lr=1e-2, momentum=0.9, nesterov=True),
    OptimizerSettings(kind="RMSprop", lr=1e-3, weight_decay=1e-3),
]


def torch_optimizer(settings: OptimizerSettings, params):
    return getattr(torch.optim, settings.kind)(params, **settings.torch_kwargs())


@pytest.mark.parametrize("settings", KINDS, ids=lambda s: f"{s.kind}-{s.lr:g}")
def test_the_first_update_is_torch_optims(settings):
    g = torch.Generator().manual_seed(3)
    p = torch.randn(2000, generator=g) * 0.05
    grad = torch.randn(2000, generator=g) * torch.logspace(-12, 3, 2000)
    copy_ = p.clone().requires_grad_()
    copy_.grad = grad.clone()
    torch_optimizer(settings, [copy_]).step()
    ours = (p + first_update(settings, settings.lr, p, grad)) - p  # as the weights keep it
    theirs = copy_.detach() - p
    ulp = torch.finfo(torch.float32).eps * torch.maximum(p.abs(), (p + theirs).abs())
    assert bool(((ours - theirs).abs() <= 2 * ulp).all())
    assert float(theirs.abs().max()) > 0


def test_the_clip_factor_is_clip_grad_norms():
    g = torch.Generator().manual_seed(4)
    grads = [torch.randn(50, generator=g) * 300, torch.randn(7, 3, generator=g)]
    params = [torch.zeros_like(x, requires_grad=True) for x in grads]
    for p, x in zip(params, grads):
        p.grad = x.clone()
    total = float(torch.nn.utils.clip_grad_norm_(params, max_norm=2.0))
    factor = clip_factor(total, 2.0)
    assert math.isclose(float(params[0].grad[0]), float(grads[0][0]) * factor, rel_tol=1e-6)
    assert clip_factor(total, None) == 1.0 and clip_factor(1.0, 2.0) == 1.0


def _plain_step(model, batch, weights, settings, seed=0):
    """The training step done the ordinary way on a copy: train mode, seeded, backward,
    clip_grad_norm_, optimizer.step(); per top-level group ||new - old|| / ||old||."""
    model = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model.train()
        total = compute_terms(model(batch["rgb"], batch["depth"]), batch, weights).total
    total.backward()
    if settings.clip_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad_norm)
    torch_optimizer(settings, [p for p in model.parameters() if p.grad is not None]).step()
    upd: dict[str, float] = {}
    wgt: dict[str, float] = {}
    for n, p in model.named_parameters():
        key = group_of(n, 1)
        upd[key] = upd.get(key, 0.0) + float((p.detach() - before[n]).double().pow(2).sum())
        wgt[key] = wgt.get(key, 0.0) + float(before[n].double().pow(2).sum())
    return {k: math.sqrt(upd[k] / wgt[k]) for k in upd}


@pytest.mark.parametrize("settings", [KINDS[0], KINDS[3],
                                      replace(KINDS[4], clip_grad_norm=None)],
                         ids=["adamw-clip", "sgd-clip", "sgd-nesterov-noclip"])  # fmt: skip
def test_update_ratios_equal_a_real_optimizer_step(toy_batch, settings):
    model = utnet_toy.ToyUTNet()
    cfg = replace(load_config(), optimizer=settings)
    expected = _plain_step(model, toy_batch, cfg.weights, settings)
    report = grad_flow(model, toy_batch, config=cfg)
    got = {g["name"]: g["ratio"] for g in report.sections["step"]["groups"]}
    assert set(got) == set(expected) == {"backbone", "coarse_head", "refine"}
    for name, ratio in expected.items():
        assert math.isclose(got[name], ratio, rel_tol=2e-3), (name, got[name], ratio)


def test_exact_term_shares_are_projections_of_plain_per_term_gradients(toy_batch):
    model = utnet_toy.ToyUTNet()
    cfg = load_config()
    params = [p for p in model.parameters() if p.requires_grad]
    state = copy.deepcopy(model.state_dict())
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model.train()
        terms = compute_terms(model(toy_batch["rgb"], toy_batch["depth"]), toy_batch, cfg.weights)
    per_term = {}
    for name, value in terms.terms.items():
        w = cfg.weights.weight_of(name)
        if w and value.requires_grad:
            grads = torch.autograd.grad(w * value, params, retain_graph=True, allow_unused=True)
            per_term[name] = torch.cat([
                (g if g is not None else torch.zeros_like(p)).reshape(-1).double()
                for g, p in zip(grads, params)])  # fmt: skip
    model.load_state_dict(state)  # the running statistics the forward moved
    total = sum(per_term.values())
    expected = {t: float(g @ total / (total @ total)) for t, g in per_term.items()}
    report = grad_flow(model, toy_batch, exact=True)
    step = report.sections["step"]
    assert step["share_basis"] == "all parameters"
    for t, share in expected.items():
        assert math.isclose(step["term_shares"][t], share, rel_tol=1e-4, abs_tol=1e-9), t
    boundary = grad_flow(model, toy_batch).sections["step"]
    assert boundary["share_basis"] == "the trunk/heads boundary"
    assert math.isclose(sum(boundary["term_shares"].values()), 1.0, rel_tol=1e-9)


def test_a_clip_that_cuts_the_sgd_step_a_millionfold_warns(toy_batch):
    norm = grad_flow(utnet_toy.ToyUTNet(), toy_batch).sections["step"]["total_grad_norm"]
    settings = OptimizerSettings(kind="SGD", lr=1e-3, clip_grad_norm=norm * 1e-6)
    report = grad_flow(utnet_toy.ToyUTNet(), toy_batch,
                       config=replace(load_config(), optimizer=settings))  # fmt: skip
    check = report.check("step_clip")
    assert math.isclose(check.details["clip_factor"], 1e-6, rel_tol=1e-6)
    # the update shrinks by the factor, and float32 weights keep only part of so small a step
    assert check.status is Status.WARN and 0.5e-6 < check.value < 2e-6
    # with AdamW the same clip hardly changes the update: Adam divides the scale out
    adam = replace(settings, kind="AdamW")
    report = grad_flow(utnet_toy.ToyUTNet(), toy_batch,
                       config=replace(load_config(), optimizer=adam))  # fmt: skip
    assert report.check("step_clip").status is Status.PASS and report.check("step_clip").value > 0.5


def test_a_learning_rate_100x_too_large_for_one_group_is_named(toy_batch):
    base = OptimizerSettings(lr=1e-6)
    report = grad_flow(utnet_toy.ToyUTNet(), toy_batch,
                       config=replace(load_config(), optimizer=base))  # fmt: skip
    assert report.check("step_update").status is Status.PASS
    hot = replace(base, groups={"refine": 1e-4})
    report = grad_flow(utnet_toy.ToyUTNet(), toy_batch,
                       config=replace(load_config(), optimizer=hot))  # fmt: skip
    check = report.check("step_update")
    assert (
        check.status is Status.WARN and "refine" in check.message and "lr 0.0001" in check.message
    )
    assert "backbone" not in check.message and "coarse_head" not in check.message
    ratios = {g["name"]: g for g in report.sections["step"]["groups"]}
    assert ratios["refine"]["lr"] == 1e-4 and ratios["backbone"]["lr"] == 1e-6


def test_the_clip_option_replaces_the_configs(toy_batch):
    report = grad_flow(utnet_toy.ToyUTNet(), toy_batch, clip_grad_norm=0.0)
    step = report.sections["step"]
    assert step.get("clip_grad_norm") is None and step["clip_factor"] == 1.0
    assert "no clipping configured" in report.check("step_clip").message
    report = grad_flow(utnet_toy.ToyUTNet(), toy_batch, clip_grad_norm=5.0)
    assert report.sections["step"]["optimizer"]["clip_source"] == "--clip-grad-norm"


def test_weights_and_grad_fields_are_untouched(toy_batch):
    model = utnet_toy.ToyUTNet()

    before = utnet_toy.state_hash(model)
    grad_flow(
        model,
        toy_batch,
        config=replace(load_config(), optimizer=OptimizerSettings(kind="SGD", lr=10.0)),
    )
    assert utnet_toy.state_hash(model) == before and all(p.grad is None for p in model.parameters())


def test_no_step_is_measured_from_non_finite_gradients(toy_batch):
    report = grad_flow(utnet_toy.ToyUTNet(backward_nan=True), toy_batch)
    assert report.check("grad_finite").status is Status.FAIL
    assert "step" not in report.sections
    assert report.check("step_clip").status is Status.SKIP
    assert report.check("step_update").status is Status.SKIP


def test_adamw_decay_that_float32_rounds_away_is_noted(toy_batch):
    # UTNet's lr 1e-5 and weight_decay 1e-4: torch.optim.AdamW leaves float32 weights as they are
    p = torch.randn(1000) * 0.05
    c = p.clone().requires_grad_()
    c.grad = torch.zeros_like(c)
    torch.optim.AdamW([c], lr=1e-5, weight_decay=1e-4).step()
    assert torch.equal(c.detach(), p)
    step = grad_flow(utnet_toy.ToyUTNet(), toy_batch).sections["step"]
    assert any("weight decay does nothing" in n and "1e-09" in n for n in step["notes"])
    step = grad_flow(
        utnet_toy.ToyUTNet(),
        toy_batch,
        config=replace(load_config(), optimizer=OptimizerSettings(lr=1e-3, weight_decay=1e-2)),
    ).sections["step"]
    assert step.get("notes") is None


@pytest.mark.parametrize("kind", ["AdamW", "SGD"])
def test_a_large_group_is_measured_on_a_sample_within_a_few_percent(kind):
    from utnet_diag.diagnostics.step import MAX_ELEMENTS, _Part, _sample, _update_sq

    g = torch.Generator().manual_seed(5)
    n = 4 * MAX_ELEMENTS + 7
    weight = torch.randn(n, generator=g) * 0.05
    # structured gradients: a few large columns, most small, some exactly zero
    grad = torch.randn(n, generator=g) * torch.logspace(-6, 1, n).flip(0)
    grad[::11] = 0.0
    settings = OptimizerSettings(kind=kind, lr=1e-3, weight_decay=1e-2)
    exact = float(first_update(settings, 1e-3, weight, grad * 0.1).double().pow(2).sum())
    part = _Part(0, 1e-3, n, _sample([weight], n), _sample([grad], n))
    assert part.sampled and part.size <= MAX_ELEMENTS
    sampled = _update_sq(settings, part, (0.1,))[0]
    # gradients over seven orders of magnitude: SGD's sum is carried by its largest few
    assert abs(sampled / exact - 1.0) < 0.03


def test_a_group_is_sampled_as_its_concatenation_would_be_without_building_it():
    from utnet_diag.diagnostics.step import MAX_ELEMENTS, _sample

    g = torch.Generator().manual_seed(6)
    tensors = [torch.randn(s, generator=g) for s in ((700, 513), (3,), (MAX_ELEMENTS,), (11, 7))]
    n = sum(t.numel() for t in tensors)
    whole = torch.cat([t.reshape(-1) for t in tensors])
    stride = 3  # the smallest prime >= ceil(n / MAX_ELEMENTS) = 3
    assert -(-n // MAX_ELEMENTS) == 3
    assert torch.equal(torch.cat(_sample(tensors, n)), whole[::stride])
    small = tensors[1:2] + tensors[3:]
    assert torch.equal(torch.cat(_sample(small, 80)), torch.cat([t.reshape(-1) for t in small]))


def test_the_sampling_stride_is_the_next_prime():
    from utnet_diag.diagnostics.step import _next_prime

    primes = [p for p in range(2, 60) if all(p % d for d in range(2, p))]  # by trial division
    for k in range(0, 54):
        assert _next_prime(k) == min(p for p in primes if p >= max(k, 2)), k
