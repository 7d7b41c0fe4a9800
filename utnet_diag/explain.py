"""``utnet-diag explain ID``: what a check does, the spec's advice, and the check run live on an
input with its fault planted (the way ``ruff rule`` shows an example).

The examples are the synthetic faults the tests plant (:mod:`utnet_diag.synthetic`): a clean
procedural batch of 8 right hands, changed in one known way, run through check-batch. Checks that
read a model run, a training log, a dataset tree or a MANO file have no built-in example; the
explanation says which input they read instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from utnet_diag.catalog import CatalogEntry, lookup, registries
from utnet_diag.diagnostics.check_batch import check_batch
from utnet_diag.report.result import CheckResult
from utnet_diag.synthetic.faults_convention import (
    move_root,
    opengl_frame,
    permute_joints,
    rotate_2d,
)
from utnet_diag.synthetic.skeleton import make_skeleton_batch, plant_fault

# family -> the input its checks read (for the checks without an example)
READS = {
    "batch": "a batch", "convention": "a batch", "loader": "your Dataset (check-batch --loader)",
    "model": "a checkpoint and the model it is loaded into",
    "loss": "one forward pass of the model (loss-breakdown, gate)",
    "prediction": "the model's outputs (loss-breakdown, gate)",
    "prediction convention": "the model's outputs (loss-breakdown, gate)",
    "grad": "one backward pass (grad-flow, gate)", "overfit": "an overfit run",
    "step": "one backward pass and the config's optimizer: section (grad-flow, gate)",
    "amp": "the step again under autocast (--amp on loss-breakdown, grad-flow, gate)",
    "compare": "two checkpoints on one batch", "log": "a training log (parse-log)",
    "dataset": "a dataset tree (scan, check-batch --dataset)",
    "mano": "a MANO file (convert-mano, mano-info)",
    "eval": "a prediction file and its ground truth (eval)",
}  # fmt: skip


def _skeleton_fault(name: str) -> Callable[[], dict[str, Any]]:
    def make() -> dict[str, Any]:
        return plant_fault(make_skeleton_batch(8, seed=0), name)

    return make


def _convention(fault: Callable[[Any], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    def make() -> dict[str, Any]:
        return fault(make_skeleton_batch(8, seed=0))

    return make


def _permuted(batch: Any) -> dict[str, Any]:
    return permute_joints(batch, "mano")


def _root_moved(batch: Any) -> dict[str, Any]:
    return move_root(batch, 9)


def _opengl(batch: Any) -> dict[str, Any]:
    return opengl_frame(batch)


def _rotated(batch: Any) -> dict[str, Any]:
    return rotate_2d(batch, [2, 5], 90.0)


# check id -> (the fault in words, a function returning the batch with it planted)
EXAMPLES: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "finite": ("one keypoints_3d value is NaN", _skeleton_fault("nan_kp3d")),
    "conf_range": ("keypoint confidences outside [0, 1]", _skeleton_fault("conf_out_of_range")),
    "kp2d_range": ("keypoints_2d in pixels of a 256 crop", _skeleton_fault("kp2d_pixels")),
    "kp3d_units": ("keypoints_3d in metres", _skeleton_fault("kp3d_metres")),
    "image_range": ("rgb in 0..255, not normalized", _skeleton_fault("rgb_0_255")),
    "mano_pose": ("mano_pose in degrees", _skeleton_fault("mano_pose_degrees")),
    "mano_shape": ("betas 40 times too large", _skeleton_fault("betas_huge")),
    "joint_order": ("joints stored in MANO's order (16 + tips)", _convention(_permuted)),
    "root_index": ("the wrist stored at index 9", _convention(_root_moved)),
    "coord_frame": ("3D in OpenGL axes (y up, looking down -z)", _convention(_opengl)),
    "kp2d_kp3d_consistency": (
        "2D of samples 2 and 5 rotated 90 degrees (an augmentation that left the 3D)",
        _convention(_rotated),
    ),
}


@dataclass(frozen=True)
class Explanation:
    """A check's catalog entry, its full docstring, and (when the tool has one) an example: the
    planted fault in words and the check's result on it."""

    entry: CatalogEntry
    doc: str
    reads: str
    example_fault: str | None = None
    example: CheckResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.entry.to_dict(),
            "doc": self.doc,
            "reads": self.reads,
            "example": None
            if self.example is None
            else {"fault": self.example_fault, "result": self.example.to_dict()},
        }


def _doc(check_id: str) -> str:
    for registry in registries():
        for spec in registry:
            if spec.id == check_id:
                fn = spec.fn or spec.rows
                doc = inspect.getdoc(fn) if fn is not None else None
                if not doc:
                    return spec.description
                # one line a paragraph: the terminal wraps it to its width
                return "\n\n".join(" ".join(par.split()) for par in doc.split("\n\n"))
    return ""


def explain(check_id: str) -> Explanation:
    """What ``check_id`` checks, what to do when it fires, and its result on a planted fault.
    Unknown ids -> InputError with the nearest id."""
    entry = lookup(check_id)
    reads = " and ".join(dict.fromkeys(READS.get(f, f) for f in entry.families))
    if entry.id not in EXAMPLES:
        return Explanation(entry, _doc(entry.id), reads)
    fault, make = EXAMPLES[entry.id]
    result = check_batch(make()).check(entry.id)
    return Explanation(entry, _doc(entry.id), reads, fault, result)
