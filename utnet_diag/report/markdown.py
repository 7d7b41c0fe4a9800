"""A Markdown summary of a report for CI pages (GitHub Actions' job summary)."""

from __future__ import annotations

import os

from utnet_diag.report.result import Report, Status

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def verdict(report: Report, fail_on: str = "fail") -> str:
    """``FAILED``, ``PASSED with warnings`` or ``PASSED`` under ``fail_on``."""
    if report.failed(fail_on):
        return "FAILED"
    return "PASSED with warnings" if report.counts()["warn"] else "PASSED"


def counts_text(report: Report) -> str:
    """``2 failed, 1 warning, 30 passed, 3 skipped`` (counts that are zero left out)."""
    c = report.counts()
    words = (("fail", "failed", "failed"), ("warn", "warning", "warnings"),
             ("pass", "passed", "passed"), ("skip", "skipped", "skipped"))  # fmt: skip
    parts = [f"{c[k]} {one if c[k] == 1 else many}" for k, one, many in words if c[k]]
    return ", ".join(parts) or "no checks"


def to_markdown(report: Report, fail_on: str = "fail") -> str:
    """The verdict, the counts, and a table of every failing and warning check."""
    lines = [
        f"### utnet-diag {report.command}: {verdict(report, fail_on)}",
        "",
        counts_text(report),
        "",
    ]
    flagged = [c for c in report.checks if c.status in (Status.FAIL, Status.WARN)]
    if flagged:
        lines += ["| status | check | result | hint |", "|---|---|---|---|"]
        for check in flagged:
            cells = [check.status.value.upper(), f"`{check.id}`", check.message, check.hint or ""]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def append_step_summary(report: Report, fail_on: str = "fail") -> str | None:
    """Append :func:`to_markdown` to the file ``$GITHUB_STEP_SUMMARY`` names, when it is set.
    Returns why it could not be written (the run's verdict does not depend on it), else None."""
    target = os.environ.get(STEP_SUMMARY_ENV)
    if not target:
        return None
    try:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(to_markdown(report, fail_on))
    except OSError as err:
        return f"{STEP_SUMMARY_ENV}={target}: not written ({err.strerror or err})"
    return None
