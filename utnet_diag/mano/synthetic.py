"""A synthetic MANO-format right hand, generated deterministically (no download).

The mesh is built from tapered tubes: a palm tube open at the wrist (a 16-vertex boundary ring,
like the real MANO mesh), split into a thumb tube at the thenar and into four finger tubes at
the knuckles, each finger closed by a fan to its fingertip vertex. It has exactly MANO's counts:
778 vertices, 1538 triangles (genus 0 with one 16-vertex hole: F = 2V - 2 - 16), 16 joints.

Frame (chosen to match the official MANO_RIGHT rest pose, as far as we know it): metres; the
wrist joint sits near (0.096, 0.006, 0.006); fingers point along -x, the thumb is on the +z
side, the palm faces -y (back of the hand +y). Finger flexion is then a positive rotation
about +z, and ``hands_mean`` (a slightly curled mean, like the real one) has positive z terms.

Vertex ids 744, 320, 443, 554, 671 (smplx's MANO tips: thumb, index, middle, ring, pinky) are
the fingertip vertices. ``J_regressor`` averages the ring of vertices around each joint, so the
joints follow the shape blend shapes exactly. Shape component 0 scales the hand about the wrist
(+1 -> +6 % size); the others change finger lengths, palm width, finger thickness, palm
length, thumb length, pinky length, index/ring ratio, hand thickness and finger spread.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path

import numpy as np

from utnet_diag.errors import InputError
from utnet_diag.io.files import write_bytes_atomic
from utnet_diag.joints import MANO_PARENTS, MANO_TIP_VERTICES

NUM_VERTICES = 778
NUM_FACES = 1538
NUM_MANO_JOINTS = 16
NUM_BETAS = 10
WRIST_POSITION_M = np.array([0.0957, 0.0064, 0.0062])
RING_SIZE_FINGER = 10

# Fingers in the order their vertices are generated; MANO joint ids of (joint1, joint2, joint3).
_FINGER_ORDER = ("index", "middle", "ring", "pinky", "thumb")
_FINGER_MANO_JOINTS = {
    "index": (1, 2, 3),
    "middle": (4, 5, 6),
    "pinky": (7, 8, 9),
    "ring": (10, 11, 12),
    "thumb": (13, 14, 15),
}
_TIP_VERTEX = dict(zip(("thumb", "index", "middle", "ring", "pinky"), MANO_TIP_VERTICES))


@dataclasses.dataclass(frozen=True)
class HandShape:
    """Parameters of the synthetic hand, millimetres, in the hand frame (distal, radial, dorsal)."""

    scale: float = 1.0
    finger_length: float = 1.0
    palm_width: float = 1.0
    finger_thickness: float = 1.0
    palm_length: float = 1.0
    thumb_length: float = 1.0
    pinky_length: float = 1.0
    index_ring_ratio: float = 0.0
    hand_thickness: float = 1.0
    spread_deg: float = 0.0


# One beta unit of each shape component, as a change of HandShape.
_SHAPE_STEPS: tuple[dict[str, float], ...] = (
    {"scale": 1.06},
    {"finger_length": 1.08},
    {"palm_width": 1.08},
    {"finger_thickness": 1.10},
    {"palm_length": 1.06},
    {"thumb_length": 1.10},
    {"pinky_length": 1.10},
    {"index_ring_ratio": 0.06},
    {"hand_thickness": 1.10},
    {"spread_deg": 4.0},
)

# Rest skeleton (mm): MCP (distal, radial, dorsal), splay angle (deg, + = radial),
# phalanx lengths (proximal, middle, distal-to-tip), tube radii (width) at MCP, PIP, DIP, tip.
_FINGERS = {
    "index": ((87.0, 21.0, 0.0), 7.0, (40.0, 23.0, 22.0), (9.6, 8.6, 7.8, 7.0)),
    "middle": ((90.0, 2.0, 0.0), 0.0, (44.0, 27.0, 24.0), (9.8, 8.8, 8.0, 7.2)),
    "ring": ((85.0, -16.0, 0.0), -6.0, (41.0, 26.0, 23.0), (9.2, 8.4, 7.6, 6.9)),
    "pinky": ((77.0, -32.0, 0.0), -13.0, (33.0, 19.0, 21.0), (8.2, 7.4, 6.8, 6.2)),
}
_THUMB_LENGTHS = (40.0, 32.0, 29.0)  # CMC-MCP, MCP-IP, IP-tip
_THUMB_RADII = (12.5, 10.8, 9.6, 8.4)
_FINGER_THICKNESS = 0.85  # dorsal-palmar radius / width radius
# Palm rings: distal position (mm), ring size, width, thickness, radial centre.
_PALM_RINGS = (
    (0.0, 16, 58.0, 36.0, 0.0),
    (11.0, 18, 64.0, 36.0, 0.0),
    (22.0, 20, 70.0, 35.0, -0.5),  # the thumb splits off here
    (33.0, 22, 74.0, 33.0, -1.5),
    (44.0, 24, 78.0, 31.0, -2.5),
    (54.0, 24, 80.0, 30.0, -3.5),
    (63.0, None, 82.0, 29.0, -4.5),  # size chosen so the mesh has exactly 778 vertices
)
_THUMB_SPLIT_RING = 2
_THUMB_SPLIT_HALF = 4  # the thumb takes the ring's vertices -4..4 around the radial side


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _frame(axis: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, r, h) right-handed with u = axis, r closest to ``reference`` (h = u x r)."""
    u = _unit(axis)
    r = _unit(reference - np.dot(reference, u) * u)
    return u, r, np.cross(u, r)


class _MeshBuilder:
    """Vertices and triangles of tube rings, lofts between rings, and tip fans."""

    def __init__(self) -> None:
        self.points: list[np.ndarray] = []
        self.faces: list[tuple[int, int, int]] = []
        # Per vertex: the part ("palm" or a finger) and the arc length from the finger's joint1.
        self.part: list[str] = []
        self.arc: list[float] = []
        self.joint_rings: dict[int, list[int]] = {}

    def point(self, p: np.ndarray, part: str, arc: float = 0.0) -> int:
        self.points.append(np.asarray(p, dtype=np.float64))
        self.part.append(part)
        self.arc.append(arc)
        return len(self.points) - 1

    def ring(self, center, frame, rx, rh, n, part, arc=0.0, exponent=1.0) -> list[int]:
        """``n`` points ccw around ``frame[0]``, starting at the radial side (superellipse)."""
        _, r, h = frame
        ids = []
        for k in range(n):
            t = 2.0 * math.pi * k / n
            c, s = math.cos(t), math.sin(t)
            x = math.copysign(abs(c) ** exponent, c) * rx
            y = math.copysign(abs(s) ** exponent, s) * rh
            ids.append(self.point(center + x * r + y * h, part, arc))
        return ids

    def loft(self, lower: list[int], upper: list[int], center, frame) -> None:
        """Triangles between two closed rings (both ccw about ``frame[0]``), zipped by angle."""
        _, r, h = frame

        def angles(ids: list[int]) -> tuple[list[int], list[float]]:
            rel = np.array([self.points[i] - center for i in ids])
            theta = np.arctan2(rel @ h, rel @ r) % (2 * math.pi)
            start = int(np.argmin(theta))
            order = ids[start:] + ids[:start]
            unwrapped = (np.roll(theta, -start) - theta[start]) % (2 * math.pi) + theta[start]
            return order, list(unwrapped) + [theta[start] + 2 * math.pi]

        a_ids, a_t = angles(lower)
        b_ids, b_t = angles(upper)
        m, n = len(a_ids), len(b_ids)
        i = j = 0
        while i < m or j < n:
            if j == n or (i < m and a_t[i + 1] <= b_t[j + 1]):
                self.faces.append((a_ids[i], a_ids[(i + 1) % m], b_ids[j % n]))
                i += 1
            else:
                self.faces.append((a_ids[i % m], b_ids[(j + 1) % n], b_ids[j]))
                j += 1

    def fan(self, ring: list[int], tip: int) -> None:
        n = len(ring)
        for k in range(n):
            self.faces.append((ring[k], ring[(k + 1) % n], tip))


def _finger_skeleton(name: str, shape: HandShape) -> tuple[np.ndarray, tuple, tuple]:
    """Joint positions (4, 3) mm (joint1, joint2, joint3, tip), radii (4,), splay dir."""
    mcp, splay, lengths, radii = _FINGERS[name]
    mcp = np.array(mcp) * np.array([shape.palm_length, shape.palm_width, 1.0])
    factor = shape.finger_length
    if name == "pinky":
        factor *= shape.pinky_length
    if name == "index":
        factor *= 1.0 + shape.index_ring_ratio
    if name == "ring":
        factor *= 1.0 - shape.index_ring_ratio
    angle = math.radians(splay + shape.spread_deg * (splay / 13.0 if splay else 0.0))
    if name == "middle":
        angle = math.radians(0.0)
    # Fingers point distally, splayed in the palm plane, drooping slightly palmar.
    direction = _unit(np.array([math.cos(angle), math.sin(angle), -0.04]))
    joints = [mcp]
    for length in lengths:
        joints.append(joints[-1] + direction * length * factor)
    radii = tuple(r * shape.finger_thickness for r in radii)
    return np.array(joints), radii, direction


def _finger_tube(
    builder: _MeshBuilder, name: str, base_ring: list[int], joints, radii, directions
) -> None:
    """Rings of a finger from its base (sub-ring of the palm) to the fingertip vertex."""
    ring_size = RING_SIZE_FINGER
    j1, j2, j3, tip = joints
    l1, l2, l3 = (np.linalg.norm(j2 - j1), np.linalg.norm(j3 - j2), np.linalg.norm(tip - j3))
    d1, d2, d3 = directions
    thickness = _FINGER_THICKNESS
    cap_radius = radii[3]
    # (segment start, direction, length, start radius, end radius, fractions along the segment)
    segments = (
        (j1, d1, l1, radii[0], radii[1], (0.0, 0.25, 0.5, 0.75)),
        (j2, d2, l2, radii[1], radii[2], (0.0, 1 / 3, 2 / 3)),
    )
    reference = np.array([0.0, 1.0, 0.0]) if name != "thumb" else None
    previous, previous_arc = base_ring, 0.0
    arc0 = 0.0
    joint_ids = _FINGER_MANO_JOINTS[name]

    def frame_for(direction):
        if reference is not None:
            return _frame(direction, reference)
        u = _unit(direction)
        h = _unit(np.array([0.0, 0.0, 1.0]) - u[2] * u)
        return u, np.cross(h, u), h

    for k, (start, direction, length, r0, r1, fractions) in enumerate(segments):
        for f in fractions:
            center = start + direction * length * f
            # At a joint the ring is perpendicular to the mean of the two bone directions.
            axis = direction if f > 0 or k == 0 else _unit(segments[k - 1][1] + direction)
            frame = frame_for(axis)
            radius = r0 + (r1 - r0) * f
            arc = arc0 + length * f
            ring = builder.ring(center, frame, radius, radius * thickness, ring_size, name, arc)
            if f == 0.0:
                builder.joint_rings[joint_ids[k]] = ring
            builder.loft(previous, ring, center, frame)
            previous, previous_arc = ring, arc
        arc0 += length
    # Distal segment: ring at joint3, one between, then a hemispherical cap to the tip vertex.
    cap_center = tip - d3 * cap_radius
    stations = [(j3, radii[2], _unit(d2 + d3)), (0.5 * (j3 + cap_center), None, d3)]
    stations.append((cap_center, cap_radius, d3))
    for phi in (60.0, 30.0):
        c = cap_center + d3 * cap_radius * math.cos(math.radians(phi))
        stations.append((c, cap_radius * math.sin(math.radians(phi)), d3))
    for s, (center, radius, axis) in enumerate(stations):
        if radius is None:
            radius = 0.5 * (radii[2] + cap_radius)
        frame = frame_for(axis)
        arc = arc0 + float(np.dot(center - j3, d3))
        ring = builder.ring(center, frame, radius, radius * thickness, ring_size, name, arc)
        if s == 0:
            builder.joint_rings[joint_ids[2]] = ring
        builder.loft(previous, ring, center, frame)
        previous, previous_arc = ring, arc
    tip_id = builder.point(tip, name, arc0 + l3)
    builder.fan(previous, tip_id)
    builder.joint_rings.setdefault(-1, []).append(tip_id)  # tips in generation order
    del previous_arc


def _thumb_skeleton(shape: HandShape, sub_ring_center: np.ndarray):
    """Thumb joints (4, 3) mm from the centre of the palm patch it grows from."""
    directions = (
        _unit(np.array([0.62, 0.68, -0.38])),
        _unit(np.array([0.85, 0.45, -0.28])),
        _unit(np.array([0.93, 0.32, -0.18])),
    )
    factor = shape.finger_length**0.5 * shape.thumb_length
    joints = [sub_ring_center + directions[0] * 9.0 * shape.finger_thickness]
    for length, direction in zip(_THUMB_LENGTHS, directions):
        joints.append(joints[-1] + direction * length * factor)
    radii = tuple(r * shape.finger_thickness for r in _THUMB_RADII)
    return np.array(joints), radii, directions


def _build(shape: HandShape, last_palm_ring: int) -> _MeshBuilder:
    """The mesh in the hand frame (mm), before reordering vertex ids."""
    builder = _MeshBuilder()
    palm_frame = _frame(np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    rings = []
    previous = None
    thumb_ring = None
    for k, (a, n, width, thick, r_center) in enumerate(_PALM_RINGS):
        n = last_palm_ring if n is None else n
        center = np.array([a * shape.palm_length, r_center * shape.palm_width, 0.0])
        rx = 0.5 * width * shape.palm_width
        rh = 0.5 * thick * shape.hand_thickness
        ring = builder.ring(center, palm_frame, rx, rh, n, "palm", exponent=0.6)
        if k == 0:
            builder.joint_rings[0] = ring
        if previous is not None:
            builder.loft(previous, ring, center, palm_frame)
        previous = ring
        if k == _THUMB_SPLIT_RING:
            h = _THUMB_SPLIT_HALF
            thumb_ring = ring[-h:] + ring[: h + 1]
            previous = ring[h : n - h + 1]  # the palm goes on from the rest, webbed at both ends
        rings.append(ring)

    # Knuckle ring: dorsal row d0..d12 (radial to ulnar), palmar row p12..p0.
    fingers = ("index", "middle", "ring", "pinky")
    skeletons = {f: _finger_skeleton(f, shape) for f in fingers}
    bases, frames, widths = [], [], []
    for f in fingers:
        joints, radii, direction = skeletons[f]
        bases.append(joints[0] - direction * 6.0)
        frames.append(_frame(direction, np.array([0.0, 1.0, 0.0])))
        widths.append(radii[0] * 1.05)

    def on_finger(i: int, degrees: float) -> np.ndarray:
        _, r, h = frames[i]
        t = math.radians(degrees)
        return bases[i] + widths[i] * (math.cos(t) * r + _FINGER_THICKNESS * math.sin(t) * h)

    dorsal, palmar = [], []
    for i in range(4):
        if i == 0:
            dorsal.append(on_finger(0, 15.0))
            palmar.append(on_finger(0, -15.0))
        dorsal += [on_finger(i, 60.0), on_finger(i, 120.0)]
        palmar += [on_finger(i, -60.0), on_finger(i, -120.0)]
        if i < 3:
            mid = 0.5 * (bases[i] + bases[i + 1])
            lift = 0.8 * _FINGER_THICKNESS * 0.5 * (widths[i] + widths[i + 1])
            dorsal.append(mid + np.array([-3.0, 0.0, lift]))
            palmar.append(mid + np.array([-3.0, 0.0, -lift]))
        else:
            dorsal.append(on_finger(3, 165.0))
            palmar.append(on_finger(3, 195.0))
    d_ids = [builder.point(p, "palm") for p in dorsal]
    p_ids = [builder.point(p, "palm") for p in palmar]
    knuckle_ring = d_ids + p_ids[::-1]
    knuckle_center = np.mean(np.array(dorsal + palmar), axis=0)
    builder.loft(previous, knuckle_ring, knuckle_center, palm_frame)

    for i, f in enumerate(fingers):
        sub_ring = d_ids[3 * i : 3 * i + 4] + p_ids[3 * i : 3 * i + 4][::-1]
        joints, radii, direction = skeletons[f]
        _finger_tube(builder, f, sub_ring, joints, radii, (direction, direction, direction))

    assert thumb_ring is not None
    sub_center = np.mean(np.array([builder.points[i] for i in thumb_ring]), axis=0)
    joints, radii, directions = _thumb_skeleton(shape, sub_center)
    _finger_tube(builder, "thumb", thumb_ring, joints, radii, directions)
    return builder


def _last_palm_ring_size() -> int:
    fixed = sum(n for _, n, *_ in _PALM_RINGS if n is not None)
    knuckle = 26
    fingers = 5 * (12 * RING_SIZE_FINGER + 1)
    return NUM_VERTICES - fixed - knuckle - fingers


def _vertex_order(builder: _MeshBuilder) -> np.ndarray:
    """new id -> old id, with the five fingertip vertices at smplx's MANO tip ids."""
    tips_old = builder.joint_rings[-1]  # index, middle, ring, pinky, thumb
    wanted = {_TIP_VERTEX[f]: old for f, old in zip(_FINGER_ORDER, tips_old)}
    rest = iter(i for i in range(len(builder.points)) if i not in set(tips_old))
    return np.array([wanted[k] if k in wanted else next(rest) for k in range(len(builder.points))])


def _to_mano_frame(points_mm: np.ndarray, scale: float) -> np.ndarray:
    """Hand frame (distal, radial, dorsal) mm -> MANO right-hand frame metres."""
    distal, radial, dorsal = points_mm[..., 0], points_mm[..., 1], points_mm[..., 2]
    xyz = np.stack([-distal, dorsal, radial], axis=-1) * scale / 1000.0
    return xyz + WRIST_POSITION_M


def _skinning_weights(builder: _MeshBuilder, order: np.ndarray) -> np.ndarray:
    """(778, 16): palm -> wrist; finger vertices blend parent/child across each joint."""
    joints_of = {f: _FINGER_MANO_JOINTS[f] for f in _FINGER_ORDER}
    lengths = {}
    for f in _FINGER_ORDER:
        ring_arcs = {}
        for k, j in enumerate(joints_of[f]):
            ring_arcs[k] = builder.arc[builder.joint_rings[j][0]]
        lengths[f] = ring_arcs
    weights = np.zeros((len(builder.points), NUM_MANO_JOINTS))
    blend = 6.0  # mm either side of a joint
    for old in range(len(builder.points)):
        part = builder.part[old]
        if part == "palm":
            weights[old, 0] = 1.0
            continue
        arc = builder.arc[old]
        chain = (0,) + joints_of[part]
        starts = [lengths[part][k] for k in range(3)]
        w = np.zeros(4)
        w[0] = 1.0
        for k, s in enumerate(starts):  # bone k+1 takes over from bone k around s
            t = np.clip((arc - s + blend) / (2 * blend), 0.0, 1.0)
            t = t * t * (3 - 2 * t)
            w[k + 1] = t * w[k]
            w[k] = (1 - t) * w[k]
        for k, j in enumerate(chain):
            weights[old, j] += w[k]
    weights /= weights.sum(axis=1, keepdims=True)
    return weights[order]


def _joint_regressor(builder: _MeshBuilder, inverse: np.ndarray) -> np.ndarray:
    """(16, 778): each joint is the mean of the vertex ring centred on it."""
    regressor = np.zeros((NUM_MANO_JOINTS, len(builder.points)))
    for j in range(NUM_MANO_JOINTS):
        ring = inverse[np.array(builder.joint_rings[j])]
        regressor[j, ring] = 1.0 / len(ring)
    return regressor


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _pose_correctives(vertices, faces, weights) -> np.ndarray:
    """(778, 3, 135): small smooth bulges along the normal near each bending joint (metres)."""
    normals = _vertex_normals(vertices, faces)
    pattern = np.array([0.0, 0.3, -0.3, -0.3, 0.2, 0.6, 0.3, -0.6, 0.2])
    posedirs = np.zeros((vertices.shape[0], 3, 9 * (NUM_MANO_JOINTS - 1)))
    for j in range(1, NUM_MANO_JOINTS):
        near_joint = 4.0 * weights[:, j] * weights[:, MANO_PARENTS[j]]  # 1 on the joint ring
        bulge = 0.004 * near_joint[:, None] * normals  # up to 4 mm per unit of (R - I)
        posedirs[:, :, 9 * (j - 1) : 9 * j] = bulge[:, :, None] * pattern[None, None, :]
    return posedirs


# row norms: a power-law fall from 1.3 with the same total spread as MANO's own components
# (sum of squares 5.5; MANO's: 5.6, falling from 1.31 to 0.04)
PCA_SCALES = 1.3 * np.arange(1, 46, dtype=np.float64) ** -0.6


def _pca_basis() -> np.ndarray:
    """(45, 45) orthogonal rows (a whole-hand curl, then a DCT basis made orthogonal), scaled by
    :data:`PCA_SCALES` as MANO's are by the spread of each component, so that the PCA
    coefficients of natural poses are whitened (about N(0, 1) each, as in MANO's own
    ``hands_coeffs``)."""
    curl = np.zeros(45)
    curl[2::3] = 1.0  # flexion (about +z) of every joint
    n = np.arange(45)
    dct = np.cos(np.pi * (n[:, None] + 0.5) * n[None, :] / 45.0)  # columns: DCT-II atoms
    q, r = np.linalg.qr(np.column_stack([curl, dct[:, :44]]))
    q = q * np.sign(np.diag(r))[None, :]
    return (q.T * PCA_SCALES[:, None]).copy()


def _hands_mean() -> np.ndarray:
    """(45,) axis-angle: a relaxed, slightly curled hand (positive flexion about +z)."""
    mean = np.zeros((15, 3))
    for j in range(15):
        k = j % 3
        if j >= 12:  # thumb
            mean[j] = (0.10, 0.05, 0.15 + 0.10 * k)
        else:
            mean[j] = (0.04 * (1 - k), -0.02 * (j // 3 - 1.5), (0.30, 0.45, 0.25)[k])
    return mean.reshape(-1)


def _mirror_to_left(data: dict) -> dict:
    """MANO_LEFT-style data by mirroring x; axis-angle (x, y, z) -> (x, -y, -z)."""
    out = dict(data)
    flip = np.array([-1.0, 1.0, 1.0])
    out["v_template"] = (data["v_template"] * flip).copy()
    out["J"] = (data["J"] * flip).copy()
    out["f"] = data["f"][:, [0, 2, 1]].copy()  # keep the normals pointing out
    out["shapedirs"] = (data["shapedirs"] * flip[None, :, None]).copy()
    # (R_left - I) = M (R_right - I) M with M = diag(-1, 1, 1): entry (a, b) flips by s_a s_b.
    s = flip
    pose_sign = np.tile((s[:, None] * s[None, :]).reshape(-1), NUM_MANO_JOINTS - 1)
    out["posedirs"] = (data["posedirs"] * flip[None, :, None] * pose_sign[None, None, :]).copy()
    aa_sign = np.tile(np.array([1.0, -1.0, -1.0]), 15)
    out["hands_components"] = (data["hands_components"] * aa_sign[None, :]).copy()
    out["hands_mean"] = (data["hands_mean"] * aa_sign).copy()
    return out


def synthetic_mano_data(side: str = "right") -> dict[str, np.ndarray | str]:
    """The synthetic MANO model as plain arrays with the official file's keys (metres).

    Keys: ``v_template`` (778, 3), ``f`` (1538, 3) uint32, ``J_regressor`` (16, 778),
    ``kintree_table`` (2, 16), ``J`` (16, 3), ``weights`` (778, 16), ``posedirs`` (778, 3, 135),
    ``shapedirs`` (778, 3, 10), ``hands_components`` (45, 45), ``hands_mean`` (45,),
    ``bs_style`` 'lbs', ``bs_type`` 'lrotmin'. ``side='left'`` mirrors the right hand (x -> -x).
    Freshly generated on every call; ``load_mano_data()`` caches it.
    """
    side = _check_side(side)
    last = _last_palm_ring_size()
    base = _build(HandShape(), last)
    points = np.array(base.points)
    order = _vertex_order(base)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    faces = inverse[np.array(base.faces)]
    v_template = _to_mano_frame(points[order], 1.0)

    shapedirs = np.zeros((NUM_VERTICES, 3, NUM_BETAS))
    for k, step in enumerate(_SHAPE_STEPS):
        shape = dataclasses.replace(HandShape(), **step)
        moved = _build(shape, last)
        scaled = _to_mano_frame(np.array(moved.points)[order], shape.scale)
        shapedirs[:, :, k] = scaled - v_template

    weights = _skinning_weights(base, order)
    regressor = _joint_regressor(base, inverse)
    kintree = np.array([[4294967295] + list(MANO_PARENTS[1:]), list(range(NUM_MANO_JOINTS))])
    data: dict[str, np.ndarray | str] = {
        "v_template": v_template,
        "f": faces.astype(np.uint32),
        "J_regressor": regressor,
        "kintree_table": kintree.astype(np.int64),
        "J": regressor @ v_template,
        "weights": weights,
        "posedirs": _pose_correctives(v_template, faces, weights),
        "shapedirs": shapedirs,
        "hands_components": _pca_basis(),
        "hands_mean": _hands_mean(),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    return _mirror_to_left(data) if side == "left" else data


def write_synthetic_mano(path: str | Path, side: str = "right") -> Path:
    """Write the synthetic hand as a pickle of plain numpy arrays (``smplx.MANO`` loads it).

    ``path`` may be a directory: the file is then ``<path>/MANO_RIGHT.pkl`` (or LEFT).
    """

    side = _check_side(side)
    target = Path(path)
    if target.is_dir():
        target = target / f"MANO_{side.upper()}.pkl"
    data = synthetic_mano_data(side)
    return write_bytes_atomic(target, pickle.dumps(data, protocol=4))


def _check_side(side: str) -> str:

    text = str(side).lower()
    if text not in ("right", "left"):
        raise InputError(f"unknown hand side '{side}'", hint="use 'right' or 'left'")
    return text
