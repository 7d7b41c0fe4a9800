"""Configuration: loss weights (the spec's presets or a UTNet ``config.yaml``) and the tool's options.

A UTNet ``config/config.yaml`` is read with ``yaml.safe_load``. Its ``loss:`` section gives the
weights; an optional ``diag:`` section holds utnet-diag's own options (``key_map``, ``preset``).
Other top-level sections (data paths, model, training) are the user's and pass through untouched,
except ``model`` and ``training`` which model building and ``overfit`` read, and ``optimizer``
(:mod:`utnet_diag.optimizer_config`) that the step checks of ``grad-flow`` and ``gate`` read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from utnet_diag.errors import InputError, UnsafeInputError, did_you_mean, nearest
from utnet_diag.io.files import require_file
from utnet_diag.optimizer_config import OptimizerSettings, parse_optimizer
from utnet_diag.spec import (  # noqa: F401 - PRESETS, RECOMMENDED_RANGES re-exported
    DEFAULT_PRESET,
    LOG_LINES,
    PRESETS,
    RECOMMENDED_RANGES,
    TERM,
)

WEIGHT_KEYS = ("w_2d", "w_3d_joint", "w_3d_vert", "w_prior", "w_aux")
FLAG_KEYS = ("use_vertex_loss", "use_aux_loss")
# Inside the prior term (spec section 3): L_prior = shape_weight*mean(b^2) + pose_weight*mean||R-I||^2
PRIOR_KEYS = ("shape_weight", "pose_weight")
LOSS_KEYS = WEIGHT_KEYS + FLAG_KEYS + PRIOR_KEYS
DIAG_KEYS = ("key_map", "preset", "root_id", "max_samples", "select", "ignore", "fail_on",
             "ranges", "log_columns")  # fmt: skip
# terms whose healthy range and alarm a config may set (diag: ranges:), and their keys
RANGE_TERMS = ("loss_2d", "loss_3d_joint", "loss_prior", "loss_aux")
RANGE_KEYS = ("healthy_below", "alarm_at")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the total loss (spec section 5). ``source`` says where each value came from.

    ``L_total = w_2d*L_2D + w_3d_joint*L_3D_joint + w_3d_vert*L_3D_vert + w_prior*L_prior + L_aux``
    where ``L_aux`` already carries ``w_aux`` (DIGEST decision), so it is added once.
    """

    w_2d: float = 0.01
    w_3d_joint: float = 0.05
    w_3d_vert: float = 0.0
    w_prior: float = 0.001
    w_aux: float = 0.001
    use_vertex_loss: bool = False
    use_aux_loss: bool = True
    shape_weight: float = 1.0
    pose_weight: float = 0.0
    preset: str = "config"
    source: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_preset(cls, name: str) -> LossWeights:
        """One of the spec's presets: ``config`` (config/config.yaml), ``code`` (loss.py defaults),
        ``recommended`` (spec 5.2 / 9.1)."""
        if name not in PRESETS:
            raise InputError(
                f"unknown loss-weight preset '{name}'" + did_you_mean(name, PRESETS),
                hint=f"choose one of {', '.join(PRESETS)}",
            )
        values = PRESETS[name]
        src = {k: f"preset {name}" for k in LOSS_KEYS}
        return cls(**values, preset=name, source=src)

    def with_overrides(self, values: dict[str, Any], source: str) -> LossWeights:
        """A copy with ``values`` (validated ``loss:`` keys) taking precedence, sourced to ``source``."""
        src = dict(self.source)
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if key not in LOSS_KEYS:
                raise InputError(
                    f"unknown key 'loss.{key}' in {source}" + did_you_mean(key, LOSS_KEYS),
                    path=source,
                    hint=f"valid keys: {', '.join(LOSS_KEYS)}",
                )
            if key in FLAG_KEYS:
                if not isinstance(value, bool):
                    raise InputError(
                        f"'loss.{key}' must be true or false, got {value!r}", path=source
                    )
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"'loss.{key}' must be a number, got {value!r}", path=source)
            elif not (value >= 0 and value < 1e300):
                shown = (
                    repr(value) if len(repr(value)) <= 40 else f"a {len(repr(value))}-digit number"
                )
                raise InputError(
                    f"'loss.{key}' must be a finite number >= 0, got {shown}", path=source
                )
            clean[key] = float(value) if key not in FLAG_KEYS else value
            src[key] = source
        return replace(self, **clean, source=src)

    def weight_of(self, term: str) -> float:
        """The weight a term enters the total with (``aux`` is 1: it already carries w_aux)."""
        return {
            "loss_2d": self.w_2d,
            "loss_3d_joint": self.w_3d_joint,
            "loss_3d_vert": self.w_3d_vert if self.use_vertex_loss else 0.0,
            "loss_prior": self.w_prior,
            "loss_aux": 1.0 if self.use_aux_loss else 0.0,
        }[term]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "source"}
        out["source"] = dict(self.source)
        return out


@dataclass(frozen=True)
class DiagConfig:
    """Everything read from a config file: weights, the batch key map, and the user's sections."""

    weights: LossWeights = field(default_factory=lambda: LossWeights.from_preset("config"))
    key_map: dict[str, str] = field(default_factory=dict)
    root_id: int = 0
    max_samples: int | None = None
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    ranges: dict[str, dict[str, float]] = field(default_factory=dict)  # diag: ranges: overrides
    log_columns: dict[str, str] = field(default_factory=dict)  # diag: log_columns: term -> column
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)  # optimizer:

    def range_of(self, term: str) -> tuple[float, float | None, str]:
        """(healthy below, alarm at or None, where from) of a term: the config's ``diag: ranges:``
        where it sets them, else the spec's (TERM)."""
        spec = TERM[term]
        given = self.ranges.get(term, {})
        source = f"{self.path} diag.ranges" if given else "the spec"
        return (
            float(given.get("healthy_below", spec.healthy_below)),
            given.get("alarm_at", spec.alarm_at),
            source,
        )


def term_range(config: DiagConfig | None, term: str) -> tuple[float, float | None, str]:
    """(healthy below, alarm at or None, where from) of ``term`` under ``config`` (None: the
    spec's); see :meth:`DiagConfig.range_of`."""
    if config is None:
        spec = TERM[term]
        return spec.healthy_below, spec.alarm_at, "the spec"
    return config.range_of(term)


MAX_YAML_BYTES = 16 << 20


def safe_load_yaml(path: str | Path) -> Any:
    """Parse YAML with ``yaml.safe_load`` only; tags that build Python objects are refused."""
    import yaml

    p = require_file(path, "config file")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise InputError(
            f"YAML file is {p.stat().st_size >> 20} MiB; a config is a few KB", path=str(p)
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("config file is not UTF-8 text", path=str(p)) from None
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise InputError("YAML is nested too deeply to be a config", path=str(p)) from None
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise InputError(f"YAML holds a value that cannot be read: {str(err)[:120]}",
                         path=str(p)) from None  # fmt: skip
    except yaml.constructor.ConstructorError as err:
        raise UnsafeInputError(
            f"refused a YAML tag that would build a Python object ({err.problem})",
            path=str(p),
            hint="configs are read with yaml.safe_load; remove the !!python tag",
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"not valid YAML{where}", path=str(p)) from None


def load_config(path: str | Path | None = None, preset: str | None = None) -> DiagConfig:
    """Read a UTNet ``config.yaml`` (or nothing: the preset alone). ``preset`` picks the base weights
    that the file's ``loss:`` section then overrides; default ``config``."""
    if path is None:
        return DiagConfig(weights=LossWeights.from_preset(preset or "config"))
    data = safe_load_yaml(path)
    src = str(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError("config must be a YAML mapping at the top level", path=src)
    diag = data.get("diag") or {}
    if not isinstance(diag, dict):
        raise InputError("'diag' must be a mapping", path=src)
    for key in diag:
        if key not in DIAG_KEYS:
            raise InputError(
                f"unknown key 'diag.{key}'" + did_you_mean(str(key), DIAG_KEYS),
                path=src,
                hint=f"valid keys: {', '.join(DIAG_KEYS)}",
            )
    base = preset or diag.get("preset") or DEFAULT_PRESET
    weights = LossWeights.from_preset(str(base))
    loss = data.get("loss")
    if loss is None and "loss" not in data:
        guess = nearest("loss", [str(k) for k in data])
        if guess and guess != "loss":
            raise InputError(f"no 'loss' section; found '{guess}' — did you mean 'loss'?", path=src)
    if loss is not None:
        if not isinstance(loss, dict):
            raise InputError("'loss' must be a mapping of weights", path=src)
        weights = weights.with_overrides(loss, src)
    key_map = diag.get("key_map") or {}
    if not isinstance(key_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in key_map.items()
    ):
        raise InputError("'diag.key_map' must map canonical key names to your key names", path=src)
    root_id = diag.get("root_id", 0)
    if isinstance(root_id, bool) or not isinstance(root_id, int) or not 0 <= root_id < 21:
        raise InputError(f"'diag.root_id' must be an integer in 0..20, got {root_id!r}", path=src)
    max_samples = diag.get("max_samples")
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
    ):
        raise InputError(
            f"'diag.max_samples' must be a positive integer, got {max_samples!r}", path=src
        )
    ranges = _ranges(diag.get("ranges"), src)
    log_columns = diag.get("log_columns") or {}
    if not isinstance(log_columns, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in log_columns.items()
    ):
        raise InputError("'diag.log_columns' must map loss terms to your log's column names",
                         path=src)  # fmt: skip
    for term in log_columns:
        if term not in LOG_LINES:
            raise InputError(
                f"'diag.log_columns': unknown term {term!r}" + did_you_mean(term, LOG_LINES),
                path=src, hint=f"terms: {', '.join(LOG_LINES)}",
            )  # fmt: skip
    model = data.get("model") or {}
    training = data.get("training") or data.get("train") or {}
    if not isinstance(model, dict) or not isinstance(training, dict):
        raise InputError("'model' and 'training' must be mappings", path=src)
    return DiagConfig(
        weights=weights,
        key_map=dict(key_map),
        root_id=root_id,
        max_samples=max_samples,
        model=dict(model),
        training=dict(training),
        path=src,
        raw=data,
        ranges=ranges,
        log_columns=dict(log_columns),
        optimizer=parse_optimizer(data.get("optimizer"), src),
    )


def _ranges(value: Any, src: str) -> dict[str, dict[str, float]]:
    """``diag: ranges: {loss_2d: {healthy_below: 1000, alarm_at: 20000}}``, checked."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError("'diag.ranges' must map loss terms to {healthy_below, alarm_at}", path=src)
    out: dict[str, dict[str, float]] = {}
    for term, limits in value.items():
        if term not in RANGE_TERMS:
            raise InputError(
                f"unknown term 'diag.ranges.{term}'" + did_you_mean(str(term), RANGE_TERMS),
                path=src, hint=f"terms with a range: {', '.join(RANGE_TERMS)}",
            )  # fmt: skip
        if not isinstance(limits, dict):
            raise InputError(f"'diag.ranges.{term}' must be a mapping", path=src)
        for key, number in limits.items():
            if key not in RANGE_KEYS:
                raise InputError(
                    f"unknown key 'diag.ranges.{term}.{key}'" + did_you_mean(str(key), RANGE_KEYS),
                    path=src,
                )
            if (
                isinstance(number, bool)
                or not isinstance(number, (int, float))
                or not (0 < number < 1e300)
            ):
                shown = repr(number) if len(repr(number)) <= 40 else "a huge number"
                raise InputError(
                    f"'diag.ranges.{term}.{key}' must be a positive number, got {shown}",
                    path=src,
                )
        out[term] = {k: float(v) for k, v in limits.items()}
        healthy = out[term].get("healthy_below", TERM[term].healthy_below)
        alarm = out[term].get("alarm_at", TERM[term].alarm_at)
        if healthy is not None and alarm is not None and alarm < healthy:
            raise InputError(
                f"'diag.ranges.{term}': alarm_at {alarm:g} is below healthy_below {healthy:g}",
                path=src,
            )
    return out
