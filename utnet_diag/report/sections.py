"""Typed report sections: what a command reports besides its checks.

Each section is a frozen dataclass whose fields are its JSON fields (``to_dict``, ``to_json``);
``None`` fields are left out of the JSON. Sections also read like the plain mappings they were
(``section["total"]``, ``section.get("notes")``), so code written against the JSON keeps working.
Torch-free: producers convert tensors to numbers before building a section.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from utnet_diag.report.result import jsonable


@dataclass(frozen=True)
class Section:
    """Base of the typed sections: JSON export, and read access by JSON key (``section[key]``,
    ``key in section``, ``section.get(key)``; not a full Mapping: ``keys`` is a field name)."""

    # sections whose JSON has always shown missing values as null keep their None fields
    # (but those in ``omit_none``, which the JSON leaves out when there is nothing to say)
    keep_none: ClassVar[bool] = False
    omit_none: ClassVar[tuple[str, ...]] = ()

    def _present(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None
                or (self.keep_none and f.name not in self.omit_none)]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The section as JSON-ready values (fields that are None left out, unless
        ``keep_none``)."""
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
class MappingSection(Section):
    """A section whose JSON keys are names it holds (loss terms, checks): ``entries`` maps each
    to its row, and the JSON is that mapping itself. Reads as a read-only mapping."""

    entries: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {str(k): jsonable(v) for k, v in self.entries.items()}

    def __getitem__(self, key: str) -> Any:
        return self.entries[key]

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def get(self, key: str, default: Any = None) -> Any:
        return self.entries.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def keys(self) -> Any:
        return self.entries.keys()

    def values(self) -> Any:
        return self.entries.values()

    def items(self) -> Any:
        return self.entries.items()


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


def pictures_section(record: dict[str, Any] | None) -> dict[str, Any]:
    """``{"pictures": PicturesSection}`` for one written picture's record (``kind``, ``path``,
    what it shows), to merge into a report's sections; nothing for None."""
    return {} if record is None else {"pictures": PicturesSection(files=[record])}


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


@dataclass(frozen=True)
class LogSection(Section):
    """The log parse-log read: ``path``, ``blocks``, lines read and skipped, the epoch and
    iteration ranges (``epochs``/``iter_range`` [min, max]; first and last as logged), the
    loss ``weights`` held to, and the ``plot`` written (None: none)."""

    path: str
    blocks: int
    lines_read: int
    lines_skipped: int
    epochs: list[int]
    first_iter: int
    last_iter: int
    first_epoch: int
    last_epoch: int
    iter_range: list[int]
    weights: dict[str, Any]
    plot: str | None = None


@dataclass(frozen=True)
class LogTerm(Section):
    """One logged term: ``label``, ``blocks`` that print it, ``nonfinite`` of them, first, last,
    min and max of its finite values (None: none), a downsampled ``series`` for sparklines."""

    keep_none: ClassVar[bool] = True
    label: str
    blocks: int
    nonfinite: int
    first: float | None
    last: float | None
    min: float | None
    max: float | None
    series: list[float | None]


@dataclass(frozen=True)
class LogTermsSection(MappingSection):
    """Per logged term (``loss_2d``, ..., ``total``): its :class:`LogTerm`."""


@dataclass(frozen=True)
class ScanSection(Section):
    """A dataset scan: the reader (``dataset``, ``root``, ``split``, ``samples``), samples
    ``samples_total`` and ``samples_scanned``, ``interrupted`` and the ``status`` line, how it
    read (``images``, ``workers``, ``world_size``, ``batch_checks``), its speed, the findings
    (total, written to ``out``, the cap per check, ``by_check``) and the reader's ``notes``."""

    keep_none: ClassVar[bool] = True
    dataset: str
    root: str
    split: str | None
    samples: int
    samples_total: int
    samples_scanned: int
    interrupted: bool
    status: str
    images: bool
    workers: int
    world_size: int
    elapsed_s: float
    samples_per_s: float | None
    findings_total: int
    findings_written: int
    max_findings_per_check: int
    out: str | None
    notes: list[str]
    by_check: dict[str, Any]
    batch_checks: bool = False


@dataclass(frozen=True)
class NanOriginSection(Section):
    """Where a NaN/Inf first appears: ``stage`` (input, forward, model-code, loss, backward),
    ``where`` (batch key or module path), ``message``, the backward ``node`` (None: not one)."""

    keep_none: ClassVar[bool] = True
    stage: str
    where: str
    message: str
    node: str | None = None


@dataclass(frozen=True)
class CheckpointSection(Section):
    """A checkpoint file: ``path``, ``tensors``, ``elements``, ``size_mb``, ``dtypes`` (dtype ->
    tensors), the ``wrappers`` unwrapped and ``stripped_prefixes``, its ``top_level_keys`` (20),
    ``format``, ``metadata`` (None: none stored) and ``warnings`` for stderr."""

    keep_none: ClassVar[bool] = True
    path: str
    tensors: int
    elements: int
    size_mb: float
    dtypes: dict[str, int]
    wrappers: list[str]
    stripped_prefixes: dict[str, Any]
    top_level_keys: list[str]
    format: str
    metadata: Any
    warnings: list[str]


@dataclass(frozen=True)
class ComparedWithSection(Section):
    """The model a checkpoint's keys were held against, and its ``parameters`` count."""

    model: str
    parameters: int


@dataclass(frozen=True)
class SampleSection(Section):
    """What make-sample wrote: the ``folder``, batch ``samples``, ``seed``, ``image_size``
    [H, W], the reference ``model`` and its trainable ``parameters``, ``files`` (name -> path,
    bytes)."""

    folder: str
    samples: int
    seed: int
    image_size: list[int]
    model: str
    parameters: int
    files: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class CompareSection(Section):
    """Two checkpoints side by side: ``rows`` (metric or term, A, B, delta, worse) and the
    ``max_regression`` allowed (None: no gate)."""

    keep_none: ClassVar[bool] = True
    rows: list[dict[str, Any]]
    max_regression: float | None


@dataclass(frozen=True)
class WeightAdviceSection(Section):
    """The loss-weight advice: per-term ``rows``, the ``target_shares``, how the advised weights
    are scaled (``normalisation``), why 3D dominates (``explanation``), ``notes``; or, without
    per-term gradients at the trunk, why not (``unavailable``)."""

    target_shares: dict[str, float]
    rows: list[dict[str, Any]] | None = None
    normalisation: str | None = None
    explanation: str | None = None
    notes: list[str] | None = None
    unavailable: str | None = None

    def _present(self) -> list[str]:
        if self.unavailable is not None:
            return ["unavailable", "target_shares"]
        return ["rows", "target_shares", "normalisation", "explanation", "notes"]


@dataclass(frozen=True)
class ManoSection(Section):
    """A MANO file: ``input``, ``side``, ``keys`` and their ``shapes``, the chumpy objects
    converted and keys dropped, the fingertip vertices and their rest positions (mm); for
    convert-mano the ``output``, whether it was ``written`` and how ``smplx.create`` finds it."""

    input: str
    side: str
    keys: list[str]
    shapes: dict[str, list[int]]
    converted_objects: Any
    dropped_keys: dict[str, Any]
    tip_vertices: dict[str, int]
    tip_positions_mm: list[list[float]]
    output: str | None = None
    written: bool | None = None
    smplx_create: str | None = None


@dataclass(frozen=True)
class LoaderSection(Section):
    """The user's Dataset as check-batch --loader read it: the ``loader`` (module:callable), its
    ``args``, ``dataset_length``, the ``samples`` read, the ``augmentation_switch`` found (None:
    none), and with one, each check's status on the batch read with it flipped
    (``other_batch``)."""

    keep_none: ClassVar[bool] = True
    omit_none: ClassVar[tuple[str, ...]] = ("other_batch",)
    loader: str
    args: dict[str, Any]
    dataset_length: int | None
    samples: int
    augmentation_switch: str | None
    other_batch: dict[str, str] | None = None


@dataclass(frozen=True)
class StoredConfigSection(MappingSection):
    """The config a checkpoint stores, key by key, as stored."""


@dataclass(frozen=True)
class OverfitSection(Section):
    """An overfit run: ``steps``, ``lr``, ``seconds``, ``cpu_threads``, ``batch_size``, and the
    total and MPJPE (mm) at its first and last step."""

    keep_none: ClassVar[bool] = True
    steps: int
    lr: float
    seconds: float
    cpu_threads: int | None
    batch_size: int
    total_first: float
    total_last: float
    mpjpe_first_mm: float
    mpjpe_last_mm: float


@dataclass(frozen=True)
class OverfitCurvesSection(MappingSection):
    """Per step of an overfit run: ``total``, each loss term, and ``mpjpe_mm``."""
