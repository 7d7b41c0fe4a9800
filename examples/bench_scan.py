"""Speed of ``scan`` (annotations only) against a bare loop that only unpickles HO3D meta files.

Writes a synthetic HO3D tree of ``--frames`` frames (meta files only: an annotation-only scan
never opens the images), then times in one run, interleaved, median of ``--repeats``:
- the bare loop: ``pickle.load(f, encoding='latin1')`` on every meta file (plain pickle on files
  this script wrote itself; the tool never does that on user data);
- ``scan_dataset(..., images=False)`` with one process (target: at most 1.25x the bare loop);
- the same with ``--workers`` worker processes (target: at most the bare loop).

The timings run in a process that has not imported torch, as ``utnet-diag scan --no-images``
never does (the tree is written by a child process, since the synthetic writer needs torch).
``--import-torch`` imports it first, as a Python user's process may have: forking such a
process costs more (its page tables are larger), which the ``--workers`` line then shows.

Besides wall time it prints the CPU time of the main process and of the worker processes
(``RUSAGE_CHILDREN``, read once the scan's reaper thread has waited for them): on a machine
shared with other jobs, wall time says how much CPU the scheduler gave, CPU time how much work
each variant did.

Run: ``python examples/bench_scan.py [--frames 2000] [--workers 2] [--repeats 5] [--root DIR]
[--import-torch]``. ``examples/benchmark.py`` runs it, without and with torch imported.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time

WRITE_TREE = """
import sys
from utnet_diag.synthetic.trees import write_ho3d_tree
root, frames = sys.argv[1], int(sys.argv[2])
per_sequence = 100
names = [f"SEQ{k:03d}" for k in range(-(-frames // per_sequence))]
write_ho3d_tree(root, sequences=names, frames_per_sequence=per_sequence, images=False,
                faults={"nan_joints": [7], "huge_betas": [1234 % frames]})
"""


def bare_unpickle_loop(root: str, split: str = "train") -> int:
    """Unpickle every meta file listed in ``<root>/<split>.txt``; returns the count."""
    with open(os.path.join(root, f"{split}.txt"), encoding="utf-8") as handle:
        pairs = [line.strip().split("/") for line in handle if line.strip()]
    for seq, frame in pairs:
        with open(os.path.join(root, split, seq, "meta", frame + ".pkl"), "rb") as meta:
            pickle.load(meta, encoding="latin1")
    return len(pairs)


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's reaped child processes so far."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _join_reapers() -> None:
    """Wait for the threads in which ``scan`` reaps its exiting workers."""
    import threading

    from utnet_diag.datasets.scan import REAPER_THREAD

    for thread in threading.enumerate():
        if thread.name == REAPER_THREAD:
            thread.join()


def bench_scan(frames: int = 2000, workers: int = 2, repeats: int = 5, root: str | None = None):
    """Print and return the bare-loop and scan timings (seconds) on a ``frames``-frame tree."""
    from utnet_diag.datasets.ho3d import HO3DReader
    from utnet_diag.datasets.scan import scan_dataset

    with tempfile.TemporaryDirectory() as scratch:
        root = root or os.path.join(scratch, "ho3d")
        if not os.path.isfile(os.path.join(root, "train.txt")):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", WRITE_TREE, root, str(frames)], check=True)
            print(f"wrote {len(HO3DReader(root))} HO3D meta files in "
                  f"{time.perf_counter() - start:.1f} s")  # fmt: skip

        def scan(n_workers: int):
            return lambda: scan_dataset(HO3DReader(root), images=False, workers=n_workers)

        runs = {"bare unpickle loop": lambda: bare_unpickle_loop(root),
                "scan, 1 process": scan(0),
                f"scan, --workers {workers}": scan(workers)}  # fmt: skip
        for fn in runs.values():  # warm the page cache and imports
            fn()
        times: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        child_cpu: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(repeats):  # interleaved, so load drifts hit all alike
            for name, fn in runs.items():
                start, start_cpu, start_children = (
                    time.perf_counter(), time.process_time(), _children_cpu()
                )  # fmt: skip
                fn()
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
                _join_reapers()  # workers' CPU counts once they are reaped (after the scan)
                child_cpu[name].append(_children_cpu() - start_children)
        medians = {name: statistics.median(t) for name, t in times.items()}
        cpu_medians = {name: statistics.median(t) for name, t in cpu.items()}
        child_medians = {name: statistics.median(t) for name, t in child_cpu.items()}
        count = len(HO3DReader(root))
        bare = medians["bare unpickle loop"]
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        torch_state = "torch imported" if "torch" in sys.modules else "torch not imported"
        print(f"scan benchmark: {count} HO3D frames, annotations only, median of {repeats} "
              f"(wall time; {os.cpu_count()} cores, load average {load:.1f}; {torch_state})")  # fmt: skip
        bare_cpu = cpu_medians["bare unpickle loop"]
        for name, seconds in medians.items():
            total_cpu = cpu_medians[name] + child_medians[name]
            where = f"main {cpu_medians[name] * 1000:.1f} + workers {child_medians[name] * 1000:.1f}" \
                if child_medians[name] else "main process"  # fmt: skip
            print(f"  {name:<24} {seconds * 1000:8.1f} ms  {count / seconds:9,.0f} frames/s"
                  f"  {seconds / bare:5.2f}x bare   CPU {total_cpu * 1000:6.1f} ms"
                  f" ({total_cpu / bare_cpu:4.2f}x; {where})")  # fmt: skip
        print(f"  targets: 1 process <= 1.25x bare, --workers {workers} <= 1.00x bare")
        return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", default=None, help="reuse (or create) the tree here")
    parser.add_argument("--import-torch", action="store_true",
                        help="import torch before timing (a Python user's process)")  # fmt: skip
    args = parser.parse_args()
    if args.import_torch:
        import torch  # noqa: F401
    bench_scan(args.frames, args.workers, args.repeats, args.root)


if __name__ == "__main__":
    main()
