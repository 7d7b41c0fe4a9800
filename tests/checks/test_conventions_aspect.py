"""Why a projection's x/y scale ratio is the image aspect, worked out for both ways round."""

from __future__ import annotations

from utnet_diag.checks.conventions import _aspect_reason


def test_x_over_the_width_and_y_over_the_height():
    reason = _aspect_reason(256 / 192, (256, 192))  # H 256, W 192: x/W, y/H gives x/y = H/W
    assert "x is divided by the width 192, y by the height 256" in reason


def test_x_over_the_height_and_y_over_the_width():
    reason = _aspect_reason(192 / 256, (256, 192))
    assert "x is divided by the height 256, y by the width 192" in reason


def test_no_reason_for_a_square_image_or_another_ratio():
    assert _aspect_reason(1.0, (256, 256)) == ""
    assert _aspect_reason(1.6, (256, 192)) == ""
    assert _aspect_reason(256 / 192, None) == ""
