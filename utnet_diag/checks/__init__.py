"""Checks: small units with a stable id, grouped in families, run by one engine."""

from utnet_diag.checks.engine import CheckContext, CheckRegistry, Outcome, run_checks

__all__ = ["CheckContext", "CheckRegistry", "Outcome", "run_checks"]
