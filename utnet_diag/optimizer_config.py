"""The optimiser a training run steps with, read from a config's ``optimizer:`` section.

UTNet's ``config/config.yaml`` has ``optimizer: {type: AdamW, lr: 1.0e-5, weight_decay: 0.0001,
betas: [0.9, 0.999]}``, and its ``train.py`` clips the global gradient norm to 1.0 in code. Those
are the defaults here, so a config without the section is stepped as UTNet trains. Two keys are
utnet-diag's own and are ignored by UTNet's ``train.py``: ``clip_grad_norm`` (``null`` or 0: no
clipping) and ``groups`` (a learning rate per module group: ``{gcn: {lr: 1.0e-4}}``). Torch-free:
:mod:`utnet_diag.diagnostics.step` builds the torch optimiser from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from utnet_diag.errors import InputError, did_you_mean

# name as written in a config (any case) -> torch.optim class name
OPTIMIZERS = {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}
ADAM_FAMILY = ("AdamW", "Adam")
OPTIMIZER_KEYS = ("type", "lr", "weight_decay", "betas", "eps", "momentum", "nesterov",
                  "clip_grad_norm", "groups")  # fmt: skip
UTNET = "UTNet's config.yaml (no optimizer section given)"
UTNET_CLIP = "UTNet's train.py (clip_grad_norm_(max_norm=1.0), in code)"


@dataclass(frozen=True)
class OptimizerSettings:
    """``kind``: torch.optim class name; ``lr``, ``weight_decay``, ``betas``, ``eps`` (Adam
    family), ``momentum``/``nesterov`` (SGD, RMSprop); ``clip_grad_norm``: max global gradient norm
    (None: no clipping); ``groups``: module group -> learning rate; ``source`` and
    ``clip_source``: where they came from; ``ignored``: keys of the section not used here."""

    kind: str = "AdamW"
    lr: float = 1e-5
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.0
    nesterov: bool = False
    clip_grad_norm: float | None = 1.0
    groups: dict[str, float] = field(default_factory=dict)
    source: str = UTNET
    clip_source: str = UTNET_CLIP
    ignored: tuple[str, ...] = ()

    @property
    def adam_family(self) -> bool:
        return self.kind in ADAM_FAMILY

    def lr_of(self, group: str) -> float:
        """The learning rate of a module group: that of the longest ``groups`` name that is the
        group or a module path above it (``refine`` covers ``refine.0`` at ``--depth 2``), else
        the section's."""
        names = [n for n in self.groups if group == n or group.startswith(n + ".")]
        return self.groups[max(names, key=len)] if names else self.lr

    def unmatched_groups(self, groups: list[str]) -> list[str]:
        """The ``groups`` names that cover none of the module ``groups`` (sorted)."""
        return sorted(n for n in self.groups
                      if not any(g == n or g.startswith(n + ".") for g in groups))  # fmt: skip

    def torch_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``torch.optim.<kind>`` for these settings."""
        kwargs: dict[str, Any] = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.adam_family:
            kwargs.update(betas=self.betas, eps=self.eps)
        elif self.kind == "SGD":
            kwargs.update(momentum=self.momentum, nesterov=self.nesterov)
        else:
            kwargs.update(momentum=self.momentum)
        return kwargs

    def with_clip(self, max_norm: float | None, source: str) -> OptimizerSettings:
        """A copy clipping at ``max_norm`` (None or 0: no clipping)."""
        return replace(self, clip_grad_norm=max_norm or None, clip_source=source)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind, "lr": self.lr, "weight_decay": self.weight_decay}
        if self.adam_family:
            out.update(betas=list(self.betas), eps=self.eps)
        else:
            out.update(momentum=self.momentum, nesterov=self.nesterov)
        out.update(clip_grad_norm=self.clip_grad_norm, groups=dict(self.groups),
                   source=self.source, clip_source=self.clip_source)  # fmt: skip
        if self.ignored:
            out["ignored"] = list(self.ignored)
        return out


def _number(value: Any, key: str, src: str, *, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (0 <= value < 1e300) or (positive and value == 0):
        shown = repr(value) if len(repr(value)) <= 40 else "a huge number"
        kind = "a positive" if positive else "a finite, non-negative"
        raise InputError(f"'optimizer.{key}' must be {kind} number, got {shown}", path=src)
    return float(value)


def parse_optimizer(section: Any, src: str) -> OptimizerSettings:
    """The settings of a config's ``optimizer:`` section (None: UTNet's). Bad values raise
    InputError naming the key; keys this tool does not use are kept in ``ignored``."""
    if section is None:
        return OptimizerSettings()
    if not isinstance(section, dict):
        raise InputError("'optimizer' must be a mapping (type, lr, weight_decay, ...)", path=src)
    where = f"{src} optimizer"
    kind_given = section.get("type", "AdamW")
    kind = OPTIMIZERS.get(str(kind_given).lower())
    if kind is None:
        names = list(OPTIMIZERS.values())
        raise InputError(
            f"'optimizer.type' {kind_given!r} is not one utnet-diag steps"
            + did_you_mean(str(kind_given), names),
            path=src, hint=f"types: {', '.join(names)}",
        )  # fmt: skip
    values: dict[str, Any] = {"kind": kind, "source": where}
    if "lr" in section:
        values["lr"] = _number(section["lr"], "lr", src, positive=True)
    if "weight_decay" in section:
        values["weight_decay"] = _number(section["weight_decay"], "weight_decay", src)
    if "eps" in section:
        values["eps"] = _number(section["eps"], "eps", src, positive=True)
    if "momentum" in section:
        values["momentum"] = _number(section["momentum"], "momentum", src)
    if "nesterov" in section:
        if not isinstance(section["nesterov"], bool):
            raise InputError("'optimizer.nesterov' must be true or false", path=src)
        values["nesterov"] = section["nesterov"]
    if "betas" in section:
        betas = section["betas"]
        if not (isinstance(betas, list) and len(betas) == 2):
            raise InputError(f"'optimizer.betas' must be two numbers, got {betas!r}", path=src)
        pair = tuple(_number(b, "betas", src) for b in betas)
        if not all(b < 1 for b in pair):
            raise InputError(f"'optimizer.betas' must be below 1, got {betas!r}", path=src)
        values["betas"] = pair
    if "clip_grad_norm" in section:
        clip = section["clip_grad_norm"]
        values["clip_grad_norm"] = None if clip is None else _number(clip, "clip_grad_norm", src)
        values["clip_grad_norm"] = values["clip_grad_norm"] or None
        values["clip_source"] = f"{where}.clip_grad_norm"
    groups = section.get("groups") or {}
    if not isinstance(groups, dict):
        raise InputError("'optimizer.groups' must map module groups to {lr: ...}", path=src)
    lrs: dict[str, float] = {}
    for name, spec in groups.items():
        if not isinstance(spec, dict) or set(spec) != {"lr"}:
            raise InputError(f"'optimizer.groups.{name}' must be {{lr: <number>}}", path=src)
        lrs[str(name)] = _number(spec["lr"], f"groups.{name}.lr", src, positive=True)
    values["groups"] = lrs
    values["ignored"] = tuple(str(k) for k in section if k not in OPTIMIZER_KEYS)
    return OptimizerSettings(**values)
