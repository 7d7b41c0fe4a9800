"""Drawing hands with Pillow: skeletons on crops, depth maps, root-relative 3D views, one sheet.

Pillow is a core dependency, so the overlays need no extra; every position is an exact pixel
(what the tests measure). Coordinates:

- 2D keypoints are crop coordinates in [-0.5, 0.5] (the spec's); on an image of H x W pixels,
  ``x`` maps to column ``x * H + W / 2`` and ``y`` to row ``y * H + H / 2`` (the crop is H pixels
  tall; a W < H image shows its centre, as UTNet's 256x192 input does). :func:`crop_to_pixels`.
- A panel shows an image scaled by ``zoom`` (nearest neighbour), so a keypoint at image pixel
  (u, v) is drawn at panel pixel (u * zoom, v * zoom) from the panel's corner.

Joints are in the spec's order (wrist, then thumb, index, middle, ring and pinky from base to
tip), coloured by finger (:data:`FINGER_COLORS`); bones join each finger's joints to the wrist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Color = tuple[int, int, int]
FINGER_COLORS: dict[str, Color] = {
    "wrist": (60, 60, 60),
    "thumb": (230, 25, 75),
    "index": (245, 130, 48),
    "middle": (60, 180, 75),
    "ring": (0, 130, 200),
    "pinky": (145, 30, 180),
}
FINGER_OF_JOINT = ("wrist",) + tuple(f for f in ("thumb", "index", "middle", "ring", "pinky")
                                     for _ in range(4))  # fmt: skip
JOINT_COLORS: tuple[Color, ...] = tuple(FINGER_COLORS[f] for f in FINGER_OF_JOINT)
# (parent, child) in the spec's order: each finger's base to the wrist, then base to tip
BONES = tuple(
    (0 if k == 0 else 1 + 4 * f + k - 1, 1 + 4 * f + k) for f in range(5) for k in range(4)
)
STYLES = ("gt", "pred", "proj")
STYLE_TEXT = {
    "gt": "ground truth 2D (dot; hollow: confidence 0)",
    "pred": "predicted 2D (square)",
    "proj": "predicted 3D through the sample's camera (cross)",
}
BACKGROUND: Color = (255, 255, 255)
INK: Color = (20, 20, 20)
MUTED: Color = (120, 120, 120)
WARN: Color = (200, 60, 0)


def font(size: int = 12) -> Any:
    """Pillow's own font (scalable when Pillow has FreeType, its bitmap font otherwise)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def crop_to_pixels(xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """Crop coordinates (..., 2) in [-0.5, 0.5] -> image pixels (..., 2) (column, row)."""
    xy = np.asarray(xy, dtype=np.float64)
    return np.stack([xy[..., 0] * height + width / 2.0, xy[..., 1] * height + height / 2.0], -1)


@dataclass
class Panel:
    """A square-ish area of the sheet: its top-left corner and size in sheet pixels."""

    x0: int
    y0: int
    width: int
    height: int

    def inside(self, uv: np.ndarray) -> np.ndarray:
        return (uv[..., 0] >= self.x0) & (uv[..., 0] <= self.x0 + self.width - 1) & (
            uv[..., 1] >= self.y0) & (uv[..., 1] <= self.y0 + self.height - 1)  # fmt: skip

    def clamp(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points pulled onto the border along the ray from the panel's centre, and the factor
        by which each lies outside (1 inside: distance to the centre over the border's)."""
        cx = self.x0 + (self.width - 1) / 2.0
        cy = self.y0 + (self.height - 1) / 2.0
        half = np.array([(self.width - 1) / 2.0, (self.height - 1) / 2.0])
        d = uv - np.array([cx, cy])
        factor = np.maximum(np.abs(d / half).max(-1), 1.0)
        return np.array([cx, cy]) + d / factor[..., None], factor


def draw_marker(draw: ImageDraw.ImageDraw, uv: tuple[float, float], color: Color, style: str,
                filled: bool = True, size: int = 3) -> None:  # fmt: skip
    """A joint at ``uv``: a dot (gt), a square (pred) or a cross (proj)."""
    u, v = uv
    box = (u - size, v - size, u + size, v + size)
    if style == "gt":
        draw.ellipse(box, fill=color if filled else BACKGROUND, outline=color, width=1)
    elif style == "pred":
        draw.rectangle(box, fill=color if filled else None, outline=color, width=1)
    else:
        draw.line((u - size, v - size, u + size, v + size), fill=color, width=2)
        draw.line((u - size, v + size, u + size, v - size), fill=color, width=2)


def _arrow(draw: ImageDraw.ImageDraw, tip: np.ndarray, direction: np.ndarray, color: Color) -> None:
    norm = float(np.linalg.norm(direction))
    if norm == 0:
        return
    d = direction / norm
    n = np.array([-d[1], d[0]])
    base = tip - 8 * d
    points = [tuple(tip), tuple(base + 4 * n), tuple(base - 4 * n)]
    draw.polygon([(float(x), float(y)) for x, y in points], fill=color)


def draw_skeleton(draw: ImageDraw.ImageDraw, panel: Panel, uv: np.ndarray, style: str,
                  conf: np.ndarray | None = None, label_font: Any = None) -> float:  # fmt: skip
    """The 21 joints ``uv`` (21, 2) in sheet pixels, bones and markers in the finger colours and
    ``style``'s shapes; joints outside the panel drawn on its border with an arrow, the
    farthest with the factor it is out by. Returns that factor (1: all inside)."""
    finite = np.isfinite(uv).all(-1)
    where, factor = panel.clamp(np.where(finite[:, None], uv, 0.0))
    width = 3 if style == "gt" else 1
    for a, b in BONES:
        if finite[a] and finite[b]:
            draw.line((*where[a], *where[b]), fill=JOINT_COLORS[b], width=width)
    for j in range(len(uv)):
        if not finite[j]:
            continue
        visible = conf is None or not (conf[j] <= 0)
        draw_marker(draw, tuple(where[j]), JOINT_COLORS[j], style, filled=visible,
                    size=3 if style == "gt" else 2)  # fmt: skip
        if factor[j] > 1.0:
            centre = np.array([panel.x0 + panel.width / 2.0, panel.y0 + panel.height / 2.0])
            _arrow(draw, where[j], where[j] - centre, JOINT_COLORS[j])
    out = factor[finite]
    worst = float(out.max()) if out.size else 1.0
    if worst > 1.0:
        j = int(np.argmax(np.where(finite, factor, 0.0)))
        text = f"{worst:.3g}x out"
        x = min(max(where[j][0] - 20, panel.x0 + 2), panel.x0 + panel.width - 60)
        y = min(max(where[j][1] + 6, panel.y0 + 2), panel.y0 + panel.height - 14)
        draw.text((x, y), text, fill=WARN, font=label_font or font(11))
    return worst


@dataclass
class SampleView:
    """What one sample's row shows (``index``: its row in the batch). ``rgb`` (H, W, 3) uint8 or None; ``depth`` (H, W) float or
    None; ``gt2d`` (21, 2) crop units and ``gt_conf`` (21,); ``pred2d``, ``proj3d`` (21, 2) crop
    units or None; ``gt3d``, ``pred3d`` (21, 3) mm, root-relative, or None; ``caption`` lines."""

    sample_id: str
    rgb: np.ndarray | None
    depth: np.ndarray | None
    gt2d: np.ndarray | None
    gt_conf: np.ndarray | None = None
    pred2d: np.ndarray | None = None
    proj3d: np.ndarray | None = None
    gt3d: np.ndarray | None = None
    pred3d: np.ndarray | None = None
    caption: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (256, 256)  # (H, W) when there is no image
    index: int | None = None  # the sample's row in the batch it was drawn from


def depth_to_gray(depth: np.ndarray) -> np.ndarray:
    """(H, W) depth in any unit -> (H, W, 3) uint8: near bright, far dark, over the 2nd-98th
    percentile of the positive finite values; 0 and non-finite black."""
    d = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0)
    out = np.zeros(d.shape, dtype=np.uint8)
    if valid.any():
        lo, hi = np.percentile(d[valid], [2, 98])
        span = max(hi - lo, 1e-12)
        out[valid] = (255 * (1.0 - np.clip((d[valid] - lo) / span, 0, 1)) * 0.85 + 38).astype(
            np.uint8
        )
    return np.repeat(out[..., None], 3, -1)


class SheetLayout:
    """Where things go on a contact sheet: a legend band, then one row per sample of four
    ``cell`` x ``cell`` panels (crop, depth, 3D from the camera, 3D from the side) and a caption."""

    GAP = 8
    LEGEND = 40
    CAPTION = 34

    def __init__(self, rows: int, cell: int = 224):
        self.cell = cell
        self.rows = rows
        self.width = 4 * cell + 5 * self.GAP
        self.row_height = cell + self.CAPTION + self.GAP
        self.height = self.LEGEND + rows * self.row_height + self.GAP

    def panel(self, row: int, column: int) -> Panel:
        x0 = self.GAP + column * (self.cell + self.GAP)
        y0 = self.LEGEND + row * self.row_height
        return Panel(x0, y0, self.cell, self.cell)


def image_panel(panel: Panel, height: int, width: int) -> tuple[Panel, float]:
    """The part of ``panel`` an H x W image fills when scaled to fit (centred), and the zoom."""
    zoom = min(panel.width / width, panel.height / height)
    w, h = max(1, int(round(width * zoom))), max(1, int(round(height * zoom)))
    x0 = panel.x0 + (panel.width - w) // 2
    y0 = panel.y0 + (panel.height - h) // 2
    return Panel(x0, y0, w, h), zoom


def to_sheet(view_panel: Panel, zoom: float, xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """Crop coordinates (21, 2) -> sheet pixels for an image of H x W shown in ``view_panel``."""
    px = crop_to_pixels(xy, height, width)
    return np.stack([view_panel.x0 + px[:, 0] * zoom, view_panel.y0 + px[:, 1] * zoom], -1)


def _paste(sheet: Image.Image, panel: Panel, pixels: np.ndarray) -> None:
    image = Image.fromarray(pixels).resize((panel.width, panel.height), Image.NEAREST)
    sheet.paste(image, (panel.x0, panel.y0))


def draw_3d(draw: ImageDraw.ImageDraw, panel: Panel, skeletons: list[tuple[np.ndarray, str]],
            axes: tuple[int, int], extent: float, labels: tuple[str, str], title: str,
            small: Any) -> None:  # fmt: skip
    """Root-relative skeletons (21, 3) mm drawn orthographically on ``axes`` (0 x, 1 y, 2 z;
    image right and down), the same scale for all: ``extent`` mm from the centre to the edge."""
    draw.rectangle((panel.x0, panel.y0, panel.x0 + panel.width - 1, panel.y0 + panel.height - 1),
                   outline=(210, 210, 210), fill=(250, 250, 250))  # fmt: skip
    cx = panel.x0 + (panel.width - 1) / 2.0
    cy = panel.y0 + (panel.height - 1) / 2.0
    scale = (panel.width / 2.0 - 14) / extent
    draw.line((panel.x0 + 4, cy, panel.x0 + panel.width - 5, cy), fill=(225, 225, 225))
    draw.line((cx, panel.y0 + 4, cx, panel.y0 + panel.height - 5), fill=(225, 225, 225))
    for joints, style in skeletons:
        uv = np.stack([cx + joints[:, axes[0]] * scale, cy + joints[:, axes[1]] * scale], -1)
        draw_skeleton(draw, panel, uv, style, label_font=small)
    draw.text((panel.x0 + 4, panel.y0 + 3), title, fill=INK, font=small)
    draw.text((panel.x0 + panel.width - 70, cy + 3), f"{labels[0]} +{extent:.3g} mm", fill=MUTED,
              font=small)  # fmt: skip
    draw.text((cx + 4, panel.y0 + panel.height - 16), f"{labels[1]} +{extent:.3g} mm",
              fill=MUTED, font=small)  # fmt: skip


def extent_mm(*skeletons: np.ndarray | None) -> float:
    """The half-width (mm) of the 3D views: the largest finite root-relative coordinate, at
    least 10 mm, rounded up to 1, 2 or 5 times a power of ten."""
    values = [np.abs(s[np.isfinite(s)]) for s in skeletons if s is not None]
    top = max([float(v.max()) for v in values if v.size] + [10.0])
    power = 10 ** math.floor(math.log10(top))
    for step in (1, 2, 5, 10):
        if top <= step * power:
            return step * power
    return 10 * power


def draw_sheet(views: list[SampleView], title: str, cell: int = 224) -> Image.Image:
    """The contact sheet of ``views``: a legend, then per sample its crop with the skeletons,
    its depth map with the ground truth, its 3D from the camera and from the side, a caption."""
    layout = SheetLayout(len(views), cell)
    sheet = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    big, small = font(13), font(11)
    draw.text((layout.GAP, 4), title, fill=INK, font=big)
    x = layout.GAP
    for style in STYLES:
        draw_marker(draw, (x + 4, 28), FINGER_COLORS["index"], style)
        draw.text((x + 12, 21), STYLE_TEXT[style], fill=INK, font=small)
        x += 12 + int(draw.textlength(STYLE_TEXT[style], font=small)) + 18
    for row, view in enumerate(views):
        _draw_row(sheet, draw, layout, row, view, small)
    return sheet


def _draw_row(sheet: Image.Image, draw: ImageDraw.ImageDraw, layout: SheetLayout, row: int,
              view: SampleView, small: Any) -> None:  # fmt: skip
    height, width = view.image_size
    if view.rgb is not None:
        height, width = view.rgb.shape[:2]
    crop_panel, zoom = image_panel(layout.panel(row, 0), height, width)
    if view.rgb is not None:
        _paste(sheet, crop_panel, view.rgb)
    else:
        draw.rectangle((crop_panel.x0, crop_panel.y0, crop_panel.x0 + crop_panel.width - 1,
                        crop_panel.y0 + crop_panel.height - 1), outline=(200, 200, 200))  # fmt: skip
        draw.text((crop_panel.x0 + 4, crop_panel.y0 + 4), "no rgb", fill=MUTED, font=small)
    for xy, style, conf in ((view.gt2d, "gt", view.gt_conf), (view.pred2d, "pred", None),
                            (view.proj3d, "proj", None)):  # fmt: skip
        if xy is not None:
            draw_skeleton(draw, crop_panel, to_sheet(crop_panel, zoom, xy, height, width), style,
                          conf, small)  # fmt: skip
    depth_panel = layout.panel(row, 1)
    if view.depth is not None:
        dh, dw = view.depth.shape
        depth_view, dzoom = image_panel(depth_panel, dh, dw)
        _paste(sheet, depth_view, depth_to_gray(view.depth))
        if view.gt2d is not None:
            draw_skeleton(draw, depth_view, to_sheet(depth_view, dzoom, view.gt2d, dh, dw), "gt",
                          view.gt_conf, small)  # fmt: skip
        draw.text((depth_view.x0 + 3, depth_view.y0 + 2), "depth", fill=(255, 255, 0), font=small)
    else:
        draw.text((depth_panel.x0 + 4, depth_panel.y0 + 4), "no depth", fill=MUTED, font=small)
    skeletons = [(s, style) for s, style in ((view.gt3d, "gt"), (view.pred3d, "proj"))
                 if s is not None]  # fmt: skip
    if skeletons:
        extent = extent_mm(view.gt3d, view.pred3d)
        draw_3d(draw, layout.panel(row, 2), skeletons, (0, 1), extent, ("x", "y"),
                "3D from the camera (root-relative)", small)  # fmt: skip
        draw_3d(draw, layout.panel(row, 3), skeletons, (2, 1), extent, ("z", "y"),
                "3D from the side", small)  # fmt: skip
    y = layout.panel(row, 0).y0 + layout.cell + 3
    lines = [f"{view.sample_id}"] + list(view.caption)
    draw.text((layout.GAP, y), lines[0] + ("  ·  " + lines[1] if len(lines) > 1 else ""),
              fill=INK, font=small)  # fmt: skip
    if len(lines) > 2:
        draw.text((layout.GAP, y + 14), "  ·  ".join(lines[2:]), fill=WARN, font=small)
