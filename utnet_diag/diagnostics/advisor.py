"""Loss-weight advisor: each term's share of the gradient at the shared trunk, and the weights
that would give the shares the user asks for.

Input: ``contributions[term]``, the norm of the term's *weighted* gradient at the trunk/heads
boundary (``boundary_norm`` in grad-flow's ``grad_terms``), under the weights in effect.

* share: ``share_t = c_t / sum_u c_u`` over the terms with a contribution (grad-flow's shares).
* A term's contribution is linear in its weight: ``c_t = w_t * g_t`` with ``g_t`` the gradient
  norm of the unweighted term. So ``w'_t = w_t * k * target_t / share_t`` gives each targeted
  term ``target_t`` of the targeted terms' gradient, for any ``k > 0``.
* Normalisation (``recommended``): ``k`` keeps the targeted terms' summed contribution what it is
  now, so the gradient that reaches the trunk keeps its size and the learning rate stays valid.
  ``same_3d_weight`` shows the same ratios scaled so that ``w_3d_joint`` stays as given.
* Terms not in ``target_shares`` keep their weights and are left out of the normalisation.
* ``loss_aux`` carries ``w_aux`` inside its value (DIGEST decision), so the weight shown and
  scaled for it is ``w_aux``; the same linearity holds.

Target shares are normalised to sum to 1 over the targeted terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from utnet_diag.config import LossWeights
from utnet_diag.diagnostics.grad import compute_grad_stats
from utnet_diag.diagnostics.loss_table import summarize_terms
from utnet_diag.errors import InputError, did_you_mean
from utnet_diag.report.sections import WeightAdviceSection
from utnet_diag.spec import RECOMMENDED_RANGES, TERM

TERM_LABELS = {key: term.label for key, term in TERM.items()}

WEIGHT_NAME = {key: term.weight for key, term in TERM.items()}
TERM_ALIASES = {
    "2d": "loss_2d",
    "3d": "loss_3d_joint",
    "3d_joint": "loss_3d_joint",
    "joint": "loss_3d_joint",
    "vert": "loss_3d_vert",
    "3d_vert": "loss_3d_vert",
    "prior": "loss_prior",
    "aux": "loss_aux",
    **{term: term for term in WEIGHT_NAME},
}
DEFAULT_TARGET_SHARES = {"loss_2d": 0.5, "loss_3d_joint": 0.5}
DOMINANT_SHARE = 0.8  # the 3D term "dominates" above this share of the gradient at the trunk
NORMALISATION = (
    "the targeted terms' summed gradient at the trunk keeps its current size (the learning rate"
    " stays valid); 'same 3D weight' scales the same ratios so that w_3d_joint stays as given"
)


@dataclass
class Advice:
    """Per-term rows (JSON-ready through :meth:`to_dict`) and the notes of one advice.

    ``rows``: ``term``, ``label``, ``weight_name``, ``weight``, ``contribution``, ``share``,
    ``target_share``, ``recommended`` (None when not targeted or not computable),
    ``same_3d_weight``, ``recommended_range`` ((lo, hi) or None), ``weight_in_range``,
    ``recommended_in_range``.
    """

    rows: list[dict[str, Any]]
    target_shares: dict[str, float]
    normalisation: str = NORMALISATION
    explanation: str | None = None  # one line when mm units make the 3D term dominate
    notes: list[str] = field(default_factory=list)

    def row(self, term: str) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["term"] == term), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "target_shares": self.target_shares,
            "normalisation": self.normalisation,
            "explanation": self.explanation,
            "notes": self.notes,
        }


def parse_target_shares(text: str | None) -> dict[str, float]:
    """``"2d=0.5,3d=0.5"`` -> ``{"loss_2d": 0.5, "loss_3d_joint": 0.5}`` (None: that default).

    Terms: 2d, 3d (3d_joint), 3d_vert (vert), prior, aux, or the loss_* names. Shares are
    numbers >= 0, not all 0; they are normalised later. Raises InputError on anything else.
    """
    if text is None:
        return dict(DEFAULT_TARGET_SHARES)
    hint = "write term=share pairs, e.g. --target-shares 2d=0.5,3d=0.5 (terms: 2d, 3d, 3d_vert, prior, aux)"
    out: dict[str, float] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise InputError(f"--target-shares has an empty entry in '{text}'", hint=hint)
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep:
            raise InputError(f"--target-shares entry '{item}' has no '='", hint=hint)
        if name not in TERM_ALIASES:
            raise InputError(
                f"--target-shares: unknown term '{name}'" + did_you_mean(name, TERM_ALIASES),
                hint=hint,
            )
        try:
            share = float(value)
        except ValueError:
            raise InputError(
                f"--target-shares: '{value.strip()}' for {name} is not a number", hint=hint
            ) from None
        if not math.isfinite(share) or share < 0:
            raise InputError(f"--target-shares: {name}={value.strip()} must be >= 0", hint=hint)
        term = TERM_ALIASES[name]
        if term in out:
            raise InputError(f"--target-shares names {TERM_LABELS[term]} twice", hint=hint)
        out[term] = share
    if sum(out.values()) <= 0:
        raise InputError("--target-shares are all 0: at least one share must be > 0", hint=hint)
    return out


def _in_range(value: float | None, bounds: tuple[float, float] | None) -> bool | None:
    if value is None or bounds is None:
        return None
    lo, hi = bounds
    return lo * (1 - 1e-9) <= value <= hi * (1 + 1e-9)


def _explain_mm(
    shares: dict[str, float], targets: dict[str, float], per_element: dict[str, float] | None
) -> str | None:
    """One line when the 3D joint term holds most of the gradient and more than asked for."""
    share_3d = shares.get("loss_3d_joint")
    if share_3d is None or share_3d < DOMINANT_SHARE:
        return None
    if "loss_3d_joint" in targets and share_3d <= targets["loss_3d_joint"]:
        return None
    text = (
        f"the 3D joint loss gives {share_3d:.0%} of the gradient at the trunk: its L1 is on"
        " coordinates in millimetres while the 2D loss is on crop coordinates (the crop spans 1),"
        " so the same change of the predicted hand moves the 3D term far more"
    )
    e3 = (per_element or {}).get("loss_3d_joint")
    e2 = (per_element or {}).get("loss_2d")
    if e3 is not None and e2 is not None and e2 > 0:
        text += (
            f" (mean error here {e3:.3g} mm vs {e2:.3g} crop units per coordinate, {e3 / e2:.0f}x)"
        )
    return text + "; lower w_3d_joint (or raise w_2d) as recommended"


def _normalised(target_shares: dict[str, float]) -> dict[str, float]:
    """The target shares scaled to sum to 1 (InputError when they are all 0)."""
    total = sum(target_shares.values())
    if total <= 0:
        raise InputError("target shares are all 0: at least one share must be > 0")
    return {t: s / total for t, s in target_shares.items()}


def _scale_factors(
    targets: dict[str, float],
    shares: dict[str, float | None],
    finite: dict[str, float],
    weights: LossWeights,
    unreached: set[str],
    notes: list[str],
) -> dict[str, float]:
    """Raw factors w'_t / w_t (up to one common factor) that give each targeted term its share;
    a term that cannot be scaled gets a note in ``notes`` instead."""
    raw: dict[str, float] = {}
    for term, target in targets.items():
        weight = float(getattr(weights, WEIGHT_NAME[term]))
        share = shares.get(term)
        label = TERM_LABELS[term]
        if term not in finite and term in unreached:
            notes.append(
                f"{label}: computed, but its gradient does not reach the trunk (nothing it"
                " depends on is computed from the trunk's features: see grad_reach)"
            )
        elif term not in finite:
            notes.append(f"{label}: no gradient at the trunk was measured (term not computed)")
        elif weight == 0 or not share:
            notes.append(
                f"{label}: its gradient at the trunk is 0 (weight {weight:g}), so no weight"
                " can be derived from it: enable it with a small weight and run again"
            )
        else:
            raw[term] = target / share
    return raw


def advise_weights(
    contributions: dict[str, float],
    weights: LossWeights,
    target_shares: dict[str, float] | None = None,
    per_element: dict[str, float] | None = None,
    unreached: set[str] | None = None,
) -> Advice:
    """Shares of the gradient at the trunk and the weights for ``target_shares``.

    Args:
        contributions: term -> norm of its weighted gradient at the trunk (>= 0), under
            ``weights``. Terms with a non-finite contribution are left out (with a note).
        weights: the weights in effect.
        target_shares: term -> wanted share (normalised over the given terms); default equal
            for 2D and 3D joint.
        per_element: term -> mean error per element (2D crop units, 3D mm), for the one-line
            explanation of mm units (optional).
        unreached: terms that were computed but whose gradient does not reach the trunk.
    """
    targets = _normalised(DEFAULT_TARGET_SHARES if target_shares is None else target_shares)
    notes: list[str] = []
    finite = {}
    for term, value in contributions.items():
        if value is None or not math.isfinite(value):
            notes.append(f"{TERM_LABELS.get(term, term)}: gradient at the trunk is not finite")
        else:
            finite[term] = float(value)
    total = sum(finite.values())
    shares = {t: (c / total if total > 0 else None) for t, c in finite.items()}
    raw = _scale_factors(targets, shares, finite, weights, unreached or set(), notes)
    k = 0.0
    if raw:
        now = sum(finite[t] for t in raw)
        after = sum(finite[t] * f for t, f in raw.items())
        k = now / after if after > 0 else 0.0
    keep_3d = 1.0 / raw["loss_3d_joint"] if "loss_3d_joint" in raw else None

    rows = []
    for term in [*[t for t in WEIGHT_NAME if t in finite or t in targets]]:
        name = WEIGHT_NAME[term]
        weight = float(getattr(weights, name))
        bounds = RECOMMENDED_RANGES.get(name)
        recommended = weight * raw[term] * k if term in raw else None
        same_3d = weight * raw[term] * keep_3d if term in raw and keep_3d is not None else None
        rows.append({
            "term": term,
            "label": TERM_LABELS[term],
            "weight_name": name,
            "weight": weight,
            "contribution": finite.get(term),
            "share": shares.get(term),
            "target_share": targets.get(term),
            "recommended": recommended,
            "same_3d_weight": same_3d,
            "recommended_range": list(bounds) if bounds else None,
            "weight_in_range": _in_range(weight, bounds),
            "recommended_in_range": _in_range(recommended, bounds),
        })  # fmt: skip
    return Advice(
        rows=rows,
        target_shares=targets,
        explanation=_explain_mm(
            {t: s for t, s in shares.items() if s is not None}, targets, per_element
        ),
        notes=notes,
    )


def advice_from_term_rows(
    term_rows: list[dict[str, Any]],
    weights: LossWeights,
    target_shares: dict[str, float] | None = None,
    per_element: dict[str, float] | None = None,
) -> Advice | None:
    """Advice from grad-flow's ``grad_terms`` rows (``term``, ``boundary_norm``); None when no
    term has a boundary norm (the trunk/heads boundary was not found)."""
    contributions = {
        r["term"]: r["boundary_norm"] for r in term_rows if r.get("boundary_norm") is not None
    }
    if not contributions:
        return None
    unreached = {r["term"] for r in term_rows if r.get("boundary_norm") is None}
    return advise_weights(contributions, weights, target_shares, per_element, unreached)


def weight_advice_section(
    term_rows: list[dict[str, Any]],
    weights: LossWeights,
    target_shares: dict[str, float] | None = None,
    per_element: dict[str, float] | None = None,
) -> WeightAdviceSection:
    """The ``weight_advice`` report section from grad-flow's ``grad_terms`` rows.

    Without per-term gradients at the trunk (no trunk/heads boundary) the section says so in
    ``unavailable`` instead of guessing."""
    advice = advice_from_term_rows(term_rows, weights, target_shares, per_element)
    if advice is None:
        return WeightAdviceSection(
            unavailable="no per-term gradient at the trunk/heads boundary was measured (the"
            " model sets no last_trunk_features and no trunk child was found): shares and"
            " weights cannot be derived",
            target_shares=dict(target_shares or DEFAULT_TARGET_SHARES),
        )
    return WeightAdviceSection(**advice.to_dict())


def advice_for_forward(
    fwd: Any, target_shares: dict[str, float] | None = None, stats: Any = None
) -> WeightAdviceSection:
    """The ``weight_advice`` section for a forward pass run with ``grad=True`` (call inside the
    runner's ``training_step``). ``stats``: grad-flow's GradStats of that pass when already
    computed (else one gradient pass is run here, weights unchanged)."""
    if stats is None:
        stats = compute_grad_stats(fwd)
    per_element = {
        r["term"]: r["per_element"]
        for r in summarize_terms(fwd).rows
        if r.get("per_element") is not None
    }
    return weight_advice_section(stats.terms, fwd.config.weights, target_shares, per_element)
