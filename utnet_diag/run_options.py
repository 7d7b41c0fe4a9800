"""Which model, which batch, which config: the inputs every model command reads, in one frozen
object built once (by the CLI from its options, or from an API call's keywords) and handed on."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunOptions:
    """``checkpoint``: a checkpoint file (None: random init, or the embedded reference);
    ``batch``: a batch file, a Batch, or None (the embedded default); ``config``: a config.yaml,
    a DiagConfig, or None; ``preset``: the base loss weights (config, code, recommended);
    ``repo`` (a UTNet checkout) or ``model_factory`` (``module:callable``), with ``output_map``
    (``ours=theirs,...``): the model source; ``mano``: the MANO file; ``device``: auto, cpu,
    cuda[:N]; ``max_samples``: the first N samples of the batch; ``unsafe_load``: full pickle for
    trusted checkpoints."""

    checkpoint: str | Path | None = None
    batch: Any = None
    config: Any = None
    preset: str | None = None
    repo: str | Path | None = None
    model_factory: str | None = None
    output_map: str | Mapping[str, str] | None = None
    mano: str | Path | None = None
    device: str = "auto"
    max_samples: int | None = None
    unsafe_load: bool = False

    @classmethod
    def of(cls, options: RunOptions | None = None, /, **fields: Any) -> RunOptions:
        """``options`` (default: all defaults) with ``fields`` replaced; an unknown name is a
        TypeError, as for any keyword argument."""
        unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
        return dataclasses.replace(options or cls(), **fields)

    def model_source(self) -> dict[str, Any]:
        """The keyword arguments :func:`utnet_diag.load_model` takes from these options."""
        return {"repo": self.repo, "model_factory": self.model_factory,
                "output_map": self.output_map, "mano_path": self.mano, "device": self.device,
                "unsafe_load": self.unsafe_load}  # fmt: skip


def given(**fields: Any) -> dict[str, Any]:
    """The keyword arguments that were given (not None): positional API arguments that replace
    an option only when passed."""
    return {k: v for k, v in fields.items() if v is not None}
