"""Image decoding for the readers (Pillow); a broken image becomes a finding on the record."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from utnet_diag.datasets.common import SampleRecord
from utnet_diag.errors import InputError
from utnet_diag.io.files import regular_file

MAX_PIXELS = 4096 * 4096  # a dataset frame (HO3D 640x480, DexYCB 640x480) is far smaller


class ImageTooLarge(ValueError):
    """An image header claims more pixels than a dataset frame has."""


def _open_fully(path: str):
    """Open and decode an image; only a regular file, and only after its header's size is
    checked against MAX_PIXELS (Pillow's own bomb check would only warn at this size)."""
    import warnings

    from PIL import Image

    regular_file(path, "image")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(path)
        width, height = image.size
        if width * height > MAX_PIXELS:
            image.close()
            raise ImageTooLarge(
                f"{width}x{height} pixels claimed, over the {MAX_PIXELS / 1e6:.0f} megapixels a"
                " dataset frame may have; not decoded"
            )
        image.load()  # decode now: a truncated file fails here, not later
    return image


def read_rgb(record: SampleRecord) -> None:
    """Decode ``record.paths['rgb']`` into ``record.rgb`` (H,W,3) uint8 and ``record.image_wh``."""
    path = record.paths["rgb"]
    try:
        image = _open_fully(path)
    except (FileNotFoundError, InputError) as err:
        found = isinstance(err, InputError) and "not found" not in str(err)
        record.problem("rgb_readable", "fail", err.detail if found else "RGB image not found",
                       path=path)  # fmt: skip
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
    except (FileNotFoundError, InputError) as err:
        found = isinstance(err, InputError) and "not found" not in str(err)
        record.problem("depth_readable", "fail", err.detail if found else "depth image not found",
                       path=path)  # fmt: skip
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
