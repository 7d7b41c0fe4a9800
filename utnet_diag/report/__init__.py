"""Reports: result objects, JSON and JUnit export. Rendering for people lives in ``render``."""

from utnet_diag.report.result import SCHEMA_VERSION, CheckResult, Report, Status, jsonable

__all__ = ["SCHEMA_VERSION", "CheckResult", "Report", "Status", "jsonable"]
