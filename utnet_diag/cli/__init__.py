"""The command line: thin commands that parse options, call one core function and render.

Importing this package must not import torch: ``--help`` stays fast.
"""

from utnet_diag.cli.app import app, main

__all__ = ["app", "main"]
