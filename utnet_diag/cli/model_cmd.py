"""``utnet-diag make-sample`` and ``utnet-diag inspect-checkpoint``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from utnet_diag.cli.app import app, emit, say
from utnet_diag.cli.options import (
    ConfigOpt,
    FailOn,
    FailOnOpt,
    JsonOpt,
    JunitOpt,
    ManoOpt,
    RepoOpt,
    UnsafeLoadOpt,
)


@app.command("make-sample")
def make_sample_cmd(
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
    from utnet_diag.cli import render_model  # noqa: F401 - registers the section renderers
    from utnet_diag.synthetic.sample import make_sample

    report = make_sample(out_dir, n=samples, seed=seed, preset=model_preset, force=force)
    say(f"wrote {len(report.sections['sample']['files'])} files to {out_dir}")
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))


@app.command("inspect-checkpoint")
def inspect_checkpoint_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file (.pt/.pth/.ckpt).")],
    repo: RepoOpt = None,
    config: ConfigOpt = None,
    mano: ManoOpt = None,
    unsafe_load: UnsafeLoadOpt = False,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Sizes, dtypes, stored config, and missing/unexpected keys against the model.

    The model is the reference UTNet built with the checkpoint's stored config, or your UTNet
    with --repo (built from --config, else the checkout's config/config.yaml).
    """
    from utnet_diag.cli import render_model  # noqa: F401 - registers the section renderers
    from utnet_diag.model.sources import inspect_checkpoint

    report = inspect_checkpoint(
        checkpoint, repo=repo, config=config, mano_path=mano, unsafe_load=unsafe_load
    )
    for warning in report.sections["checkpoint"].get("warnings", []):
        say(f"warning: {warning}", style="yellow")
    raise typer.Exit(emit(report, json_out, junit, fail_on.value))
