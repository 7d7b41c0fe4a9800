"""Imports every command module so its commands register on the app."""

# ruff: noqa: F401
from utnet_diag.cli import info
from utnet_diag.cli import check_batch_cmd
from utnet_diag.cli import log_cmd
from utnet_diag.cli import scan_cmd
from utnet_diag.cli import loss_cmd
from utnet_diag.cli import grad_cmd
from utnet_diag.cli import gate_cmd
from utnet_diag.cli import mano_cmd
from utnet_diag.cli import model_cmd
from utnet_diag.cli import train_cmd
from utnet_diag.cli import compare_cmd
