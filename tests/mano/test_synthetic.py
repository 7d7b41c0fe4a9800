"""The synthetic MANO-format hand: counts, topology, sums, tips, size, shape, smplx loading."""

from __future__ import annotations

import contextlib
import io
import time
from collections import Counter

import numpy as np
import pytest

from utnet_diag.joints import MANO_PARENTS, MANO_TIP_VERTICES
from utnet_diag.mano import load_mano_data, synthetic_mano_data, write_synthetic_mano


@pytest.fixture(scope="module")
def hand() -> dict:
    return load_mano_data()


def test_shapes_and_dtypes(hand):
    expected = {
        "v_template": (778, 3),
        "f": (1538, 3),
        "J_regressor": (16, 778),
        "kintree_table": (2, 16),
        "J": (16, 3),
        "weights": (778, 16),
        "posedirs": (778, 3, 135),
        "shapedirs": (778, 3, 10),
        "hands_components": (45, 45),
        "hands_mean": (45,),
    }
    for key, shape in expected.items():
        assert hand[key].shape == shape, key
    assert hand["f"].dtype == np.uint32
    assert list(hand["kintree_table"][0, 1:]) == list(MANO_PARENTS[1:])
    assert hand["bs_style"] == "lbs"


def test_mesh_is_one_oriented_surface_open_at_a_16_vertex_wrist(hand):
    faces = hand["f"].astype(int)
    assert set(faces.ravel()) == set(range(778))
    directed = Counter((a, b) for f in faces for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])))
    assert max(directed.values()) == 1  # consistently oriented, manifold
    undirected = Counter(tuple(sorted(e)) for e in directed)
    boundary = [e for e, n in undirected.items() if n == 1]
    assert len(boundary) == 16 and len({v for e in boundary for v in e}) == 16
    # The hole is at the wrist: its vertices are the ones nearest the wrist joint.
    wrist_ring = sorted({v for e in boundary for v in e})
    distance = np.linalg.norm(hand["v_template"] - hand["J"][0], axis=1)
    assert distance[wrist_ring].max() < 0.03
    # Normals point outwards: positive signed volume.
    tri = hand["v_template"][faces]
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert volume > 1e-4  # > 100 cm^3


def test_rows_sum_to_one_and_are_non_negative(hand):
    np.testing.assert_allclose(hand["J_regressor"].sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(hand["weights"].sum(axis=1), 1.0, atol=1e-12)
    assert hand["J_regressor"].min() >= 0 and hand["weights"].min() >= 0
    np.testing.assert_allclose(hand["J"], hand["J_regressor"] @ hand["v_template"])


def test_size_and_tips_sit_at_the_finger_ends(hand):
    joints = hand["J"]
    assert 85.0 < np.linalg.norm(joints[4] - joints[0]) * 1000 < 95.0
    vertices = hand["v_template"]
    # MANO order: thumb3=15, index3=3, middle3=6, ring3=12, pinky3=9
    for tip, last_joint in zip(MANO_TIP_VERTICES, (15, 3, 6, 12, 9)):
        parent = MANO_PARENTS[last_joint]
        bone = joints[last_joint] - joints[parent]
        along = vertices - joints[last_joint]
        reach = along @ (bone / np.linalg.norm(bone))
        off_axis = np.linalg.norm(along - reach[:, None] * bone / np.linalg.norm(bone), axis=1)
        on_finger = off_axis < 0.012
        # the tip vertex is the farthest vertex of its finger along the last bone, 15-35 mm out
        assert on_finger[tip] and reach[tip] == pytest.approx(reach[on_finger].max())
        assert 0.015 < np.linalg.norm(vertices[tip] - joints[last_joint]) < 0.035
    # fingers point along -x from the wrist; the thumb is on the +z side, pinky on -z
    assert (vertices[list(MANO_TIP_VERTICES[1:4])][:, 0] < joints[0, 0] - 0.15).all()
    assert joints[13:, 2].min() > joints[7:10, 2].max()


def test_shape_component_zero_scales_the_hand_about_the_wrist(hand):
    wrist = hand["J"][0]
    for beta in (-2.0, 2.0):
        shaped = hand["v_template"] + beta * hand["shapedirs"][:, :, 0]
        np.testing.assert_allclose(shaped - wrist, (1 + 0.06 * beta) * (hand["v_template"] - wrist),
                                   atol=1e-12)  # fmt: skip
    # the other components change shape without moving the wrist joint
    regressor = hand["J_regressor"]
    for k in range(1, 10):
        moved = regressor @ hand["shapedirs"][:, :, k]
        assert np.abs(moved[0]).max() < 1e-9
        assert np.abs(hand["shapedirs"][:, :, k]).max() > 5e-4, k  # each does something


def test_pca_basis_is_orthogonal_with_falling_scales_and_mean_is_curled(hand):
    """As MANO's: orthogonal rows whose norms fall with the component's spread (so that natural
    poses have whitened coefficients)."""
    components = hand["hands_components"]
    norms = np.linalg.norm(components, axis=1)
    np.testing.assert_allclose(components @ components.T, np.diag(norms**2), atol=1e-10)
    assert norms[0] == pytest.approx(1.3) and 5.0 < (norms**2).sum() < 6.0  # MANO's: 1.31, 5.6
    assert (np.diff(norms) < 0).all()
    mean = hand["hands_mean"].reshape(15, 3)
    assert (mean[:12, 2] > 0.2).all()  # flexion of the four fingers about +z
    assert np.linalg.norm(mean) > 1.0


def test_deterministic_fast_and_cached_read_only():
    start = time.perf_counter()
    first = synthetic_mano_data()
    elapsed = time.perf_counter() - start
    second = synthetic_mano_data()
    for key, value in first.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, second[key]), key
    assert elapsed < 2.0  # typically ~0.1 s; loose for a loaded CI machine
    cached = load_mano_data()
    assert cached["v_template"] is load_mano_data()["v_template"]
    with pytest.raises(ValueError):
        cached["v_template"][0, 0] = 1.0


def test_left_hand_is_the_mirror_image(hand):
    left = load_mano_data(side="left")
    np.testing.assert_allclose(left["v_template"][:, 0], -hand["v_template"][:, 0])
    np.testing.assert_allclose(left["hands_mean"].reshape(15, 3)[:, 1:],
                               -hand["hands_mean"].reshape(15, 3)[:, 1:])  # fmt: skip


def test_smplx_loads_the_written_pickle_unchanged(tmp_path, hand):
    import smplx
    import torch

    path = write_synthetic_mano(tmp_path)
    assert path.name == "MANO_RIGHT.pkl"
    with contextlib.redirect_stdout(io.StringIO()):
        model = smplx.MANO(model_path=str(path), use_pca=False, flat_hand_mean=True)
    out = model(betas=torch.zeros(1, 10), global_orient=torch.zeros(1, 3),
                hand_pose=torch.zeros(1, 45))  # fmt: skip
    np.testing.assert_allclose(out.vertices[0].detach().numpy(), hand["v_template"], atol=1e-6)
    assert model.faces.shape == (1538, 3)


def test_smplx_create_finds_it_in_a_mano_subfolder(tmp_path):
    import smplx

    (tmp_path / "mano").mkdir()
    write_synthetic_mano(tmp_path / "mano")
    with contextlib.redirect_stdout(io.StringIO()):
        model = smplx.create(str(tmp_path), "mano", use_pca=False)
    assert model.v_template.shape == (778, 3)


def _distance_to_segments(points: np.ndarray, segments: list) -> np.ndarray:
    """(N,) distance of each point to the nearest of the segments [(a, b), ...]."""
    out = np.full(len(points), np.inf)
    for a, b in segments:
        ab = b - a
        t = np.clip(((points - a) @ ab) / (ab @ ab), 0.0, 1.0)
        out = np.minimum(out, np.linalg.norm(points - (a + t[:, None] * ab), axis=1))
    return out


def test_the_skin_stays_within_4_cm_of_the_bones(hand):
    # Every vertex near the skeleton: the bones from each joint to its parent, and from each
    # finger's last joint to its tip vertex. The official MANO_RIGHT mesh reaches 35.5 mm (the
    # thenar pad); a palm or finger drawn twice as wide would reach about 57 mm.
    v = hand["v_template"]
    joints = hand["J_regressor"] @ v
    bones = [(joints[MANO_PARENTS[i]], joints[i]) for i in range(1, 16)]
    ends = [i for i in range(1, 16) if i not in MANO_PARENTS[1:]]
    for tip in MANO_TIP_VERTICES:
        last = min(ends, key=lambda i: np.linalg.norm(joints[i] - v[tip]))
        bones.append((joints[last], v[tip]))
    assert _distance_to_segments(v, bones).max() < 0.040  # metres


def test_the_root_has_no_parent_as_in_the_official_files(hand):
    # the official MANO pickles mark the wrist's parent as uint32 -1
    assert int(hand["kintree_table"][0, 0]) == 2**32 - 1
    assert list(hand["kintree_table"][0, 1:]) == list(MANO_PARENTS[1:])


def test_the_first_pca_component_curls_every_joint_alike(hand):
    # component 0 is a whole-hand curl: the same flexion (about +z) at all 15 joints, nothing else
    first = hand["hands_components"][0].reshape(15, 3)
    assert np.allclose(first[:, :2], 0.0, atol=1e-12)
    assert (first[:, 2] > 0).all() and np.allclose(first[:, 2], first[0, 2], rtol=1e-12)


def test_each_joints_ring_of_skin_bisects_its_bend(hand):
    # The J_regressor row of a joint weights the ring of vertices around it. Where a finger
    # bends (the thumb's IP joint bends 20 degrees at rest) the ring lies in the plane that
    # bisects the two bones, so that the bend stretches both sides alike; at the joints on the
    # wrist (MCP, thumb CMC) it is square to the bone that leaves the joint.
    v, regressor = hand["v_template"], hand["J_regressor"]
    joints = regressor @ v
    ends = [i for i in range(1, 16) if i not in MANO_PARENTS[1:]]
    tip_of = {min(ends, key=lambda i: np.linalg.norm(joints[i] - v[t])): v[t]
              for t in MANO_TIP_VERTICES}  # fmt: skip
    bent = 0
    for j in range(1, 16):
        ring = v[regressor[j] > 0]
        normal = np.linalg.svd(ring - ring.mean(0))[2][-1]
        child = list(MANO_PARENTS).index(j) if j not in ends else None
        into = joints[j] - joints[MANO_PARENTS[j]]
        out = (joints[child] if child is not None else tip_of[j]) - joints[j]
        into, out = into / np.linalg.norm(into), out / np.linalg.norm(out)
        axis = out if MANO_PARENTS[j] == 0 else (into + out) / np.linalg.norm(into + out)
        assert abs(float(normal @ axis)) > np.cos(np.radians(0.5)), j
        bent += MANO_PARENTS[j] != 0 and float(into @ out) < np.cos(np.radians(10.0))
    assert bent >= 1  # the rule is tested at a bent joint, not only on straight fingers
