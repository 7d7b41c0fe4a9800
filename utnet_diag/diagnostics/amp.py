"""The forward, the losses and the backward under mixed precision, as a training loop runs them.

``--amp fp16|bf16``: the batch goes through the model and the spec's losses inside
``torch.autocast(device, dtype)`` (which ops run in the low precision is autocast's choice, as
in training), and every term and model output is compared with the float32 pass:

- overflow: a term or output that is non-finite under autocast while it is finite in float32;
  the first module whose output turns non-finite is named (:func:`locate_forward` under
  autocast);
- precision: a term whose value moves by more than 1%; the first module whose output loses half
  of its non-zero values to zero (below the dtype's smallest number); and for float16, a term
  above float16's largest value (65504) that only stays finite because it is computed in float32 here (loss
  code that casts it to half, or runs it through ops autocast keeps in float16, overflows);
- the scaler (float16): a ``torch.amp.GradScaler`` with its defaults (scale 2**16, halved on
  every step with a non-finite gradient) steps the configured optimiser on copies of the
  parameters. Skipped steps change no weight, so while the scaler searches, every step sees
  the same forward: one autocast forward and one backward per step probed give the steps a
  training run would skip on this batch and the scale of the first step taken
  (:func:`scaler_steps`). bfloat16 has
  float32's exponent range and needs no scaler: one unscaled backward says whether its
  gradients are finite.

Weights and ``.grad`` of the model are never written (gradients come from autograd.grad and
go to the copies).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from utnet_diag.checks.amp import AMP_CHECKS
from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.diagnostics.grad.strategies import grad
from utnet_diag.diagnostics.nan_origin import locate_backward, locate_forward
from utnet_diag.diagnostics.resources import out_of_memory_as_input_error
from utnet_diag.diagnostics.runner import (
    ForwardResult,
    RunInputs,
    first_tensor,
    forward_pass,
    running,
    training_step,
)
from utnet_diag.errors import InputError
from utnet_diag.optimizer_config import OptimizerSettings
from utnet_diag.report.result import CheckResult
from utnet_diag.report.sections import AmpSection

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
INIT_SCALE = 2.0**16  # GradScaler's default init_scale
MAX_STEPS = 31  # the scale halves from 2**16 to 2**-14, float16's smallest normal number


def _value(t: Any) -> float:
    return float(t.detach().float()) if isinstance(t, torch.Tensor) else float("nan")


def _dtype(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.") if isinstance(t, torch.Tensor) else "-"


def term_rows(ref: ForwardResult, amp: ForwardResult) -> list[dict[str, Any]]:
    """Per term (and the weighted total): float32 value, autocast value and dtype, relative
    difference (None where float32 is 0 or either is non-finite)."""
    pairs = [(k, ref.terms.terms[k], amp.terms.terms.get(k)) for k in ref.terms.terms]
    pairs.append(("total", ref.terms.total, amp.terms.total))
    rows = []
    for name, a32, alow in pairs:
        v32, vlow = _value(a32), _value(alow)
        rel = None
        if math.isfinite(v32) and math.isfinite(vlow) and v32 != 0:
            rel = abs(vlow - v32) / abs(v32)
        rows.append({"term": name, "float32": v32, "amp": vlow, "dtype": _dtype(alow),
                     "rel_diff": rel})  # fmt: skip
    return rows


def output_rows(ref: ForwardResult, amp: ForwardResult) -> list[dict[str, Any]]:
    """Per floating output tensor: its dtype under autocast, non-finite elements, the largest
    absolute difference from float32 (in the output's units: mm for 3D)."""
    rows = []
    for name, v32 in ref.outputs.items():
        vlow = amp.outputs.get(name)
        if not (isinstance(v32, torch.Tensor) and isinstance(vlow, torch.Tensor)):
            continue
        if not v32.is_floating_point() or v32.shape != vlow.shape:
            continue
        a, b = v32.detach().float(), vlow.detach().float()
        both = torch.isfinite(a) & torch.isfinite(b)
        diff = float((a - b).abs()[both].max()) if bool(both.any()) else None
        rows.append({"output": name, "dtype": _dtype(vlow),
                     "nonfinite": int((~torch.isfinite(b)).sum()),
                     "nonfinite_float32": int((~torch.isfinite(a)).sum()),
                     "max_abs_diff": diff})  # fmt: skip
    return rows


def _copies_optimizer(settings: OptimizerSettings, params: list[torch.Tensor]) -> tuple[Any, Any]:
    """Detached copies of ``params`` and the configured optimiser over them."""
    copies = [p.detach().clone() for p in params]
    return copies, getattr(torch.optim, settings.kind)(copies, **settings.torch_kwargs())


def scaler_steps(fwd: ForwardResult, settings: OptimizerSettings) -> dict[str, Any]:
    """The steps a GradScaler (default settings) skips on this batch, and the scale of the first
    step it takes (``scale``; None: none within ``MAX_STEPS``).

    Step ``k`` of the scaler's search runs at scale ``2**(16-k)`` with its growth count at 0
    and the optimiser untouched (every earlier step was skipped), so a fresh
    ``GradScaler(init_scale=2**(16-k))`` stepping the configured optimiser on copies of the
    parameters *is* that step: scale the float32 total, differentiate, ``scaler.step``,
    ``scaler.update``; skipped when the scale dropped. Steps are probed by bisection (a
    gradient that overflows at one scale overflows at every larger one): step 0, the last
    step, then halving the interval, at most 7 backwards for 31 steps; ``attempts`` lists the
    steps run, each with its scale and whether it was skipped."""
    model = fwd.inputs.model
    params = [p for p in model.parameters() if p.requires_grad]
    device = fwd.inputs.device.type
    copies, optimizer = _copies_optimizer(settings, params)
    probed: dict[int, bool] = {}

    def skipped_at(step: int) -> bool:
        if step not in probed:
            scale = INIT_SCALE / 2.0**step
            scaler = torch.amp.GradScaler(device, init_scale=scale)
            grads = grad(scaler.scale(fwd.terms.total), params, retain=True)
            for copy, g in zip(copies, grads):
                copy.grad = None if g is None else g.detach().float()
            scaler.step(optimizer)
            scaler.update()
            probed[step] = float(scaler.get_scale()) < scale
        return probed[step]

    last = MAX_STEPS - 1
    if not skipped_at(0):
        first = 0
    elif skipped_at(last):
        first = None
    else:  # skipped at lo, taken at hi
        lo, hi = 0, last
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if skipped_at(mid) else (lo, mid)
        first = hi
    attempts = [{"step": k, "scale": INIT_SCALE / 2.0**k, "skipped": probed[k]}
                for k in sorted(probed)]  # fmt: skip
    return {"used": True, "init_scale": INIT_SCALE, "attempts": attempts,
            "skipped": MAX_STEPS if first is None else first,
            "scale": None if first is None else INIT_SCALE / 2.0**first,
            "max_steps": MAX_STEPS}  # fmt: skip


def bf16_gradients(fwd: ForwardResult) -> dict[str, Any]:
    """One unscaled backward under bfloat16: are the gradients finite?"""
    params = [p for p in fwd.inputs.model.parameters() if p.requires_grad]
    grads = grad(fwd.terms.total, params, retain=True)
    finite = all(g is None or bool(torch.isfinite(g).all()) for g in grads)
    return {"used": False, "gradients_finite": finite}


UNDERFLOW_SHARE = 0.5  # a module output whose non-zero float32 values are half zero under autocast


class _OutputCounts:
    """Forward hooks on every module: per call, in order, the path, the dtype and the count of
    non-zero values of its first floating output (``calls``)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.calls: list[tuple[str, str, int]] = []
        self.handles: list[Any] = []

    def __enter__(self) -> _OutputCounts:
        for path, module in self.model.named_modules():
            self.handles.append(module.register_forward_hook(self._hook(path or "(model)")))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self.handles:
            handle.remove()

    def _hook(self, path: str) -> Any:
        def record(_module: Any, _args: Any, output: Any) -> None:
            tensor = first_tensor(output)
            if tensor is not None:
                nonzero = int(torch.count_nonzero(tensor.detach()))
                self.calls.append((path, _dtype(tensor), nonzero))

        return record


def first_underflow(ref: _OutputCounts, low: _OutputCounts) -> dict[str, Any] | None:
    """The first module call (in execution order) whose output loses at least half of its
    non-zero float32 values to zero under autocast (values below the dtype's smallest)."""
    if len(ref.calls) != len(low.calls):
        return None  # the two forwards took different paths: calls cannot be paired
    for (path, _, nz32), (path_low, dtype, nzlow) in zip(ref.calls, low.calls):
        if path != path_low or nz32 == 0:
            continue
        lost = max(0, nz32 - nzlow) / nz32
        if lost >= UNDERFLOW_SHARE:
            return {"module": path, "dtype": dtype, "lost_share": lost, "nonzero_float32": nz32}
    return None


def check_mode(mode: str | None) -> None:
    """InputError unless ``mode`` is None, 'fp16' or 'bf16' (checked before any model work)."""
    if mode is not None and mode not in AMP_DTYPES:
        raise InputError(f"--amp must be fp16 or bf16, got {mode!r}")


def amp_pass(
    inputs: RunInputs,
    ref: ForwardResult,
    mode: str,
    seed: int,
    settings: OptimizerSettings | None = None,
) -> AmpSection:
    """The autocast pass beside float32 pass ``ref`` (same inputs and seed). ``mode``: 'fp16'
    or 'bf16'; ``settings``: the optimiser the scaler steps (default the config's)."""
    check_mode(mode)
    dtype = AMP_DTYPES[mode]
    device = inputs.device.type
    start = time.perf_counter()
    try:
        autocast = torch.autocast(device, dtype=dtype)
    except RuntimeError as err:
        raise InputError(f"--amp {mode}: autocast is not available on {device}: {err}") from None
    settings = settings or inputs.config.optimizer
    origin = None
    with (  # float32, for the module outputs
        training_step(inputs.model, seed),
        running(inputs.loaded),
        torch.no_grad(),
        _OutputCounts(inputs.model) as counts32,
    ):
        inputs.loaded.forward(inputs.batch)
    with training_step(inputs.model, seed), running(inputs.loaded):
        with (
            autocast,
            out_of_memory_as_input_error(inputs.batch.size, inputs.device),
            _OutputCounts(inputs.model) as counts_low,
        ):
            fwd = forward_pass(inputs, grad=True, seed=seed)
        underflow = first_underflow(counts32, counts_low)
        terms = term_rows(ref, fwd)
        outputs = output_rows(ref, fwd)
        overflow = any(
            math.isfinite(r["float32"]) and not math.isfinite(r["amp"]) for r in terms
        ) or any(r["nonfinite"] > r["nonfinite_float32"] for r in outputs)
        scaler = None
        if overflow:
            with autocast:
                found = locate_forward(inputs, seed)
            origin = found.to_dict() if found is not None else None
        elif mode == "fp16":
            scaler = scaler_steps(fwd, settings)
            if scaler["scale"] is None:
                with autocast:
                    found = locate_backward(inputs, seed)
                origin = found.to_dict() if found is not None else None
        else:
            scaler = bf16_gradients(fwd)
    return AmpSection(
        dtype=str(dtype).removeprefix("torch."),
        device=str(inputs.device),
        terms=terms,
        outputs=outputs,
        origin=origin,
        scaler=scaler,
        underflow=underflow,
        seconds=round(time.perf_counter() - start, 4),
    )


def amp_checks(
    inputs: RunInputs, ref: ForwardResult, mode: str | None, seed: int
) -> tuple[list[CheckResult], dict[str, Any]]:
    """The ``amp`` checks and section for ``mode`` beside float32 pass ``ref`` (nothing when
    ``mode`` is None)."""
    if mode is None:
        return [], {}
    section = amp_pass(inputs, ref, mode, seed)
    checks = run_checks(
        AMP_CHECKS.specs, CheckContext(config=inputs.config, extras={"amp": section})
    )
    return checks, {"amp": section}
