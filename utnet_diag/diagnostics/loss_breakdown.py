"""``loss-breakdown``: every loss term of the spec for one forward pass, held to the spec's ranges.

For each term: the value the training log prints, the weight in effect and where it came from,
the weighted value, its share of the total, the batch size and the per-element mean error beside
each batch sum (mm for 3D, crop units and pixels at a 256-pixel crop for 2D). Plus MPJPE and
PA-MPJPE, and the checks of ``utnet_diag.checks.loss`` and the prediction conventions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from utnet_diag.checks.engine import CheckContext, run_checks
from utnet_diag.checks.loss import LOSS_CHECKS, PREDICTION_CHECKS
from utnet_diag.diagnostics.metrics import pose_metrics
from utnet_diag.diagnostics.runner import (
    DEFAULT_SEED,
    ForwardResult,
    RunInputs,
    all_finite,
    detach_outputs,
    forward_pass,
    load_inputs,
    running,
    training_step,
)
from utnet_diag.losses import TERMS
from utnet_diag.report.result import CheckResult, Report
from utnet_diag.spec import TERM

CROP_PIXELS = 256  # 2D errors are also shown in pixels of a 256x256 crop
WEIGHT_KEY = {key: term.weight for key, term in TERM.items()}
TERM_LABEL = {key: term.row for key, term in TERM.items()}


@dataclass
class LossSummary:
    """Plain numbers of one forward's loss terms (JSON-ready rows, one per computed term).

    Row keys: ``term``, ``label``, ``logged`` (the value the training log prints; L_aux with w_aux
    inside), ``weight``, ``weight_source``, ``weighted`` (its part of the total), ``share``,
    ``reduction`` (``batch sum`` or ``mean``), ``batch_size``, ``per_sample``, ``per_element``,
    ``unit``, ``per_element_px256`` (2D), ``parts``.
    """

    rows: list[dict[str, Any]]
    total: float
    batch_size: int
    skipped: dict[str, str] = field(default_factory=dict)

    def row(self, term: str) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["term"] == term), None)

    def to_dict(self) -> dict[str, Any]:
        return {"terms": self.rows, "total": self.total, "batch_size": self.batch_size,
                "skipped": self.skipped}  # fmt: skip


def _conf_sum(gt: torch.Tensor | None, dims: int) -> float | None:
    """Sum of confidences (conf 1 where the GT has no conf column)."""
    if gt is None:
        return None
    if gt.shape[-1] == dims + 1:
        return float(gt[..., dims].sum())
    return float(gt.shape[0] * gt.shape[1])


def summarize_terms(fwd: ForwardResult) -> LossSummary:
    """A LossSummary from one forward pass (detached numbers only)."""
    weights = fwd.config.weights
    batch = fwd.batch
    b = batch.size
    values = {k: float(v.detach()) for k, v in fwd.terms.terms.items()}
    parts = {k: float(v.detach()) for k, v in fwd.terms.parts.items()}
    weighted = {k: weights.weight_of(k) * v for k, v in values.items()}
    total = float(fwd.terms.total.detach())
    finite_parts = [abs(w) for w in weighted.values() if math.isfinite(w)]
    denom = sum(finite_parts)
    rows: list[dict[str, Any]] = []
    for term in TERMS:
        if term not in values:
            continue
        key = WEIGHT_KEY[term]
        row: dict[str, Any] = {
            "term": term,
            "label": TERM_LABEL[term],
            "logged": values[term],
            "weight": float(getattr(weights, key)),
            "weight_source": weights.source.get(key, "default"),
            "weighted": weighted[term],
            "share": (abs(weighted[term]) / denom)
            if denom > 0 and math.isfinite(weighted[term])
            else None,
            "batch_size": b,
            "reduction": "mean" if term in ("loss_prior", "loss_aux") else "batch sum",
            "per_sample": None,
            "per_element": None,
            "unit": None,
            "per_element_px256": None,
            "parts": {},
        }
        if term == "loss_2d":
            n = _conf_sum(batch.get("keypoints_2d"), 2)
            row.update(per_sample=values[term] / b, unit="crop")
            if n:
                row["per_element"] = values[term] / (2 * n)
                row["per_element_px256"] = row["per_element"] * CROP_PIXELS
        elif term == "loss_3d_joint":
            n = _conf_sum(batch.get("keypoints_3d"), 3)
            row.update(per_sample=values[term] / b, unit="mm")
            if n:
                row["per_element"] = values[term] / (3 * n)
        elif term == "loss_3d_vert":
            verts = fwd.outputs.get("vertices")
            count = verts.shape[1] if isinstance(verts, torch.Tensor) else 778
            row.update(per_sample=values[term] / b, unit="mm",
                       per_element=values[term] / (b * count * 3))  # fmt: skip
        elif term == "loss_prior":
            row["parts"] = {k: v for k, v in parts.items() if k in ("shape_prior", "pose_prior")}
        elif term == "loss_aux":
            # The log prints L_aux with w_aux inside; the total adds it once (DIGEST decision).
            row["weight_source"] += " (inside L_aux)"
            row["parts"] = {k: v for k, v in parts.items() if k.startswith("aux_")}
        rows.append(row)
    return LossSummary(rows, total, b, dict(fwd.terms.skipped))


def breakdown_from_forward(
    fwd: ForwardResult, nan_origin: Any = None
) -> tuple[list[CheckResult], dict[str, Any]]:
    """The loss-breakdown checks and sections for a forward pass that already ran.

    ``nan_origin`` is searched for (a hooked re-run) only when a term is non-finite and none is
    given. Returns (checks, sections) so ``gate`` can merge them.
    """
    summary = summarize_terms(fwd)
    outputs = detach_outputs(fwd.outputs)
    finite = all(math.isfinite(r["logged"]) for r in summary.rows) and math.isfinite(summary.total)
    if nan_origin is None and not (finite and all_finite(outputs)):
        from utnet_diag.diagnostics.nan_origin import locate_forward

        nan_origin = locate_forward(fwd.inputs, seed=fwd.seed)
    ctx = CheckContext(
        batch=fwd.batch,
        outputs=outputs,
        losses=summary,
        mano=getattr(fwd.inputs.loaded, "mano", None),
        config=fwd.config,
        model=fwd.inputs.model,
        extras={
            "nan_origin": nan_origin,
            "image_size": getattr(fwd.inputs.loaded, "image_size", None),
            **mano_extras(fwd.inputs.loaded),
        },
    )
    checks = run_checks(LOSS_CHECKS.specs, ctx)
    checks += run_checks(PREDICTION_CHECKS.specs, ctx, prior=checks)
    from utnet_diag.checks.conventions import PREDICTION_CONVENTION_CHECKS

    checks += run_checks(PREDICTION_CONVENTION_CHECKS.specs, ctx, prior=checks)
    sections: dict[str, Any] = {"loss_table": summary.to_dict()}
    gt3d = fwd.batch.get("keypoints_3d")
    pred3d = outputs.get("keypoints_3d")
    if isinstance(gt3d, torch.Tensor) and isinstance(pred3d, torch.Tensor):
        sections["metrics"] = pose_metrics(pred3d, gt3d.to(pred3d.device), fwd.config.root_id)
    if nan_origin is not None:
        sections["nan_origin"] = nan_origin.to_dict()
    return checks, sections


def mano_extras(loaded: Any) -> dict[str, Any]:
    """What the model's own code asked smplx for, and the advice when a request failed
    (``mano_requests``, ``mano_advice``), for the prediction checks."""
    requests = list(getattr(loaded, "mano_requests", None) or [])
    if not requests:  # the user's model built no smplx MANO we saw: its settings are unknown
        return {"model_mano": None} if getattr(loaded, "user_code", False) else {}
    from utnet_diag.model.checkout import mano_load_advice

    build = getattr(loaded, "build", None)
    official = build.kwargs.get("mano_path") if build is not None else None
    built = next((r for r in requests if r.loaded), None)
    return {
        "mano_requests": [r.to_dict() for r in requests],
        "mano_advice": mano_load_advice(requests, official),
        "model_mano": {"flat_hand_mean": built.flat_hand_mean, "use_pca": built.use_pca}
        if built is not None
        else None,
    }


def run_section(inputs: RunInputs, fwd: ForwardResult | None = None) -> dict[str, Any]:
    """The ``run`` section: what ran, where, on what (model source, batch, device, mode, notes)."""
    loaded = inputs.loaded
    section: dict[str, Any] = {
        "model": str(getattr(loaded, "source", "?")),
        "batch": inputs.batch.source or "(in memory)",
        "batch_size": inputs.batch.size,
        "device": str(inputs.device),
        "config": inputs.config.path or f"preset {inputs.config.weights.preset}",
        "mode": "train() for the forward, then restored; dropout seeded; buffers restored",
    }
    build = getattr(loaded, "build", None)
    if build is not None:  # a checkout: which config built it, and every argument with its origin
        section["built_from"] = str(build.config_path) if build.config_path else "no config"
        section["arguments"] = build.table()
    requests = getattr(loaded, "mano_requests", None)
    if requests:
        section["mano_requests"] = [r.to_dict() for r in requests]
    if fwd is not None:
        section["forward_s"] = round(fwd.forward_seconds, 4)
        section["seed"] = fwd.seed
    notes = list(inputs.notes) + list(inputs.batch.notes)
    notes += [str(w) for w in getattr(loaded, "warnings", []) or []]
    if notes:
        section["notes"] = notes
    return section


def loss_breakdown(
    model: Any = None,
    batch: Any = None,
    *,
    config: Any = None,
    preset: str | None = None,
    device: str = "auto",
    seed: int = DEFAULT_SEED,
    target_shares: dict[str, float] | None = None,
    **load_options: Any,
) -> Report:
    """Run the model once on ``batch`` and report every loss term against the spec.

    Args:
        model: a LoadedModel (``utnet_diag.load_model``), or None to load one from
            ``load_options`` (``checkpoint``, ``repo``, ``model_factory``, ``output_map``, ``mano``,
            ``unsafe_load``); with nothing, the embedded reference model.
        batch: a Batch, a path, or None for the embedded default batch.
        config: a DiagConfig or a config.yaml path; ``preset`` picks the base weights.
        target_shares: gradient shares the ``weight_advice`` section advises weights for
            (one gradient pass, weights unchanged; default equal 2D and 3D joint).
    Returns:
        Report ``loss-breakdown`` with sections ``run``, ``loss_table``, ``metrics``,
        ``weight_advice``.
    """
    inputs = load_inputs(
        batch=batch, config=config, preset=preset, device=device, model=model, **load_options
    )
    with training_step(inputs.model, seed), running(inputs.loaded):
        fwd = forward_pass(inputs, grad=True, seed=seed)  # grad for the weight advice
        checks, sections = breakdown_from_forward(fwd)
        from utnet_diag.diagnostics.advisor import advice_for_forward

        sections["weight_advice"] = advice_for_forward(fwd, target_shares)
    model_checks = list(getattr(inputs.loaded, "checks", []) or [])
    return Report(
        "loss-breakdown", model_checks + checks, {"run": run_section(inputs, fwd), **sections}
    )
