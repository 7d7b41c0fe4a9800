"""The synthetic benchmark files the ``eval`` tests use (made by the package, see
:mod:`utnet_diag.synthetic.benchmark_files`)."""

from utnet_diag.synthetic.benchmark_files import (
    hands,
    mesh,
    noisy,
    write_gt_folder,
    write_lines,
    write_pred,
)

__all__ = ["hands", "mesh", "noisy", "write_gt_folder", "write_lines", "write_pred"]
