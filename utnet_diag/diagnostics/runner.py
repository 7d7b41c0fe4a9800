"""Load a model and a batch once, and run one forward pass that every model diagnostic shares.

``loss-breakdown``, ``grad-flow`` and ``gate`` all go through here: :func:`load_inputs` reads the
config, batch and model; :func:`training_step` puts the model in train mode as a training step
would and restores everything afterwards; :func:`forward_pass` runs the model once and computes
the spec's loss terms, keeping the autograd graph when gradients are wanted.

What the training step changes and how it is undone: ``model.train()`` for the forward (each
module's own mode is restored afterwards); dropout and other randomness draw from a forked RNG
seeded with ``seed`` (the caller's RNG state is untouched); buffers (BatchNorm running stats,
counters) are snapshotted and copied back; parameters are never written and ``.grad`` fields are
never touched (gradients come from ``torch.autograd.grad``, not ``backward()``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utnet_diag.config import DiagConfig, load_config
from utnet_diag.device import resolve_device
from utnet_diag.diagnostics.resources import check_batch_fits, out_of_memory_as_input_error
from utnet_diag.errors import InputError
from utnet_diag.io.batch import Batch, load_batch
from utnet_diag.losses import LossTerms, compute_terms
from utnet_diag.mano.layer import mano_forward_pose48
from utnet_diag.model.checkout import mano_load_advice
from utnet_diag.model.sources import LoadedModel, load_model
from utnet_diag.report.sections import RunSection
from utnet_diag.run_options import RunOptions

# Fallback when the model does not say which children form the shared trunk (issue 4).
TRUNK_NAME_PATTERN = re.compile(r"backbone|vit|encoder|patch_embed|fusion", re.IGNORECASE)
DEFAULT_SEED = 0


@dataclass
class RunInputs:
    """What a model diagnostic runs on: the loaded model, the batch (on the model's device) and the
    config. ``loaded`` follows ``utnet_diag.model.sources.LoadedModel``: ``.model`` (nn.Module),
    ``.forward(batch) -> outputs``, ``.device``, ``.source``, ``.checks``, ``.warnings``, ``.mano``."""

    loaded: Any
    batch: Batch
    config: DiagConfig
    notes: list[str] = field(default_factory=list)
    host_batch: Batch | None = None  # the batch as loaded, on the CPU (for the batch checks)

    @property
    def model(self) -> nn.Module:
        return self.loaded.model

    @property
    def device(self) -> torch.device:
        dev = getattr(self.loaded, "device", None)
        if dev is not None:
            return torch.device(dev)
        first = next(self.model.parameters(), None)
        return first.device if first is not None else torch.device("cpu")


@dataclass
class Boundary:
    """The tensor where the shared trunk hands over to the heads, and how it was found."""

    features: torch.Tensor | None
    trunk: list[str]
    heads: list[str]
    description: str
    guessed: bool


@dataclass
class ForwardResult:
    """One forward pass: outputs (with graph when ``grad``), loss terms, the trunk/heads boundary."""

    inputs: RunInputs
    outputs: dict[str, Any]
    terms: LossTerms
    boundary: Boundary
    grad: bool
    seed: int
    forward_seconds: float

    @property
    def batch(self) -> Batch:
        return self.inputs.batch

    @property
    def config(self) -> DiagConfig:
        return self.inputs.config


def load_inputs(
    options: RunOptions | None = None, /, *, model: Any = None, **fields: Any
) -> RunInputs:
    """Read config, batch and model (the embedded defaults where none is given).

    ``options``: which model, batch and config (:class:`utnet_diag.run_options.RunOptions`);
    ``fields`` replace some of them (``load_inputs(batch="b.pt", device="cpu")``). ``model`` may
    be an already loaded model (skips loading). Raises InputError for bad inputs; the device
    string is checked before anything heavy is loaded.
    """

    opts = RunOptions.of(options, **fields)
    dev = resolve_device(opts.device)
    notes: list[str] = []
    config = opts.config
    if (
        config is None
        and opts.repo is not None
        and (Path(opts.repo) / "config" / "config.yaml").is_file()
    ):
        # A UTNet checkout trains with its own config/config.yaml: its loss weights apply.
        config = Path(opts.repo) / "config" / "config.yaml"
        notes.append(f"config: {config} (the --repo checkout's; pass --config to override)")
    cfg = config if isinstance(config, DiagConfig) else load_config(config, opts.preset)
    max_samples = opts.max_samples
    if isinstance(opts.batch, Batch):
        data = opts.batch if max_samples is None else opts.batch.subset(max_samples)
    elif opts.batch is None:
        from utnet_diag.synthetic.sample import default_batch  # makes the batch: only when used

        data = default_batch()
        if max_samples is not None or cfg.max_samples is not None:
            data = data.subset(max_samples or cfg.max_samples)  # type: ignore[arg-type]
        notes.append("batch: the embedded default (synthetic)")
    else:
        data = load_batch(opts.batch, cfg.key_map, max_samples or cfg.max_samples)
    if model is None:
        model = load_model(
            opts.checkpoint, config=cfg, **{**opts.model_source(), "device": str(dev)}
        )
    loaded = as_loaded(model)
    inputs = RunInputs(loaded, data, cfg, notes, host_batch=data)
    check_batch_fits(data.tensors, data.size, inputs.device)
    inputs.batch = data.to(inputs.device)
    return inputs


def as_loaded(model: Any) -> Any:
    """A LoadedModel-like object from a LoadedModel, or from a bare nn.Module that follows the
    output protocol (called as ``module(rgb, depth, n_i)``)."""
    if isinstance(model, nn.Module):
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
        return LoadedModel(model=model, device=device, source=f"in-memory {type(model).__name__}")
    if not (hasattr(model, "model") and callable(getattr(model, "forward", None))):
        raise InputError(
            f"expected a loaded model (utnet_diag.load_model), got {type(model).__name__}"
        )
    return model


def running(loaded: Any) -> AbstractContextManager[Any]:
    """The context the model's code runs in (``LoadedModel.running``: a checkout importable, the
    user's prints on stderr); nothing for a bare module. Held around forwards and backwards."""
    enter = getattr(loaded, "running", None)
    return enter() if callable(enter) else nullcontext()


@contextmanager
def training_step(model: nn.Module, seed: int = DEFAULT_SEED) -> Iterator[None]:
    """Train mode and a seeded, forked RNG for the duration; afterwards each module's mode and
    every buffer are restored. Parameters and ``.grad`` are left alone by the diagnostics.

    Seeded: the CPU generator and those of the CUDA devices the model is on (the ones forked).
    Every buffer is copied back (version counters do not see BatchNorm's running statistics),
    but those of modules that hold constant model data (:func:`constant_buffers`)."""
    modules = list(model.modules())
    modes = [m.training for m in modules]
    buffers: list[tuple[torch.Tensor, torch.Tensor]] = []
    seen: set[int] = set()
    devices: set[torch.device] = set()
    for module in modules:  # model.buffers() and the devices, in one pass
        constant = constant_buffers(module)
        for buf in module._buffers.values():
            if buf is not None and id(buf) not in seen:
                seen.add(id(buf))
                devices.add(buf.device)
                if not constant:
                    buffers.append((buf, buf.detach().clone()))
        devices.update(p.device for p in module._parameters.values() if p is not None)
    cuda = sorted({d.index or 0 for d in devices if d.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.default_generator.manual_seed(seed)
            for index in cuda:
                torch.cuda.default_generators[index].manual_seed(seed)
            _set_train_modes(model, modules, [True] * len(modules))
            yield
    finally:
        _set_train_modes(None, modules, modes)
        with torch.no_grad():
            for buf, saved in buffers:
                if buf.shape == saved.shape:
                    buf.copy_(saved)


def constant_buffers(module: nn.Module) -> bool:
    """Whether ``module``'s forward never writes its own buffers, so that a training step need
    not save and restore them: the MANO layers (utnet_diag's ``ManoLayer`` declares
    ``constant_buffers = True``; smplx's body models hold model data only)."""
    cls = type(module)
    return bool(getattr(cls, "constant_buffers", False)) or cls.__module__.startswith("smplx.")


def _set_train_modes(model: nn.Module | None, modules: list[nn.Module], modes: list[bool]) -> None:
    """``module.training = mode`` for each module, as ``nn.Module.train`` sets it. With ``model``
    (train mode wanted for all), ``model.train()`` itself runs when a module overrides ``train``
    or ``__setattr__``; otherwise the flags are set directly (the same result, without the
    recursion and ``nn.Module.__setattr__``'s lookups)."""
    plain = all(
        type(m).train is nn.Module.train and type(m).__setattr__ is nn.Module.__setattr__
        for m in modules
    )
    if model is not None and not plain:
        model.train()
        return
    for module, mode in zip(modules, modes):
        if module.training != mode:
            if plain:
                object.__setattr__(module, "training", mode)
            else:
                module.training = mode


def _protocol_model(model: nn.Module) -> nn.Module | None:
    """The module that implements ``module_groups()`` (the model or one it wraps), if any."""
    for candidate in (model, getattr(model, "model", None), getattr(model, "module", None)):
        if isinstance(candidate, nn.Module) and callable(getattr(candidate, "module_groups", None)):
            return candidate
    return None


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first floating tensor in a (nested) output: tensor, tuple/list, or dict."""
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else None
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


class _BoundaryProbe:
    """Finds the trunk/heads boundary: the model's own ``last_trunk_features`` when it implements
    ``module_groups()``, else the output of the last trunk-named child to run (a guess)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.protocol = _protocol_model(model)
        self.handles: list[Any] = []
        self.last: tuple[str, torch.Tensor] | None = None
        self.owner = self.protocol if self.protocol is not None else model
        children = [name for name, _ in self.owner.named_children()]
        if self.protocol is not None:
            groups = self.protocol.module_groups()
            self.trunk = list(groups.get("trunk", []))
            self.heads = list(groups.get("heads", []))
        else:
            self.trunk = [n for n in children if TRUNK_NAME_PATTERN.search(n)]
            self.heads = [n for n in children if n not in self.trunk]
            for name, child in self.owner.named_children():
                if name in self.trunk:
                    self.handles.append(child.register_forward_hook(self._hook(name)))
        prefix = "" if self.owner is model else self._prefix(model, self.owner)
        self.trunk = [prefix + n for n in self.trunk]
        self.heads = [prefix + n for n in self.heads]

    @staticmethod
    def _prefix(root: nn.Module, inner: nn.Module) -> str:
        for name, module in root.named_modules():
            if module is inner:
                return name + "." if name else ""
        return ""

    def _hook(self, name: str):
        def record(_module: nn.Module, _args: Any, output: Any) -> None:
            tensor = first_tensor(output)
            if tensor is not None:
                self.last = (name, tensor)

        return record

    def result(self) -> Boundary:
        for handle in self.handles:
            handle.remove()
        if self.protocol is not None:
            features = getattr(self.protocol, "last_trunk_features", None)
            if isinstance(features, torch.Tensor):
                return Boundary(features, self.trunk, self.heads,
                                "the model's last_trunk_features", False)  # fmt: skip
            return Boundary(None, self.trunk, self.heads,
                            "the model sets no last_trunk_features", False)  # fmt: skip
        if self.last is None:
            why = (
                "no child is named like a trunk (backbone/vit/encoder/patch_embed/fusion)"
                if not self.trunk
                else f"the trunk children ({', '.join(self.trunk)}) returned no tensor"
            )
            return Boundary(None, self.trunk, self.heads, why, True)
        name, tensor = self.last
        return Boundary(tensor, self.trunk, self.heads,
                        f"output of '{name}' (guessed from child names)", True)  # fmt: skip


def forward_pass(
    inputs: RunInputs, *, grad: bool = True, seed: int = DEFAULT_SEED
) -> ForwardResult:
    """Run the model once on the batch and compute the spec's loss terms.

    Call inside :func:`training_step`. With ``grad`` the outputs keep their autograd graph.
    """
    probe = _BoundaryProbe(inputs.model)
    start = time.perf_counter()
    try:
        with (
            out_of_memory_as_input_error(inputs.batch.size, inputs.device),
            torch.set_grad_enabled(grad),
        ):
            outputs = inputs.loaded.forward(inputs.batch)
            elapsed = time.perf_counter() - start
            terms = compute_terms(
                outputs,
                inputs.batch,
                inputs.config.weights,
                root_id=inputs.config.root_id,
                gt_vertices=_gt_vertices(inputs),
            )
    finally:
        boundary = probe.result()
    if not isinstance(outputs, dict) or "keypoints_3d" not in outputs:
        raise InputError("the model's outputs have no 'keypoints_3d'", hint="check --output-map")
    return ForwardResult(inputs, outputs, terms, boundary, grad, seed, elapsed)


def _gt_vertices(inputs: RunInputs) -> torch.Tensor | None:
    """Ground-truth vertices for the vertex term when the batch has none: MANO on the GT params,
    placed so that their root joint is the batch's GT root (the term is root-relative)."""
    weights = inputs.config.weights
    batch = inputs.batch
    if not weights.use_vertex_loss or "vertices_3d" in batch:
        return None
    mano = getattr(inputs.loaded, "mano", None)
    needed = ("mano_pose", "mano_shape", "keypoints_3d")
    if mano is None or any(k not in batch for k in needed):
        return None

    root = inputs.config.root_id
    with torch.no_grad():
        out = mano_forward_pose48(mano, batch["mano_pose"], batch["mano_shape"])
        shift = batch["keypoints_3d"][:, root, :3] - out.joints[:, root]
        return out.vertices + shift[:, None, :]


def detach_outputs(outputs: Any) -> Any:
    """The outputs with every tensor detached (nested dicts/lists kept)."""
    if isinstance(outputs, torch.Tensor):
        return outputs.detach()
    if isinstance(outputs, dict):
        return {k: detach_outputs(v) for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(detach_outputs(v) for v in outputs)
    return outputs


def all_finite(value: Any) -> bool:
    """True when every floating tensor inside ``value`` (nested) is finite."""
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(all_finite(v) for v in value)
    return True


def mano_extras(loaded: Any) -> dict[str, Any]:
    """What the model's own code asked smplx for, and the advice when a request failed
    (``mano_requests``, ``mano_advice``), for the prediction checks."""
    requests = list(getattr(loaded, "mano_requests", None) or [])
    if not requests:  # the user's model built no smplx MANO we saw: its settings are unknown
        return {"model_mano": None} if getattr(loaded, "user_code", False) else {}

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


def run_section(inputs: RunInputs, fwd: ForwardResult | None = None) -> RunSection:
    """The ``run`` section: what ran, where, on what (model source, batch, device, mode, notes)."""
    loaded = inputs.loaded
    build = getattr(loaded, "build", None)  # a checkout: its config and every argument's origin
    requests = getattr(loaded, "mano_requests", None)
    notes = list(inputs.notes) + list(inputs.batch.notes)
    notes += [str(w) for w in getattr(loaded, "warnings", []) or []]
    return RunSection(
        model=str(getattr(loaded, "source", "?")),
        batch=inputs.batch.source or "(in memory)",
        batch_size=inputs.batch.size,
        device=str(inputs.device),
        config=str(inputs.config.path or f"preset {inputs.config.weights.preset}"),
        mode="train() for the forward, then restored; dropout seeded; buffers restored",
        built_from=(
            None if build is None else str(build.config_path) if build.config_path else "no config"
        ),
        arguments=build.table() if build is not None else None,
        mano_requests=[r.to_dict() for r in requests] if requests else None,
        forward_s=round(fwd.forward_seconds, 4) if fwd is not None else None,
        seed=fwd.seed if fwd is not None else None,
        notes=notes or None,
    )
