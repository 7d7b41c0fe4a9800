"""Sharding a scan over torchrun processes with torch.distributed.

``torchrun --nproc-per-node N -m utnet_diag scan ...`` sets ``RANK``/``WORLD_SIZE``; each rank
scans the samples with ``index % WORLD_SIZE == RANK`` and the findings are gathered with
``all_gather_object`` (gloo on CPU, nccl when every rank has its own GPU). Every rank then holds
the same merged result; only rank 0 prints and writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from utnet_diag.datasets.checks import finding_sort_key
from utnet_diag.datasets.sink import FindingSink


@dataclass(frozen=True)
class DistContext:
    """This process's place in a torchrun job."""

    rank: int
    world_size: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    """WORLD_SIZE from the environment (1 outside torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def init_from_env(device: str = "auto") -> DistContext | None:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; None for a single process.

    The backend is nccl when ``device`` resolves to CUDA, else gloo. Findings are small Python
    objects, so gloo on CPU is the default and always works.
    """
    if env_world_size() <= 1:
        return None
    import torch
    import torch.distributed as dist

    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.device import resolve_device

    backend = "gloo"
    if resolve_device(device).type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), backend)


def shutdown(ctx: DistContext | None) -> None:
    """Leave the process group (after the last collective)."""
    if ctx is None:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def gather_sinks(
    ctx: DistContext, sink: Any, done: int, interrupted: bool
) -> tuple[Any, int, bool]:
    """Merge every rank's FindingSink: counts summed, the first ``cap`` findings per check in
    (sample, check) order kept. Returns (merged sink, samples done in all, any rank interrupted).
    """
    import torch.distributed as dist

    mine = {"counts": sink.counts, "kept": sink.kept, "done": done, "interrupted": interrupted,
            "evaluated": sink.evaluated}  # fmt: skip
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, mine)
    merged = FindingSink(sink.cap, None)
    total_done = 0
    any_interrupted = False
    for part in gathered:
        total_done += part["done"]
        any_interrupted = any_interrupted or part["interrupted"]
        merged.add_evaluated(part["evaluated"])
        for check, by_severity in part["counts"].items():
            into = merged.counts.setdefault(check, {})
            for severity, n in by_severity.items():
                into[severity] = into.get(severity, 0) + n
    for check in merged.counts:
        pooled = [f for part in gathered for f in part["kept"].get(check, [])]
        merged.kept[check] = sorted(pooled, key=finding_sort_key)[: sink.cap]
    return merged, total_done, any_interrupted
