"""JUnit XML for CI: one testcase per check, in the layout CI servers read (Jenkins, GitLab,
GitHub test reporters).

fail -> ``<failure>``; warn -> ``<skipped message="warning: ...">`` so it shows in CI pages
(``--fail-on warn``: a ``<failure>``); skip -> ``<skipped>``; pass -> an empty testcase. Every
testcase has a ``time``; classnames are dotted identifiers; the suite carries the tool version,
the report schema and the verdict as properties.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

from utnet_diag.io.files import write_text_atomic
from utnet_diag.report.markdown import verdict
from utnet_diag.report.result import Report, Status


def _identifier(text: str) -> str:
    """``text`` as a dotted identifier part: letters, digits and ``_`` only."""
    return re.sub(r"\W+", "_", text).strip("_") or "checks"


def _seconds(value: float | None) -> str:
    return f"{value or 0.0:.6f}"


def to_junit(report: Report, fail_on: str = "fail") -> str:
    """The report as a JUnit XML document (a string)."""
    counts = report.counts()
    warn_fails = fail_on == "warn"
    failures = counts["fail"] + (counts["warn"] if warn_fails else 0)
    skipped = counts["skip"] + (0 if warn_fails else counts["warn"])
    total = sum(c.seconds or 0.0 for c in report.checks)
    # what the suite and the document around it both state
    totals = {
        "name": f"utnet-diag {report.command}",
        "tests": str(len(report.checks)),
        "failures": str(failures),
        "errors": "0",
        "time": _seconds(total),
    }
    suite = ET.Element(
        "testsuite",
        totals,
        skipped=str(skipped),
        timestamp=report.created.removesuffix("+00:00"),
        hostname=socket.gethostname() or "localhost",
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("utnet_diag.version", report.tool_version),
        ("utnet_diag.schema_version", report.schema_version),
        ("utnet_diag.command", report.command),
        ("utnet_diag.verdict", verdict(report, fail_on)),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    command = _identifier(report.command)
    for check in report.checks:
        case = ET.SubElement(
            suite,
            "testcase",
            name=check.id,
            classname=f"utnet_diag.{command}.{_identifier(check.family or report.command)}",
            time=_seconds(check.seconds),
        )
        text = check.message + (f"\nhint: {check.hint}" if check.hint else "")
        if check.status is Status.FAIL or (warn_fails and check.status is Status.WARN):
            failure = ET.SubElement(case, "failure", message=check.message, type=check.status.value)
            failure.text = text
        elif check.status is Status.WARN:
            warning = ET.SubElement(case, "skipped", message=f"warning: {check.message}")
            warning.text = text
        elif check.status is Status.SKIP:
            ET.SubElement(case, "skipped", message=check.message)
    suites = ET.Element("testsuites", totals)
    suites.append(suite)
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def write_junit(report: Report, path: str | Path, fail_on: str = "fail") -> None:
    """Write the JUnit XML atomically (no partial file on failure)."""

    write_text_atomic(path, to_junit(report, fail_on))
