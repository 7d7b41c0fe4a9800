"""Clean synthetic trees produce no findings (many seeds, both datasets, with and without images);
depth_agrees tolerates occlusion but not a wrong depth scale."""

from __future__ import annotations

import numpy as np
import pytest

from utnet_diag.datasets.checks import DEPTH_WARN_MM, check_depth_agrees
from utnet_diag.datasets.common import CanonicalChunk, sample_at
from utnet_diag.datasets.dexycb import DexYCBReader
from utnet_diag.datasets.ho3d import HO3DReader
from utnet_diag.datasets.scan import scan_dataset
from utnet_diag.report.result import Status
from utnet_diag.synthetic import trees

SEEDS = range(6)


def _not_passed(report) -> list[tuple[str, str, str]]:
    return [(c.id, c.status.value, c.message) for c in report.checks if c.status is not Status.PASS]


@pytest.fixture(scope="module")
def clean_trees(tmp_path_factory):
    out = []
    for seed in SEEDS:
        root = tmp_path_factory.mktemp(f"clean{seed}")
        ho3d = trees.write_ho3d_tree(
            root / "HO3D_v3", sequences=("ABF10", "MC1"), frames_per_sequence=5, seed=seed
        )
        dex = trees.write_dexycb_tree(root / "DexYCB", num_frames=3, seed=100 + seed)
        out.append((seed, ho3d, dex))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("images", [True, False])
def test_clean_trees_have_no_findings(clean_trees, tmp_path, images):
    for seed, ho3d, dex in clean_trees:
        for reader in (HO3DReader(ho3d.root), DexYCBReader(dex.root)):
            out = tmp_path / f"{seed}_{type(reader).__name__}.jsonl"
            report = scan_dataset(reader, images=images, out=out)
            skipped = {c.id for c in report.checks if c.status is Status.SKIP}
            assert out.read_text() == "", (seed, reader.root, out.read_text())
            if images:
                assert _not_passed(report) == [], (seed, reader.root)
                assert report.check("depth_agrees").status is Status.PASS
            else:
                assert skipped == {"rgb_readable", "depth_readable", "depth_agrees"} & {
                    c.id for c in report.checks
                }
            assert report.exit_code() == 0


def _joints_and_depth(seed: int, count: int = 40):
    """(count,21,3) mm joints and (count,21) mm depth under them, rendered from clean hands."""
    hands = trees._hands(count, np.random.default_rng(seed))
    depth = np.empty((count, 21))
    for n in range(count):
        _, image = trees.render(hands["vertices"][n], trees.HO3D_CAM)
        uv = hands["joints"][n] @ trees.HO3D_CAM.T
        depth[n] = sample_at(image, uv[:, :2] / uv[:, 2:3]) * 1000.0
    return hands["joints"], depth


def _chunk(joints_mm: np.ndarray, depth_mm: np.ndarray) -> CanonicalChunk:
    count = len(joints_mm)
    nan = np.full((count, 21, 2), np.nan)
    return CanonicalChunk(
        records=[None] * count,
        joints_mm=joints_mm,
        cam_k=np.repeat(trees.HO3D_CAM[None], count, axis=0),
        uv_px=nan,
        uv_given_px=nan,
        mano_pose=np.full((count, 48), np.nan),
        mano_shape=np.full((count, 10), np.nan),
        image_wh=np.full((count, 2), np.nan),
        depth_at_joints_mm=depth_mm,
        has_mano=np.zeros(count, dtype=bool),
    )


def test_rendered_depth_has_no_holes_inside_the_hand():
    hands = trees._hands(8, np.random.default_rng(7))
    for n in range(8):
        _, depth = trees.render(hands["vertices"][n], trees.HO3D_CAM)
        hand = depth < trees.BACKGROUND_M
        # a background pixel whose 4 neighbours are all hand, on one surface (their depths
        # within 5 mm): a hole in the z-buffer. (A 1-pixel gap between two fingers at different
        # depths is real background.)
        near = np.stack([depth[:-2, 1:-1], depth[2:, 1:-1], depth[1:-1, :-2], depth[1:-1, 2:]])
        surrounded = ~hand[1:-1, 1:-1] & (near < trees.BACKGROUND_M).all(axis=0)
        hole = surrounded & (near.max(axis=0) - near.min(axis=0) < 0.005)
        assert hole.sum() <= 2, (n, int(hole.sum()))
        assert hand.sum() > 5000  # a hand 0.4-0.7 m away covers thousands of pixels


@pytest.mark.slow
def test_depth_agrees_tolerates_self_occlusion_but_not_a_wrong_scale():
    joints, depth = _joints_and_depth(seed=11)
    signed = depth - joints[..., 2]
    # self-occlusion is real here: some joints read a surface far in front of them
    assert np.nanmin(signed) < -60
    assert check_depth_agrees(_chunk(joints, depth)) == []
    for scale in (0.8, 1.25, 2.0):
        flagged = check_depth_agrees(_chunk(joints, depth * scale))
        assert [row for row, *_ in flagged] == list(range(len(joints))), scale
        assert all(value > DEPTH_WARN_MM for *_, value in flagged)
    row, severity, message, value = check_depth_agrees(_chunk(joints, depth * 2.0))[0]
    assert "behind the 3D joints" in message and value > 200
    row, severity, message, value = check_depth_agrees(_chunk(joints, depth * 0.8))[0]
    assert "best-agreeing fifth" in message and severity == "warn"


def test_depth_agrees_flags_joints_on_the_background():
    joints, depth = _joints_and_depth(seed=12, count=4)
    misaligned = depth.copy()
    misaligned[:, :12] = trees.BACKGROUND_M * 1000.0  # 12 of 21 joints see past the hand
    flagged = check_depth_agrees(_chunk(joints, misaligned))
    assert [row for row, *_ in flagged] == [0, 1, 2, 3]
    assert all("behind" in message for _, _, message, _ in flagged)
