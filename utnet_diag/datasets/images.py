"""Image decoding for the readers (Pillow); a broken image becomes a finding on the record."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from utnet_diag.datasets.common import SampleRecord


def _open_fully(path: str):
    from PIL import Image

    image = Image.open(path)
    image.load()  # decode now: a truncated file fails here, not later
    return image


def read_rgb(record: SampleRecord) -> None:
    """Decode ``record.paths['rgb']`` into ``record.rgb`` (H,W,3) uint8 and ``record.image_wh``."""
    path = record.paths["rgb"]
    try:
        image = _open_fully(path)
    except FileNotFoundError:
        record.problem("rgb_readable", "fail", "RGB image not found", path=path)
        return
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError... for bad files
        record.problem("rgb_readable", "fail", f"RGB image does not decode: {err}", path=path)
        return
    if image.mode != "RGB":
        image = image.convert("RGB")
    record.rgb = np.asarray(image)
    record.image_wh = (image.width, image.height)


def read_depth_png(
    record: SampleRecord, decode: Callable[[np.ndarray], np.ndarray], expect_mode: str
) -> None:
    """Decode ``record.paths['depth']`` with ``decode`` (raw pixels -> metres) into
    ``record.depth_m`` (H,W) float32. ``expect_mode`` is the PNG's Pillow mode ("RGB" for HO3D's
    packed depth, "I;16" for 16-bit millimetres); another mode is a finding."""
    path = record.paths["depth"]
    try:
        image = _open_fully(path)
    except FileNotFoundError:
        record.problem("depth_readable", "fail", "depth image not found", path=path)
        return
    except Exception as err:
        record.problem("depth_readable", "fail", f"depth PNG does not decode: {err}", path=path)
        return
    modes = {"I;16": ("I;16", "I;16B", "I;16L", "I"), "RGB": ("RGB", "RGBA")}[expect_mode]
    if image.mode not in modes:
        record.problem(
            "depth_readable",
            "fail",
            f"depth PNG has mode {image.mode}; expected {expect_mode}",
            value=image.mode,
            path=path,
        )
        return
    pixels = np.asarray(image)
    if expect_mode == "RGB":
        pixels = pixels[..., :3]
    record.depth_m = decode(pixels)
    if record.image_wh is not None and record.depth_m.shape[::-1] != record.image_wh:
        record.problem(
            "depth_readable",
            "fail",
            f"depth is {record.depth_m.shape[1]}x{record.depth_m.shape[0]}, RGB is "
            f"{record.image_wh[0]}x{record.image_wh[1]}",
            path=path,
        )
