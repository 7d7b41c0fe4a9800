"""The check engine: registries of check functions with prerequisites, run over a shared context.

A check is a function ``fn(ctx) -> Outcome`` registered with a stable id. The engine fills in the
id, family and default hint, and skips a check whose prerequisite did not pass ("requires X"),
so one NaN does not paint the whole report red.

Every family registers here, under one id scheme (``snake_case``, unique across families; the
family is the registry's). Two more kinds serve the dataset scan: a per-sample check
(``@registry.per_sample``) maps a chunk of samples to the rows that offend, vectorised, and a
declared check (``registry.declare``) is applied by a reader while it reads a file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from utnet_diag.report.result import CheckResult, Status


@dataclass(frozen=True)
class Outcome:
    """What a check function returns; the engine turns it into a CheckResult."""

    status: Status
    message: str
    value: Any = None
    threshold: Any = None
    hint: str | None = None  # overrides the registered hint when given
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None  # set by the engine: how long the check ran

    @classmethod
    def ok(cls, message: str, value: Any = None, threshold: Any = None, **kw: Any) -> Outcome:
        return cls(Status.PASS, message, value, threshold, **kw)

    @classmethod
    def warn(cls, message: str, value: Any = None, threshold: Any = None, **kw: Any) -> Outcome:
        return cls(Status.WARN, message, value, threshold, **kw)

    @classmethod
    def fail(cls, message: str, value: Any = None, threshold: Any = None, **kw: Any) -> Outcome:
        return cls(Status.FAIL, message, value, threshold, **kw)

    @classmethod
    def skip(cls, message: str, **kw: Any) -> Outcome:
        return cls(Status.SKIP, message, **kw)


@dataclass
class CheckContext:
    """Shared inputs, computed once and handed to every check.

    ``batch``: a loaded Batch; ``outputs``: model outputs; ``losses``: loss values; ``mano``: a
    MANO layer; ``config``: the DiagConfig; ``extras``: anything else a family computes once
    (cache it with ``ctx.cached(name, fn)``).
    """

    batch: Any = None
    outputs: Any = None
    losses: Any = None
    mano: Any = None
    config: Any = None
    model: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    results: dict[str, CheckResult] = field(default_factory=dict)  # the checks run so far

    def failed(self, check_id: str) -> bool:
        """Whether an earlier check of this run failed (for a check that uses part of its input)."""
        result = self.results.get(check_id)
        return result is not None and result.status is Status.FAIL

    def cached(self, name: str, compute: Callable[[], Any]) -> Any:
        if name not in self.extras:
            self.extras[name] = compute()
        return self.extras[name]


CheckFn = Callable[[CheckContext], Outcome]
# a per-sample check's finding: (row in the chunk, "fail" or "warn", message, measured value)
Row = tuple[int, str, str, object]
RowFn = Callable[[Any], list[Row]]


@dataclass(frozen=True)
class CheckSpec:
    """One registered check. ``fn`` runs over a context; ``rows`` (per-sample checks) over a chunk
    of samples; neither, for a check a reader applies (``text`` is then its description)."""

    id: str
    family: str
    fn: CheckFn | None
    requires: tuple[str, ...] = ()
    hint: str | None = None
    # checks whose failure changes what this one sees: skipped until they pass (a fix to apply
    # first); unlike ``requires``, their being skipped does not skip this one
    after: tuple[str, ...] = ()
    rows: RowFn | None = None
    needs_images: bool = False  # per-sample checks that read decoded images
    text: str | None = None
    # per-sample checks: which samples of a chunk the check can judge ((N,) bool; None: all),
    # and what the others lack (for "not evaluated: no sample has <needs>")
    applies: Callable[[Any], Any] | None = None
    needs: str = ""
    # declared checks: the reader checks that stop a file before this one is tried
    prior: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """The first paragraph of the check's docstring, on one line (or the declared text)."""
        if self.text is not None:
            return self.text
        doc = (self.fn or self.rows).__doc__ if (self.fn or self.rows) is not None else None
        if not doc:
            return self.id
        return " ".join(doc.strip().split("\n\n")[0].split()).rstrip(".")


class CheckRegistry:
    """An ordered family of checks. Use ``@registry.check(id, requires=..., hint=...)``."""

    def __init__(self, family: str):
        self.family = family
        self.specs: list[CheckSpec] = []

    def check(
        self,
        check_id: str,
        *,
        requires: Iterable[str] = (),
        hint: str | None = None,
        after: Iterable[str] = (),
    ) -> Callable[[CheckFn], CheckFn]:
        def register(fn: CheckFn) -> CheckFn:
            self._add(CheckSpec(check_id, self.family, fn, tuple(requires), hint, tuple(after)))
            return fn

        return register

    def per_sample(
        self,
        check_id: str,
        *,
        hint: str,
        needs_images: bool = False,
        applies: Callable[[Any], Any] | None = None,
        needs: str = "",
    ) -> Callable[[RowFn], RowFn]:
        """Register a vectorised per-sample check: ``fn(chunk) -> [Row, ...]``, the offending
        samples only; its docstring's first line is its description. ``applies(chunk)`` -> (N,)
        bool: the samples it can judge (default all); ``needs``: what the others lack."""

        def register(fn: RowFn) -> RowFn:
            self._add(CheckSpec(check_id, self.family, None, hint=hint, rows=fn,
                                needs_images=needs_images, applies=applies,
                                needs=needs))  # fmt: skip
            return fn

        return register

    def declare(
        self,
        check_id: str,
        description: str,
        hint: str,
        *,
        needs_images: bool = False,
        prior: Iterable[str] = (),
    ) -> None:
        """Register a check that is applied elsewhere (a reader, while it reads a file).
        ``prior``: reader checks that, when they flag a sample, stop it before this one."""
        self._add(CheckSpec(check_id, self.family, None, hint=hint, needs_images=needs_images,
                            text=description, prior=tuple(prior)))  # fmt: skip

    def _add(self, spec: CheckSpec) -> None:
        if any(s.id == spec.id for s in self.specs):
            raise ValueError(f"duplicate check id {spec.id!r}")
        self.specs.append(spec)

    def ids(self) -> list[str]:
        return [s.id for s in self.specs]

    def get(self, check_id: str) -> CheckSpec:
        return next(s for s in self.specs if s.id == check_id)

    def result(self, check_id: str, outcome: Outcome, subject: str | None = None) -> CheckResult:
        """The result of a declared check whose outcome was computed elsewhere."""
        return result_of(self.get(check_id), outcome, subject)

    def __iter__(self) -> Iterator[CheckSpec]:
        return iter(self.specs)


def run_checks(
    specs: Iterable[CheckSpec],
    ctx: CheckContext,
    prior: Iterable[CheckResult] = (),
    select: Iterable[str] | None = None,
) -> list[CheckResult]:
    """Run ``specs`` in order over ``ctx``. ``prior`` results count as prerequisites too.

    A check whose prerequisite failed or was skipped is skipped with "requires X"; one that
    comes ``after`` a failed check (whose fix changes what it sees) with "after the fix of X".
    ``select`` limits the run to those ids. Exceptions other than user errors propagate.
    """
    selected = set(select) if select is not None else None
    done: dict[str, CheckResult] = {**ctx.results, **{r.id: r for r in prior}}
    ctx.results = done
    results: list[CheckResult] = []
    for spec in specs:
        if selected is not None and spec.id not in selected:
            continue
        blocked = [
            r for r in spec.requires if r in done and done[r].status in (Status.FAIL, Status.SKIP)
        ]
        first = [r for r in spec.after if r in done and done[r].status is Status.FAIL]
        if spec.fn is None:
            continue  # per-sample and declared checks run where their inputs are
        if blocked:
            outcome = Outcome.skip(f"requires {', '.join(blocked)}")
        elif first:
            outcome = Outcome.skip(f"after the fix of {', '.join(first)}")
        else:
            start = time.perf_counter()
            outcome = spec.fn(ctx)
            outcome = replace(outcome, seconds=time.perf_counter() - start)
        result = result_of(spec, outcome)
        done[spec.id] = result
        results.append(result)
    return results


def result_of(spec: CheckSpec, outcome: Outcome, subject: str | None = None) -> CheckResult:
    """The CheckResult of ``spec`` for ``outcome``: the registered family, and its hint on a
    failure or warning (an outcome's own hint wins; a pass or skip keeps only an explicit one).
    ``subject``: for a check run once per subject, the id becomes ``<id>:<subject>``."""
    hint = outcome.hint if outcome.hint is not None else spec.hint
    if outcome.status in (Status.PASS, Status.SKIP):
        hint = outcome.hint
    return CheckResult(
        id=spec.id if subject is None else f"{spec.id}:{subject}",
        status=outcome.status,
        message=outcome.message,
        value=outcome.value,
        threshold=outcome.threshold,
        hint=hint,
        family=spec.family,
        details=outcome.details,
        seconds=outcome.seconds,
    )
