"""Synthetic data made by the package (no downloads): hands, batches, dataset trees."""
