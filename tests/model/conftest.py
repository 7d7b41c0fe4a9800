"""Fixtures for the model tests: the tiny reference model, the default batch, a fake UTNet repo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FAKE_REPO = Path(__file__).resolve().parents[1] / "fixtures" / "fake_utnet_repo"


@pytest.fixture(scope="module")
def reference_model():
    from utnet_diag.model.reference import build_reference

    return build_reference("tiny")


@pytest.fixture(scope="module")
def sample_batch():
    from utnet_diag.synthetic.sample import default_batch

    return default_batch()


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """A copy of the fake UTNet checkout with a synthetic MANO at its configured mano_path."""
    from utnet_diag.mano import write_synthetic_mano

    repo = tmp_path / "UTNet"
    shutil.copytree(FAKE_REPO, repo, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "mano").mkdir()
    write_synthetic_mano(repo / "mano" / "MANO_RIGHT.pkl")
    return repo


CHECKOUT = Path(__file__).resolve().parents[1] / "fixtures" / "utnet_checkout"


def write_mean_params(path: Path) -> Path:
    """A mano_mean_params.npz of WiLoR's layout: pose (96,) 6D rotations, shape (10,), cam (3,)."""
    import numpy as np

    identity6d = np.tile(np.array([1, 0, 0, 0, 1, 0], dtype=np.float32), 16)
    np.savez(path, pose=identity6d, shape=np.zeros(10, np.float32),
             cam=np.array([6.0, 0.0, 0.0], np.float32))  # fmt: skip
    return path


def loader_batch(n: int = 6, size: int = 64, seed: int = 0) -> dict:
    """A batch as the checkout's dataloaders hand it over: square crops, joint_img (B,21,3) with
    a depth column, joints_3d_gt (B,21,3) mm, mano_pose/mano_shape, n_i, hand_type, is_right."""
    from utnet_diag.synthetic.sample import make_sample_batch

    batch = make_sample_batch(n, seed, (size, size))
    t = batch.tensors
    joint_img = t["keypoints_2d"].clone()
    joint_img[..., 2] = (t["keypoints_3d"][..., 2] - t["keypoints_3d"][:, :1, 2]) / 125.0
    return {
        "rgb": t["rgb"], "depth": t["depth"], "n_i": t["n_i"],
        "joint_img": joint_img, "joints_3d_gt": t["keypoints_3d"][..., :3].clone(),
        "mano_pose": t["mano_pose"], "mano_shape": t["mano_shape"],
        "hand_type": ["right"] * n, "is_right": torch_ones(n),
    }  # fmt: skip


def torch_ones(n: int):
    import torch

    return torch.ones(n)


@pytest.fixture
def utnet_checkout(tmp_path: Path) -> Path:
    """A copy of the realistic fake checkout, set up as a user has it: the official-style (chumpy)
    MANO_RIGHT.pkl and mano_mean_params.npz under mano_data/ where its config points, and a
    dataloader batch at tmp_path/batch.pt."""
    import torch
    from mano.official_pickles import (
        official_structure_bytes,
    )  # tests/mano (pytest puts tests/ on sys.path)

    repo = tmp_path / "UTNet"
    shutil.copytree(CHECKOUT, repo, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "mano_data").mkdir()
    (repo / "mano_data" / "MANO_RIGHT.pkl").write_bytes(official_structure_bytes("right")[0])
    write_mean_params(repo / "mano_data" / "mano_mean_params.npz")
    torch.save(loader_batch(), tmp_path / "batch.pt")
    return repo


def switch(repo: Path, relative: str, old: str, new: str) -> None:
    """Flip one of the fixture checkout's behaviour switches by editing its source line."""
    path = repo / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new))
