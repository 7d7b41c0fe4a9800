"""Readers (and synthetic writers) for HO3D and DexYCB on-disk trees, and the dataset scan."""
