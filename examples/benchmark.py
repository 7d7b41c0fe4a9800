"""Speed of grad-flow against a plain training step, of ``utnet-diag --help`` and ``gate``
against their import floors, of ``parse-log`` against a regex loop, and of ``scan``.

Prints, on the embedded default (reference UTNet, synthetic batch of 16):
- a plain training step (forward, total loss, backward) and ``grad_flow`` timed in one run, and
  their ratio (target: at most 1.3x); the same with ``exact=True``;
- ``utnet-diag --help`` wall time against ``python -c "import torch"`` (target: at most 1/4);
- an annotation-only ``scan`` of a synthetic 2,000-frame HO3D tree against a bare unpickling
  loop, without and with torch imported (``examples/bench_scan.py``; targets: 1 process at most
  1.25x, ``--workers 2`` at most 1x).

Run: ``python examples/benchmark.py [--device cpu|cuda] [--repeats 7] [--batch-size 16]
[--threads N] [--skip-cli] [--model-preset tiny|small]``. On a machine shared with other jobs,
``--threads 1`` gives steadier numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def _median_time(fn, repeats: int, sync) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _wall(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--skip-cli", action="store_true", help="skip the --help timing")
    parser.add_argument(
        "--model-preset",
        default="tiny",
        help="reference model size: tiny (the embedded default) or small (ViT-Ti trunk, 128x96)",
    )
    args = parser.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from utnet_diag.diagnostics.grad_flow import grad_flow
    from utnet_diag.diagnostics.runner import load_inputs
    from utnet_diag.losses import compute_terms
    from utnet_diag.model.reference import ReferenceConfig
    from utnet_diag.synthetic.sample import make_sample_batch

    config = ReferenceConfig.preset(args.model_preset)
    size = tuple(config.img_size)
    batch = make_sample_batch(args.batch_size, seed=0, image_size=size)
    model = None
    if args.model_preset != "tiny":
        from utnet_diag.mano import ManoLayer
        from utnet_diag.model.reference import build_reference
        from utnet_diag.model.sources import LoadedModel

        net = build_reference(config, mano=ManoLayer(), seed=0)
        model = LoadedModel(model=net, device=torch.device("cpu"),
                            source=f"reference UTNet ({config.name}, random init, seed 0)")  # fmt: skip
    inputs = load_inputs(batch=batch, device=args.device, model=model)
    loaded, weights = inputs.loaded, inputs.config.weights
    device = inputs.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    params = [p for p in loaded.model.parameters() if p.requires_grad]

    def plain_step() -> None:
        loaded.model.train()
        outputs = loaded.forward(inputs.batch)
        total = compute_terms(outputs, inputs.batch, weights).total
        total.backward()
        for p in params:
            p.grad = None

    def diag(exact: bool):
        return lambda: grad_flow(loaded, inputs.batch, exact=exact)

    for fn in (plain_step, diag(False), diag(True)):  # warm-up
        fn()
    torch.set_num_threads(torch.get_num_threads())
    print(f"device {device}, batch {args.batch_size}, torch threads {torch.get_num_threads()},"
          f" model {loaded.source}")  # fmt: skip
    # Interleave the measurements so drifts in machine load hit both alike.
    plain_times, flow_times, exact_times = [], [], []
    for _ in range(args.repeats):
        plain_times.append(_median_time(plain_step, 1, sync))
        flow_times.append(_median_time(diag(False), 1, sync))
        exact_times.append(_median_time(diag(True), 1, sync))
    # The minimum is the run least disturbed by other processes; the median is shown beside it.
    # Ratios: of the minima, of the medians, and the median of each repeat's own ratio (the plain
    # step and grad_flow timed back to back, so both saw about the same machine load).
    rows = [("plain training step", plain_times), ("grad_flow", flow_times),
            ("grad_flow --exact", exact_times)]  # fmt: skip
    plain, plain_median = min(plain_times), statistics.median(plain_times)
    for label, times in rows:
        best, median = min(times), statistics.median(times)
        line = f"{label:22s} {best * 1e3:7.1f} ms min, {median * 1e3:7.1f} ms median"
        if times is not plain_times:
            paired = statistics.median(t / p for t, p in zip(times, plain_times))
            line += (f"   ratio {best / plain:4.2f}x min, {median / plain_median:4.2f}x median,"
                     f" {paired:4.2f}x paired")  # fmt: skip
        if times is flow_times:
            line += " (target <= 1.3x)"
        print(line)

    if args.skip_cli:
        return
    repeats = max(3, args.repeats // 2)
    help_s = _wall([sys.executable, "-m", "utnet_diag", "--help"], repeats)
    torch_s = _wall([sys.executable, "-c", "import torch"], repeats)
    python_s = _wall([sys.executable, "-c", "pass"], repeats)
    print(f"utnet-diag --help          {help_s * 1e3:8.1f} ms")
    print(f"python -c 'import torch'   {torch_s * 1e3:8.1f} ms   ratio {help_s / torch_s:5.2f}"
          " (target <= 0.25)")  # fmt: skip
    print(f"python -c 'pass'           {python_s * 1e3:8.1f} ms   (interpreter start-up)")
    bench_gate(max(15, args.repeats))
    bench_parse_log(max(5, args.repeats // 3))


def _child_cpu(cmd: list[str], env: dict[str, str]) -> float:
    """User + system CPU seconds of one child process."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def bench_gate(repeats: int = 15) -> None:
    """``utnet-diag gate`` on the embedded default against ``python -c "import torch, smplx"``:
    whole-process CPU time, one torch thread, paired per repeat (target: at most 1.5x)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    floor, gate = [], []
    for _ in range(repeats):
        floor.append(_child_cpu([sys.executable, "-c", "import torch, smplx"], env))
        gate.append(_child_cpu([sys.executable, "-m", "utnet_diag", "gate", "-q"], env))
    paired = statistics.median(g / f for g, f in zip(gate, floor))
    print(f"python -c 'import torch, smplx' {statistics.median(floor):6.2f} s CPU median")
    print(f"utnet-diag gate                 {statistics.median(gate):6.2f} s CPU median"
          f"   ratio {paired:4.2f}x paired (target <= 1.5x)")  # fmt: skip


# ---- scan (issue 6): annotation-only dataset scan against a bare unpickling loop ----------------
def bench_scan(frames: int = 2000, workers: int = 2, repeats: int = 11) -> None:
    """Scan of a synthetic ``frames``-frame HO3D tree, annotations only, against a bare loop that
    only unpickles the meta files (targets: 1 process <= 1.25x, --workers 2 <= 1x); see
    examples/bench_scan.py. Run in child processes, on one tree: first without torch imported,
    as ``utnet-diag scan --no-images`` runs (this process has imported it for the sections
    above), then with it imported, as a Python user's process may have it."""
    import tempfile

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_scan.py")
    with tempfile.TemporaryDirectory() as scratch:
        root = os.path.join(scratch, "ho3d")
        args = ["--frames", str(frames), "--workers", str(workers), "--repeats", str(repeats),
                "--root", root]  # fmt: skip
        subprocess.run([sys.executable, script, *args], check=True)
        subprocess.run([sys.executable, script, *args, "--import-torch"], check=True)


# A minimal regex loop over a log: the floor parse-log is measured against.
_LOG_FLOOR = r"""
import re, sys
header = re.compile(rb"\[Epoch (\d+), Iter (\d+)\] Loss breakdown")
term = re.compile(rb"\s*([A-Za-z0-9 ()]+): ([-+0-9.eE]+|nan|inf)")
blocks, values = 0, []
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        if header.search(line):
            blocks += 1
            continue
        found = term.match(line)
        if found:
            values.append(float(found.group(2)))
print(blocks, len(values))
"""


def _write_log(path: str, megabytes: int = 100) -> None:
    """A training log of canonical blocks with a tqdm line after every third one."""
    with open(path, "w") as handle:
        i = 0
        while handle.tell() < megabytes << 20:
            epoch, step = divmod(i, 500)
            handle.write(
                f"[Epoch {epoch}, Iter {step * 10}] Loss breakdown:\n"
                f"  2D keypoint loss: {334.8 + i % 7:.4f}\n  3D joint loss: {73632.9 - i % 11:.4f}\n"
                f"  Prior loss (shape): 70.4138\n  Aux loss: 0.0000\n"
                f"  Total loss: {3826.626 + i % 5:.4f}\n"
            )
            if i % 3 == 0:
                handle.write(
                    f"Epoch {epoch}:  45%|####5     | {step}/500 [00:10<00:12, 4.00it/s]\n"
                )
            i += 1


def bench_parse_log(repeats: int = 5) -> None:
    """``utnet-diag parse-log`` on a 100 MB log against a minimal regex loop over it:
    whole-process CPU time, paired per repeat (target: at most 1.5x)."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        log = os.path.join(scratch, "train.log")
        _write_log(log)
        floor, tool = [], []
        for _ in range(repeats):
            floor.append(_child_cpu([sys.executable, "-c", _LOG_FLOOR, log], dict(os.environ)))
            tool.append(_child_cpu([sys.executable, "-m", "utnet_diag", "parse-log", log, "-q"],
                                   dict(os.environ)))  # fmt: skip
    paired = statistics.median(t / f for t, f in zip(tool, floor))
    print(f"regex loop over a 100 MB log    {statistics.median(floor):6.2f} s CPU median")
    print(f"utnet-diag parse-log            {statistics.median(tool):6.2f} s CPU median"
          f"   ratio {paired:4.2f}x paired (target <= 1.5x)")  # fmt: skip


if __name__ == "__main__":
    main()
    bench_scan()
