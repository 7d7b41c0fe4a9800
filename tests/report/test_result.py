"""Reports: JSON with schema_version/status/counts, JUnit, rendering."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import junitparser
import pytest
from rich.console import Console

from utnet_diag.report.junit import to_junit, write_junit
from utnet_diag.report.render import render_report
from utnet_diag.report.result import SCHEMA_VERSION, CheckResult, Report, Status, overall_status


def sample_report() -> Report:
    return Report(
        "check-batch",
        [
            CheckResult("a", Status.PASS, "fine", value=1.5, family="batch"),
            CheckResult("b", Status.WARN, "hmm", value=float("nan"), hint="look", family="batch"),
            CheckResult(
                "c",
                Status.FAIL,
                "broken",
                value=float("inf"),
                threshold=0.5,
                hint="fix it",
                family="batch",
            ),  # fmt: skip
            CheckResult("d", Status.SKIP, "requires c", family="convention"),
        ],
        {"batch": {"size": 8, "keys": {"rgb": (8, 3, 4, 4)}}},
    )


def test_json_has_schema_version_status_counts_and_sections():
    data = json.loads(sample_report().to_json())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["command"] == "check-batch"
    assert data["status"] == "fail"
    assert data["counts"] == {"pass": 1, "warn": 1, "fail": 1, "skip": 1}
    assert [c["id"] for c in data["checks"]] == ["a", "b", "c", "d"]
    assert data["checks"][1]["value"] == "nan" and data["checks"][2]["value"] == "inf"
    assert data["checks"][2]["hint"] == "fix it" and data["checks"][2]["threshold"] == 0.5
    assert data["batch"]["keys"]["rgb"] == [8, 3, 4, 4]


def test_overall_status_and_exit_codes():
    report = sample_report()
    assert report.status is Status.FAIL
    assert report.exit_code("fail") == 1
    warn_only = Report(
        "x", [CheckResult("b", Status.WARN, "hmm"), CheckResult("d", Status.SKIP, "")]
    )
    assert warn_only.status is Status.WARN
    assert warn_only.exit_code("fail") == 0 and warn_only.exit_code("warn") == 1
    assert overall_status([CheckResult("s", Status.SKIP, "")]) is Status.PASS
    assert Report("x").exit_code() == 0
    assert report.check("c").message == "broken"
    with pytest.raises(KeyError):
        report.check("zzz")


def test_junit_one_testcase_per_check_with_failures(tmp_path):
    report = sample_report()
    root = ET.fromstring(to_junit(report, "fail"))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["a", "b", "c", "d"]
    # the warning is a <skipped> with "warning:" (visible in CI pages), so 2 skipped
    assert (
        suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("skipped") == "2"
    )
    by_name = {c.get("name"): c for c in cases}
    assert by_name["c"].find("failure") is not None
    assert "hint: fix it" in by_name["c"].find("failure").text
    assert by_name["b"].find("failure") is None
    assert by_name["b"].find("skipped").get("message") == "warning: hmm"
    assert by_name["d"].find("skipped").get("message") == "requires c"
    assert by_name["a"].find("skipped") is None and by_name["a"].find("failure") is None
    assert by_name["c"].get("classname") == "utnet_diag.check_batch.batch"
    strict = ET.fromstring(to_junit(report, "warn")).find("testsuite")
    assert strict.get("failures") == "2" and strict.get("skipped") == "1"
    assert {c.get("name") for c in strict.findall("testcase") if c.find("failure") is not None} == {
        "b",
        "c",
    }
    out = tmp_path / "report.xml"
    write_junit(report, out)
    assert ET.parse(out).getroot().tag == "testsuites"
    assert not list(tmp_path.glob(".*.tmp"))


def test_junit_as_a_ci_consumer_reads_it(tmp_path):
    """junitparser (what CI reporters build on) sees each verdict, time and property."""
    report = sample_report()
    report.checks[0] = CheckResult("a", Status.PASS, "fine", family="batch", seconds=0.25)
    report.checks.append(CheckResult("e", Status.PASS, "odd family", family="model a"))
    out = tmp_path / "r.xml"
    write_junit(report, out)
    xml = junitparser.JUnitXml.fromfile(str(out))
    suite = next(iter(xml))
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (5, 1, 0, 2)
    assert suite.time == pytest.approx(0.25)
    props = {p.name: p.value for p in suite.properties()}
    assert props["utnet_diag.version"] == report.tool_version
    assert props["utnet_diag.verdict"] == "FAILED"
    cases = {c.name: c for c in suite}
    assert cases["a"].time == pytest.approx(0.25) and cases["a"].is_passed
    assert cases["c"].result[0].message == "broken" and not cases["c"].is_passed
    assert cases["b"].is_skipped and cases["b"].result[0].message == "warning: hmm"
    assert cases["e"].classname == "utnet_diag.check_batch.model_a"
    ident = r"[A-Za-z_][A-Za-z0-9_]*"
    assert all(re.fullmatch(rf"{ident}(\.{ident})*", c.classname) for c in suite)


def test_render_shows_tables_hints_and_verdict():
    console = Console(record=True, width=160)
    render_report(sample_report(), console)
    text = console.export_text()
    assert "batch checks" in text and "convention checks" in text
    assert "→ fix it" in text and "→ look" in text
    assert "FAILED" in text and "1 failed, 1 warning, 1 passed, 1 skipped" in text
