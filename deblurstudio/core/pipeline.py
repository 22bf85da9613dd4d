"""The deblur / analyse pipeline: long work as generators that yield Progress and can be cancelled.

CONTRACT (written first so batch, CLI and GUI can build against it; the implementation fills it):

Pixel conventions: images are float32 RGB H×W×3, sRGB-encoded, in [0, 1]; masks and probability maps
float32 H×W in [0, 1] (1 = blurred / deblur here); motion maps float32 H×W×2 (dx, dy) in pixels of
the full-resolution image — the blur trajectory through a pixel runs from p − m/2 to p + m/2, so the
sign of m is ambiguous.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from deblurstudio.core.cancel import CancelToken


@dataclass(frozen=True)
class Progress:
    """One step of a long job.

    Attributes:
        fraction: overall progress in [0, 1].
        stage: short human-readable stage ("loading model", "deblurring", "analysing", ...).
        eta_seconds: estimated seconds left, or None while unknown.
    """

    fraction: float
    stage: str
    eta_seconds: float | None = None


@dataclass
class DeblurRequest:
    """What to deblur and how.

    Attributes:
        image: float32 RGB H×W×3 in [0, 1].
        model_id: a model id from the model store; None = the default deblurring model, or the
            default reference model when `reference` is given.
        mask: optional float32 H×W in [0, 1]; becomes the network's blur-probability input and the
            feathered compositing weight (outside the mask the output equals the input exactly).
        reference: optional float32 RGB H'×W'×3 in [0, 1], a sharp photo of the same scene.
        device: "auto" | "cpu" | "cuda" | "mps".
        tile: tile side in pixels (0 = choose automatically).
        precision: "auto" | "fp32" | "fp16" | "bf16".
    """

    image: np.ndarray
    model_id: str | None = None
    mask: np.ndarray | None = None
    reference: np.ndarray | None = None
    device: str = "auto"
    tile: int = 0
    precision: str = "auto"


@dataclass
class DeblurResult:
    """The restored image and the maps the GUI overlays.

    Attributes:
        restored: float32 RGB H×W×3 in [0, 1].
        blur_probability: float32 H×W in [0, 1] (the mask itself when one was given).
        motion_map: float32 H×W×2 in pixels, or None when no motion model is installed.
        reference_confidence: float32 H×W in [0, 1] with a reference, else None.
        model_id: the model that ran. device: the device it ran on. seconds: wall time.
    """

    restored: np.ndarray
    blur_probability: np.ndarray
    motion_map: np.ndarray | None
    reference_confidence: np.ndarray | None
    model_id: str
    device: str
    seconds: float


@dataclass
class AnalysisResult:
    """Where and how the photo is blurred (maps at full resolution).

    Attributes:
        blur_probability: float32 H×W in [0, 1].
        motion_map: float32 H×W×2 in pixels, or None when no motion model is installed.
    """

    blur_probability: np.ndarray
    motion_map: np.ndarray | None


def deblur(request: DeblurRequest, token: CancelToken) -> Generator[Progress, None, DeblurResult]:
    """Deblur `request.image` tile by tile, yielding Progress; cancellable between tiles."""
    raise NotImplementedError  # filled by the pipeline implementation


def analyse(
    image: np.ndarray, token: CancelToken, *, device: str = "auto", max_side: int = 1024
) -> Generator[Progress, None, AnalysisResult]:
    """Run only blur perception and motion estimation at reduced resolution (longest side
    `max_side`), upsampled to the image size."""
    raise NotImplementedError  # filled by the pipeline implementation


def run(job: Generator[Progress, None, object]):
    """Drive a job generator to completion, ignoring progress; returns the job's result."""
    while True:
        try:
            next(job)
        except StopIteration as stop:
            return stop.value
