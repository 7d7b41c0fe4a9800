"""``convert-mano`` and ``mano-info``: a chumpy-free MANO pickle, verified with smplx itself.

``convert_mano(IN, OUT)`` loads the official model with the restricted unpickler, serialises the
same keys as plain numpy arrays/strings, checks that the bytes reference numpy only, loads them
back through ``smplx.MANO(model_path=...)`` exactly as user code would (its own plain
``pickle.load``), compares vertices and joints with the in-memory model on fixed poses, and only
then writes OUT atomically. ``mano_info(PKL)`` reports keys, shapes and the model's invariants.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from utnet_diag.checks.engine import CheckContext, CheckRegistry, Outcome, run_checks
from utnet_diag.errors import InputError
from utnet_diag.io.files import write_bytes_atomic
from utnet_diag.io.safe_pickle import NUMPY_GLOBALS, restricted_load
from utnet_diag.joints import MANO_PARENTS, MANO_TIP_VERTICES
from utnet_diag.mano.data import resolve_mano_path
from utnet_diag.mano.official import load_mano_file
from utnet_diag.report.result import Report
from utnet_diag.report.sections import ManoSection

MANO_CHECKS = CheckRegistry("mano")
ROUNDTRIP_TOLERANCE_MM = 1e-3
REST_SIZE_MM = (60.0, 130.0)  # wrist to middle-finger base at rest (adult: about 80-100 mm)
_SIDE_HINT = "smplx.MANO(model_path=<file>) sets is_rhand from 'RIGHT' in the file name"


class _Inert:
    """Stands in for any global while listing a pickle's globals; it runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def pickle_globals(data: bytes) -> list[str]:
    """The ``module.name`` globals a pickle references; non-numpy ones are never resolved."""

    found: set[str] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            found.add(f"{module}.{name}")
            return NUMPY_GLOBALS.get((module, name), _Inert)

        def persistent_load(self, pid: Any) -> Any:
            found.add("<persistent id>")
            return None

    # An inert stand-in may break a numpy call; the names recorded so far are what we want.
    with contextlib.suppress(Exception):
        Recorder(io.BytesIO(data), encoding="latin1").load()
    return sorted(found)


def _reference_poses(batch: int = 6) -> tuple[Any, Any, Any]:
    """Fixed test poses: rest, then seeded axis-angle poses and shapes (rad, betas)."""
    import torch

    generator = torch.Generator().manual_seed(1234)
    global_orient = torch.randn(batch, 3, generator=generator) * 0.5
    hand_pose = torch.randn(batch, 45, generator=generator) * 0.4
    betas = torch.randn(batch, 10, generator=generator)
    global_orient[0], hand_pose[0], betas[0] = 0.0, 0.0, 0.0
    return global_orient, hand_pose, betas


def _smplx_outputs(model_file: Path, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and 16 joints (mm) from ``smplx.MANO`` loading ``model_file`` by itself."""
    import smplx
    import torch

    global_orient, hand_pose, betas = _reference_poses()
    with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning on stdout
        model = smplx.MANO(
            model_path=str(model_file),
            is_rhand=side == "right",
            use_pca=False,
            flat_hand_mean=True,
            batch_size=global_orient.shape[0],
        )
    with torch.no_grad():
        out = model(betas=betas, global_orient=global_orient, hand_pose=hand_pose)
    return out.vertices.numpy() * 1000.0, out.joints.numpy() * 1000.0


def _layer_outputs(data: dict[str, Any], side: str) -> tuple[np.ndarray, np.ndarray]:
    import torch

    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.mano.layer import ManoLayer

    layer = ManoLayer(data=data, side=side, flat_hand_mean=True)
    with torch.no_grad():
        out = layer(*_reference_poses())
    return out.vertices.numpy(), out.joints_mano.numpy()


@MANO_CHECKS.check(
    "mano_plain_arrays",
    hint="the converted file must reference numpy only, so plain pickle.load works without chumpy",
)
def check_plain_arrays(ctx: CheckContext) -> Outcome:
    """The converted pickle references numpy globals only (no chumpy, no scipy)."""

    data: bytes = ctx.extras["converted_bytes"]
    names = pickle_globals(data)
    allowed = {f"{m}.{n}" for m, n in NUMPY_GLOBALS}
    foreign = [n for n in names if n not in allowed]
    if foreign:
        return Outcome.fail(f"converted pickle still references {', '.join(foreign)}", foreign)
    restricted_load(data, NUMPY_GLOBALS, what="converted MANO pickle")
    return Outcome.ok(
        f"plain arrays only ({len(data) / 1e6:.1f} MB; globals: {', '.join(names)})", len(names)
    )


@MANO_CHECKS.check(
    "mano_smplx_roundtrip",
    requires=("mano_plain_arrays",),
    hint="the converted file does not reproduce the model; report this with the input file's md5",
)
def check_smplx_roundtrip(ctx: CheckContext) -> Outcome:
    """smplx.MANO loading the converted file gives the same vertices and joints (6 poses)."""
    side = ctx.extras["side"]
    with tempfile.TemporaryDirectory(prefix="utnet-diag-mano-") as tmp:
        path = Path(tmp) / f"MANO_{side.upper()}.pkl"
        path.write_bytes(ctx.extras["converted_bytes"])
        vertices, joints = _smplx_outputs(path, side)
    ref_vertices, ref_joints = _layer_outputs(ctx.extras["data"], side)
    dv = float(np.abs(vertices - ref_vertices).max())
    dj = float(np.abs(joints - ref_joints).max())
    worst = max(dv, dj)
    details = {"max_vertex_diff_mm": dv, "max_joint_diff_mm": dj, "poses": len(vertices)}
    message = (
        f"smplx.MANO on the converted file vs the original: max vertex diff {dv:.2e} mm,"
        f" max joint diff {dj:.2e} mm over {len(vertices)} poses"
    )
    if worst > ROUNDTRIP_TOLERANCE_MM or not np.isfinite(worst):
        return Outcome.fail(message, worst, ROUNDTRIP_TOLERANCE_MM, details=details)
    return Outcome.ok(message, worst, ROUNDTRIP_TOLERANCE_MM, details=details)


@MANO_CHECKS.check("mano_file_name", hint=_SIDE_HINT)
def check_file_name(ctx: CheckContext) -> Outcome:
    """The output name says the side (smplx reads RIGHT/LEFT from it)."""
    name = Path(ctx.extras["output"]).name
    side = ctx.extras["side"].upper()
    if name != f"MANO_{side}.pkl":
        found = "RIGHT" if "RIGHT" in name else ("LEFT" if "LEFT" in name else None)
        if found != side:
            return Outcome.warn(
                f"output '{name}' does not contain {side}: smplx.MANO(model_path=file) will"
                f" treat it as a {'right' if found == 'RIGHT' else 'left'} hand, and"
                f" smplx.create(dir, 'mano') only finds mano/MANO_{side}.pkl"
            )
        return Outcome.ok(f"'{name}' names the {side.lower()} hand")
    return Outcome.ok(f"'{name}' is the name smplx.create looks for (in <dir>/mano/)")


@MANO_CHECKS.check("mano_invariants", hint="the model arrays are inconsistent; re-download MANO")
def check_invariants(ctx: CheckContext) -> Outcome:
    """J_regressor and skinning-weight rows sum to 1; the kinematic tree is MANO's."""
    data = ctx.extras["data"]
    reg_rows = np.asarray(data["J_regressor"]).sum(axis=1)
    weight_rows = np.asarray(data["weights"]).sum(axis=1)
    parents = [int(p) for p in np.asarray(data["kintree_table"])[0][1:]]
    problems = []
    worst_reg = float(np.abs(reg_rows - 1).max())
    worst_w = float(np.abs(weight_rows - 1).max())
    if worst_reg > 1e-4:
        problems.append(f"J_regressor row {int(np.abs(reg_rows - 1).argmax())} sums to"
                        f" {reg_rows[np.abs(reg_rows - 1).argmax()]:.4f}")  # fmt: skip
    if worst_w > 1e-4:
        problems.append(f"skinning weights of vertex {int(np.abs(weight_rows - 1).argmax())}"
                        f" sum to {weight_rows[np.abs(weight_rows - 1).argmax()]:.4f}")  # fmt: skip
    if parents != list(MANO_PARENTS[1:]):
        problems.append(f"kintree parents {parents} are not MANO's {list(MANO_PARENTS[1:])}")
    if problems:
        return Outcome.fail("; ".join(problems), max(worst_reg, worst_w), 1e-4)
    return Outcome.ok(
        "J_regressor and weight rows sum to 1; kinematic tree is MANO's",
        max(worst_reg, worst_w),
        1e-4,
    )


@MANO_CHECKS.check("mano_rest_size", hint="MANO is in metres; a hand about 9 cm wrist to knuckles")
def check_rest_size(ctx: CheckContext) -> Outcome:
    """Rest hand size: wrist to middle-finger base in mm (adult: about 80-100)."""
    data = ctx.extras["data"]
    joints = np.asarray(data["J_regressor"]) @ np.asarray(data["v_template"])
    size = float(np.linalg.norm(joints[4] - joints[0]) * 1000.0)
    message = f"wrist to middle1 {size:.1f} mm at rest (units: metres in the file)"
    lo, hi = REST_SIZE_MM
    if not lo <= size <= hi:
        return Outcome.warn(message + f"; outside {lo:g}-{hi:g} mm", size, [lo, hi])
    return Outcome.ok(message, size, [lo, hi])


def _summary(data: dict[str, Any], info: dict[str, Any], side: str) -> ManoSection:
    shapes = {k: list(np.shape(v)) for k, v in data.items() if isinstance(v, np.ndarray)}
    v = np.asarray(data["v_template"])
    return ManoSection(
        input=info["path"],
        side=side,
        keys=sorted(data),
        shapes=shapes,
        converted_objects=info["converted"],
        dropped_keys=info.get("dropped", {}),
        tip_vertices={"thumb": 744, "index": 320, "middle": 443, "ring": 554, "pinky": 671},
        tip_positions_mm=(v[list(MANO_TIP_VERTICES)] * 1000.0).round(1).tolist(),
    )


def _side_of(path: Path, side: str | None) -> str:
    if side is not None:
        return side
    return "left" if "LEFT" in path.name.upper() else "right"


def mano_info(path: str | Path, side: str | None = None) -> Report:
    """Keys, shapes, converted chumpy objects, and invariants of a MANO file (nothing written)."""

    file = resolve_mano_path(path, side or "right")
    side = _side_of(file, side)
    data, info = load_mano_file(file)
    ctx = CheckContext(extras={"data": data, "side": side})
    specs = [s for s in MANO_CHECKS.specs if s.id in ("mano_invariants", "mano_rest_size")]
    checks = run_checks(specs, ctx)
    return Report("mano-info", checks, {"mano": _summary(data, info, side)})


def convert_mano(in_path: str | Path, out_path: str | Path, side: str | None = None) -> Report:
    """Write the MANO model at ``in_path`` as a chumpy-free pickle of plain arrays at ``out_path``.

    ``out_path`` may be a folder (an existing one, or a new path without a suffix): the file is
    then ``<folder>/MANO_<SIDE>.pkl``; missing folders are created (once the checks pass). The output is written only when every check passes (numpy-only globals; smplx reproduces the vertices and
    joints within 1e-3 mm); the input is never modified.
    """

    source = resolve_mano_path(in_path, side or "right")
    side = _side_of(source, side)
    target = Path(out_path)
    if target.is_dir() or (not target.exists() and not target.suffix):  # a folder (made if new)
        target = target / f"MANO_{side.upper()}.pkl"
    if target.suffix.lower() != ".pkl":
        raise InputError(
            f"output '{target.name}' must end in .pkl", hint="smplx loads MANO from .pkl files"
        )
    if target.parent.exists() and not target.parent.is_dir():
        raise InputError("the output's folder is a file", path=str(target.parent))
    if target.exists() and target.resolve() == source.resolve():
        raise InputError(
            "output is the input file; input files are never modified", path=str(target)
        )
    data, info = load_mano_file(source)
    plain = {k: (np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v)
             for k, v in data.items()}  # fmt: skip
    converted_bytes = pickle.dumps(plain, protocol=4)
    ctx = CheckContext(
        extras={"data": data, "side": side, "converted_bytes": converted_bytes, "output": target}
    )
    checks = run_checks(MANO_CHECKS.specs, ctx)
    summary = replace(_summary(data, info, side), output=str(target))
    report = Report("convert-mano", checks, {"mano": summary})
    if report.failed("fail"):
        report.sections["mano"] = replace(summary, written=False)
        return report
    try:  # smplx.create(DIR, 'mano') reads DIR/mano/MANO_RIGHT.pkl: make the folders it needs
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"cannot create the output folder: {err.strerror}", path=str(target.parent)
        ) from None
    write_bytes_atomic(target, converted_bytes)
    report.sections["mano"] = replace(summary, written=True, smplx_create=(
        f"smplx.create('{target.parent.parent}', 'mano') loads it"
        if target.parent.name == "mano" and target.name == f"MANO_{side.upper()}.pkl"
        else f"smplx.create(DIR, 'mano') expects DIR/mano/MANO_{side.upper()}.pkl"
    ))  # fmt: skip
    return report
