"""JUnit XML for CI: one testcase per check; fail -> <failure>, skip -> <skipped>."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from utnet_diag.io.files import write_text_atomic
from utnet_diag.report.result import Report, Status


def to_junit(report: Report, fail_on: str = "fail") -> str:
    """The report as a JUnit XML document (a string)."""
    counts = report.counts()
    warn_fails = fail_on == "warn"
    failures = counts["fail"] + (counts["warn"] if warn_fails else 0)
    suite = ET.Element(
        "testsuite",
        name=f"utnet-diag {report.command}",
        tests=str(len(report.checks)),
        failures=str(failures),
        errors="0",
        skipped=str(counts["skip"]),
    )
    for check in report.checks:
        case = ET.SubElement(
            suite,
            "testcase",
            name=check.id,
            classname=f"utnet_diag.{check.family or report.command}",
        )
        text = check.message + (f"\nhint: {check.hint}" if check.hint else "")
        if check.status is Status.FAIL or (warn_fails and check.status is Status.WARN):
            failure = ET.SubElement(case, "failure", message=check.message, type=check.status.value)
            failure.text = text
        elif check.status is Status.SKIP:
            ET.SubElement(case, "skipped", message=check.message)
        else:
            out = ET.SubElement(case, "system-out")
            out.text = text
    suites = ET.Element("testsuites")
    suites.append(suite)
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def write_junit(report: Report, path: str | Path, fail_on: str = "fail") -> None:
    """Write the JUnit XML atomically (no partial file on failure)."""

    write_text_atomic(path, to_junit(report, fail_on))
