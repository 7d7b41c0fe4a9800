"""Write a clean procedural batch and one faulty batch per known fault, for trying check-batch.

    python examples/make_clean_batch.py --out batches/ --n 16
    utnet-diag check-batch batches/clean.pt            # exit 0
    utnet-diag check-batch batches/kp3d_metres.pt      # exit 1: kp3d_units fails

Each file is written atomically; what was written goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utnet_diag.io.batch import save_batch
from utnet_diag.synthetic.skeleton import FAULT_CHECK, FAULTS, make_skeleton_batch, plant_fault


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("batches"), help="output folder")
    parser.add_argument("--n", type=int, default=8, help="samples a batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=("pt", "npz"), default="pt")
    parser.add_argument(
        "--faults",
        default="all",
        help=f"comma-separated faults to plant, 'all' or 'none' (known: {', '.join(FAULTS)})",
    )
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be >= 1")
    if args.faults == "all":
        faults = list(FAULTS)
    elif args.faults == "none":
        faults = []
    else:
        faults = [f.strip() for f in args.faults.split(",") if f.strip()]
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            parser.error(f"unknown fault(s) {', '.join(unknown)}")
    args.out.mkdir(parents=True, exist_ok=True)
    clean = make_skeleton_batch(args.n, seed=args.seed)
    path = save_batch(clean, args.out / f"clean.{args.format}")
    print(f"wrote {path} ({args.n} clean samples)", file=sys.stderr)
    for fault in faults:
        path = save_batch(plant_fault(clean, fault), args.out / f"{fault}.{args.format}")
        print(
            f"wrote {path} (fault {fault}: check {FAULT_CHECK[fault]} must fail)", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
