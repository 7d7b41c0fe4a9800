"""The check engine: prerequisites, the wait for another check's fix, hints for problems only,
descriptions from docstrings, and the per-sample and declared kinds of check."""

from __future__ import annotations

import pytest

from utnet_diag.checks.engine import CheckContext, CheckRegistry, Outcome, run_checks
from utnet_diag.report.result import CheckResult, Status


def make_registry() -> tuple[CheckRegistry, list[str]]:
    ran: list[str] = []
    registry = CheckRegistry("demo")

    @registry.check("base", hint="base hint")
    def base(ctx: CheckContext) -> Outcome:
        ran.append("base")
        return Outcome.fail("base broke") if ctx.extras.get("break") else Outcome.ok("base fine")

    @registry.check("child", requires=("base",), hint="child hint")
    def child(ctx: CheckContext) -> Outcome:
        """Needs base."""
        ran.append("child")
        return Outcome.warn("child warns", value=2)

    @registry.check("grandchild", requires=("child",))
    def grandchild(ctx: CheckContext) -> Outcome:
        ran.append("grandchild")
        return Outcome.ok("ok")

    return registry, ran


def test_engine_skips_a_check_whose_prerequisite_failed():
    registry, ran = make_registry()
    ctx = CheckContext(extras={"break": True})
    results = run_checks(registry.specs, ctx)
    assert [r.status for r in results] == [Status.FAIL, Status.SKIP, Status.SKIP]
    assert results[1].message == "requires base"
    assert results[2].message == "requires child"
    assert ran == ["base"]
    assert results[0].hint == "base hint" and results[1].hint is None
    assert all(r.family == "demo" for r in results)


def test_engine_runs_prerequisites_that_passed_and_keeps_hints_for_problems():
    registry, ran = make_registry()
    results = run_checks(registry.specs, CheckContext())
    assert [r.status for r in results] == [Status.PASS, Status.WARN, Status.PASS]
    assert results[0].hint is None  # hints are for problems
    assert results[1].hint == "child hint" and results[1].value == 2
    assert registry.specs[1].description == "Needs base"
    assert ran == ["base", "child", "grandchild"]


def test_engine_prior_results_and_select():
    registry, ran = make_registry()
    prior = [CheckResult("base", Status.FAIL, "failed elsewhere")]
    results = run_checks(registry.specs[1:], CheckContext(), prior=prior)
    assert results[0].status is Status.SKIP
    only = run_checks(registry.specs, CheckContext(), select=["base"])
    assert [r.id for r in only] == ["base"]


def test_duplicate_check_ids_are_refused():
    registry, _ = make_registry()
    with pytest.raises(ValueError, match="duplicate check id"):
        registry.check("base")(lambda ctx: Outcome.ok("again"))


def test_after_waits_for_a_failed_checks_fix_but_not_for_a_skipped_one():
    registry = CheckRegistry("demo")
    registry.check("order", hint="fix the order")(
        lambda ctx: Outcome.fail("wrong") if ctx.extras.get("bad") else Outcome.skip("no data")
    )
    registry.check("frame", after=("order",))(lambda ctx: Outcome.ok("fine"))
    waited = run_checks(registry.specs, CheckContext(extras={"bad": True}))
    assert waited[1].status is Status.SKIP and waited[1].message == "after the fix of order"
    ran = run_checks(registry.specs, CheckContext())
    assert ran[0].status is Status.SKIP and ran[1].status is Status.PASS


def test_descriptions_hints_and_results_of_declared_checks():
    registry = CheckRegistry("demo")

    @registry.check("documented", hint="registered hint")
    def documented(ctx: CheckContext) -> Outcome:
        """Something holds over
        two lines.

        Details the catalog does not show."""
        return Outcome.warn("w", hint="own hint")

    @registry.per_sample("rows", hint="fix the rows", needs_images=True)
    def rows(chunk):
        """Every row is fine."""
        return [(1, "fail", "row 1 is not", 3.0)]

    registry.declare("declared", "A reader applies this", "replace the file")
    assert [s.description for s in registry] == ["Something holds over two lines",
                                                 "Every row is fine", "A reader applies this"]  # fmt: skip
    assert registry.get("rows").needs_images and registry.get("rows").rows is rows
    (result,) = run_checks(registry.specs, CheckContext())  # only ``fn`` checks run here
    assert result.id == "documented" and result.hint == "own hint"
    declared = registry.result("declared", Outcome.fail("bad file"), subject="a.pkl")
    assert (declared.id, declared.family, declared.hint) == ("declared:a.pkl", "demo",
                                                             "replace the file")  # fmt: skip
    passed = registry.result("declared", Outcome.ok("fine"))
    assert passed.id == "declared" and passed.hint is None
    with pytest.raises(ValueError, match="duplicate check id 'rows'"):
        registry.declare("rows", "again", "again")
