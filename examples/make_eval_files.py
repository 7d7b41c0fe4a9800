"""Write benchmark-style files of synthetic hands to try ``utnet-diag eval`` on.

    python examples/make_eval_files.py evalfiles

FreiHAND layout: ``freihand_gt/evaluation_xyz.json`` + ``evaluation_verts.json`` (metres, OpenCV
frame, spec order), ``pred.json`` (a good prediction, 4 mm noise per coordinate) and
``pred_mm_mano.json`` (the same prediction written in millimetres and MANO's joint order).
DexYCB layout: ``dexycb_gt.txt`` and ``dexycb_res.txt`` (image id + 63 numbers, mm).
"""

from __future__ import annotations

import sys
from pathlib import Path

from utnet_diag.joints import MANO_TO_SPEC, invert
from utnet_diag.synthetic.benchmark_files import (
    hands,
    mesh,
    noisy,
    write_gt_folder,
    write_lines,
    write_pred,
)


def main(out: Path, samples: int = 200) -> None:
    out.mkdir(parents=True, exist_ok=True)
    xyz = hands(samples, seed=0)
    verts = mesh(xyz)
    write_gt_folder(out / "freihand_gt", xyz, verts)
    pred, pred_verts = noisy(xyz, seed=1), noisy(verts, seed=2)
    write_pred(out / "pred.json", pred, pred_verts)
    write_pred(
        out / "pred_mm_mano.json", pred[:, list(invert(MANO_TO_SPEC))] * 1000, pred_verts * 1000
    )
    ids = range(1000, 1000 + samples)
    write_lines(out / "dexycb_gt.txt", ids, xyz * 1000)
    write_lines(out / "dexycb_res.txt", ids, pred * 1000)
    print(f"wrote {samples} samples to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "evalfiles"))
