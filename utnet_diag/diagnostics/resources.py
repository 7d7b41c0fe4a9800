"""Resource bounds: refuse a batch that cannot fit on the device, and turn out-of-memory errors
into one-line input errors that say the size and suggest ``--max-samples``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch

from utnet_diag.device import is_out_of_memory
from utnet_diag.errors import ResourceError
from utnet_diag.io.files import meminfo_available

# Inputs may take at most this share of the free memory: activations need the rest.
MAX_INPUT_SHARE = 0.5


def available_memory(device: torch.device) -> int | None:
    """Free bytes on ``device`` (CUDA: ``mem_get_info``; CPU: MemAvailable), or None if unknown."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return meminfo_available()


def tensor_bytes(tensors: Mapping[str, torch.Tensor]) -> int:
    """Bytes held by the tensors of a batch."""
    return sum(
        t.numel() * t.element_size() for t in tensors.values() if isinstance(t, torch.Tensor)
    )


def _suggest(batch_size: int) -> int:
    return max(1, batch_size // 4)


def check_batch_fits(
    tensors: Mapping[str, torch.Tensor], batch_size: int, device: torch.device
) -> None:
    """Raise ResourceError when the batch's inputs alone exceed half of the free device memory."""
    free = available_memory(device)
    size = tensor_bytes(tensors)
    if free is not None and size > MAX_INPUT_SHARE * free:
        raise ResourceError(
            f"a batch of {batch_size} samples holds {size / 2**20:.0f} MiB of inputs, too large for"
            f" {device} with {free / 2**20:.0f} MiB free",
            hint=f"pass --max-samples {_suggest(batch_size)} (or fewer)",
        )


@contextmanager
def out_of_memory_as_input_error(batch_size: int, device: torch.device) -> Iterator[None]:
    """Run a block; an out-of-memory error becomes a ResourceError naming the batch size."""
    try:
        yield
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise ResourceError(
            f"a batch of {batch_size} samples ran out of memory on {device}",
            hint=f"pass --max-samples {_suggest(batch_size)} (or fewer)",
        ) from None
