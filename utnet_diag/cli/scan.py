"""``utnet-diag scan --dataset ho3d|dexycb --root DIR``: every per-sample check over a dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from utnet_diag.cli.app import emit, say, say_pictures, stderr_console
from utnet_diag.cli.options import (
    DatasetOpt,
    DatasetRootOpt,
    DatasetSplitOpt,
    DeviceOpt,
    FailOn,
    FailOnOpt,
    GalleryOpt,
    ImagesOpt,
    JsonOpt,
    JunitOpt,
    ManoOpt,
)
from utnet_diag.errors import InputError

EXIT_INTERRUPTED = 130


WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        min=0,
        help="Worker processes (0: none). Helps with idle cores: 2 workers scanned 1.3x faster"
        " than one process on 2 idle cores; no faster on a busy machine.",
    ),
]


LimitOpt = Annotated[
    Optional[int], typer.Option("--limit", min=1, help="Scan only the first N samples.")
]
OutOpt = Annotated[
    Optional[Path], typer.Option("--out", help="Write one JSON line per finding (JSONL).")
]


def scan_command(
    dataset: DatasetOpt = None,
    root: DatasetRootOpt = None,
    split: DatasetSplitOpt = None,
    workers: WorkersOpt = 0,
    limit: LimitOpt = None,
    images: ImagesOpt = True,
    out: OutOpt = None,
    max_findings: Annotated[
        int,
        typer.Option(
            "--max-findings-per-check",
            min=1,
            help="List at most N findings per check; count the rest.",
        ),
    ] = 1000,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Samples read and checked together.")
    ] = 512,
    batch_checks: Annotated[
        bool,
        typer.Option(
            "--batch-checks/--no-batch-checks",
            help="Also run check-batch's checks per chunk, attributed to samples (slower).",
        ),
    ] = False,
    mano: ManoOpt = None,
    device: DeviceOpt = "auto",
    gallery: GalleryOpt = None,
    json_out: JsonOpt = False,
    junit: JunitOpt = None,
    fail_on: FailOnOpt = FailOn.fail,
) -> None:
    """Run every per-sample check over every sample of an HO3D or DexYCB tree.

    Bad files are findings, not crashes. Ctrl-C keeps what was found so far. Under
    'torchrun --nproc-per-node N -m utnet_diag scan ...' the samples are sharded over the ranks
    and the findings gathered on rank 0.
    """
    # deferred: loads numpy, which this module's importers do not need
    from utnet_diag.datasets.batch import open_reader
    from utnet_diag.datasets.distributed import init_from_env, shutdown
    from utnet_diag.datasets.scan import scan_dataset
    from utnet_diag.pictures.gallery import check_gallery_dir

    if dataset is None or root is None:
        raise InputError(
            "scan needs --dataset and --root", hint="e.g. --dataset ho3d --root /data/HO3D_v3"
        )
    if gallery is not None:  # before the tree is opened: a bad folder costs nothing
        check_gallery_dir(gallery)
    reader = open_reader(dataset.value, root, split, str(mano) if mano else None)
    dist = init_from_env(device)
    is_main = dist is None or dist.is_main
    with _progress(enabled=is_main and sys.stderr.isatty()) as progress:
        report = scan_dataset(
            reader,
            images=images,
            workers=workers,
            limit=limit,
            out=out,
            max_findings_per_check=max_findings,
            chunk_size=chunk_size,
            progress=progress,
            dist=dist,
            batch_checks=batch_checks,
            gallery=gallery,
        )
    shutdown(dist)
    code = report.exit_code(fail_on.value)
    if is_main:
        say_pictures(report)
        code = emit(report, json_out, junit, fail_on.value)
        if report.sections["scan"]["interrupted"]:
            say(f"utnet-diag: interrupted: {report.sections['scan']['status']}", style="yellow")
            code = EXIT_INTERRUPTED
    raise typer.Exit(code)


class _progress:
    """A rich progress bar on stderr (samples/s, ETA) as a ``progress(done, total)`` callback."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.task = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("scan"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=stderr_console(),
            transient=True,
        )
        self.bar.start()
        return self.update

    def update(self, done: int, total: int) -> None:
        if self.task is None:
            self.task = self.bar.add_task("scan", total=total, rate="")
        speed = self.bar.tasks[0].speed
        rate = f"{speed:,.0f} samples/s" if speed else ""
        self.bar.update(self.task, completed=done, rate=rate)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
