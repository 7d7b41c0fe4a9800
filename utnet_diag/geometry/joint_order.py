"""Which order are 21 hand joints in? Identified from hand geometry alone.

A hypothesis is a permutation ``P`` with ``joints_spec = joints[:, P]`` (spec order: wrist, thumb,
index, middle, ring, pinky, base to tip). Its cost says how little ``joints[:, P]`` looks like a
hand, from quantities that do not change with global rotation, hand size or finger curl:

- bone lengths relative to the palm, against a template hand (log ratios);
- the rigid palm (wrist + the five finger bases) against the template palm, after a similarity
  alignment with a proper rotation, right or mirrored (left) template, whichever fits;
- finger chains that bend too far or zig-zag (consecutive bends in opposite directions);
- over a batch: bones keep their length across samples while non-bones change with the pose.

The known orders (spec, MANO 16 + tips, KeypointFusion) are tried first; when none is a plausible
hand, a search (template ICP with optimal assignment from many starts, then swaps of two joints)
finds the best permutation. All costs are vectorised over hypotheses and samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations, permutations

import numpy as np

from utnet_diag.geometry.procrustes import similarity_align
from utnet_diag.joints import (
    BONES,
    FINGER_JOINTS,
    FINGERS,
    KNOWN_ORDERS,
    MISREAD_ORDERS,
    NUM_JOINTS,
)

# Orders tried before any search: the conventions data follow, and known mapping bugs.
CANDIDATE_ORDERS = {**KNOWN_ORDERS, **MISREAD_ORDERS}

# --- thresholds (dimensionless: lengths are relative to the palm size) -------------------------
PLAUSIBLE_COST = 0.5  # a batch cost under this is a hand in that order (clean data: < 0.4)
CLEAR_MARGIN = 0.15  # another order must be this much cheaper to be called better
MAX_FLEX_RAD = np.deg2rad(125.0)  # a finger joint bends at most this much
MAX_THUMB_FLEX_RAD = np.deg2rad(140.0)
HINGE_SLACK = 0.3  # sin of the sideways bend a finger hinge may show (noise, skin, annotation)
BEND_WEIGHT = 0.25  # bends are a pose prior; bone lengths and the palm are invariants
LOG_RATIO_CAP = 1.5  # one bone's log length error counts at most this much
CV_CAP = 1.0
MIN_SAMPLES_FOR_CV = 3

PALM = (0, 1, 5, 9, 13, 17)  # wrist and the five finger bases, spec order
_BONE_PARENT = np.array([p for p, _ in BONES])
_BONE_CHILD = np.array([c for _, c in BONES])
_CHAINS = np.array([(0,) + FINGER_JOINTS[f] for f in FINGERS])  # (5, 5) wrist -> tip

# --- the template hand (right hand, mm, palm facing -z, fingers along +y, thumb at -x) ----------
_BASES = {
    "thumb": (-22.0, 28.0, -10.0),
    "index": (-24.0, 88.0, 0.0),
    "middle": (-4.0, 92.0, 0.0),
    "ring": (14.0, 87.0, 0.0),
    "pinky": (30.0, 78.0, 0.0),
}
_LENGTHS = {
    "thumb": (38.0, 32.0, 27.0),
    "index": (40.0, 24.0, 21.0),
    "middle": (45.0, 28.0, 23.0),
    "ring": (42.0, 27.0, 23.0),
    "pinky": (33.0, 20.0, 20.0),
}
_DIRECTIONS = {
    "thumb": (-0.6, 0.75, -0.3),
    "index": (-0.12, 1.0, 0.0),
    "middle": (0.0, 1.0, 0.0),
    "ring": (0.12, 1.0, 0.0),
    "pinky": (0.25, 1.0, 0.0),
}
_FLEX_AT_FULL_CURL = {  # radians at (base, middle, end) joint for curl = 1
    "thumb": (0.5, 0.7, 0.8),
    "index": (1.3, 1.7, 1.0),
    "middle": (1.3, 1.7, 1.0),
    "ring": (1.3, 1.7, 1.0),
    "pinky": (1.3, 1.7, 1.0),
}


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """``v`` (3,) rotated by ``angle`` radians about ``axis`` (Rodrigues' formula)."""
    k = axis / np.linalg.norm(axis)
    cos, sin = np.cos(angle), np.sin(angle)
    return v * cos + np.cross(k, v) * sin + k * np.dot(k, v) * (1.0 - cos)


def template_hand(
    curl: float | tuple[float, ...] = 0.0, spread: float = 0.0, left: bool = False
) -> np.ndarray:
    """A right (or ``left``) hand in spec order, (21, 3) mm, wrist at the origin.

    ``curl`` 0 (flat) .. 1 (fist), one value or one per finger; ``spread`` in radians fans the
    fingers apart (negative: together). Used as the detection template and to make test hands.
    """
    curls = (curl,) * 5 if np.isscalar(curl) else tuple(curl)
    joints = np.zeros((NUM_JOINTS, 3))
    palm_side = np.array([0.0, 0.0, -1.0])
    for f, finger in enumerate(FINGERS):
        base = np.array(_BASES[finger])
        direction = np.array(_DIRECTIONS[finger], dtype=float)
        direction /= np.linalg.norm(direction)
        if finger != "thumb":
            direction = _rotate(direction, palm_side, spread * (f - 2.5) / 1.5)
        bend_to = (
            palm_side if finger != "thumb" else np.array([0.7, 0.0, -0.7])
        )  # thumb folds across the palm
        axis = np.cross(direction, bend_to)
        idx = FINGER_JOINTS[finger]
        joints[idx[0]] = base
        point = base
        for k, length in enumerate(_LENGTHS[finger]):
            direction = _rotate(direction, axis, _FLEX_AT_FULL_CURL[finger][k] * curls[f])
            point = point + length * direction
            joints[idx[k + 1]] = point
    if left:
        joints[:, 0] *= -1.0
    return joints


_TEMPLATE = template_hand()
_TEMPLATE_PALM = _TEMPLATE[list(PALM)]
_TEMPLATE_PALM_MIRRORED = _TEMPLATE_PALM * np.array([-1.0, 1.0, 1.0])


def _palm_size(joints: np.ndarray) -> np.ndarray:
    """Mean wrist-to-finger-base distance over index..pinky, (...,) in input units."""
    bases = joints[..., [5, 9, 13, 17], :] - joints[..., :1, :]
    return np.linalg.norm(bases, axis=-1).mean(-1)


_TEMPLATE_SCALE = float(_palm_size(_TEMPLATE))
_TEMPLATE_LOG_BONES = np.log(
    np.linalg.norm(_TEMPLATE[_BONE_CHILD] - _TEMPLATE[_BONE_PARENT], axis=-1) / _TEMPLATE_SCALE
)


@dataclass(frozen=True)
class HandCost:
    """Per-sample costs of a hypothesis (..., B) and their parts; lower is more hand-like."""

    total: np.ndarray
    bones: np.ndarray
    palm: np.ndarray
    bends: np.ndarray
    chirality: np.ndarray  # +1 right-hand palm fits better, -1 left


def hand_cost(joints_spec: np.ndarray) -> HandCost:
    """How little ``joints_spec`` (..., 21, 3), read in spec order, looks like a hand."""
    j = np.asarray(joints_spec, dtype=np.float64)
    spread = np.sqrt(((j - j.mean(-2, keepdims=True)) ** 2).sum(-1).mean(-1))
    scale = np.maximum(_palm_size(j), 1e-3 * np.maximum(spread, 1e-9))
    bone_len = np.linalg.norm(j[..., _BONE_CHILD, :] - j[..., _BONE_PARENT, :], axis=-1)
    log_ratio = np.log(np.maximum(bone_len, 1e-9) / scale[..., None]) - _TEMPLATE_LOG_BONES
    bones = np.minimum(np.abs(log_ratio), LOG_RATIO_CAP).mean(-1)

    palm = j[..., list(PALM), :]
    right = similarity_align(_TEMPLATE_PALM, palm).rms
    left = similarity_align(_TEMPLATE_PALM_MIRRORED, palm).rms
    palm_cost = np.minimum(right, left) / scale
    chirality = np.where(right <= left, 1, -1)

    chain = j[..., _CHAINS, :]  # (..., 5, 5, 3)
    seg = chain[..., 1:, :] - chain[..., :-1, :]
    unit = seg / np.maximum(np.linalg.norm(seg, axis=-1, keepdims=True), 1e-9)
    cos = (unit[..., 1:, :] * unit[..., :-1, :]).sum(-1).clip(-1.0, 1.0)  # (..., 5, 3)
    angle = np.arccos(cos)
    limit = np.full((5, 3), MAX_FLEX_RAD)
    limit[0] = MAX_THUMB_FLEX_RAD
    over = np.maximum(angle - limit, 0.0).sum((-1, -2))
    normals = np.cross(unit[..., :-1, :], unit[..., 1:, :])  # bend normals, (..., 5, 3, 3)
    # zig-zag: the PIP and DIP bends of a finger point opposite ways
    zigzag = np.maximum(-(normals[..., 1:2, :] * normals[..., 2:3, :]).sum(-1), 0.0)
    zigzag = zigzag[..., 1:, 0].sum(-1)  # fingers only; the thumb's chain is less regular
    # PIP and DIP are hinges: they bend about an axis in the palm's plane, never sideways
    palm_normal = np.cross(j[..., 5, :] - j[..., 0, :], j[..., 17, :] - j[..., 0, :])
    palm_normal = palm_normal / np.maximum(
        np.linalg.norm(palm_normal, axis=-1, keepdims=True), 1e-9
    )
    hinge = normals[..., 1:, 1:, :]  # (..., 4 fingers, 2 joints, 3), length = sin(bend)
    off_plane = np.abs((hinge * palm_normal[..., None, None, :]).sum(-1))
    sideways = np.maximum(off_plane - HINGE_SLACK, 0.0).sum((-1, -2))
    bends = over + zigzag + sideways
    total = bones + palm_cost + BEND_WEIGHT * bends
    return HandCost(total, bones, palm_cost, bends, chirality)


CHIRALITY_MARGIN = 0.005  # palm-fit difference (relative to palm size) that decides the side


def palm_chirality(joints_spec: np.ndarray) -> np.ndarray:
    """Per sample, how much better the palm fits a right hand than a mirrored one: (left RMS -
    right RMS) / palm size, (...,). Positive: right hand; negative: left (mirrored); within
    +-CHIRALITY_MARGIN: undecided. The wrist and the five finger bases are rigid in MANO, so this
    does not depend on pose; the official MANO hand gives about +-0.045, a flat synthetic palm
    +-0.01."""
    j = np.asarray(joints_spec, dtype=np.float64)
    palm = j[..., list(PALM), :]
    right = similarity_align(_TEMPLATE_PALM, palm).rms
    left = similarity_align(_TEMPLATE_PALM_MIRRORED, palm).rms
    return (left - right) / np.maximum(_palm_size(j), 1e-9)


def batch_cost(joints: np.ndarray, perms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cost of each hypothesis over a batch.

    ``joints`` (B, 21, 3); ``perms`` (K, 21). Returns (K,) batch costs (median over samples plus
    the spread of bone lengths across samples) and (K, B) per-sample costs.
    """
    hyp = joints[:, perms].transpose(1, 0, 2, 3)  # (K, B, 21, 3)
    per_sample = hand_cost(hyp).total
    cost = np.median(per_sample, axis=-1)
    if joints.shape[0] >= MIN_SAMPLES_FOR_CV:
        bone_len = np.linalg.norm(hyp[..., _BONE_CHILD, :] - hyp[..., _BONE_PARENT, :], axis=-1)
        rel = bone_len / np.maximum(_palm_size(hyp), 1e-9)[..., None]  # (K, B, 20)
        cv = rel.std(1) / np.maximum(rel.mean(1), 1e-9)
        cost = cost + np.minimum(cv, CV_CAP).mean(-1)
    return cost, per_sample


# --- search ----------------------------------------------------------------------------------
_TRANSPOSITIONS = np.array(list(combinations(range(NUM_JOINTS), 2)))
MAX_SEARCH_SAMPLES = 3  # samples whose own geometry proposes candidates
TOP_PALMS = 5  # palm hypotheses grown into full hands, per sample
MAX_SWAP_ROUNDS = 8
MAX_SWAP_SAMPLES = 4
_TEMPLATE_BONE_RATIO = np.exp(_TEMPLATE_LOG_BONES).reshape(5, 4)  # per finger: palm bone + 3


_TEMPLATE_PALM_LOG_DIST = np.log(
    np.linalg.norm(_TEMPLATE_PALM[:, None] - _TEMPLATE_PALM[None], axis=-1) + np.eye(6)
)
# palm slots in the order the beam fills them: wrist, middle, index, ring, pinky, thumb base
_PALM_FILL = (0, 3, 2, 4, 5, 1)
PALM_BEAM = 2500


def _palm_candidates(dist: np.ndarray) -> np.ndarray:
    """Palm hypotheses (K, 6) in PALM order (wrist, thumb, index, middle, ring, pinky bases).

    A beam search over the palm's pairwise distances relative to wrist-to-middle-base, against
    the template palm (curl, rotation, size and side do not change them).
    """
    n = dist.shape[0]
    log_dist = np.log(np.maximum(dist, 1e-9))
    w, m = np.nonzero(~np.eye(n, dtype=bool))
    states = np.stack([w, m], 1)  # columns follow _PALM_FILL
    costs = np.zeros(len(states))
    ref = _TEMPLATE_PALM_LOG_DIST[0, 3]
    for depth in range(2, 6):
        slot = _PALM_FILL[depth]
        k = len(states)
        nxt = np.repeat(np.arange(n)[None], k, 0)  # (k, n)
        used = np.zeros((k, n), dtype=bool)
        used[np.arange(k)[:, None], states] = True
        scale = log_dist[states[:, 0], states[:, 1]][:, None]  # (k, 1)
        add = np.zeros((k, n))
        for col in range(depth):
            have = _PALM_FILL[col]
            err = (
                log_dist[states[:, col]][:, :] - scale - (_TEMPLATE_PALM_LOG_DIST[have, slot] - ref)
            )
            add += np.abs(err)
        total = np.where(used, np.inf, costs[:, None] + add)
        flat = np.argsort(total, axis=None, kind="stable")[:PALM_BEAM]
        flat = flat[np.isfinite(total.reshape(-1)[flat])]
        rows, cols = np.unravel_index(flat, total.shape)
        states = np.concatenate([states[rows], nxt[rows, cols][:, None]], 1)
        costs = total[rows, cols]
    palms = np.empty_like(states)
    palms[:, list(_PALM_FILL)] = states
    return palms


_TRIPLES = np.array(list(permutations(range(NUM_JOINTS - 6), 3)))  # ordered (j2, j3, tip)
CHAINS_PER_FINGER = 40
CHAIN_BEAM = 60


def _chain_costs(points: np.ndarray, palm: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Cost of every ordered chain (j2, j3, tip) from ``free`` joints for each finger, (5, T)."""
    wrist, bases = points[palm[0]], points[palm[1:]]  # (3,), (5, 3)
    # a degenerate hand (all joints at one point: MANO bypassed) has scale 0; keep the logs finite
    scale = max(float(np.linalg.norm(bases[1:] - wrist, axis=-1).mean()), 1e-9)
    chain = np.concatenate(
        [np.broadcast_to(wrist, (5, len(_TRIPLES), 1, 3)),
         np.broadcast_to(bases[:, None, None], (5, len(_TRIPLES), 1, 3)),
         np.broadcast_to(points[free][_TRIPLES][None], (5, len(_TRIPLES), 3, 3))],
        axis=2,
    )  # fmt: skip
    seg = chain[..., 1:, :] - chain[..., :-1, :]  # (5, T, 4, 3)
    length = np.linalg.norm(seg, axis=-1)
    expect = _TEMPLATE_BONE_RATIO[:, None, 1:] * scale
    length_err = np.abs(np.log(np.maximum(length[..., 1:], 1e-9) / expect)).sum(-1)
    unit = seg / np.maximum(length[..., None], 1e-9)
    angle = np.arccos((unit[..., 1:, :] * unit[..., :-1, :]).sum(-1).clip(-1, 1))
    limit = np.full((5, 1, 3), MAX_FLEX_RAD)
    limit[0] = MAX_THUMB_FLEX_RAD
    over = np.maximum(angle - limit, 0).sum(-1)
    normals = np.cross(unit[..., :-1, :], unit[..., 1:, :])
    zigzag = np.maximum(-(normals[..., 1, :] * normals[..., 2, :]).sum(-1), 0)
    palm_normal = np.cross(bases[1] - wrist, bases[4] - wrist)
    palm_normal /= max(np.linalg.norm(palm_normal), 1e-9)
    off_plane = np.abs(normals[..., 1:, :] @ palm_normal)
    sideways = np.maximum(off_plane - HINGE_SLACK, 0).sum(-1)
    finger_only = np.array([0.0, 1, 1, 1, 1])[:, None]
    return length_err / 3 + BEND_WEIGHT * (over + finger_only * (zigzag + sideways))


def _grow_fingers(points: np.ndarray, palm: np.ndarray, keep: int = 3) -> np.ndarray:
    """Complete a palm hypothesis (6,) to full permutations (<= keep, 21).

    Every ordered chain of three free joints is scored for every finger; a beam then picks five
    disjoint chains with the lowest total cost.
    """
    free = np.setdiff1d(np.arange(NUM_JOINTS), palm)
    costs = _chain_costs(points, palm, free)  # (5, T)
    top = np.argsort(costs, axis=1)[:, :CHAINS_PER_FINGER]
    beams: list[tuple[float, tuple[int, ...], int]] = [(0.0, (), 0)]  # cost, chains, used mask
    for f in range(5):
        grown = []
        for cost, chains, used in beams:
            for t in top[f]:
                mask = sum(1 << int(i) for i in _TRIPLES[t])
                if used & mask:
                    continue
                grown.append((cost + float(costs[f, t]), chains + (int(t),), used | mask))
        grown.sort(key=lambda item: item[0])
        beams = grown[:CHAIN_BEAM]
    out = []
    for _, chains, _ in beams[:keep]:
        perm = np.full(NUM_JOINTS, -1)
        perm[list(PALM)] = palm
        for f, t in enumerate(chains):
            perm[list(_CHAINS[f, 2:])] = free[_TRIPLES[t]]
        out.append(perm)
    return np.array(out, dtype=int).reshape(-1, NUM_JOINTS)


def _structural_candidates(sample: np.ndarray) -> np.ndarray:
    """Candidate permutations (K, 21) from one sample's geometry (21, 3)."""
    dist = np.linalg.norm(sample[:, None] - sample[None], axis=-1)
    palms = _palm_candidates(dist)
    if len(palms) == 0:
        return np.empty((0, NUM_JOINTS), dtype=int)
    palm_pts = sample[palms]  # (K, 6, 3), sorted by the beam's distance cost
    right = similarity_align(_TEMPLATE_PALM, palm_pts).rms
    left = similarity_align(_TEMPLATE_PALM_MIRRORED, palm_pts).rms
    scale = dist[palms[:, 0][:, None], palms[:, 2:]].mean(-1)
    palm_cost = np.minimum(right, left) / np.maximum(scale, 1e-9)
    best = np.unique(np.concatenate([np.arange(min(TOP_PALMS, len(palms))),
                                     np.argsort(palm_cost)[:TOP_PALMS]]))  # fmt: skip
    return np.concatenate([_grow_fingers(sample, palms[k]) for k in best])


def _swap_descent(joints: np.ndarray, perm: np.ndarray, cost: float) -> tuple[np.ndarray, float]:
    """Improve ``perm`` by swapping two entries while the batch cost drops."""
    for _ in range(MAX_SWAP_ROUNDS):
        cands = np.repeat(perm[None], len(_TRANSPOSITIONS), 0)
        rows = np.arange(len(_TRANSPOSITIONS))
        a, b = _TRANSPOSITIONS[:, 0], _TRANSPOSITIONS[:, 1]
        cands[rows, a], cands[rows, b] = perm[b], perm[a]
        costs, _ = batch_cost(joints, cands)
        k = int(np.argmin(costs))
        if costs[k] >= cost - 1e-9:
            break
        perm, cost = cands[k], float(costs[k])
    return perm, cost


@dataclass(frozen=True)
class JointOrderResult:
    """The order the joints are in.

    ``permutation``: ``joints_spec = joints[:, permutation]``; ``order``: 'spec', 'mano',
    'keypointfusion' or 'other'; ``root_index``: where the wrist is in the data; ``cost``: batch
    cost of the winner (< PLAUSIBLE_COST is a hand); ``margin``: how much cheaper it is than the
    next hypothesis; ``agreement``: fraction of samples whose own best hypothesis is the winner;
    ``chirality``: 'right' or 'left' palm; ``known_costs``: batch cost of each known order.
    """

    order: str
    permutation: tuple[int, ...]
    cost: float
    margin: float
    agreement: float
    chirality: str
    root_index: int
    searched: bool
    known_costs: dict[str, float] = field(default_factory=dict)
    samples_used: int = 0

    @property
    def plausible(self) -> bool:
        return self.cost < PLAUSIBLE_COST


def name_of(permutation: tuple[int, ...] | list[int]) -> str:
    """'spec', 'mano', 'keypointfusion' (or a known mapping bug's name, see
    ``joints.MISREAD_ORDERS``) for a known permutation, else 'other'."""
    perm = tuple(int(p) for p in permutation)
    for name, known in CANDIDATE_ORDERS.items():
        if perm == tuple(known):
            return name
    return "other"


def identify_joint_order(
    joints: np.ndarray, valid: np.ndarray | None = None, search: bool = True
) -> JointOrderResult:
    """Identify the order of ``joints`` (B, 21, 3) (any units, frame, rotation, size, curl).

    ``valid`` (B,) selects the samples to use (e.g. those with every joint annotated). The known
    orders are scored first; when none is a plausible hand (or ``search`` asks for it anyway and
    none is), template ICP and swap descent look for the best permutation.
    """
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if valid is not None and np.any(valid):
        x = x[np.asarray(valid, dtype=bool)]
    names = list(CANDIDATE_ORDERS)
    known = np.array([CANDIDATE_ORDERS[n] for n in names])
    costs, per_sample = batch_cost(x, known)
    known_costs = {n: float(c) for n, c in zip(names, costs)}
    candidates = known
    best = int(np.argmin(costs))
    searched = False
    if search and costs[best] >= PLAUSIBLE_COST:
        searched = True
        pick = np.linspace(0, len(x) - 1, min(MAX_SEARCH_SAMPLES, len(x))).round().astype(int)
        extra = np.concatenate([known] + [_structural_candidates(x[b]) for b in pick])
        extra = np.unique(extra, axis=0)
        ext_costs, _ = batch_cost(x, extra)
        sub = x[: min(MAX_SWAP_SAMPLES, len(x))]
        top = extra[np.argsort(ext_costs)[:2]]
        refined = [_swap_descent(sub, p, float(batch_cost(sub, p[None])[0][0])) for p in top]
        extra = np.concatenate([extra, np.array([p for p, _ in refined])])
        candidates = np.unique(np.concatenate([known, extra]), axis=0)
        costs, per_sample = batch_cost(x, candidates)
        best = int(np.argmin(costs))
        # data follow a known convention far more often than not: prefer one that is nearly as good
        known_rows = [int(np.flatnonzero((candidates == k).all(1))[0]) for k in known]
        best_known = min(known_rows, key=lambda row: costs[row])
        if costs[best_known] - costs[best] < CLEAR_MARGIN:
            best = best_known
    perm = tuple(int(p) for p in candidates[best])
    others = np.delete(costs, best)
    margin = float(others.min() - costs[best]) if len(others) else float("inf")
    agreement = float((per_sample.argmin(0) == best).mean())
    chir = hand_cost(x[:, list(perm)]).chirality
    return JointOrderResult(
        order=name_of(perm),
        permutation=perm,
        cost=float(costs[best]),
        margin=margin,
        agreement=agreement,
        chirality="right" if chir.sum() >= 0 else "left",
        root_index=perm[0],
        searched=searched,
        known_costs=known_costs,
        samples_used=len(x),
    )
