"""What every deblurring network returns.

All tensors are N×C×H×W float, sRGB-encoded, nominally in [0, 1] (not clamped: training losses see
the raw values; the pipeline clamps).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class DeblurOutput(NamedTuple):
    """One forward pass of a deblurring network.

    Attributes:
        restored: N×3×H×W restored image.
        blur_probability: N×1×H×W per-pixel blur probability in [0, 1], or None when the network
            does not perceive blur itself (or was given the map).
        attention: N×1×H×W sum of the upsampled blur-guided attention maps (BladeNet), supervised
            with DICE against the blur mask; None for other networks.
        reference_confidence: N×1×H×W match confidence in [0, 1] of the reference at full
            resolution (reference network); None otherwise.
        match_features: training only (reference network given a `match_target`): its matching
            encoder's features of the image and of the aligned sharp target, for the matching
            loss; None otherwise.
    """

    restored: Tensor
    blur_probability: Tensor | None = None
    attention: Tensor | None = None
    reference_confidence: Tensor | None = None
    match_features: tuple[Tensor, Tensor] | None = None
