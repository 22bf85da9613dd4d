"""Painting a deblur mask with a round brush (the GUI's mask tool; no Qt here).

Pixel conventions: masks are float32 H×W in [0, 1] (1 = deblur here). Brush positions are (x, y) in
image pixels with pixel (row i, column j) covering [j, j + 1) × [i, i + 1), so its centre is at
(j + 0.5, i + 0.5).
"""

from __future__ import annotations

import numpy as np


def paint_segment(
    mask: np.ndarray,
    start: tuple[float, float],
    end: tuple[float, float],
    radius: float,
    feather: float = 0.0,
    erase: bool = False,
) -> tuple[slice, slice] | None:
    """Drag a round brush from `start` to `end` over `mask`, in place.

    Painting raises pixels towards 1 (never lowers them), erasing lowers them towards 0, so going
    over the same spot twice changes nothing more and a stroke of many short segments has no
    beads where they join.

    Args:
        mask: float32 H×W in [0, 1], modified in place.
        start, end: brush centre (x, y) in image pixels.
        radius: brush radius in pixels.
        feather: width in pixels of the soft rim inside `radius` (0 = hard, anti-aliased edge).
        erase: lower the mask instead of raising it.

    Returns:
        (rows, columns) slices of the pixels that may have changed, or None when the stroke
        misses the image.
    """
    height, width = mask.shape
    reach = radius + 1.0
    left = max(int(np.floor(min(start[0], end[0]) - reach)), 0)
    right = min(int(np.ceil(max(start[0], end[0]) + reach)), width)
    top = max(int(np.floor(min(start[1], end[1]) - reach)), 0)
    bottom = min(int(np.ceil(max(start[1], end[1]) + reach)), height)
    if left >= right or top >= bottom:
        return None
    ys, xs = np.mgrid[top:bottom, left:right].astype(np.float32)
    xs += 0.5
    ys += 0.5
    # Distance from each pixel centre to the segment (a capsule-shaped brush sweep).
    sx, sy = float(start[0]), float(start[1])
    dx, dy = float(end[0]) - sx, float(end[1]) - sy
    length_sq = dx * dx + dy * dy
    if length_sq > 0.0:
        t = np.clip(((xs - sx) * dx + (ys - sy) * dy) / length_sq, 0.0, 1.0)
        xs -= sx + t * dx
        ys -= sy + t * dy
    else:
        xs -= sx
        ys -= sy
    distance = np.sqrt(xs * xs + ys * ys)
    # Coverage 1 inside, 0 beyond radius + ½ px; the rim is at least one pixel wide (anti-alias).
    rim = max(float(feather), 1.0)
    coverage = np.clip((radius + 0.5 - distance) / rim, 0.0, 1.0)
    coverage = coverage * coverage * (3.0 - 2.0 * coverage)  # smoothstep: no visible ring
    region = (slice(top, bottom), slice(left, right))
    if erase:
        np.minimum(mask[region], 1.0 - coverage, out=mask[region])
    else:
        np.maximum(mask[region], coverage, out=mask[region])
    return region
