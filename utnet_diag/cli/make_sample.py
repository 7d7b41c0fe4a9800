"""``utnet-diag make-sample DIR``: the synthetic MANO, a reference checkpoint, a batch, a config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from utnet_diag.cli.app import emit, say
from utnet_diag.cli.options import FailOn, FailOnOpt, JsonOpt, JunitOpt


def make_sample_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the sample files into.")],
    samples: Annotated[
        int, typer.Option("--samples", "-n", min=1, max=4096, help="Batch size.")
    ] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (poses, shapes, init).")] = 0,
    model_preset: Annotated[
        str, typer.Option("--model-preset", help="Reference model size: tiny, small or real.")
    ] = "tiny",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Write a synthetic MANO, a reference UTNet checkpoint, a sample batch and a config.yaml.

    Files: MANO_RIGHT.pkl, reference.pt (stores its config), batch.pt (MANO hands with random
    poses and shapes rendered to RGB-D crops with consistent 2D/3D labels), config.yaml.
    """
    # deferred: loads torch, which this module's importers do not need
    from utnet_diag.synthetic.sample import make_sample

    report = make_sample(out_dir, n=samples, seed=seed, preset=model_preset, force=force)
    say(f"wrote {len(report.sections['sample']['files'])} files to {out_dir}")
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
