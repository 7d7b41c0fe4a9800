"""Options shared by the commands, defined once as typed aliases."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer


class FailOn(str, Enum):
    fail = "fail"
    warn = "warn"


class Preset(str, Enum):
    config = "config"
    code = "code"
    recommended = "recommended"


JsonOpt = Annotated[bool, typer.Option("--json", help="Print only the JSON report on stdout.")]
JunitOpt = Annotated[
    Optional[Path],
    typer.Option("--junit", help="Write a JUnit XML report (one testcase per check)."),
]
FailOnOpt = Annotated[
    FailOn, typer.Option("--fail-on", help="Exit 1 on failures only, or on warnings too.")
]
ConfigOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        help="UTNet config.yaml: loss weights, optional diag: section; with --repo also the model"
        " it builds (model:, mano:).",
    ),
]
PresetOpt = Annotated[
    Optional[Preset],
    typer.Option(
        "--preset", help="Loss-weight preset when the config gives none (default: config)."
    ),
]
CheckpointOpt = Annotated[
    Optional[Path], typer.Option("--checkpoint", help="Model checkpoint (.pt/.pth/.ckpt).")
]
BatchOpt = Annotated[
    Optional[Path], typer.Option("--batch", help="Sample batch (.pt or .npz); default: embedded.")
]
RepoOpt = Annotated[
    Optional[Path],
    typer.Option("--repo", help="Your UTNet checkout (builds src.models.utnet.UTNet)."),
]
ModelFactoryOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model-factory", help="module:callable that builds your model (with --output-map)."
    ),
]
OutputMapOpt = Annotated[
    Optional[str],
    typer.Option(
        "--output-map", help="Output key map for --model-factory: ours=theirs,ours=theirs."
    ),
]
ManoOpt = Annotated[
    Optional[Path],
    typer.Option("--mano", help="MANO_RIGHT.pkl (default: the embedded synthetic hand)."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
MaxSamplesOpt = Annotated[
    Optional[int], typer.Option("--max-samples", min=1, help="Use only the first N samples.")
]
UnsafeLoadOpt = Annotated[
    bool,
    typer.Option(
        "--unsafe-load",
        help="Load checkpoints with weights_only=False. Runs code from the file: trusted files only.",
    ),
]


class DatasetName(str, Enum):
    ho3d = "ho3d"
    dexycb = "dexycb"


DatasetOpt = Annotated[
    Optional[DatasetName], typer.Option("--dataset", help="Dataset format on disk (with --root).")
]
DatasetRootOpt = Annotated[Optional[Path], typer.Option("--root", help="Dataset root folder.")]
DatasetSplitOpt = Annotated[
    Optional[str],
    typer.Option(
        "--split",
        help="HO3D: train or evaluation (default train). DexYCB: all (default) or a "
        "subject[/sequence[/serial]] prefix.",
    ),
]
IndicesOpt = Annotated[
    Optional[str],
    typer.Option("--indices", help="Dataset samples to use: 0,5,10-19 (default: the first 16)."),
]

ImagesOpt = Annotated[
    bool,
    typer.Option(
        "--images/--no-images", help="Decode RGB and depth (--no-images: annotations only)."
    ),
]

DatasetImagesOpt = Annotated[
    bool,
    typer.Option(
        "--images/--no-images",
        help="With --dataset: decode RGB and depth (--no-images: annotations only; the image"
        " checks are then skipped, and missing image files are not a failure).",
    ),
]
LabelsManoOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--mano",
        help="MANO_RIGHT.pkl the labels were made with: checks mano_pose/mano_shape"
        " against keypoints_3d (mano_consistency).",
    ),
]
LoaderOpt = Annotated[
    Optional[str],
    typer.Option(
        "--loader",
        help="module:callable: your Dataset (or a function returning one); the checks run on"
        " its first items, with and without its augmentation switch. Run from your checkout.",
    ),
]
LoaderArgsOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--loader-args",
        help="key=value for the --loader callable (value read as YAML), repeatable; or one"
        " {...} mapping.",
    ),
]
LoaderSamplesOpt = Annotated[
    int, typer.Option("--loader-samples", help="Items read from --loader.")
]

SideOpt = Annotated[
    Optional[str],
    typer.Option("--side", help="right or left (default: from the file name, else right)."),
]


class MetricProtocol(str, Enum):
    """The benchmarks whose official evaluators ``eval`` and ``--metric-protocol`` reproduce."""

    freihand = "freihand"
    ho3d = "ho3d"
    dexycb = "dexycb"


MetricProtocolOpt = Annotated[
    Optional[MetricProtocol],
    typer.Option(
        "--metric-protocol",
        help="Also report this benchmark's official joint metrics (its units, order, alignment).",
    ),
]


class AmpMode(str, Enum):
    """The autocast dtypes ``--amp`` runs a training step in."""

    fp16 = "fp16"
    bf16 = "bf16"


AmpOpt = Annotated[
    Optional[AmpMode],
    typer.Option(
        "--amp",
        help="Also run the step under torch.autocast in this dtype (fp16 with a GradScaler):"
        " overflow, precision, skipped steps.",
    ),
]
ClipGradNormOpt = Annotated[
    Optional[float],
    typer.Option(
        "--clip-grad-norm",
        min=0.0,
        help="Max global gradient norm the step checks clip to (0: none); default the config's"
        " optimizer.clip_grad_norm, else UTNet's 1.0.",
    ),
]

OverlayOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--overlay",
        help="Write a contact sheet of the worst samples (PNG): crop with the ground-truth and"
        " predicted skeletons, depth, 3D views, failing checks and losses.",
    ),
]
OverlaySamplesOpt = Annotated[
    int, typer.Option("--overlay-samples", help="Samples on the --overlay sheet (1-64).")
]
GalleryOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--gallery",
        help="Write a sheet of each check's worst frames (images and labels drawn) and an"
        " index.html linking them with the findings into this folder.",
    ),
]
