"""The deblur / analyse pipeline: long work as generators that yield Progress and can be cancelled.

CONTRACT (written first so batch, CLI and GUI can build against it; the implementation fills it):

Pixel conventions: images are float32 RGB H×W×3, sRGB-encoded, in [0, 1]; masks and probability maps
float32 H×W in [0, 1] (1 = blurred / deblur here); motion maps float32 H×W×2 (dx, dy) in pixels of
the full-resolution image — the blur trajectory through a pixel runs from p − m/2 to p + m/2, so the
sign of m is ambiguous.

How the maps of a DeblurResult are made:
  * blur_probability: the mask when one is given; else the deblurring net's own map (BladeNet,
    blended across tiles like the image); else (LCNet, reference net) the default deblurring
    model's perceive(), run like analyse() at reduced resolution.
  * motion_map: the default "motion" model at reduced resolution (longest side
    ANALYSIS_MAX_SIDE), its blur-axis field blended and upsampled, then turned into motion with
    vectors scaled to full-resolution pixels; None when no motion model is installed. A request
    that brings the photo's motion map (the GUI has it from analyse()) gets it back unchanged
    and the motion model does not run again: the motion of the input does not depend on how it
    is deblurred.
  * reference_confidence: the reference net's match confidence, blended across tiles.
A request with maps=False gets none of them and pays for none of that work.
With a mask, nets with `accepts_blur_probability` get it as their blur-probability input (so the
mask steers where they work); for every net the feathered mask is the compositing weight.
With a reference photo, the reference is first registered onto the image (`registration`: a
homography from matched features). A reference that does not show the same scene is not used: the
default deblurring model deblurs the image as if none had been given, and the result's warning
says so. Otherwise each tile's reference input is the reference warped into the tile's window
widened by REFERENCE_SEARCH_MARGIN pixels on each side (content that moved between the two shots
by up to that much beyond what the homography explains, parallax or a moving subject, can still
be matched; the reference net's matching cost grows with the square of that area), padded to the
stride. A reference finer than the image is shrunk to its scale once; each tile's view is warped
on its own, so no image-sized copy of the reference is made.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np
import torch
from torch import nn

from deblurstudio.core.cancel import CancelToken
from deblurstudio.core.devices import resolve_device, resolve_precision, to_model_input
from deblurstudio.core.errors import DeblurStudioError, ModelNotFoundError
from deblurstudio.core.masks import composite, feather
from deblurstudio.core.modelstore import default_model_id, load_model
from deblurstudio.core.registration import (
    MIN_INLIERS,
    Registration,
    at_photo_scale,
    register,
    warp_reference,
)
from deblurstudio.core.tiling import (
    TileBudget,
    Window,
    choose_tile,
    round_up,
    tiled_apply,
)
from deblurstudio.models.neurmap import motion_from_axis

ANALYSIS_MAX_SIDE = 1024  # longest side (px) at which blur perception and motion are estimated
REFERENCE_SEARCH_MARGIN = 64  # px of reference around each tile searched for matches
MASK_FEATHER_FRACTION = 0.004  # mask feather radius as a fraction of the image's longest side
MIN_MASK_FEATHER_PX = 4

T = TypeVar("T")


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
        maps: also return the maps the GUI overlays (blur probability, motion, reference
            confidence). Off where only the restored photo is written (CLI deblur, batch): the
            blur and motion analysis costs about as much again as the fast model's deblurring.
        motion_map: the photo's motion map (float32 H×W×2, px) when the caller already has it
            from analyse(); returned as the result's map instead of estimated again.
        reference_registration: the reference's registration onto `image` when the caller
            already has it (e.g. of the whole photo, `shifted` to a preview's crop); None: the
            pipeline registers the reference itself.
    """

    image: np.ndarray
    model_id: str | None = None
    mask: np.ndarray | None = None
    reference: np.ndarray | None = None
    device: str = "auto"
    tile: int = 0
    precision: str = "auto"
    maps: bool = True
    motion_map: np.ndarray | None = None
    reference_registration: Registration | None = None


@dataclass
class DeblurResult:
    """The restored image and the maps the GUI overlays (all None when the request asked for
    no maps).

    Attributes:
        restored: float32 RGB H×W×3 in [0, 1].
        blur_probability: float32 H×W in [0, 1] (the mask itself when one was given).
        motion_map: float32 H×W×2 in pixels, or None when no motion model is installed.
        reference_confidence: float32 H×W in [0, 1] with a reference, else None.
        model_id: the model that ran. device: the device it ran on. seconds: wall time.
        warning: one line on what was done differently from the request (a reference that
            does not show the same scene was not used), else None.
    """

    restored: np.ndarray
    blur_probability: np.ndarray | None
    motion_map: np.ndarray | None
    reference_confidence: np.ndarray | None
    model_id: str
    device: str
    seconds: float
    warning: str | None = None


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
    """Deblur `request.image` tile by tile, yielding Progress; cancellable between tiles.

    Raises:
        ModelNotFoundError: the model (or, for a net that does not perceive blur itself, the
            default deblurring model used for the blur-probability map) is not installed.
        DeblurStudioError: unavailable device or precision, a mask of the wrong size, a
            reference given to a model that does not use one, GPU memory exhausted at the
            smallest tile.
        Cancelled: the token was cancelled; no result.
    """
    started = time.perf_counter()
    image = _rgb(request.image, "image")
    height, width = image.shape[:2]
    mask = _mask(request.mask, (height, width))
    reference = None if request.reference is None else _rgb(request.reference, "reference")
    known_motion = _motion(request.motion_map, (height, width))
    device = resolve_device(request.device)
    dtype = resolve_precision(request.precision, device)
    model_id = request.model_id or default_model_id("deblur" if reference is None else "reference")

    yield Progress(0.0, "loading model")
    net = load_model(model_id, device, dtype)
    if reference is not None and not getattr(net, "needs_reference", False):
        raise DeblurStudioError(
            f"model '{model_id}' does not use a reference photo; choose a reference model "
            f"such as '{default_model_id('reference')}'"
        )
    warning = None
    if reference is not None:
        yield Progress(0.0, "matching the reference")
        registration = request.reference_registration or register(image, reference)
        if registration.homography is None:
            model_id = default_model_id("deblur")
            warning = (
                f"the reference photo does not show the same scene ({registration.matches} "
                f"matching features, {MIN_INLIERS} needed); deblurred without it by '{model_id}'"
            )
            reference = None
            net = load_model(model_id, device, dtype)
        else:
            reference, homography = at_photo_scale(
                reference, registration.homography, (height, width)
            )
    steer = mask is not None and bool(getattr(net, "accepts_blur_probability", False))
    analysis_nets: dict[str, nn.Module] = {}
    if request.maps:
        if mask is None and not callable(getattr(net, "perceive", None)):
            analysis_nets["blur_probability"] = _perception_model(device, dtype)
        motion_net = None if known_motion is not None else _optional_motion_model(device, dtype)
        if motion_net is not None:
            analysis_nets["motion"] = motion_net

    def deblur_tile(window: Window, crops: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        kwargs = {}
        if steer:
            kwargs["blur_probability"] = to_model_input(crops["blur_probability"], device, dtype)
        if reference is not None:
            region = _reference_crop(reference, homography, window, net.stride)
            kwargs["reference"] = to_model_input(region, device, dtype)
        with torch.inference_mode():
            output = net(to_model_input(crops["image"], device, dtype), **kwargs)
        maps = {"restored": output.restored}
        if request.maps:
            if mask is None and output.blur_probability is not None:
                maps["blur_probability"] = output.blur_probability
            if output.reference_confidence is not None:
                maps["reference_confidence"] = output.reference_confidence
        return {name: _to_numpy(value) for name, value in maps.items()}

    inputs = {"image": image}
    if steer:
        inputs["blur_probability"] = mask[:, :, None]
    budget = TileBudget(choose_tile(device, request.tile), net.stride)
    small_h, small_w = _analysis_size(height, width, ANALYSIS_MAX_SIDE)
    # Progress is shared between the stages by the pixels each pushes through a network.
    split = height * width / (height * width + small_h * small_w * len(analysis_nets))
    eta = _Eta()
    outputs = yield from _tracked(
        tiled_apply(inputs, deblur_tile, stride=net.stride, budget=budget),
        token,
        "deblurring",
        0.0,
        split,
        eta,
    )
    analysis = {}
    if analysis_nets:
        analysis = yield from _tracked(
            _analysis_maps(image, analysis_nets, device, dtype, request.tile, ANALYSIS_MAX_SIDE),
            token,
            "analysing",
            split,
            1.0,
            eta,
        )

    restored = np.clip(outputs["restored"], 0.0, 1.0, out=outputs["restored"])
    if mask is not None:
        radius = max(MIN_MASK_FEATHER_PX, MASK_FEATHER_FRACTION * max(height, width))
        composite(image, restored, feather(mask, radius), out=restored)
    if not request.maps:
        blur_probability = None
    elif mask is not None:
        blur_probability = mask
    elif "blur_probability" in outputs:
        blur_probability = np.clip(outputs["blur_probability"][..., 0], 0.0, 1.0)
    else:
        blur_probability = analysis["blur_probability"]
    confidence = outputs.get("reference_confidence")
    return DeblurResult(
        restored=restored,
        blur_probability=blur_probability,
        motion_map=analysis.get("motion", known_motion) if request.maps else None,
        reference_confidence=None if confidence is None else np.clip(confidence[..., 0], 0, 1),
        model_id=model_id,
        device=str(device),
        seconds=time.perf_counter() - started,
        warning=warning,
    )


def analyse(
    image: np.ndarray,
    token: CancelToken,
    *,
    device: str = "auto",
    tile: int = 0,
    max_side: int = 1024,
) -> Generator[Progress, None, AnalysisResult]:
    """Run only blur perception and motion estimation at reduced resolution (longest side
    `max_side`), upsampled to the image size; `tile` as in DeblurRequest.

    Perception is the default deblurring model's perceive() (BladeNet); motion is the default
    "motion" model when installed. Precision is "auto" for the device.

    Raises:
        ModelNotFoundError: no perception model installed. DeblurStudioError: bad device.
        Cancelled: the token was cancelled; no result.
    """
    image = _rgb(image, "image")
    torch_device = resolve_device(device)
    dtype = resolve_precision("auto", torch_device)
    yield Progress(0.0, "loading model")
    nets: dict[str, nn.Module] = {"blur_probability": _perception_model(torch_device, dtype)}
    motion_net = _optional_motion_model(torch_device, dtype)
    if motion_net is not None:
        nets["motion"] = motion_net
    maps = yield from _tracked(
        _analysis_maps(image, nets, torch_device, dtype, tile, max_side),
        token,
        "analysing",
        0.0,
        1.0,
        _Eta(),
    )
    return AnalysisResult(blur_probability=maps["blur_probability"], motion_map=maps.get("motion"))


def _analysis_maps(
    image: np.ndarray,
    nets: dict[str, nn.Module],
    device: torch.device,
    dtype: torch.dtype,
    tile: int,
    max_side: int,
) -> Generator[float, None, dict[str, np.ndarray]]:
    """Run `nets` ("blur_probability": a net with perceive(), "motion": a MotionNet) on the image
    shrunk to longest side `max_side`, tiled; return their maps upsampled to the image size:
    blur_probability float32 H×W in [0, 1], motion float32 H×W×2 in full-resolution pixels."""
    height, width = image.shape[:2]
    small_h, small_w = _analysis_size(height, width, max_side)
    small = image
    if (small_h, small_w) != (height, width):
        small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
    runs = {name: net.perceive if name == "blur_probability" else net for name, net in nets.items()}
    stride = math.lcm(*(net.stride for net in nets.values()))

    def analysis_tile(window: Window, crops: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = to_model_input(crops["image"], device, dtype)
        with torch.inference_mode():
            return {name: _to_numpy(run(x)) for name, run in runs.items()}

    maps = yield from tiled_apply(
        {"image": small},
        analysis_tile,
        stride=stride,
        budget=TileBudget(choose_tile(device, tile), stride),
    )
    full = {}
    for name, value in maps.items():
        if (small_h, small_w) != (height, width):
            value = cv2.resize(value, (width, height), interpolation=cv2.INTER_LINEAR)
        full[name] = value.reshape(height, width, -1)
    if "blur_probability" in full:
        full["blur_probability"] = np.clip(full["blur_probability"][..., 0], 0.0, 1.0)
    if "motion" in full:
        # Tiles were blended and the map resized as a blur-axis field (sign-free, so averaging
        # is meaningful); the net measured it in pixels of the small image.
        axis = torch.from_numpy(full["motion"]).permute(2, 0, 1)[None]
        motion = motion_from_axis(axis)[0].permute(1, 2, 0).numpy()
        motion[..., 0] *= width / small_w
        motion[..., 1] *= height / small_h
        full["motion"] = np.ascontiguousarray(motion)
    return full


def _perception_model(device: torch.device, dtype: torch.dtype) -> nn.Module:
    """The default deblurring model, which must perceive blur (BladeNet's perceive())."""
    model_id = default_model_id("deblur")
    model = load_model(model_id, device, dtype)
    if not callable(getattr(model, "perceive", None)):
        raise DeblurStudioError(
            f"the default deblurring model '{model_id}' cannot estimate where the photo is "
            "blurred (it has no blur-perception network); make a BladeNet model the default"
        )
    return model


def _optional_motion_model(device: torch.device, dtype: torch.dtype) -> nn.Module | None:
    """The default motion model, or None when none is installed (motion maps are optional)."""
    try:
        return load_model(default_model_id("motion"), device, dtype)
    except ModelNotFoundError:
        return None


def _analysis_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """Height and width shrunk (never enlarged) so the longest side is at most `max_side`."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _reference_crop(
    reference: np.ndarray, homography: np.ndarray, window: Window, stride: int
) -> np.ndarray:
    """The reference input for one tile (see the module docstring): float32 h×w×3, h and w
    multiples of `stride`."""
    margin = round_up(REFERENCE_SEARCH_MARGIN, stride)
    height = round_up(window.height + 2 * margin, stride)
    width = round_up(window.width + 2 * margin, stride)
    return warp_reference(
        reference, homography, window.y0 - margin, window.x0 - margin, height, width
    )


def _rgb(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{what}: expected float32 RGB H×W×3, got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _mask(mask: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != size:
        raise DeblurStudioError(
            f"the mask is {mask.shape[1] if mask.ndim > 1 else '?'}×{mask.shape[0]} px but the "
            f"image is {size[1]}×{size[0]} px"
        )
    return np.clip(mask, 0.0, 1.0).astype(np.float32, copy=False)


def _motion(motion_map: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    if motion_map is None:
        return None
    motion_map = np.asarray(motion_map, dtype=np.float32)
    if motion_map.shape != (*size, 2):
        raise DeblurStudioError(
            f"the motion map has shape {motion_map.shape} but the image needs {(*size, 2)}"
        )
    return motion_map


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """1×C×H×W tensor (any device and dtype) -> float32 H×W×C numpy array."""
    return tensor[0].permute(1, 2, 0).float().cpu().numpy()


class _Eta:
    """Seconds left, extrapolated from the pace since the compute stages began (at fraction 0)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def __call__(self, fraction: float) -> float | None:
        if fraction <= 0:
            return None
        return (time.perf_counter() - self._start) * (1.0 - fraction) / fraction


def _tracked(
    job: Generator[float, None, T],
    token: CancelToken,
    stage: str,
    low: float,
    high: float,
    eta: _Eta,
) -> Generator[Progress, None, T]:
    """Re-yield a tile job's fractions as Progress over [low, high], checking the token before
    every tile; returns the job's result."""
    while True:
        token.raise_if_cancelled()
        try:
            fraction = next(job)
        except StopIteration as stop:
            return stop.value
        overall = high if fraction >= 1.0 else low + (high - low) * fraction
        yield Progress(overall, stage, eta(overall))


def run(job: Generator[Progress, None, object]):
    """Drive a job generator to completion, ignoring progress; returns the job's result."""
    while True:
        try:
            next(job)
        except StopIteration as stop:
            return stop.value
