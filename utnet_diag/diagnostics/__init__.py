"""Diagnostics that run checks over a batch, a model, a dataset or a log, and return a Report."""
