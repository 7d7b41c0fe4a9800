"""Write small synthetic HO3D and DexYCB trees (real layouts and encodings), optionally with faults.

    python examples/make_synthetic_datasets.py OUT_DIR [--frames 8] [--faults] [--no-images]

Then try:

    utnet-diag scan --dataset ho3d --root OUT_DIR/HO3D_v3 --out findings.jsonl
    utnet-diag scan --dataset dexycb --root OUT_DIR/DexYCB
    utnet-diag check-batch --dataset ho3d --root OUT_DIR/HO3D_v3 --indices 0-3

With ``--faults`` every few frames carries one planted fault (NaN joint, millimetres stored as
metres, OpenGL axes not flipped, a pickle that would run a shell command, truncated images...);
the script prints which sample carries which, so you can compare with what ``scan`` reports.
"""

from __future__ import annotations

import argparse
import os

from utnet_diag.synthetic.trees import (
    DEXYCB_FAULTS,
    HO3D_FAULTS,
    write_dexycb_tree,
    write_ho3d_tree,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to create the trees in")
    parser.add_argument("--frames", type=int, default=8, help="frames per HO3D sequence")
    parser.add_argument("--faults", action="store_true", help="plant one fault per few frames")
    parser.add_argument("--no-images", action="store_true", help="annotations only")
    args = parser.parse_args()

    ho3d_count = 2 * args.frames
    ho3d_faults = (
        {name: [1 + k] for k, name in enumerate(HO3D_FAULTS) if 1 + k < ho3d_count}
        if args.faults
        else None
    )
    ho3d = write_ho3d_tree(
        os.path.join(args.out, "HO3D_v3"),
        sequences=("ABF10", "MC1"),
        frames_per_sequence=args.frames,
        images=not args.no_images,
        faults=ho3d_faults,
    )
    dex_faults = (
        {name: [1 + k] for k, name in enumerate(DEXYCB_FAULTS) if name != "huge_betas"}
        if args.faults
        else None
    )
    dex = write_dexycb_tree(
        os.path.join(args.out, "DexYCB"),
        num_frames=max(5, args.frames // 2),
        images=not args.no_images,
        faults=dex_faults,
    )
    for manifest in (ho3d, dex):
        print(f"{manifest.dataset}: {len(manifest.sample_ids)} frames at {manifest.root}")
        for fault, samples in manifest.faults.items():
            print(f"  {fault:<18} {', '.join(samples)}")


if __name__ == "__main__":
    main()
