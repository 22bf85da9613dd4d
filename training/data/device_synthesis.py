"""Blur synthesis on the training device: batched torch twin of ``synthesis``.

DataLoader workers only load and crop the photos and cut-outs and draw the random parameters
(`SyntheticBlurDataset(..., synthesis="device")` packs them with `ingredients`); once the batch
is on the training device, `synthesize_on_device` renders it into the keys of a finished batch
("blurred", "sharp", "blur_mask", "motion", "motion_valid", "kind", and "reference" untouched).
``synthesis`` stays the reference: the same conventions (linear light with γ = GAMMA, true
convolution, premultiplied layers averaged over the exposure, the masks' MASK_TOLERANCE and
OPAQUE rules, Poisson–Gaussian noise, JPEG), checked equal in
tests/training/test_device_synthesis.py.

Ingredients have fixed shapes (`Shapes`) so that the default collation stacks them: the canvas is
padded to the largest kernel margin, the kernel to its size, cut-outs, layers and frames to their
largest sizes and counts; padding is transparent, zero-weight or outside the kept crop. Every step
runs on the whole batch and never waits for the device: the host only queues the work.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from training.data import synthesis

_FRAMES = max(synthesis.FRAME_COUNTS)


@dataclass(frozen=True)
class Shapes:
    """The fixed ingredient sizes of one dataset.

    Attributes:
        crop: output height and width, px.
        margin: the largest kernel radius (`synthesis.max_kernel_radius`).
        cutout: the largest side of a pasted cut-out, px.
        layers: the most pasted objects in a sample.
    """

    crop: int
    margin: int
    cutout: int
    layers: int

    @property
    def canvas(self) -> int:
        return self.crop + 2 * self.margin


def ingredients(
    scene: synthesis.Scene, shapes: Shapes, sigma: float, shot_share: float, jpeg_quality: int
) -> dict[str, Any]:
    """What `synthesize_on_device` needs to render ``scene``, as fixed-size CPU tensors.

    Args:
        scene: the sample's parameters and pixels.
        shapes: the dataset's fixed sizes.
        sigma: noise level (`synthesis.add_noise`); 0 for none.
        shot_share: the noise's signal-dependent share of variance (`synthesis.SHOT_SHARE`).
        jpeg_quality: JPEG quality of "blurred", 0 for none.
    """
    side = shapes.canvas
    # The scene's canvas is centred in the common one: its kept crop lands on the common crop.
    pad = shapes.margin - scene.margin
    size = scene.canvas.shape[0]
    if pad < 0 or size != shapes.crop + 2 * scene.margin:
        raise ValueError(f"a {size} px canvas with margin {scene.margin} does not fit {shapes}")
    if len(scene.layers) > shapes.layers or scene.frames > _FRAMES:
        raise ValueError(f"{len(scene.layers)} layers, {scene.frames} frames exceed {shapes}")
    canvas = np.zeros((3, side, side), np.uint8)
    canvas[:, pad : pad + size, pad : pad + size] = scene.canvas.transpose(2, 0, 1)
    kernel = np.zeros((2 * shapes.margin + 1,) * 2, np.float32)
    if scene.kernel is not None:
        k = scene.kernel.weights.shape[0]
        kernel[pad : pad + k, pad : pad + k] = scene.kernel.weights
    linear_motion = scene.kernel is not None and scene.kernel.motion is not None

    # Cut-outs in fp16 halve what the workers hand over; linear values in [0, 1] keep 11 bits.
    cutouts = np.zeros((shapes.layers, 4, shapes.cutout, shapes.cutout), np.float16)
    # Per frame and layer, `F.affine_grid`'s matrix: canvas pixel → cut-out pixel, both in
    # grid_sample's align_corners=True coordinates (−1 and 1 are the outer pixels' centres).
    # Empty layers keep zeros (every pixel reads the transparent middle of an empty cut-out).
    grid = np.zeros((_FRAMES, shapes.layers, 2, 3), np.float32)
    moving = np.zeros(shapes.layers, bool)
    exact = np.ones(shapes.layers, bool)
    translation = np.zeros((shapes.layers, 2), np.float32)
    # Frames past the scene's count repeat its last one: they have no weight, and a repeated
    # frame adds nothing to the coverage nor changes which layer a pixel shows.
    times = synthesis.exposure_times(scene.frames)
    times = np.concatenate([times, np.full(_FRAMES - len(times), times[-1])])
    from_canvas = _unnormalise(side)
    to_cutout = np.linalg.inv(_unnormalise(shapes.cutout))
    for index, (cutout, motion) in enumerate(scene.layers):
        height, width = cutout.alpha.shape
        if max(height, width) > shapes.cutout:
            raise ValueError(f"a {height}×{width} cut-out exceeds {shapes}")
        cutouts[index, :, :height, :width] = cutout.premultiplied.transpose(2, 0, 1)
        placed = np.tile(np.eye(3), (_FRAMES, 1, 1))
        placed[:, :2] = [motion.affine(float(s), (height, width)) for s in times]
        placed[:, :2, 2] += pad
        grid[:, index] = (to_cutout @ np.linalg.inv(placed) @ from_canvas)[:, :2]
        moving[index] = not motion.is_static
        exact[index] = motion.is_pure_translation
        translation[index] = motion.translation
    return {
        "canvas": torch.from_numpy(canvas),
        "kernel": torch.from_numpy(kernel),
        "has_kernel": torch.tensor(scene.kernel is not None),
        "kernel_motion": torch.tensor(scene.kernel.motion if linear_motion else (0.0, 0.0)),
        "kernel_linear": torch.tensor(linear_motion),
        "cutouts": torch.from_numpy(cutouts),
        "layer_grid": torch.from_numpy(grid),
        "layer_moving": torch.from_numpy(moving),
        "layer_exact": torch.from_numpy(exact),
        "layer_translation": torch.from_numpy(translation),
        "frames": torch.tensor(scene.frames),
        "noise": torch.tensor((sigma, shot_share), dtype=torch.float32),
        "jpeg_quality": torch.tensor(jpeg_quality),
        "kind": scene.kind,
    }


def _unnormalise(size: int) -> np.ndarray:
    """3×3 map from align_corners=True coordinates to pixels (x, y) of a size×size image."""
    half = (size - 1) / 2.0
    return np.array([[half, 0.0, half], [0.0, half, half], [0.0, 0.0, 1.0]])


def synthesize_on_device(batch: dict[str, Any]) -> dict[str, Any]:
    """Render a collated batch of `ingredients` on its device into a finished batch.

    Returns:
        "blurred", "sharp" N×3×crop×crop sRGB, "blur_mask", "motion_valid" N×1×…, "motion"
        N×2×…, "kind" and, when present, "reference" — the keys and rules of `synthesis`. A batch
        without ingredients (no "canvas": CPU-synthesised or unpaired) is returned as it is.
    """
    if "canvas" not in batch:
        return batch
    canvas = batch["canvas"]
    n, side = canvas.shape[0], canvas.shape[-1]
    margin = batch["kernel"].shape[-1] // 2
    keep = (..., slice(margin, side - margin), slice(margin, side - margin))
    per_sample = (n, 1, 1, 1)
    background = _constant("u8_to_linear", canvas.device)[canvas.long()]
    average, middle, coverage, motion, valid = _expose(background, batch)

    has_kernel = batch["has_kernel"].view(per_sample)
    kernel = batch["kernel"]
    blurred = torch.where(has_kernel, convolve(average, kernel), average)
    # Motion under a linear shake is known only where the kernel's whole footprint sees static,
    # known content: dilate the rest by the footprint (cv2.dilate correlates, hence the flip).
    unknown = (coverage | ~valid).float()
    footprint = (kernel > 0).float().flip(-2, -1)
    shaken_known = batch["kernel_linear"].view(per_sample) & (convolve(unknown, footprint) < 0.5)
    motion = torch.where(has_kernel, batch["kernel_motion"].view(n, 2, 1, 1) * shaken_known, motion)
    # "sharp" is the kind without a kernel and with one frame: read from the kind names (a
    # Python list), it would need a copy to the device, which waits for the device's queue.
    sharp_kind = ~has_kernel & (batch["frames"].view(per_sample) == 1)
    valid = torch.where(has_kernel, shaken_known, valid | sharp_kind)

    blurred = linear_to_srgb(blurred[keep])
    sharp = linear_to_srgb(middle[keep])
    changed = (blurred - sharp).abs().amax(dim=1, keepdim=True) > synthesis.MASK_TOLERANCE
    # Camera shake labels whatever visibly changed; pasted objects only where they moved.
    mask = changed & (coverage[keep] | has_kernel)
    blurred = add_noise(blurred, batch["noise"])
    quality = batch["jpeg_quality"]
    blurred = torch.where(
        (quality > 0).view(per_sample), jpeg_roundtrip(blurred, quality.clamp(min=1)), blurred
    )
    finished = {
        "blurred": blurred,
        "sharp": sharp,
        "blur_mask": mask.float(),
        "motion": motion[keep],
        "motion_valid": valid[keep].float(),
        "kind": batch["kind"],
    }
    if "reference" in batch:
        finished["reference"] = batch["reference"]
    return finished


def linear_to_srgb(linear: Tensor) -> Tensor:
    """Camera response (`synthesis.linear_to_srgb`): linear light → sRGB in [0, 1]."""
    return linear.clamp(0.0, 1.0).pow(1.0 / synthesis.GAMMA)


def convolve(images: Tensor, kernels: Tensor) -> Tensor:
    """True convolution of N×C×H×W images by per-sample N×K×K kernels (K odd), via the FFT.

    The convention of `synthesis.convolve` (a kernel of image shifts d gives mean sharp(p − d)),
    but circular: pixels within K // 2 of a border differ, so callers keep a margin, as
    `synthesis.convolve`'s callers do for its reflected borders.
    """
    size = images.shape[-2:]
    radius = kernels.shape[-1] // 2
    # The kernel's centre moved to pixel (0, 0): the spectra's product is then the convolution.
    placed = F.pad(kernels, (0, size[1] - kernels.shape[-1], 0, size[0] - kernels.shape[-2]))
    placed = placed.roll((-radius, -radius), dims=(-2, -1))
    spectrum = torch.fft.rfft2(images) * torch.fft.rfft2(placed).unsqueeze(1)
    return torch.fft.irfft2(spectrum, s=size)


def _expose(
    background: Tensor, batch: dict[str, Any]
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Pasted layers over the static background, frame by frame (`synthesis._render_frames`).

    Returns:
        (average N×3×S×S and sharp middle frame N×3×S×S, linear; moving coverage N×1×S×S bool;
        motion N×2×S×S; motion known N×1×S×S bool), over the whole common canvas S×S.
    """
    device = background.device
    grid = batch["layer_grid"]
    n, count, layers = grid.shape[:3]
    side = background.shape[-1]
    flat = batch["cutouts"].float().flatten(0, 1)
    moving = batch["layer_moving"].view(n, layers, 1, 1, 1)
    numbers = torch.arange(1, layers + 1, device=device).view(1, layers, 1, 1, 1)
    # Per sample and frame: its weight in the average, and whether it is the sharp middle one.
    frame_numbers = torch.arange(count, device=device)
    frames = batch["frames"].view(n, 1)
    weights = (frame_numbers < frames) / frames
    is_middle = frame_numbers == frames // 2
    # grid_sample's coordinates of the canvas pixels, from which each frame's matrices give the
    # points to sample (F.affine_grid does this as a batched matrix product, 10× slower on a GPU).
    coordinates = torch.linspace(-1.0, 1.0, side, device=device)
    across, down = coordinates.view(1, 1, side, 1), coordinates.view(1, side, 1, 1)
    total = torch.zeros_like(background)
    middle = background
    coverage = torch.zeros((n, 1, side, side), dtype=torch.bool, device=device)
    consistent = torch.ones_like(coverage)
    first_owner = None
    for frame_index in range(count):
        theta = grid[:, frame_index].flatten(0, 1).view(n * layers, 1, 1, 2, 3)
        points = theta[..., 0] * across + theta[..., 1] * down + theta[..., 2]
        # Bilinear with zeros outside: what cv2.warpAffine's default does in `synthesis`.
        warped = F.grid_sample(flat, points, padding_mode="zeros", align_corners=True)
        warped = warped.unflatten(0, (n, layers))
        alpha = warped[:, :, 3:]
        transparency = 1.0 - alpha
        frame = background
        for index in range(layers):
            frame = torch.addcmul(warped[:, index, :3], frame, transparency[:, index])
        total = torch.addcmul(total, frame, weights[:, frame_index].view(n, 1, 1, 1))
        middle = torch.where(is_middle[:, frame_index].view(n, 1, 1, 1), frame, middle)
        touched = alpha > 0
        coverage = coverage | (touched & moving).any(dim=1)
        # Which layer a pixel shows, as in `synthesis`: the last one painted over it (−1: the
        # background), or −2 where that one is not opaque (a blend).
        last = (touched * numbers).amax(dim=1) - 1
        last_alpha = alpha.gather(1, last.clamp(min=0).unsqueeze(1)).squeeze(1)
        owner = torch.where(last < 0, -1, torch.where(last_alpha >= synthesis.OPAQUE, last, -2))
        if first_owner is None:
            first_owner = owner
        else:
            consistent = consistent & (owner == first_owner)
    owned = first_owner.unsqueeze(1) == numbers - 1  # N×L×1×S×S
    inexact = ~batch["layer_exact"].view(n, layers, 1, 1, 1)
    valid = consistent & (first_owner != -2) & ~(owned & inexact).any(dim=1)
    translation = batch["layer_translation"].view(n, layers, 2, 1, 1)
    motion = ((owned & valid.unsqueeze(1)) * translation).sum(dim=1)
    return total, middle, coverage, motion, valid


def add_noise(srgb: Tensor, noise: Tensor) -> Tensor:
    """Poisson–Gaussian noise (`synthesis.add_noise`); ``noise`` is N×2 (sigma, shot share)."""
    sigma, shot_share = (noise[:, i].view(-1, 1, 1, 1) for i in range(2))
    std = sigma * torch.sqrt(shot_share * 2.0 * srgb + (1.0 - shot_share))
    return (srgb + std * torch.randn_like(srgb)).clamp(0.0, 1.0)


# ------------------------------------------------------------------------------------------ JPEG

# The quantisation tables of the JPEG standard (Annex K), which libjpeg scales by quality.
_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
) + ((99,) * 8,) * 4
# JFIF's RGB → YCbCr (offset 128 on the chroma) and back.
_RGB_TO_YCC = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
_YCC_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))
# The orthonormal 8-point DCT-II (rows: frequencies), which is JPEG's DCT.
_FREQUENCY, _POSITION = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
_DCT = np.where(_FREQUENCY == 0, math.sqrt(1 / 8), math.sqrt(2 / 8)) * np.cos(
    (2 * _POSITION + 1) * _FREQUENCY * math.pi / 16
)
_CONSTANTS = {
    "u8_to_linear": synthesis.srgb_to_linear(np.arange(256, dtype=np.uint8)),
    "luma_table": np.array(_LUMA_TABLE),
    "chroma_table": np.array(_CHROMA_TABLE),
    "rgb_to_ycc": np.array(_RGB_TO_YCC, np.float32),
    "ycc_to_rgb": np.array(_YCC_TO_RGB, np.float32),
    "chroma_offset": np.array([0.0, 128.0, 128.0], np.float32).reshape(1, 3, 1, 1),
    "dct": _DCT.astype(np.float32),
}


@functools.cache
def _constant(name: str, device: torch.device) -> Tensor:
    """A constant table on ``device``, copied there once: a copy per batch would wait for the
    device to finish its queued work."""
    return torch.from_numpy(_CONSTANTS[name]).to(device)


def jpeg_roundtrip(srgb: Tensor, quality: Tensor) -> Tensor:
    """`synthesis.jpeg_roundtrip` on a batch: N×3×H×W sRGB saved at per-sample ``quality``.

    What OpenCV's libjpeg does by default: 8-bit YCbCr, chroma averaged over 2×2 (4:2:0), 8×8
    DCTs quantised by the standard tables scaled to the quality, and on decoding the chroma
    upsampled by the triangle ("fancy") filter. libjpeg's fixed-point arithmetic rounds
    differently: pixels differ by about half a code value on average, and by up to a few where a
    DCT coefficient rounds to the neighbouring quantisation step.
    """
    device = srgb.device
    height, width = srgb.shape[-2:]
    # Whole 16×16 macroblocks, edge pixels repeated as libjpeg does.
    rgb = F.pad(
        torch.round(srgb.clamp(0.0, 1.0) * 255.0), (0, -width % 16, 0, -height % 16), "replicate"
    )
    offset = _constant("chroma_offset", device)
    ycc = torch.einsum("ij,njhw->nihw", _constant("rgb_to_ycc", device), rgb) + offset
    ycc = torch.round(ycc).clamp(0.0, 255.0)
    luma = _quantise(ycc[:, :1], _scaled_table("luma_table", quality))
    chroma = _quantise(
        torch.round(F.avg_pool2d(ycc[:, 1:], 2)), _scaled_table("chroma_table", quality)
    )
    chroma = torch.round(
        F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    )
    ycc = torch.cat([luma, chroma], dim=1) - offset
    rgb = torch.einsum("ij,njhw->nihw", _constant("ycc_to_rgb", device), ycc)
    return (torch.round(rgb).clamp(0.0, 255.0) / 255.0)[..., :height, :width]


def _scaled_table(name: str, quality: Tensor) -> Tensor:
    """N×8×8 quantisation steps at per-sample quality 1–100 (libjpeg's jpeg_quality_scaling)."""
    quality = quality.view(-1, 1, 1)
    scale = torch.where(quality < 50, 5000 // quality, 200 - 2 * quality)
    base = _constant(name, quality.device)
    return ((base * scale + 50) // 100).clamp(1, 255).float()


def _quantise(plane: Tensor, steps: Tensor) -> Tensor:
    """Encode and decode N×C×H×W 8-bit samples (H, W multiples of 8) by 8×8 DCT blocks."""
    n, c, height, width = plane.shape
    dct = _constant("dct", plane.device)
    blocks = plane.reshape(n, c, height // 8, 8, width // 8, 8).transpose(3, 4) - 128.0
    steps = steps.view(n, 1, 1, 1, 8, 8)
    coefficients = torch.round(dct @ blocks @ dct.T / steps) * steps
    blocks = dct.T @ coefficients @ dct + 128.0
    return torch.round(blocks).clamp(0.0, 255.0).transpose(3, 4).reshape(n, c, height, width)
