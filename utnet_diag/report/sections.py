"""Typed report sections: what a command reports besides its checks.

Each section is a frozen dataclass whose fields are its JSON fields (``to_dict``, ``to_json``);
``None`` fields are left out of the JSON. Sections also read like the plain mappings they were
(``section["total"]``, ``section.get("notes")``), so code written against the JSON keeps working.
Torch-free: producers convert tensors to numbers before building a section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from utnet_diag.report.result import jsonable


@dataclass(frozen=True)
class Section:
    """Base of the typed sections: JSON export, and read access by JSON key (``section[key]``,
    ``key in section``, ``section.get(key)``; not a full Mapping: ``keys`` is a field name)."""

    def _present(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def to_dict(self) -> dict[str, Any]:
        """The section as JSON-ready values (fields that are None left out)."""
        return {name: jsonable(getattr(self, name)) for name in self._present()}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def __getitem__(self, key: str) -> Any:
        if key not in self._present():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self._present()

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self._present() else default


@dataclass(frozen=True)
class BatchSection(Section):
    """The batch a command read: ``size`` samples, ``keys`` -> shape, the ``format`` it was read
    as, the reader's ``notes``, its ``source`` (file, or None in memory), keys it ignored."""

    size: int
    keys: dict[str, list[int]]
    format: str
    notes: list[str] = field(default_factory=list)
    source: str | None = None
    extra_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunSection(Section):
    """What ran, where, on what: model source, batch, device, config, the forward's mode.

    ``built_from``/``arguments``: the config that built a checkout's model and every constructor
    argument with its origin; ``mano_requests``: what the model's code asked smplx for;
    ``forward_s`` seconds; ``notes`` for the user (loader warnings, defaults used)."""

    model: str
    batch: str
    batch_size: int
    device: str
    config: str
    mode: str
    built_from: str | None = None
    arguments: dict[str, str] | None = None
    mano_requests: list[dict[str, Any]] | None = None
    forward_s: float | None = None
    seed: int | None = None
    notes: list[str] | None = None


@dataclass(frozen=True)
class MetricsSection(Section):
    """Batch means, root-relative, mm: MPJPE, PA-MPJPE and their average (the spec's "Avg
    Metric") over ``samples``; ``samples_left_out`` were non-finite or had no visible joint;
    ``convention``: how they are computed; ``protocol``: a benchmark's official joint metrics
    for the same joints (``--metric-protocol``; see
    :func:`utnet_diag.evaluation.batch_metrics.protocol_metrics`)."""

    mpjpe_mm: float
    pa_mpjpe_mm: float
    avg_metric_mm: float
    samples: int
    samples_left_out: int
    convention: str | None = None
    protocol: dict[str, Any] | None = None


@dataclass(frozen=True)
class LossTableSection(Section):
    """One row per computed loss term (see :class:`utnet_diag.diagnostics.loss_table.LossSummary`
    for the row keys), the weighted ``total``, the ``batch_size``, and why terms were skipped."""

    terms: list[dict[str, Any]]
    total: float
    batch_size: int
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GradModulesSection(Section):
    """Gradient per module group at ``depth``: rows with ``name``, ``role``, ``grad_norm``,
    ``param_norm``, ``ratio``, ``no_grad_share``, ``dead``, ``nonfinite``, ``trainable``; the
    ``total_grad_norm`` over all parameters."""

    groups: list[dict[str, Any]]
    depth: int
    total_grad_norm: float


@dataclass(frozen=True)
class GradTermsSection(Section):
    """Per loss term: ``weight``, ``active``, groups it ``reaches``, its weighted gradient norm at
    the trunk/heads ``boundary`` and its ``share``; pairwise ``conflicts`` (cosines); ``exact``
    when every term had its own backward; ``seconds`` the gradient pass took."""

    terms: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    boundary: dict[str, Any]
    exact: bool
    seconds: float


@dataclass(frozen=True)
class StepSection(Section):
    """One optimiser step on copies: the ``optimizer`` settings and their sources, the global
    gradient norm before clipping, ``clip_grad_norm`` (None: no clipping), ``clip_factor``,
    ``step_shrink`` (the clipped update's norm over the unclipped one's), each term's
    ``term_shares`` of the total gradient's direction (measured at ``share_basis``), per module
    group ``groups``: ``lr``, ``update_norm``, ``param_norm``, ``ratio``; ``unknown_groups``: the
    config's group learning rates that match no group; ``notes``: what else the step shows."""

    optimizer: dict[str, Any]
    total_grad_norm: float
    clip_grad_norm: float | None
    clip_factor: float
    step_shrink: float | None
    term_shares: dict[str, float]
    share_basis: str
    groups: list[dict[str, Any]]
    unknown_groups: list[str] | None = None
    notes: list[str] | None = None


@dataclass(frozen=True)
class AmpSection(Section):
    """The forward and losses under ``torch.autocast`` (``dtype`` float16 or bfloat16) against
    float32: per term ``terms`` (float32 value, autocast value and dtype, relative difference),
    per model output ``outputs`` (dtype, largest absolute difference), ``origin`` (the first
    module whose output is non-finite under autocast), ``underflow`` (the first module whose
    output loses half its non-zero values to zero: module, dtype, lost_share), and for float16 ``scaler``: a
    ``torch.amp.GradScaler`` stepped on copies of the parameters from ``init_scale``: the steps
    run (``attempts``: step, scale, skipped), the ``skipped`` steps and the ``scale`` of the
    first step taken (None: none within ``max_steps``)."""

    dtype: str
    device: str
    terms: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    origin: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    underflow: dict[str, Any] | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class PicturesSection(Section):
    """The pictures a command wrote: per file its ``kind`` (overlay, gallery, plot), ``path``
    and what it shows (``samples``: the batch indices, worst first)."""

    files: list[dict[str, Any]]


@dataclass(frozen=True)
class CompareRunSection(Section):
    """What ``compare`` ran: checkpoints ``a`` and ``b`` (and the model sources they gave), the
    batch both saw, its size, the device, the weight preset, the seed, the loaders' warnings."""

    a: str
    b: str
    model_a: str
    model_b: str
    batch: str
    batch_size: int
    device: str
    weights: str
    seed: int
    warnings: list[str] | None = None


@dataclass(frozen=True)
class EvaluationSection(Section):
    """``eval``: the ``protocol`` (``title``), its file ``unit``, ``report_unit``, ``alignment``,
    ``frame`` and ``joint_order``; the files; ``samples`` scored, ``left_out`` (ground-truth
    frames without a hand), ``ignored`` (results with no ground truth); ``metrics`` rows
    (``metric``, ``label``, ``unit``, ``value``, and ``fixed``: the value once the ``fixes`` are
    applied); ``worst`` samples first; where the ``per_sample`` rows went."""

    protocol: str
    title: str
    unit: str
    report_unit: str
    alignment: str
    frame: str
    joint_order: str
    prediction: str
    ground_truth: str
    samples: int
    left_out: int
    ignored: int
    metrics: list[dict[str, Any]]
    fixes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    worst: list[dict[str, Any]] = field(default_factory=list)
    per_sample: str | None = None
