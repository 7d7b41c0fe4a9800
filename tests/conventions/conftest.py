"""Shared hands for the convention tests: MANO hands with random poses, shapes and rotations."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def mano_layer():
    from utnet_diag.mano import ManoLayer

    return ManoLayer()


def random_mano_hands(layer, n: int, seed: int, pose_std: float = 0.25) -> np.ndarray:
    """(n, 21, 3) mm, spec order: random rotation, Gaussian hand pose, random shape."""
    gen = torch.Generator().manual_seed(seed)
    orient = torch.randn(n, 3, generator=gen) * 2.0
    hand = (torch.randn(n, 45, generator=gen) * pose_std).clamp(-0.7, 0.7)
    betas = torch.randn(n, 10, generator=gen).clamp(-2, 2)
    with torch.no_grad():
        return layer(orient, hand, betas).joints.double().numpy()


@pytest.fixture(scope="session")
def many_mano_hands(mano_layer) -> np.ndarray:
    """50 seeds x 8 hands, (50, 8, 21, 3) mm."""
    return random_mano_hands(mano_layer, 400, seed=2024).reshape(50, 8, 21, 3)


@pytest.fixture(scope="session")
def sample_batch() -> dict[str, torch.Tensor]:
    from utnet_diag.synthetic.sample import make_sample_batch

    return dict(make_sample_batch(12, seed=7).tensors)


@pytest.fixture(scope="session")
def make_hands(mano_layer):
    """``make_hands(n, seed, pose_std=0.25)`` -> (n, 21, 3) mm MANO hands."""
    return lambda n, seed, pose_std=0.25: random_mano_hands(mano_layer, n, seed, pose_std)
