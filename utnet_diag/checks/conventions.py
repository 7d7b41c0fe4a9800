"""Convention detectives: joint order, root, 2D/3D agreement, coordinate frame, MANO conventions."""

from __future__ import annotations

from utnet_diag.checks.engine import CheckRegistry

# Checks on ground truth (run by check-batch and gate).
CONVENTION_CHECKS = CheckRegistry("convention")
# Checks of predictions against ground truth (run by loss-breakdown and gate).
PREDICTION_CONVENTION_CHECKS = CheckRegistry("prediction convention")
