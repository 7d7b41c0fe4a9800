"""Checks on one training step under mixed precision (``--amp fp16|bf16``).

``ctx.extras['amp']`` is a :class:`utnet_diag.report.sections.AmpSection` from
:func:`utnet_diag.diagnostics.amp.amp_pass`.
"""

from __future__ import annotations

import math

from utnet_diag.checks.engine import CheckContext, CheckRegistry, Outcome
from utnet_diag.report.numbers import fmt_number

AMP_CHECKS = CheckRegistry("amp")

TERM_DRIFT = 0.01  # a loss term that moves by more than 1% under autocast
FP16_MAX = 65504.0

HINT_OVERFLOW = (
    "keep the loss in float32 (cast the outputs with .float() before it, or run it under"
    " torch.autocast(..., enabled=False)), bring the term to a smaller scale (its weight, or a"
    " mean instead of a batch sum in mm), or train with --amp bf16"
)


def _fmt(x: float | None) -> str:
    return fmt_number(x, 4, none="none")


def _origin_text(origin: dict | None) -> str:
    return f"; {origin['message']}" if origin else "; origin not found"


@AMP_CHECKS.check("amp_overflow", hint=HINT_OVERFLOW)
def amp_overflow(ctx: CheckContext) -> Outcome:
    """Every loss term and model output that is finite in float32 stays finite under autocast;
    names the first module whose output overflows."""
    amp = ctx.extras["amp"]
    bad_terms = [
        r for r in amp.terms if math.isfinite(r["float32"]) and not math.isfinite(r["amp"])
    ]
    bad_outputs = [r for r in amp.outputs if r["nonfinite"] > r["nonfinite_float32"]]
    if not bad_terms and not bad_outputs:
        return Outcome.ok(f"every loss term and output finite under {amp.dtype} autocast")
    parts = [f"{r['term']} is {_fmt(r['amp'])} ({r['dtype']}; float32 {_fmt(r['float32'])})"
             for r in bad_terms]  # fmt: skip
    parts += [f"{r['output']} has {r['nonfinite']} non-finite values ({r['dtype']})"
              for r in bad_outputs]  # fmt: skip
    return Outcome.fail(
        f"under {amp.dtype} autocast " + ", ".join(parts) + _origin_text(amp.origin),
        value=[r["term"] for r in bad_terms] + [r["output"] for r in bad_outputs],
        details={"origin": amp.origin},
    )


@AMP_CHECKS.check("amp_precision", requires=("amp_overflow",),
                  hint="compute this term in float32 (outputs .float() before the loss), or"
                       " bring it below float16's range with its weight or units")  # fmt: skip
def amp_precision(ctx: CheckContext) -> Outcome:
    """No loss term moves by more than 1% under autocast, no module output loses half of its
    non-zero values to zero; under float16, no term is above float16's largest value (65504),
    which only float32 loss code keeps finite."""
    amp = ctx.extras["amp"]
    drift = [r for r in amp.terms if r["rel_diff"] is not None and r["rel_diff"] > TERM_DRIFT]
    high = []
    if amp.dtype == "float16":
        high = [r for r in amp.terms if r["term"] != "total" and abs(r["float32"]) >= FP16_MAX]
    largest = max((r for r in amp.terms if r["rel_diff"] is not None),
                  key=lambda r: r["rel_diff"], default=None)  # fmt: skip
    kp = next((r for r in amp.outputs if r["output"] == "keypoints_3d"), None)
    moved = f"; keypoints_3d moves up to {_fmt(kp['max_abs_diff'])} mm" if kp else ""
    parts = [f"{r['term']} moves {r['rel_diff']:.2%} ({_fmt(r['float32'])} -> {_fmt(r['amp'])})"
             for r in drift]  # fmt: skip
    parts += [f"{r['term']} = {_fmt(r['float32'])} is above float16's largest value 65504:"
              f" finite here only because it is computed in {r['dtype']}" for r in high]  # fmt: skip
    under = amp.underflow
    if under:
        parts.append(f"'{under['module']}' loses {under['lost_share']:.0%} of its non-zero"
                     f" values to zero in {under['dtype']} (first module to)")  # fmt: skip
    value = {r["term"]: r["rel_diff"] for r in amp.terms}
    if parts:
        return Outcome.warn(f"under {amp.dtype} autocast " + "; ".join(parts) + moved,
                            value=value, threshold=TERM_DRIFT)  # fmt: skip
    worst = f" (largest: {largest['term']} {largest['rel_diff']:.3%})" if largest else ""
    return Outcome.ok(f"every term within {TERM_DRIFT:.0%} of float32{worst}{moved}",
                      value=value, threshold=TERM_DRIFT)  # fmt: skip


@AMP_CHECKS.check("amp_scaler", requires=("amp_overflow",),
                  hint="gradients overflow float16: bring the loss to a smaller scale (weights,"
                       " units), keep the loss in float32, or train with --amp bf16")  # fmt: skip
def amp_scaler(ctx: CheckContext) -> Outcome:
    """float16: a GradScaler (scale 2**16, halved per skipped step) finds a scale of at least 1
    at which this batch's gradients are finite; bfloat16: the gradients are finite."""
    amp = ctx.extras["amp"]
    scaler = amp.scaler
    if scaler is None:
        return Outcome.skip("no backward under autocast")
    if not scaler["used"]:
        if scaler["gradients_finite"]:
            return Outcome.ok("bfloat16 needs no GradScaler (float32's exponent range);"
                              " gradients finite", value=True)  # fmt: skip
        return Outcome.fail("non-finite gradients under bfloat16" + _origin_text(amp.origin),
                            value=False, details={"origin": amp.origin})  # fmt: skip
    skipped, scale = scaler["skipped"], scaler["scale"]
    init = f"{scaler['init_scale']:g}"
    if scale is None:
        last = scaler["init_scale"] / 2.0 ** (scaler["max_steps"] - 1)
        return Outcome.fail(
            f"GradScaler skips every step: gradients are non-finite at every scale from {init}"
            f" to {last:g} ({skipped} steps)" + _origin_text(amp.origin),
            value=skipped, details={"origin": amp.origin, "attempts": scaler["attempts"]},
        )  # fmt: skip
    text = (f"GradScaler skips the first {skipped} steps (scale {init} -> {scale:g}), then"
            f" steps at scale {scale:g}" if skipped else
            f"GradScaler steps at its initial scale {init}")  # fmt: skip
    if scale < 1.0:
        return Outcome.warn(text + ": gradients overflow float16 even unscaled", value=scale,
                            threshold=1.0)  # fmt: skip
    return Outcome.ok(text, value=scale, threshold=1.0, details={"skipped": skipped})
