"""--amp on the toy UTNet: planted float16 overflow, the GradScaler's skipped steps replayed by
hand, NaN gradients at every scale, weights untouched, the options' bad values."""

from __future__ import annotations

import json

import pytest
import torch
import utnet_toy
from torch import nn

from utnet_diag.cli.app import main
from utnet_diag.config import load_config
from utnet_diag.diagnostics.grad_flow import grad_flow
from utnet_diag.diagnostics.loss_breakdown import loss_breakdown
from utnet_diag.errors import InputError
from utnet_diag.losses import compute_terms
from utnet_diag.report.result import Status


class OverflowToy(utnet_toy.ToyUTNet):
    """The toy with a probe layer whose output (about 3e5) exceeds float16's 65504 but not
    bfloat16's range; a 1e-9 share of it is added to the joints (3e-4 mm in float32)."""

    def __init__(self):
        super().__init__()
        self.probe = nn.Linear(32, 3)
        with torch.no_grad():
            self.probe.weight.fill_(1e4)
            self.probe.bias.fill_(3e5)

    def forward(self, rgb, depth, n_i=None):
        out = super().forward(rgb, depth, n_i)
        big = self.probe(self.last_trunk_features)  # (B, 3)
        out["keypoints_3d"] = out["keypoints_3d"] + 1e-9 * big[:, None, :]
        return out


def test_a_term_that_overflows_in_float16_but_not_bfloat16(toy_batch):
    report = loss_breakdown(OverflowToy(), toy_batch, amp="fp16")
    check = report.check("amp_overflow")
    assert check.status is Status.FAIL and "loss_3d_joint" in check.value
    assert "'probe'" in check.message  # the first module whose output is non-finite
    assert report.sections["amp"]["origin"]["where"] == "probe"
    assert report.check("amp_scaler").status is Status.SKIP
    report = loss_breakdown(OverflowToy(), toy_batch, amp="bf16")
    assert report.check("amp_overflow").status is Status.PASS
    assert report.check("amp_scaler").status is Status.PASS
    # the float32 report is unchanged by --amp
    assert report.check("loss_finite").status is Status.PASS


def _first_finite_scale(model, batch) -> tuple[float, int]:
    """GradScaler's search by hand: autocast forward, the total times 2**16, 2**15, ...;
    the first scale whose parameter gradients are all finite, and how many came before."""
    weights = load_config().weights
    params = [p for p in model.parameters() if p.requires_grad]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model.train()
        with torch.autocast("cpu", dtype=torch.float16):
            out = model(batch["rgb"], batch["depth"])
            total = compute_terms(out, batch, weights).total
    for k in range(40):
        scale = 2.0 ** (16 - k)
        grads = torch.autograd.grad(total * scale, params, retain_graph=True, allow_unused=True)
        if all(g is None or bool(torch.isfinite(g).all()) for g in grads):
            model.load_state_dict(state)
            return scale, k
    raise AssertionError("no finite scale")


def test_the_scalers_skipped_steps_match_a_search_by_hand(toy_batch):
    expected_scale, expected_skips = _first_finite_scale(utnet_toy.ToyUTNet(), toy_batch)
    assert expected_skips > 0  # millimetre losses: float16 gradients overflow at 2**16
    report = grad_flow(utnet_toy.ToyUTNet(), toy_batch, amp="fp16")
    scaler = report.sections["amp"]["scaler"]
    assert scaler["scale"] == expected_scale and scaler["skipped"] == expected_skips
    steps = {a["step"]: a for a in scaler["attempts"]}
    assert steps[expected_skips - 1]["skipped"] and not steps[expected_skips]["skipped"]
    for k, attempt in steps.items():  # each step run agrees with the search by hand
        assert attempt["scale"] == 2.0 ** (16 - k) and attempt["skipped"] is (k < expected_skips)
    assert len(steps) <= 7  # bisection over the 31 steps
    check = report.check("amp_scaler")
    assert check.status is Status.PASS and check.value == expected_scale
    assert report.sections["amp"]["seconds"] > 0
    assert f"skips the first {expected_skips} steps" in check.message


def test_gradients_non_finite_at_every_scale_fail_with_the_node(toy_batch):
    report = grad_flow(utnet_toy.ToyUTNet(backward_nan=True), toy_batch, amp="fp16")
    check = report.check("amp_scaler")
    assert check.status is Status.FAIL and "skips every step" in check.message
    assert report.sections["amp"]["scaler"]["skipped"] == 31
    assert report.sections["amp"]["origin"]["stage"] == "backward"
    assert "refine" in report.sections["amp"]["origin"]["where"]


def test_weights_buffers_and_grad_fields_are_untouched(toy_batch):
    model = utnet_toy.ToyUTNet()

    before = utnet_toy.state_hash(model)
    grad_flow(model, toy_batch, amp="fp16")
    assert utnet_toy.state_hash(model) == before and all(p.grad is None for p in model.parameters())
    assert not torch.is_autocast_enabled("cpu")


def test_a_bad_mode_is_refused_before_any_model_work(toy_batch):
    with pytest.raises(InputError, match="--amp must be fp16 or bf16"):
        grad_flow(model="not a model", batch=toy_batch, amp="fp8")


@pytest.mark.slow
def test_gate_json_and_junit_carry_the_amp_and_step_ids(tmp_path, capsys):
    junit = tmp_path / "gate.xml"
    code = main(["gate", "--amp", "bf16", "--clip-grad-norm", "2", "--json",
                 "--junit", str(junit)])  # fmt: skip
    assert code in (0, 1)
    report = json.loads(capsys.readouterr().out)
    ids = {c["id"] for c in report["checks"]}
    assert {"amp_overflow", "amp_precision", "amp_scaler", "step_clip", "step_update"} <= ids
    assert report["amp"]["dtype"] == "bfloat16"
    assert report["step"]["clip_grad_norm"] == 2.0
    xml = junit.read_text()
    for name in ("amp_scaler", "step_update"):
        assert f'name="{name}"' in xml


@pytest.mark.parametrize(
    "argv",
    [["gate", "--amp", "fp32"], ["grad-flow", "--amp", "half"], ["loss-breakdown", "--amp", "x"],
     ["grad-flow", "--clip-grad-norm", "-1"], ["gate", "--clip-grad-norm", "one"]],
)  # fmt: skip
def test_bad_option_values_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("utnet-diag: error:"), err


class UnderflowToy(utnet_toy.ToyUTNet):
    """The toy with a layer whose output (about 1e-9) is below float16's smallest number: in
    float32 it shifts the 2D keypoints by about 0.1 crop units once scaled back up by 1e8."""

    def __init__(self):
        super().__init__()
        self.tiny = nn.Linear(32, 2)
        with torch.no_grad():
            self.tiny.weight.fill_(0.0)
            self.tiny.bias.fill_(1e-9)

    def forward(self, rgb, depth, n_i=None):
        out = super().forward(rgb, depth, n_i)
        shift = self.tiny(self.last_trunk_features).float() * 1e8  # (B, 2)
        out["keypoints_2d"] = out["keypoints_2d"] + shift[:, None, :]
        return out


def test_an_output_that_underflows_in_float16_is_named(toy_batch):
    report = loss_breakdown(UnderflowToy(), toy_batch, amp="fp16")
    under = report.sections["amp"]["underflow"]
    assert under["module"] == "tiny" and under["dtype"] == "float16" and under["lost_share"] == 1.0
    check = report.check("amp_precision")
    assert (
        check.status is Status.WARN and "'tiny' loses 100% of its non-zero values" in check.message
    )
    assert "loss_2d moves" in check.message  # the term it feeds changes with it
    report = loss_breakdown(UnderflowToy(), toy_batch, amp="bf16")  # bfloat16 keeps 1e-9
    assert report.sections["amp"].get("underflow") is None
    assert report.check("amp_precision").status is Status.PASS


@pytest.mark.parametrize("skips", [0, 1, 2, 5])
def test_the_scaler_search_finds_each_number_of_skipped_steps(skips):
    # one weight whose gradient is g = 5e33 * 2**skips: g * 2**(16 - k) overflows float32 (3.4e38)
    # exactly for the first ``skips`` steps k of the scaler's search
    from types import SimpleNamespace

    from utnet_diag.diagnostics.amp import scaler_steps
    from utnet_diag.optimizer_config import OptimizerSettings

    model = nn.Linear(1, 1, bias=False)
    g = 5e33 * 2.0**skips
    by_hand = next(k for k in range(31)
                   if torch.isfinite(torch.tensor(g) * 2.0 ** (16 - k)))  # float32  # fmt: skip
    assert by_hand == skips
    total = (model.weight * g).sum()
    fwd = SimpleNamespace(inputs=SimpleNamespace(model=model, device=torch.device("cpu")),
                          terms=SimpleNamespace(total=total))  # fmt: skip
    found = scaler_steps(fwd, OptimizerSettings())
    assert found["skipped"] == skips and found["scale"] == 2.0 ** (16 - skips)


class _NaNGradInBFloat16(torch.autograd.Function):
    """The identity whose backward is NaN when its input was bfloat16 (finite in float32)."""

    @staticmethod
    def forward(ctx, x):
        ctx.low = x.dtype == torch.bfloat16
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan") if ctx.low else grad


class BFloat16BackwardToy(utnet_toy.ToyUTNet):
    """The toy with a branch off the coarse head whose gradient is NaN only under bfloat16."""

    def forward(self, rgb, depth, n_i=None):
        out = super().forward(rgb, depth, n_i)
        branch = _NaNGradInBFloat16.apply(self.coarse_head(self.last_trunk_features))
        out["keypoints_3d"] = out["keypoints_3d"] + 0.0 * branch.sum()
        return out


def test_gradients_non_finite_only_under_bfloat16_fail_the_scaler_check(toy_batch):
    report = grad_flow(BFloat16BackwardToy(), toy_batch, amp="bf16")
    assert report.check("grad_finite").status is Status.PASS  # float32 is fine
    check = report.check("amp_scaler")
    assert check.status is Status.FAIL and "non-finite gradients under bfloat16" in check.message
    assert report.sections["amp"]["scaler"] == {"used": False, "gradients_finite": False}
    assert (
        grad_flow(utnet_toy.ToyUTNet(), toy_batch, amp="bf16").check("amp_scaler").status
        is Status.PASS
    )
