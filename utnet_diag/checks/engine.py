"""The check engine: registries of check functions with prerequisites, run over a shared context.

A check is a function ``fn(ctx) -> Outcome`` registered with a stable id. The engine fills in the
id, family and default hint, and skips a check whose prerequisite did not pass ("requires X"),
so one NaN does not paint the whole report red.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class CheckSpec:
    id: str
    family: str
    fn: CheckFn
    requires: tuple[str, ...] = ()
    hint: str | None = None
    # checks whose failure changes what this one sees: skipped until they pass (a fix to apply
    # first); unlike ``requires``, their being skipped does not skip this one
    after: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0] if self.fn.__doc__ else self.id


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
            if any(s.id == check_id for s in self.specs):
                raise ValueError(f"duplicate check id {check_id!r}")
            spec = CheckSpec(check_id, self.family, fn, tuple(requires), hint, tuple(after))
            self.specs.append(spec)
            return fn

        return register

    def ids(self) -> list[str]:
        return [s.id for s in self.specs]


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
        if blocked:
            outcome = Outcome.skip(f"requires {', '.join(blocked)}")
        elif first:
            outcome = Outcome.skip(f"after the fix of {', '.join(first)}")
        else:
            outcome = spec.fn(ctx)
        hint = outcome.hint if outcome.hint is not None else spec.hint
        if outcome.status in (Status.PASS, Status.SKIP):
            hint = outcome.hint  # hints are for problems; keep only an explicit one
        result = CheckResult(
            id=spec.id,
            status=outcome.status,
            message=outcome.message,
            value=outcome.value,
            threshold=outcome.threshold,
            hint=hint,
            family=spec.family,
            details=outcome.details,
        )
        done[spec.id] = result
        results.append(result)
    return results
