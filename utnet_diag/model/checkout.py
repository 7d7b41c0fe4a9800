"""A UTNet checkout, built and run the way its users train it.

- :func:`checkout_arguments`: the constructor arguments of ``src.models.utnet.UTNet`` as the
  checkout's ``train.py`` ``create_model`` passes them: ``model.<name>`` for every argument but
  the two MANO paths, which come from ``mano.model_path`` and ``mano.mean_params_path``; ``--mano``
  replaces ``mano.model_path``. Relative paths are resolved against the checkout (``train.py``
  runs from there: its default ``--config`` is ``config/config.yaml``). Each value says where it
  came from, for the run table.
- :class:`CheckoutImports`: the checkout's package importable while entered (re-entrant), for the
  build, every forward and backward, and overfit's steps; outside it ``sys.path`` and
  ``sys.modules`` hold what they held before, so two checkouts never mix.
- :class:`ManoProbe`: records what the user's code asked smplx for (``smplx.create`` and
  ``smplx.MANO``: the path, the file smplx looked at, what happened), without changing what their
  code does, and refuses a MANO pickle that names globals outside the MANO allow-list before
  smplx's plain ``pickle.load`` would run them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from utnet_diag.config import safe_load_yaml
from utnet_diag.errors import InputError, UnsafeInputError
from utnet_diag.io.files import require_dir
from utnet_diag.mano.convert import pickle_globals
from utnet_diag.mano.official import MANO_GLOBALS
from utnet_diag.model.user_code import RefusedInput

REPO_MODULE, REPO_CLASS, REPO_PACKAGE = "src.models.utnet", "UTNet", "src"
CHECKOUT_CONFIG = Path("config") / "config.yaml"
# train.py's create_model: these arguments come from the mano: section, all others from model:
MANO_SECTION_ARGS = {"mano_path": "model_path", "mean_params_path": "mean_params_path"}
PATH_ARGS = tuple(MANO_SECTION_ARGS)


@dataclass(frozen=True)
class BuildArgument:
    """One constructor argument: its value and where it came from (``small.yaml: model.embed_dim``,
    ``--mano``, ``constructor default``)."""

    name: str
    value: Any
    origin: str


@dataclass
class CheckoutBuild:
    """How a checkout's UTNet is built: the config file, the arguments, and notes for the run table."""

    root: Path
    config_path: Path | None
    arguments: list[BuildArgument]
    notes: list[str] = field(default_factory=list)

    @property
    def kwargs(self) -> dict[str, Any]:
        return {a.name: a.value for a in self.arguments if a.origin != "constructor default"}

    def table(self) -> dict[str, str]:
        """``{argument: "value (origin)"}`` for the run table."""
        return {a.name: f"{a.value!r} ({a.origin})" for a in self.arguments}


def find_checkout(repo: str | Path) -> Path:
    """The checkout's root folder, or an InputError saying what is missing."""

    root = require_dir(repo, "UTNet checkout").resolve()
    if not (root / "src" / "models" / "utnet.py").is_file():
        raise InputError(
            "not a UTNet checkout: src/models/utnet.py is missing",
            path=str(root),
            hint="--repo takes the folder that holds src/ and config/",
        )
    return root


def checkout_config(
    root: Path, config_path: str | Path | None
) -> tuple[dict[str, Any], Path | None]:
    """The config the checkout is built from: ``config_path`` when given (``--config``), else the
    checkout's own ``config/config.yaml`` (empty when it has none)."""

    path = Path(config_path) if config_path is not None else root / CHECKOUT_CONFIG
    if config_path is None and not path.is_file():
        return {}, None
    data = safe_load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError("config must be a YAML mapping at the top level", path=str(path))
    return data, path


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    return value if isinstance(value, Mapping) else {}


def checkout_arguments(
    root: Path,
    model_cls: type,
    data: Mapping[str, Any],
    config_path: Path | None,
    mano_path: str | Path | None = None,
) -> CheckoutBuild:
    """The constructor arguments for ``model_cls`` from a UTNet config, as ``create_model`` reads them.

    For each parameter of ``model_cls.__init__``: ``--mano`` for ``mano_path``; ``mano.model_path``
    and ``mano.mean_params_path`` for the two MANO paths (required: ``create_model`` reads them
    whatever the constructor's defaults); ``model.<name>`` otherwise (a checkout whose config keeps
    them under ``model:`` or at the top level works too); else the constructor's default. An
    argument with no value is an InputError naming the config key to add.
    """
    where = config_path.name if config_path is not None else "no config"
    model, mano = _section(data, "model"), _section(data, "mano")
    arguments: list[BuildArgument] = []
    missing: list[str] = []
    params = inspect.signature(model_cls.__init__).parameters
    for name, param in params.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        key = MANO_SECTION_ARGS.get(name)
        if name == "mano_path" and mano_path is not None:
            value, origin = str(Path(mano_path).resolve()), "--mano"
        elif key is not None and key in mano:
            value, origin = mano[key], f"{where}: mano.{key}"
        elif name in model:
            value, origin = model[name], f"{where}: model.{name}"
        elif name in data and not isinstance(data[name], Mapping):
            value, origin = data[name], f"{where}: {name}"
        elif param.default is not inspect.Parameter.empty and key is None:
            arguments.append(BuildArgument(name, param.default, "constructor default"))
            continue
        else:
            missing.append(f"mano.{key}" if key else f"model.{name}")
            continue
        if name in PATH_ARGS and isinstance(value, str) and value and not os.path.isabs(value):
            value = str((root / value).resolve())
            origin += ", relative to the checkout"
        arguments.append(BuildArgument(name, value, origin))
    if missing:
        raise InputError(
            f"the config gives no value for UTNet argument(s) {', '.join(missing)}",
            path=str(config_path) if config_path is not None else str(root / CHECKOUT_CONFIG),
            hint="add them as train.py's create_model reads them",
        )
    build = CheckoutBuild(root, config_path, arguments)
    weights = model.get("pretrained_weights")
    if weights:
        build.notes.append(
            f"model.pretrained_weights ({weights}) not loaded: train.py reads it with"
            " torch.load(weights_only=False), which can run code; the weights under test are"
            " --checkpoint's (random init without one)"
        )
    return build


def _module_file_under(module: ModuleType | None, root: str) -> bool:
    path = getattr(module, "__file__", None)
    return bool(path) and os.path.abspath(path).startswith(root + os.sep)


class CheckoutImports:
    """While entered, ``package`` (and any module of the checkout) imports from ``root`` only.

    Re-entrant. On the outermost exit, the checkout's modules (those under ``package`` and any
    whose file lies in ``root``) are set aside and whatever was there before is put back; the
    next entry puts them back, so code that imports lazily (inside ``forward``) finds them.
    """

    def __init__(self, root: str | Path, package: str = REPO_PACKAGE):
        self.root = str(Path(root).resolve())
        self.package = package
        self.modules: dict[str, ModuleType] = {}
        self._saved: dict[str, ModuleType] = {}
        self._depth = 0

    def _ours(self, name: str, module: Any) -> bool:
        return (
            name == self.package
            or name.startswith(self.package + ".")
            or _module_file_under(module, self.root)
        )

    def __enter__(self) -> CheckoutImports:
        self._depth += 1
        if self._depth == 1:
            self._saved = {
                k: m
                for k, m in list(sys.modules.items())
                if k == self.package or k.startswith(self.package + ".") or k in self.modules
            }
            for key in self._saved:
                del sys.modules[key]
            sys.modules.update(self.modules)
            sys.path.insert(0, self.root)
            importlib.invalidate_caches()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth:
            return
        with contextlib.suppress(ValueError):
            sys.path.remove(self.root)
        self.modules = {k: m for k, m in list(sys.modules.items()) if self._ours(k, m)}
        for key in self.modules:
            del sys.modules[key]
        sys.modules.update(self._saved)
        self._saved = {}


# --- what the user's code asked smplx for -----------------------------------------------------
@dataclass
class ManoRequest:
    """One MANO model the user's code asked smplx for.

    ``call``: the call as written (``smplx.create(model_path='/x', model_type='mano')``);
    ``looked_at``: the file smplx opened or looked for; ``error``: what smplx raised (None: it
    loaded); ``file_state``: 'missing', 'chumpy' (the official pickle, which needs chumpy),
    'plain' or 'unreadable'; ``flat_hand_mean``/``use_pca``: the layer's settings when it loaded.
    """

    call: str
    looked_at: str
    error: str | None = None
    file_state: str | None = None
    flat_hand_mean: bool | None = None
    use_pca: bool | None = None
    is_rhand: bool = True

    @property
    def loaded(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": self.call,
            "looked_at": self.looked_at,
            "loaded": self.loaded,
            "error": self.error,
            "file_state": self.file_state,
        }


def _mano_file_state(path: str) -> str:
    """'missing', 'chumpy', 'plain', 'unsafe' or 'unreadable' for a MANO pickle path."""

    if not os.path.isfile(path):
        return "missing"
    try:
        with open(path, "rb") as handle:
            names = pickle_globals(handle.read())
    except OSError:
        return "unreadable"
    if any(not _allowed_mano_global(n) for n in names):
        return "unsafe"
    return "chumpy" if any(n.startswith("chumpy.") for n in names) else "plain"


def _allowed_mano_global(name: str) -> bool:

    return tuple(name.rsplit(".", 1)) in MANO_GLOBALS


def _looked_at(model_path: str, is_rhand: bool, ext: str) -> str:
    """The file ``smplx.MANO(model_path, is_rhand)`` opens (its own rule)."""
    if os.path.isdir(model_path):
        return os.path.join(model_path, f"MANO_{'RIGHT' if is_rhand else 'LEFT'}.{ext}")
    return model_path


class ManoProbe:
    """While entered, ``smplx.create`` and ``smplx.MANO`` record each request in ``requests``.

    The user's code runs unchanged (their exceptions propagate to their own handlers), except
    that a pickle naming a global outside the MANO allow-list is refused with UnsafeInputError
    before smplx's ``pickle.load`` would run it. Without smplx installed, nothing is patched.
    """

    def __init__(self) -> None:
        self.requests: list[ManoRequest] = []
        self._pending_call: str | None = None
        self._undo: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> ManoProbe:
        try:
            import smplx
            import smplx.body_models as body_models
        except ImportError:
            return self
        self._patch(body_models.MANO, "__init__", self._wrap_mano_init(body_models.MANO.__init__))
        create = self._wrap_create(body_models.create)
        self._patch(body_models, "create", create)
        if getattr(smplx, "create", None) is not None:
            self._patch(smplx, "create", create)
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        self._undo.append((owner, name, owner.__dict__.get(name, getattr(owner, name))))
        setattr(owner, name, value)

    def _wrap_create(self, create: Any) -> Any:
        probe = self

        @functools.wraps(create)
        def recorded_create(model_path: Any, model_type: str = "smpl", **kwargs: Any) -> Any:
            probe._pending_call = (
                f"smplx.create(model_path={str(model_path)!r}, model_type={model_type!r})"
            )
            try:
                return create(model_path, model_type=model_type, **kwargs)
            finally:
                probe._pending_call = None

        return recorded_create

    def _wrap_mano_init(self, init: Any) -> Any:
        probe = self

        @functools.wraps(init)
        def recorded_init(mano: Any, model_path: Any = "", *args: Any, **kwargs: Any) -> None:
            is_rhand = bool(kwargs.get("is_rhand", args[0] if args else True))
            ext = str(kwargs.get("ext", "pkl"))
            path = str(model_path)
            call = probe._pending_call or f"smplx.MANO(model_path={path!r})"
            if kwargs.get("data_struct") is not None:
                return init(mano, model_path, *args, **kwargs)
            looked_at = _looked_at(path, is_rhand, ext)
            request = ManoRequest(call, looked_at, file_state=_mano_file_state(looked_at))
            request.is_rhand = is_rhand
            probe.requests.append(request)
            if request.file_state == "unsafe":
                request.error = "refused by utnet-diag: the pickle names globals outside MANO's"
                # a BaseException: the user's `except Exception` must not swallow the refusal
                raise RefusedInput(
                    UnsafeInputError(
                        "the model asked smplx to unpickle a MANO file that names globals outside"
                        " the MANO allow-list (a pickle global can run code); it was not loaded",
                        path=looked_at,
                        hint=f"check it with `utnet-diag mano-info {looked_at}`",
                    )
                )
            try:
                init(mano, model_path, *args, **kwargs)
            except BaseException as err:
                request.error = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
                raise
            request.flat_hand_mean = getattr(mano, "flat_hand_mean", None)
            request.use_pca = getattr(mano, "use_pca", None)

        return recorded_init


def mano_load_advice(
    requests: list[ManoRequest], official: str | Path | None
) -> tuple[str, str] | None:
    """(what happened, the fix) for the first MANO request that failed, or None if all loaded.

    ``official``: the official MANO file the model was configured with (the source for
    ``convert-mano``); a placeholder when unknown. The fix is one ``convert-mano`` command that
    puts a chumpy-free copy exactly where smplx looked (creating folders as needed).
    """
    failed = next((r for r in requests if not r.loaded), None)
    if failed is None:
        return None
    side = "RIGHT" if failed.is_rhand else "LEFT"
    source = str(official) if official else f"MANO_{side}.pkl"
    target = failed.looked_at
    if not target.lower().endswith(".pkl"):
        target = os.path.join(target, f"MANO_{side}.pkl")
    state = {
        "missing": "which does not exist",
        "chumpy": "a chumpy pickle (the official file: smplx's pickle.load needs chumpy)",
        "plain": "a plain pickle",
        "unsafe": "a pickle naming globals outside MANO's",
        "unreadable": "which cannot be read",
    }.get(_mano_file_state(target) if target != failed.looked_at else failed.file_state or "", "")
    what = f"your model's MANO did not load: {failed.call} reads {target}"
    what += f", {state}" if state else ""
    what += f" (smplx raised {failed.error})"
    same = os.path.exists(source) and os.path.abspath(source) == os.path.abspath(target)
    if same:
        fix = (
            f"keep the official file under another name and convert it into place: `mv {target}"
            f" {target}.chumpy && utnet-diag convert-mano {target}.chumpy {target}`"
        )
    else:
        fix = (
            f"`utnet-diag convert-mano {source} {target}` puts a chumpy-free copy exactly there"
            " (creating folders as needed)"
        )
    return what, fix


@contextlib.contextmanager
def building(root: Path) -> Iterator[tuple[CheckoutImports, ManoProbe]]:
    """Imports from ``root`` and the MANO probe, for building the checkout's model."""
    imports = CheckoutImports(root)
    with imports, ManoProbe() as probe:
        yield imports, probe
