"""Checks on the ground truth of a batch (``check-batch``)."""

from __future__ import annotations

from utnet_diag.checks.engine import CheckRegistry

BATCH_CHECKS = CheckRegistry("batch")
