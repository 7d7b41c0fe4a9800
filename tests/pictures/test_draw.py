"""Where the sheet puts things, to the pixel: keypoints from crop coordinates, points outside
the crop on its border, colours by finger."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from utnet_diag.pictures.draw import (
    FINGER_COLORS,
    Panel,
    SampleView,
    SheetLayout,
    crop_to_pixels,
    depth_to_gray,
    draw_sheet,
    draw_skeleton,
    extent_mm,
)


def test_crop_coordinates_map_to_pixels_as_documented():
    # a 64 x 48 image: the crop is 64 pixels tall, centred at column 24, row 32
    px = crop_to_pixels(np.array([[0.0, 0.0], [0.5, -0.5], [0.1, -0.2]]), 64, 48)
    assert np.allclose(px, [[24, 32], [56, 0], [30.4, 19.2]])


def test_a_keypoint_lands_on_its_pixel_in_its_fingers_colour():
    h, w, cell = 64, 48, 224
    gt = np.full((21, 2), np.nan)
    gt[8] = (0.1, -0.2)  # the index tip alone: no bone is drawn
    view = SampleView("s", np.full((h, w, 3), 128, np.uint8), None, gt, np.ones(21))
    sheet = np.asarray(draw_sheet([view], "t", cell=cell))
    # by hand: the crop panel is the first cell, the 48 x 64 image scaled by 224 / 64 = 3.5 and
    # centred: 168 pixels wide from x = GAP + 28; the point is at image pixel (30.4, 19.2)
    x0, y0 = SheetLayout.GAP + (cell - 168) // 2, SheetLayout.LEGEND
    u, v = x0 + 30.4 * 3.5, y0 + 19.2 * 3.5
    assert tuple(sheet[round(v), round(u)]) == FINGER_COLORS["index"]
    # one pixel beyond the 3-pixel dot the image shows through
    assert tuple(sheet[round(v), round(u) + 5]) == (128, 128, 128)


def test_a_point_outside_is_drawn_on_the_border_with_its_factor():
    image = Image.new("RGB", (100, 100), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    uv = np.full((21, 2), np.nan)
    uv[20] = (49.5 + 10 * 49.5, 49.5)  # the pinky tip, 10x as far from the centre as the border
    factor = draw_skeleton(draw, Panel(0, 0, 100, 100), uv, "gt")
    assert abs(factor - 10.0) < 1e-9
    pixels = np.asarray(image)
    assert tuple(pixels[49, 99]) == FINGER_COLORS["pinky"]  # on the right border
    assert factor == draw_skeleton(draw, Panel(0, 0, 100, 100), uv * 1.0, "pred")
    inside = np.full((21, 2), np.nan)
    inside[0] = (10, 10)
    assert draw_skeleton(draw, Panel(0, 0, 100, 100), inside, "gt") == 1.0


def test_zero_confidence_joints_are_hollow():
    image = Image.new("RGB", (60, 60), (0, 0, 0))
    uv = np.full((21, 2), np.nan)
    uv[4] = (30, 30)
    conf = np.ones(21)
    conf[4] = 0.0
    draw_skeleton(ImageDraw.Draw(image), Panel(0, 0, 60, 60), uv, "gt", conf)
    pixels = np.asarray(image)
    assert tuple(pixels[30, 30]) == (255, 255, 255)  # the background colour inside the ring
    assert tuple(pixels[30, 27]) == FINGER_COLORS["thumb"]  # its ring


def test_depth_is_grey_near_bright_and_zero_black():
    depth = np.array([[0.0, 0.5], [0.6, np.nan]])
    grey = depth_to_gray(depth)
    assert grey.shape == (2, 2, 3) and grey[0, 0, 0] == 0 and grey[1, 1, 0] == 0
    assert grey[0, 1, 0] > grey[1, 0, 0]  # nearer is brighter


def test_the_3d_views_scale_to_a_round_extent():
    assert extent_mm(np.array([[0.0, 0, 0], [95.0, -3, 1]])) == 100
    assert extent_mm(np.array([[0.0, 0, 0], [101.0, 0, 0]]), None) == 200
    assert extent_mm(np.array([[0.0, 0, 0], [4e5, 0, 0]])) == 5e5  # metres read as mm
    assert extent_mm(None) == 10


def test_each_style_has_its_marker_shape():
    from utnet_diag.pictures.draw import draw_marker

    image = Image.new("RGB", (40, 40), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    red = (230, 25, 75)
    draw_marker(draw, (8, 8), red, "gt")
    draw_marker(draw, (20, 8), red, "pred")
    draw_marker(draw, (32, 32), red, "proj")
    pixels = np.asarray(image)
    assert tuple(pixels[8, 8]) == red  # a filled dot
    assert tuple(pixels[5, 5]) == (0, 0, 0)  # round: its bounding box's corner is empty
    assert tuple(pixels[5, 17]) == red  # the square fills its corner
    assert tuple(pixels[30, 30]) == red and tuple(pixels[34, 30]) == red  # both arms of the x
    assert tuple(pixels[29, 32]) == (0, 0, 0)  # the cross is open above its centre


def test_depth_grey_spans_the_percentile_range():
    ramp = np.linspace(0.3, 0.7, 101)[None, :]
    grey = depth_to_gray(ramp)[0, :, 0].astype(int)
    # nearest (2nd percentile and below) 255*0.85 + 38, farthest (98th and above) 38
    assert grey[0] == int(255 * 0.85 + 38) and grey[-1] == 38
    assert grey[50] == int(255 * 0.5 * 0.85 + 38)  # the median halfway


def test_the_3d_views_put_the_root_at_the_centre_and_scale_by_the_extent():
    from utnet_diag.pictures.draw import draw_3d, font

    image = Image.new("RGB", (200, 200), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    joints = np.full((21, 3), np.nan)
    joints[0] = (0, 0, 0)
    joints[1] = (50.0, 0.0, 0.0)  # the thumb's base 50 mm to the right
    draw_3d(draw, Panel(0, 0, 200, 200), [(joints, "gt")], (0, 1), 100.0, ("x", "y"), "t",
            font(11))  # fmt: skip
    pixels = np.asarray(image)
    centre = 99.5
    assert tuple(pixels[100, 100]) == FINGER_COLORS["wrist"]
    # 50 of 100 mm: half way from the centre to the drawn edge (width / 2 - 14 pixels)
    u = round(centre + 50.0 * (200 / 2.0 - 14) / 100.0)
    assert tuple(pixels[100, u]) == FINGER_COLORS["thumb"]


def test_a_3d_view_draws_inside_its_panel_with_its_frame_and_centre_cross():
    from utnet_diag.pictures.draw import draw_3d, font

    image = Image.new("RGB", (240, 240), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    joints = np.zeros((21, 3))
    draw_3d(draw, Panel(20, 20, 200, 200), [(joints, "gt")], (0, 1), 100.0, ("x", "y"), "t",
            font(11))  # fmt: skip
    pixels = np.asarray(image).astype(int)
    inside = np.zeros(pixels.shape[:2], bool)
    inside[20:220, 20:220] = True
    assert not pixels[~inside].any()  # nothing outside the panel
    frame = (210, 210, 210)
    assert tuple(pixels[20, 120]) == frame and tuple(pixels[219, 120]) == frame
    assert tuple(pixels[120, 20]) == frame and tuple(pixels[120, 219]) == frame
    assert tuple(pixels[21, 21]) == (250, 250, 250)  # the panel's own background
    # the cross through the centre (119.5, 119.5), 4 pixels short of the frame on each side
    cross = (225, 225, 225)
    row = [tuple(p) for p in pixels[119, 20:220]]  # y = centre, rounded down by the line
    assert row[4] == cross and row[195] == cross and row[3] != cross and row[196] != cross


def test_hollow_markers_have_a_one_pixel_outline():
    from utnet_diag.pictures.draw import draw_marker

    image = Image.new("RGB", (40, 40), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    red = (230, 25, 75)
    draw_marker(draw, (10, 10), red, "pred", filled=False)
    draw_marker(draw, (30, 10), red, "gt", filled=False)
    pixels = np.asarray(image)
    assert tuple(pixels[10, 7]) == red and tuple(pixels[10, 8]) == (0, 0, 0)  # square: x 7..13
    assert tuple(pixels[10, 27]) == red and tuple(pixels[10, 28]) != red  # circle's left edge


def test_an_arrow_is_8_pixels_long_and_8_wide_at_its_base():
    from utnet_diag.pictures.draw import _arrow

    image = Image.new("RGB", (40, 40), (0, 0, 0))
    red = (230, 25, 75)
    _arrow(ImageDraw.Draw(image), np.array([30.0, 20.0]), np.array([3.0, 0.0]), red)
    pixels = np.asarray(image)
    assert tuple(pixels[20, 30]) == red and tuple(pixels[20, 22]) == red  # tip and base centre
    assert tuple(pixels[20, 21]) == (0, 0, 0) and tuple(pixels[20, 31]) == (0, 0, 0)
    assert tuple(pixels[23, 23]) == red and tuple(pixels[26, 23]) == (0, 0, 0)  # half width 4
    assert tuple(pixels[17, 23]) == red and tuple(pixels[14, 23]) == (0, 0, 0)  # on both sides
