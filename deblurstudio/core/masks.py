"""Deblur masks: feathering, thresholding a blur-probability map, compositing by a weight.

Pixel conventions: masks and weights are float32 H×W in [0, 1] (1 = deblur here); images float32
RGB H×W×3 in [0, 1]. Used by the pipeline and by the GUI mask tool.

Feathering happens *inside* the mask: the weight ramps from 0 at the mask's edge to 1 at
`radius_px` inside it. That is what lets `composite` promise that every pixel outside the mask is
bit-identical to the input, while the transition inside stays smooth.
"""

from __future__ import annotations

import cv2
import numpy as np

_ROWS_PER_CHUNK = 256  # compositing works in row bands so big photos need no full-size temporaries


def feather(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Soften a mask's edge inwards.

    Args:
        mask: float32 H×W in [0, 1]; pixels > 0 are inside.
        radius_px: width of the soft edge in pixels (0 = no feathering).

    Returns:
        float32 H×W in [0, 1]: 0 wherever `mask` is 0; a smoothstep of the distance to the nearest
        outside pixel, reaching exactly 1 at `radius_px` inside; never above `mask` (a soft
        painted mask keeps its own softness). The image border does not count as an edge.
    """
    mask = np.asarray(mask, dtype=np.float32)
    if radius_px <= 0:
        return np.clip(mask, 0.0, 1.0)
    inside = (mask > 0).astype(np.uint8)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_5)  # px to nearest 0
    np.clip(distance / np.float32(radius_px), 0.0, 1.0, out=distance)
    smooth = distance * distance * (3.0 - 2.0 * distance)  # smoothstep: flat at both ends
    return np.minimum(smooth, np.clip(mask, 0.0, 1.0), out=smooth)


def threshold_probability(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Binary mask (float32 H×W, 0 or 1) of the pixels whose blur probability is >= `threshold`."""
    return (np.asarray(prob) >= threshold).astype(np.float32)


def composite(
    original: np.ndarray,
    restored: np.ndarray,
    weight: np.ndarray | None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Blend `restored` over `original` by `weight`.

    Args:
        original: float32 H×W×C.
        restored: float32 H×W×C.
        weight: float32 H×W in [0, 1], or None for `restored` everywhere.
        out: where to write (may be `restored` itself, to save a full-size buffer).

    Returns:
        original·(1 − w) + restored·w: bit-identical to `original` where w = 0 and to `restored`
        where w = 1 (restored must be finite).
    """
    if out is None:
        out = np.empty_like(restored, dtype=np.float32)
    if weight is None:
        np.copyto(out, restored)
        return out
    for top in range(0, original.shape[0], _ROWS_PER_CHUNK):
        rows = slice(top, top + _ROWS_PER_CHUNK)
        w = weight[rows, :, None].astype(np.float32)
        out[rows] = original[rows] * (1.0 - w) + restored[rows] * w
    return out
