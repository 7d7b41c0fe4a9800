"""Every check of every family, with its id, description, hint and prerequisites.

Check ids follow one scheme: ``snake_case``, one id per rule. A rule that two families apply
(``finite`` and ``kp3d_units`` on a batch and on a dataset scan) keeps one id; a check run once
per subject reports ``<id>:<subject>`` (``compare_regression:mpjpe``). Ids renamed to fit the
scheme stay accepted here under their old names (:data:`ID_ALIASES`).
"""

from __future__ import annotations

from dataclasses import dataclass

from utnet_diag.checks.engine import CheckRegistry, CheckSpec
from utnet_diag.checks.grad import GRAD_CHECKS
from utnet_diag.errors import InputError, did_you_mean

# old id -> id (renamed when the ids were unified)
ID_ALIASES: dict[str, str] = {
    "mano.plain_arrays": "mano_plain_arrays",
    "mano.smplx_roundtrip": "mano_smplx_roundtrip",
    "mano.file_name": "mano_file_name",
    "mano.invariants": "mano_invariants",
    "mano.rest_size": "mano_rest_size",
}


@dataclass(frozen=True)
class CatalogEntry:
    """One check id: the families that run it, what it checks, what to do when it fires."""

    id: str
    families: tuple[str, ...]
    description: str
    hint: str | None
    requires: tuple[str, ...]
    after: tuple[str, ...]
    aliases: tuple[str, ...]
    threshold: str = ""  # the default threshold, in words

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "families": list(self.families), "description": self.description,
                "hint": self.hint, "requires": list(self.requires), "after": list(self.after),
                "aliases": list(self.aliases), "threshold": self.threshold}  # fmt: skip


def registries() -> list[CheckRegistry]:
    """Every registry, in the order a user meets them (imports torch)."""
    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.checks.amp import AMP_CHECKS
    from utnet_diag.checks.batch import BATCH_CHECKS
    from utnet_diag.checks.conventions import CONVENTION_CHECKS, PREDICTION_CONVENTION_CHECKS
    from utnet_diag.checks.loss import LOSS_CHECKS, PREDICTION_CHECKS
    from utnet_diag.checks.step import STEP_CHECKS
    from utnet_diag.datasets.batch import DATASET_FILES_CHECKS
    from utnet_diag.datasets.checks import DATASET_CHECKS
    from utnet_diag.datasets.user_loader import LOADER_CHECKS
    from utnet_diag.diagnostics.compare import COMPARE_CHECKS
    from utnet_diag.diagnostics.overfit import OVERFIT_CHECKS
    from utnet_diag.evaluation.checks import EVAL_CHECKS
    from utnet_diag.logs.checks import LOG_CHECKS
    from utnet_diag.mano.convert import MANO_CHECKS
    from utnet_diag.model.checkpoint import MODEL_CHECKS

    return [BATCH_CHECKS, CONVENTION_CHECKS, LOADER_CHECKS, DATASET_FILES_CHECKS, MODEL_CHECKS,
            LOSS_CHECKS, PREDICTION_CHECKS, PREDICTION_CONVENTION_CHECKS, GRAD_CHECKS,
            STEP_CHECKS, AMP_CHECKS, OVERFIT_CHECKS, COMPARE_CHECKS, LOG_CHECKS, EVAL_CHECKS, DATASET_CHECKS, MANO_CHECKS]  # fmt: skip


def catalog() -> list[CatalogEntry]:
    """One entry per check id, in the registries' order."""
    by_id: dict[str, list[CheckSpec]] = {}
    for registry in registries():
        for spec in registry:
            by_id.setdefault(spec.id, []).append(spec)
    aliases: dict[str, list[str]] = {}
    for old, new in ID_ALIASES.items():
        aliases.setdefault(new, []).append(old)
    # deferred: loads the check modules (torch), which this module's importers do not need
    from utnet_diag.default_thresholds import default_thresholds

    thresholds = default_thresholds()
    entries = []
    for check_id, specs in by_id.items():
        first = specs[0]
        entries.append(CatalogEntry(
            check_id, tuple(dict.fromkeys(s.family for s in specs)), first.description,
            next((s.hint for s in specs if s.hint), None),
            tuple(dict.fromkeys(r for s in specs for r in s.requires)),
            tuple(dict.fromkeys(r for s in specs for r in s.after)),
            tuple(aliases.get(check_id, ())),
            thresholds.get(check_id, ""),
        ))  # fmt: skip
    return entries


def lookup(check_id: str) -> CatalogEntry:
    """The entry of ``check_id`` (an old id or ``<id>:<subject>`` too)."""
    entries = {e.id: e for e in catalog()}
    key = ID_ALIASES.get(check_id, check_id)
    if key not in entries and ":" in key:
        key = key.split(":", 1)[0]
    if key not in entries:
        raise InputError(
            f"no check '{check_id}'" + did_you_mean(check_id, [*entries, *ID_ALIASES]),
            hint="'utnet-diag checks' lists every check id",
        )
    return entries[key]
