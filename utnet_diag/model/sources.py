"""Where the model under diagnosis comes from: the reference UTNet, a UTNet checkout, or a factory.

* default: the reference UTNet (:mod:`utnet_diag.model.reference`); its checkpoint stores its
  config (a checkpoint without one is built from the config's ``model:`` section, else tiny).
  Without a checkpoint: the tiny preset with deterministic init (seed 0).
* ``repo``: the user's UTNet checkout, built the way its ``train.py`` ``create_model`` does, from
  the given config (``--config``; else the checkout's ``config/config.yaml``): ``model:`` gives
  the architecture, ``mano.model_path`` and ``mano.mean_params_path`` the MANO files (see
  :mod:`utnet_diag.model.checkout`). The checkout stays importable while its code runs.
* ``model_factory``: ``module:callable`` (importable, or from the current directory); it is
  called with no arguments, or with ``config=`` the config's ``model:`` section when it takes a
  ``config`` parameter. ``output_map`` renames its outputs to the protocol.

Every source is called as ``model(rgb, depth, n_i)`` and must return the protocol
(:data:`OUTPUT_SHAPES`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utnet_diag.config import DiagConfig
from utnet_diag.device import resolve_device
from utnet_diag.errors import InputError, did_you_mean
from utnet_diag.mano import ManoLayer
from utnet_diag.model.checkout import (
    PATH_ARGS,
    REPO_CLASS,
    REPO_MODULE,
    CheckoutBuild,
    CheckoutImports,
    ManoRequest,
    building,
    checkout_arguments,
    checkout_config,
    find_checkout,
)
from utnet_diag.model.checkpoint import apply_state_dict, key_report, load_checkpoint
from utnet_diag.model.reference import ReferenceConfig, build_reference
from utnet_diag.model.rotation import axis_angle_to_matrix
from utnet_diag.model.user_code import (
    output_to_stderr,
    resolve_callable,
    running_user_code,
)
from utnet_diag.report.result import CheckResult, Report
from utnet_diag.report.sections import (
    CheckpointSection,
    ComparedWithSection,
    StoredConfigSection,
)

# Protocol output -> expected shape after the batch dimension (None: any size).
OUTPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "keypoints_2d": (21, 2),
    "keypoints_3d": (21, 3),
    "vertices": (778, 3),
    "mano_params.global_orient": (1, 3, 3),
    "mano_params.hand_pose": (15, 3, 3),
    "mano_params.betas": (10,),
    "coarse_pose": (48,),
    "coarse_shape": (10,),
    "coarse_cam": (3,),
}
# Needed even with strict_outputs=False: the 2D and 3D losses.
CORE_OUTPUTS = ("keypoints_2d", "keypoints_3d")


def parse_output_map(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"ours=theirs,ours=theirs"`` (or a mapping) -> {protocol key: model output key}.

    Dotted names reach into nested dicts on either side (``mano_params.betas=pred_mano.betas``).
    """
    if text is None:
        return {}
    if isinstance(text, Mapping):
        pairs = [(str(k), str(v)) for k, v in text.items()]
    else:
        pairs = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            if item.count("=") != 1 or not all(s.strip() for s in item.split("=")):
                raise InputError(
                    f"bad --output-map entry '{item}'", hint="write ours=theirs,ours=theirs"
                )
            ours, theirs = (s.strip() for s in item.split("="))
            pairs.append((ours, theirs))
    known = list(OUTPUT_SHAPES) + ["mano_params"]
    out: dict[str, str] = {}
    for ours, theirs in pairs:
        if ours not in known:
            raise InputError(
                f"--output-map names unknown output '{ours}'" + did_you_mean(ours, known),
                hint=f"protocol outputs: {', '.join(known)}",
            )
        out[ours] = theirs
    return out


def _lookup(outputs: Mapping[str, Any], dotted: str) -> Any:
    node: Any = outputs
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _shape_text(t: Any) -> str:
    return (
        "(" + ",".join(str(s) for s in t.shape) + ")" if hasattr(t, "shape") else type(t).__name__
    )


def _as_rotmat(value: torch.Tensor, joints: int) -> torch.Tensor:
    """Axis-angle (B, joints*3) or (B, joints, 3) -> (B, joints, 3, 3); other shapes unchanged."""

    b = value.shape[0]
    if (
        value.dim() == 2
        and value.shape[1] == joints * 3
        or value.dim() == 3
        and value.shape[1:] == (joints, 3)
    ):
        return axis_angle_to_matrix(value.reshape(b, joints, 3))
    return value


def map_outputs(
    raw: Any, output_map: Mapping[str, str], batch_size: int, strict: bool = True
) -> tuple[dict[str, Any], list[str]]:
    """Model outputs -> protocol dict, validated. Returns it and notes on conversions applied.

    Missing protocol keys raise an InputError naming them (all of them with ``strict``, else only
    ``keypoints_2d``/``keypoints_3d``); wrong shapes raise an InputError with the shapes.
    Axis-angle ``global_orient`` (B,3) and ``hand_pose`` (B,45) are converted to rotation matrices.
    """
    if not isinstance(raw, Mapping):
        raise InputError(
            f"the model returned a {type(raw).__name__}, not a dict of outputs",
            hint="wrap it with --model-factory so that forward returns a dict",
        )
    notes: list[str] = []
    out: dict[str, Any] = {}
    missing: list[str] = []
    for key, tail in OUTPUT_SHAPES.items():
        source = output_map.get(key)
        if source is None and key.startswith("mano_params.") and "mano_params" in output_map:
            source = output_map["mano_params"] + key[len("mano_params") :]
        value = _lookup(raw, source or key)
        if value is None:
            if strict or key in CORE_OUTPUTS:
                missing.append(key if source is None else f"{key} (mapped to '{source}')")
            continue
        if not isinstance(value, torch.Tensor):
            raise InputError(
                f"model output '{source or key}' is a {type(value).__name__}, not a tensor"
            )
        if key == "mano_params.global_orient":
            converted = _as_rotmat(value, 1)
        elif key == "mano_params.hand_pose":
            converted = _as_rotmat(value, 15)
        else:
            converted = value
        if converted is not value:
            notes.append(f"{key}: axis-angle {_shape_text(value)} converted to rotation matrices")
        value = converted
        if (
            value.dim() != len(tail) + 1
            or value.shape[0] != batch_size
            or tuple(value.shape[1:]) != tail
        ):
            want = "(" + ",".join(str(d) for d in (batch_size, *tail)) + ")"
            raise InputError(
                f"model output '{source or key}' has shape {_shape_text(value)}, expected {key} {want}",
                hint="fix the model or map the right output with --output-map",
            )
        if "." in key:
            group, name = key.split(".")
            out.setdefault(group, {})[name] = value
        else:
            out[key] = value
    if missing:
        found = ", ".join(sorted(map(str, raw))) or "none"
        raise InputError(
            f"model outputs lack {', '.join(missing)} (it returned: {found[:200]})",
            hint="map your names with --output-map ours=theirs,ours=theirs",
        )
    for key, value in raw.items():  # keep extra outputs (cam, cam_translation, ...)
        if key not in out and isinstance(value, torch.Tensor):
            out.setdefault(key, value)
    return out, notes


@dataclass
class LoadedModel:
    """A model ready to run on a batch, and what was learnt while loading it.

    ``source``: human-readable origin; ``checks``: e.g. ``checkpoint_keys``; ``warnings``: text
    for stderr; ``mano``: a MANO layer for the ground-truth MANO checks (the reference model's
    own, or one built from ``--mano``/the checkout's configured file; None when there is none);
    ``config``: the model's config dict; ``image_size``: (H, W) the model was configured for, or
    None (information only: only the model itself decides what it accepts); ``user_code``: the
    model is the user's (a checkout or a factory): what it prints goes to stderr and what it
    raises is reported with its traceback; ``imports``: the checkout's import scope;
    ``build``: how a checkout was built (config file, arguments); ``mano_requests``: what the
    user's code asked smplx for.
    """

    model: nn.Module
    device: torch.device
    source: str
    checks: list[CheckResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    mano: Any = None
    config: dict[str, Any] = field(default_factory=dict)
    image_size: tuple[int, int] | None = None
    output_map: dict[str, str] = field(default_factory=dict)
    strict_outputs: bool = True
    notes: list[str] = field(default_factory=list)
    user_code: bool = False
    imports: Any = None
    build: Any = None
    mano_requests: list[Any] = field(default_factory=list)

    def inputs(
        self, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``(rgb, depth, n_i)`` on the model's device, as float32. The image size is the
        model's business: a model that crops or resizes inside ``forward`` gets what its loader
        gives, and one that rejects the size says so itself."""
        rgb = batch.get("rgb")
        if rgb is None:
            raise InputError("the batch has no 'rgb' images, which the model needs as input")
        depth = batch.get("depth")
        n_i = batch.get("n_i")
        if n_i is None:
            n_i = torch.full((rgb.shape[0],), 1.0 if depth is not None else 0.0)
        to = dict(device=self.device, dtype=torch.float32)
        return rgb.to(**to), (depth.to(**to) if depth is not None else None), n_i.to(**to)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The context the model's code runs in: the checkout importable, and (for the user's
        code) stdout sent to stderr. Re-entrant; commands hold it around every forward and
        backward."""
        with contextlib.ExitStack() as stack:
            if self.imports is not None:
                stack.enter_context(self.imports)
            if self.user_code:
                stack.enter_context(output_to_stderr())
            yield

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Run ``model(rgb, depth, n_i)`` and return the validated protocol outputs.

        A model that raises on this batch is an input error with the model's own message (the
        user's traceback chained for ``UTNET_DIAG_DEBUG``); out-of-memory errors pass through.
        """
        rgb, depth, n_i = self.inputs(batch)
        with self.running():
            if self.user_code:
                with running_user_code("the model's forward on this batch", self._size_hint(rgb)):
                    raw = self.model(rgb, depth, n_i)
            else:
                try:
                    raw = self.model(rgb, depth, n_i)
                except ValueError as err:  # the reference model's own input validation
                    raise InputError(f"the model rejected the batch: {err}") from err
        outputs, notes = map_outputs(raw, self.output_map, rgb.shape[0], self.strict_outputs)
        for note in notes:
            if note not in self.notes:
                self.notes.append(note)
        return outputs

    __call__ = forward

    def _size_hint(self, rgb: torch.Tensor) -> str | None:
        size = tuple(rgb.shape[-2:])
        if self.image_size is None or size == tuple(self.image_size):
            return None
        h, w = self.image_size
        return (
            f"the batch images are {size[0]}x{size[1]} and the model is configured for {h}x{w};"
            " set UTNET_DIAG_DEBUG=1 for the traceback"
        )


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build a model from a fixed seed (the random initial weights of an untrained model, and
    every draw its constructor makes), so two runs without a checkpoint see the same model; the
    caller's random state (torch, numpy, random) is restored afterwards."""
    import random

    import numpy as np

    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def build_repo_model(
    repo: str | Path,
    mano_path: str | Path | None = None,
    config: str | Path | DiagConfig | None = None,
) -> tuple[nn.Module, CheckoutBuild, CheckoutImports, list[ManoRequest]]:
    """Import ``src.models.utnet.UTNet`` from a checkout and build it as ``train.py`` would.

    ``config``: the config the model is built from (a path or a loaded DiagConfig; default the
    checkout's ``config/config.yaml``); ``mano_path`` (``--mano``) replaces ``mano.model_path``.
    Returns (model, how it was built, the checkout's import scope, what the model's code asked
    smplx for). Whatever the checkout prints goes to stderr; what it raises is an input error
    with its traceback chained.
    """
    root = find_checkout(repo)
    if isinstance(config, DiagConfig) and config.path is not None:
        data, config_path = dict(config.raw), Path(config.path)
    else:
        data, config_path = checkout_config(
            root, None if isinstance(config, DiagConfig) else config
        )
    name = f"{REPO_MODULE}.{REPO_CLASS}"
    with building(root) as (imports, probe):
        with running_user_code(f"importing {REPO_MODULE} from {root}"):
            module = importlib.import_module(REPO_MODULE)
        model_cls = getattr(module, REPO_CLASS, None)
        if not isinstance(model_cls, type):
            raise InputError(f"{REPO_MODULE} defines no class {REPO_CLASS}", path=str(root))
        build = checkout_arguments(root, model_cls, data, config_path, mano_path)
        with running_user_code(f"building {name}", functools.partial(_missing_file_hint, build)):
            model = model_cls(**build.kwargs)
    if not isinstance(model, nn.Module):
        raise InputError(f"{name} did not build a torch nn.Module")
    return model, build, imports, probe.requests


def _missing_file_hint(build: CheckoutBuild, err: BaseException) -> str | None:
    """The configured path a failed build could not find (the one the error names, else the
    first that does not exist), as the hint."""
    missing = [
        a
        for a in build.arguments
        if a.name in PATH_ARGS and isinstance(a.value, str) and a.value
        if not os.path.exists(a.value)
    ]
    named = getattr(err, "filename", None)
    missing.sort(key=lambda a: a.value != named)
    if not missing:
        return None
    arg = missing[0]
    return (
        f"{arg.name} = {arg.value} ({arg.origin}) does not exist; set UTNET_DIAG_DEBUG=1 for the"
        " traceback"
    )


def resolve_factory(spec: str) -> Callable[..., Any]:
    """``module:callable`` -> the callable (importable, or found from the current directory)."""
    return resolve_callable(
        spec, "--model-factory", "make it importable (PYTHONPATH) or run from its folder"
    )


def _image_size_of(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int):
        return (value, value)
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    return None


def reference_config_from(stored: Mapping[str, Any], path: str | Path | None = None) -> Any:
    """The ReferenceConfig a checkpoint's stored config describes (its ``model:`` part if nested;
    keys the reference model does not know are ignored). An error names ``path``."""

    section = stored.get("model") if isinstance(stored.get("model"), Mapping) else stored
    try:
        return ReferenceConfig.from_dict(dict(section), strict=False)
    except InputError as err:  # the size the checkpoint's stored config claims
        if path is None:
            raise
        raise type(err)(f"its stored config: {err}", path=str(path)) from None


def load_model(
    checkpoint: str | Path | None = None,
    *,
    repo: str | Path | None = None,
    model_factory: str | None = None,
    output_map: str | Mapping[str, str] | None = None,
    config: DiagConfig | None = None,
    mano_path: str | Path | None = None,
    device: str | torch.device = "auto",
    unsafe_load: bool = False,
    strict_outputs: bool = True,
    seed: int = 0,
) -> LoadedModel:
    """Build the model to diagnose from one source and load its checkpoint.

    The result's ``checks`` hold ``checkpoint_keys`` when a checkpoint was given; ``warnings``
    hold text the CLI prints on stderr (``--unsafe-load``). Raises InputError for bad inputs.
    """
    if repo is not None and model_factory is not None:
        raise InputError("give one model source: --repo or --model-factory, not both")
    if output_map and model_factory is None and repo is None:
        raise InputError("--output-map applies to --model-factory or --repo models only")
    torch_device = resolve_device(device)
    mapping = parse_output_map(output_map)
    ckpt = load_checkpoint(checkpoint, unsafe=unsafe_load) if checkpoint is not None else None
    if repo is not None:
        built = _from_repo(repo, mano_path, config, seed)
    elif model_factory is not None:
        built = _from_factory(model_factory, mano_path, config, seed)
    else:
        built = _reference(ckpt, mano_path, config, seed)
    model, source = built.model, built.source
    checks: list[CheckResult] = []
    if ckpt is not None:
        checks.append(key_report(model, ckpt.state_dict))
        apply_state_dict(model, ckpt.state_dict, path=str(ckpt.path))
        if repo is not None or model_factory is not None:
            source = f"{source}, checkpoint {ckpt.path}"
    model.to(torch_device)
    return LoadedModel(
        model=model,
        device=torch_device,
        source=source,
        checks=checks,
        warnings=(list(ckpt.warnings) if ckpt else []) + built.warnings,
        mano=built.mano,
        config=dict(built.config),
        image_size=built.image_size,
        output_map=mapping,
        strict_outputs=strict_outputs,
        **built.extra,
    )


@dataclass
class _Built:
    """A model built from one source, before its checkpoint: what LoadedModel reports of it."""

    model: nn.Module
    config: Mapping[str, Any]
    image_size: tuple[int, int] | None
    source: str
    mano: Any = None
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _from_repo(
    repo: str | Path, mano_path: str | Path | None, config: DiagConfig | None, seed: int
) -> _Built:
    """The checkout's UTNet, built as its train.py does (from a fixed seed)."""
    with seeded_init(seed):
        model, build, imports, requests = build_repo_model(repo, mano_path, config)
    mano, mano_note = _labels_mano(mano_path or build.kwargs.get("mano_path"))
    return _Built(
        model, build.kwargs, _image_size_of(build.kwargs.get("img_size")),
        f"repo {build.root} ({REPO_MODULE}.{REPO_CLASS})", mano,
        build.notes + ([mano_note] if mano_note else []),
        dict(user_code=True, imports=imports, build=build, mano_requests=requests),
    )  # fmt: skip


def _from_factory(
    spec: str, mano_path: str | Path | None, config: DiagConfig | None, seed: int
) -> _Built:
    """The model ``module:callable`` returns (called with ``config=`` the config's model: section
    when it takes one), from a fixed seed."""
    factory = resolve_factory(spec)
    section = dict(config.model) if config is not None else {}
    try:
        takes_config = "config" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_config = False
    with running_user_code(f"--model-factory {spec}"), seeded_init(seed):
        model = factory(config=section) if takes_config else factory()
    if not isinstance(model, nn.Module):
        raise InputError(
            f"--model-factory {spec} returned a {type(model).__name__}, not an nn.Module"
        )
    image_size = _image_size_of(getattr(model, "img_size", None)) or _image_size_of(
        getattr(model, "image_size", None)
    )
    mano = _labels_mano(mano_path)[0] if mano_path is not None else None
    return _Built(model, section, image_size, f"factory {spec}", mano, extra=dict(user_code=True))


def _reference(
    ckpt: Any, mano_path: str | Path | None, config: DiagConfig | None, seed: int
) -> _Built:
    """The reference UTNet: the checkpoint's stored size, else the config's model: section (with
    a checkpoint), else the embedded tiny default.

    Without a checkpoint it is always the tiny default: a config's model: section may describe a
    600M-parameter ViT-H, and random weights of that size diagnose nothing more."""
    if ckpt is not None and ckpt.config is not None:
        ref_config = reference_config_from(ckpt.config, ckpt.path)
    elif ckpt is not None and config is not None and config.model:
        ref_config = ReferenceConfig.from_dict(config.model, strict=False)
    else:
        ref_config = ReferenceConfig.preset("tiny")
    mano = ManoLayer(path=mano_path)
    model = build_reference(ref_config, mano=mano, seed=seed)
    init = f"checkpoint {ckpt.path}" if ckpt else f"random init, seed {seed}"
    return _Built(model, ref_config.to_dict(), tuple(ref_config.img_size),  # type: ignore[arg-type]
                  f"reference UTNet ({ref_config.name}, {init})", mano)  # fmt: skip


def _labels_mano(path: str | Path | None) -> tuple[Any, str | None]:
    """A MANO layer from the user's MANO file for the ground-truth checks (never swapped into
    their model), and a note when the file cannot be used for them."""
    if not path:
        return None, None

    try:
        return ManoLayer(path=path), None
    except InputError as err:
        return None, f"MANO checks of the labels skipped: {err}"


def inspect_checkpoint(
    path: str | Path,
    *,
    repo: str | Path | None = None,
    config: str | Path | None = None,
    mano_path: str | Path | None = None,
    unsafe_load: bool = False,
) -> Any:
    """Report on a checkpoint: sizes, dtypes, stored config, and its keys against a model.

    The model compared with is ``repo``'s UTNet when given (built from ``config``, else the
    checkout's own), else the reference UTNet built with the checkpoint's stored config (the
    tiny preset when it stores none). Returns a Report
    (command ``inspect-checkpoint``) whose ``checkpoint`` section holds ``warnings`` for stderr.
    """

    data = load_checkpoint(path, unsafe=unsafe_load)
    if repo is not None:
        model, build, _, _ = build_repo_model(repo, mano_path, config)
        compared = f"repo {build.root} ({REPO_MODULE}.{REPO_CLASS})"
    else:
        ref_config = reference_config_from(data.config or {}, data.path)
        model = build_reference(ref_config, mano=ManoLayer(path=mano_path))
        what = "its stored config" if data.config is not None else "no stored config"
        compared = f"reference UTNet ({ref_config.name}, {what})"
    section = CheckpointSection(path=data.path, **data.summary(), metadata=data.metadata,
                                warnings=list(data.warnings))  # fmt: skip
    parameters = sum(p.numel() for p in model.parameters())
    sections: dict[str, Any] = {"checkpoint": section,
                                "compared_with": ComparedWithSection(compared, parameters)}  # fmt: skip
    if data.config is not None:
        sections["stored_config"] = StoredConfigSection(dict(data.config))
    return Report(
        command="inspect-checkpoint",
        checks=[key_report(model, data.state_dict)],
        sections=sections,
    )
