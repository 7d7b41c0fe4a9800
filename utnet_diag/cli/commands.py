"""Imports every command module so its commands register on the app."""

# ruff: noqa: F401
from utnet_diag.cli import (
    check_batch_cmd,
    compare_cmd,
    gate_cmd,
    grad_cmd,
    info,
    log_cmd,
    loss_cmd,
    mano_cmd,
    model_cmd,
    scan_cmd,
    train_cmd,
)
