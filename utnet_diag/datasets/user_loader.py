"""``check-batch --loader module:callable``: the batch checks on what the user's own Dataset
hands over, with and without its augmentation.

The callable (a Dataset class, or a function returning a Dataset or a DataLoader) is imported
from the current directory or ``PYTHONPATH`` and called with ``--loader-args``. The first
``samples`` items are read and collated as a DataLoader would; when the dataset has an
augmentation switch (a boolean attribute named like ``train`` or ``augment``), the same items are
read again with it flipped, under the same seeds, and the checks of the two batches are compared.
What the loader prints goes to stderr; what it raises (or a dataset that comes out empty after
printing its own warnings) is reported with the likely cause when it is a known one.
"""

from __future__ import annotations

import contextlib
import io
import random
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from utnet_diag.checks.engine import CheckRegistry, Outcome
from utnet_diag.errors import InputError
from utnet_diag.model.user_code import (
    DEBUG_HINT,
    importable_from_cwd,
    resolve_callable,
    user_code_error,
)
from utnet_diag.report.result import Report, Status
from utnet_diag.report.sections import LoaderSection, pictures_section

LOADER_CHECKS = CheckRegistry("loader")
LOADER_CHECKS.declare(
    "loader_augmentation",
    "The loader's augmentation moves every label with the image: no check fails with it on that"
    " passes with it off",
    "the augmentation changes the image or 2D without the 3D target (or the reverse): apply every"
    " geometric augmentation to every label it moves",
)

# boolean attributes that switch a dataset's augmentation, in the order they are looked for
AUGMENTATION_SWITCHES = ("augment", "augmentation", "use_augmentation", "use_aug", "train",
                         "is_train", "training")  # fmt: skip
DEFAULT_SAMPLES = 8
MAX_SAMPLES = 256

# (what an exception or the loader's own printed warnings contain, the likely cause)
KNOWN_CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("codec can't decode", "UnicodeDecodeError"),
        "Python 2 pickles (HO3D's meta files) need pickle.load(f, encoding='latin1')",
    ),
    (
        ("out of bounds for uint8", "out of bounds for int8"),
        "uint8 arithmetic overflows under NumPy 2 (NEP 50): cast before combining channels,"
        " e.g. img[:, :, 2].astype(np.int32) + img[:, :, 1].astype(np.int32) * 256",
    ),
    (
        ("No module named 'chumpy'",),
        "the official MANO pickle needs chumpy: convert it with `utnet-diag convert-mano`",
    ),
)


def likely_cause(text: str) -> str | None:
    """The known cause whose marker appears in ``text`` (an exception chain or printed output)."""
    for markers, cause in KNOWN_CAUSES:
        if any(marker in text for marker in markers):
            return cause
    return None


@dataclass
class LoaderRun:
    """What the user's loader gave: ``batch`` (as configured), ``other`` (the same items with the
    augmentation switch flipped, or None), the switch's name and value as configured."""

    spec: str
    args: dict[str, Any]
    indices: list[int]
    batch: Any
    other: Any = None
    switch: str | None = None
    switch_value: bool | None = None
    length: int | None = None
    notes: list[str] = field(default_factory=list)


def parse_loader_args(items: list[str] | None) -> dict[str, Any]:
    """``--loader-args``: each a ``key=value`` (the value read as YAML: numbers, lists, true) or
    one YAML/JSON mapping (``{"split": "train"}``)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        text = item.strip()
        if text.startswith("{"):
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                value = None
            if not isinstance(value, dict):
                raise InputError(f"--loader-args '{item}' is not a mapping", hint="write key=value")
            bad = [k for k in value if not (isinstance(k, str) and k.isidentifier())]
            if bad:
                raise InputError(
                    f"--loader-args '{item}' has keys that are not argument names: {bad}"
                )
            out.update(value)
            continue
        key, sep, raw = text.partition("=")
        if not sep or not key.strip().isidentifier():
            raise InputError(
                f"bad --loader-args entry '{item}'", hint="write key=value, one per option"
            )
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


class _Tee(io.TextIOBase):
    """Writes to stderr and keeps a copy (the loader's own warnings, for the likely cause)."""

    def __init__(self) -> None:
        self.kept = io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _likely_hint(err: BaseException, tee: _Tee) -> str:
    """The likely cause of a loader's failure, from its exception chain and what it printed."""
    chain, seen = [], err
    while seen is not None and len(chain) < 5:
        chain.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    cause = likely_cause(" ".join(chain) + tee.kept.getvalue())
    return f"likely cause: {cause}" if cause else DEBUG_HINT


@contextlib.contextmanager
def _running_loader(what: str, tee: _Tee) -> Iterator[None]:
    """Run the user's loader: prints to stderr (kept), exceptions as UserCodeError with the
    likely cause."""
    try:
        with contextlib.redirect_stdout(tee), importable_from_cwd():
            yield
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's code
        raise user_code_error(what, err, _likely_hint(err, tee)) from err


def _resolve(spec: str, tee: _Tee) -> Any:
    return resolve_callable(
        spec, "--loader", "run from the folder that holds it (your checkout) or set PYTHONPATH",
        stdout=tee, wrap=lambda what, err: user_code_error(what, err, _likely_hint(err, tee)),
    )  # fmt: skip


def _seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _switch_of(dataset: Any) -> str | None:
    for name in AUGMENTATION_SWITCHES:
        if isinstance(getattr(dataset, name, None), bool):
            return name
    return None


def _read(dataset: Any, indices: list[int], seed: int, tee: _Tee, what: str) -> Any:
    """The items at ``indices``, each under its own seed, collated as a DataLoader does."""
    from torch.utils.data import default_collate

    items = []
    with _running_loader(what, tee):
        for index in indices:
            _seed(seed + index)
            items.append(dataset[index])
        return default_collate(items)


def run_loader(
    spec: str,
    args: Mapping[str, Any] | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    compare_augmentation: bool = True,
) -> LoaderRun:
    """Build the user's dataset with ``args``, read its first ``samples`` items (and the same
    items with its augmentation switch flipped), collated. Raises InputError/UserCodeError."""
    if not 1 <= samples <= MAX_SAMPLES:
        raise InputError(f"--loader-samples must be 1..{MAX_SAMPLES}, got {samples}")
    tee = _Tee()
    factory = _resolve(spec, tee)
    arguments = dict(args or {})
    with _running_loader(f"building --loader {spec}", tee):
        _seed(seed)
        made = factory(**arguments)
    dataset = getattr(made, "dataset", made)  # a DataLoader: its dataset
    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise InputError(
            f"--loader {spec} returned a {type(made).__name__}, not a Dataset or DataLoader",
            hint="point --loader at the Dataset class or a function that returns one",
        )
    with _running_loader(f"len() of --loader {spec}", tee):
        length = len(dataset)
    if length == 0:
        cause = likely_cause(tee.kept.getvalue())
        raise InputError(
            f"--loader {spec} built an empty dataset"
            + (
                f": its own warnings point to {cause}"
                if cause
                else " (check the root folder and split in --loader-args)"
            ),  # fmt: skip
        )
    indices = list(range(min(samples, length)))
    batch = _read(dataset, indices, seed, tee, f"reading items of --loader {spec}")
    run = LoaderRun(spec, arguments, indices, batch, length=length)
    switch = _switch_of(dataset) if compare_augmentation else None
    if switch is not None:
        value = bool(getattr(dataset, switch))
        setattr(dataset, switch, not value)
        try:
            run.other = _read(dataset, indices, seed, tee, f"reading items of --loader {spec}")
        finally:
            setattr(dataset, switch, value)
        run.switch, run.switch_value = switch, value
    return run


def check_loader(
    spec: str,
    args: Mapping[str, Any] | None = None,
    *,
    samples: int = DEFAULT_SAMPLES,
    config: Any = None,
    mano: Any = None,
    seed: int = 0,
    overlay: Any = None,
    overlay_samples: int = 8,
) -> Any:
    """Report ``check-batch`` on the user's loader: the checks of the batch as configured, then
    ``loader_augmentation`` comparing them with the batch read with the augmentation switch
    flipped (which checks only one of them fails), and a ``loader`` section; ``overlay``: the
    contact sheet of the batch as configured (:mod:`utnet_diag.pictures.overlay`)."""
    from utnet_diag.diagnostics.check_batch import (  # it runs loaders: imported when it does
        COMMAND,
        batch_check_results,
        batch_section,
        resolve_batch,
        resolve_config,
    )

    # deferred: Pillow's drawing modules, which loading this module does not need
    from utnet_diag.pictures.overlay import check_overlay_path, write_overlay

    if overlay is not None:
        check_overlay_path(overlay, overlay_samples)
    cfg = resolve_config(config)
    run = run_loader(spec, args, samples, seed)
    batch, problems = resolve_batch(dict(run.batch), cfg)
    checks = batch_check_results(batch, cfg, mano, problems)
    section = LoaderSection(
        loader=spec, args=_plain(run.args), dataset_length=run.length,
        samples=len(run.indices), augmentation_switch=run.switch,
    )  # fmt: skip
    if run.other is not None:
        other, other_problems = resolve_batch(dict(run.other), cfg)
        other_checks = batch_check_results(other, cfg, mano, other_problems)
        outcome = _compare(run, checks, other_checks)
        section = replace(section, other_batch={c.id: c.status.value for c in other_checks})
    else:
        outcome = Outcome.skip("the dataset has no augmentation switch (a boolean train/augment)")
    checks.append(LOADER_CHECKS.result("loader_augmentation", outcome))
    sections: dict[str, Any] = {"loader": section, "batch": batch_section(batch)}
    if overlay is not None:
        sections.update(pictures_section(write_overlay(
            overlay, batch, None, checks, cfg.weights, cfg.root_id, overlay_samples)))  # fmt: skip
    return Report(COMMAND, checks, sections)


def _plain(value: Any) -> Any:
    return (
        value if isinstance(value, (str, int, float, bool, list, dict, type(None))) else str(value)
    )


def _compare(run: LoaderRun, checks: list, other_checks: list) -> Any:
    """loader_augmentation: the checks that fail with the augmentation on but not off."""
    on, off = (checks, other_checks) if run.switch_value else (other_checks, checks)
    status_off = {c.id: c.status for c in off}
    broken = [c for c in on if c.status is Status.FAIL and status_off.get(c.id) is Status.PASS]
    label = f"{run.switch}={True}"
    details = {"switch": run.switch, "configured": run.switch_value,
               "broken_by_augmentation": [c.id for c in broken]}  # fmt: skip
    if broken:
        listed = "; ".join(f"{c.id}: {c.message}" for c in broken[:3])
        return Outcome.fail(
            f"with {label} (augmentation) {len(broken)} checks fail that pass with"
            f" {run.switch}=False, on the same {len(run.indices)} items: {listed}",
            value=len(broken), threshold=0, details=details,
        )  # fmt: skip
    return Outcome.ok(
        f"the same {len(run.indices)} items pass the same checks with {run.switch}=True and False",
        value=0, threshold=0, details=details,
    )  # fmt: skip
