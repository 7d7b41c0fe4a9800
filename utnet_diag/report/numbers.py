"""The one way numbers are written in messages and tables."""

from __future__ import annotations

import math
from typing import Any

LARGE = 1e5  # from here up, and below SMALL, numbers are written in scientific notation
SMALL = 1e-3


def fmt_number(value: Any, digits: int = 4, none: str = "") -> str:
    """``value`` with ``digits`` significant digits (one fewer, at least 3, in scientific
    notation below 1e-3 and from 1e5 up); ``none`` for None; non-finite values as ``nan``,
    ``inf``, ``-inf``; strings (non-finite numbers after a JSON round trip) unchanged.

    >>> fmt_number(73632.9062), fmt_number(73632.9062, 6), fmt_number(0.000371), fmt_number(2.0)
    ('7.363e+04', '73632.9', '0.000371', '2')
    """
    if value is None:
        return none
    if isinstance(value, str):
        return value
    x = float(value)
    if not math.isfinite(x):
        return repr(x)
    if x != 0 and (abs(x) >= LARGE or abs(x) < SMALL):
        return f"{x:.{max(digits - 1, 3)}g}"
    return f"{x:.{digits}g}"
