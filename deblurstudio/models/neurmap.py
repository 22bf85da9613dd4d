"""NeurMAP (Zhang et al., "Neural Maximum A Posteriori Estimation on Unpaired Data for Motion
Deblurring"): the motion-estimation network, the differentiable reblur module and the natural-image
discriminator. The deblurring network of the framework is any of our deblurring networks.

Motion convention (all of this module): a motion map is N×2×H×W, channels (dx, dy) in pixels of
the image it belongs to, x to the right and y down. The blur through pixel p is the straight
segment from p − m/2 to p + m/2 (linear-trajectory kernels, after Gong et al.); m and −m describe
the same blur, so the sign is ambiguous and losses must not depend on it.

The motion network regresses the sign-free *blur-axis field* instead: a = |m|·(cos 2θ, sin 2θ)
for m = |m|·(cos θ, sin θ) (`doubled_angle`), the same for m and −m. `motion_from_axis` turns it
back into a motion map. Axis fields can be averaged and resized; motion maps cannot (the mean of
m and −m, the same blur, is no blur).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurstudio.models._blocks import ResBlock, check_stride

DEFAULT_MAX_LENGTH = 40.0
"""Upper bound of the motion length in pixels. The paper's value is lost in the text ("the biggest
blur kernel size in most previous methods is around 30 to 40, we set ..."); the authors' code
scales unit-bounded offsets to ±20 px at each end of the segment, i.e. 40 px overall."""


def bound_motion(raw: Tensor, max_length: float) -> Tensor:
    """Map unbounded N×2×H×W vectors to motions of length < `max_length` pixels.

    m = L · r / sqrt(1 + |r|²): smooth everywhere (also at r = 0), keeps the direction, ≈ L·r for
    small r and tends to length L as |r| grows, so gradients never vanish abruptly as with a clamp.
    """
    return max_length * raw * torch.rsqrt(1 + raw.pow(2).sum(dim=1, keepdim=True))


def doubled_angle(motion: Tensor) -> Tensor:
    """Motion map → blur-axis field: r·(cos θ, sin θ) → r·(cos 2θ, sin 2θ), length kept."""
    dx, dy = motion[:, :1].float(), motion[:, 1:2].float()
    length = torch.sqrt(dx * dx + dy * dy + 1e-12)
    return torch.cat([(dx * dx - dy * dy) / length, 2 * dx * dy / length], dim=1).to(motion.dtype)


def motion_from_axis(axis: Tensor) -> Tensor:
    """Blur-axis field → motion map, the inverse of `doubled_angle` with θ in [−90°, 90°]:
    the axis's angle halved, its length kept. Differentiable everywhere with finite gradients,
    also at the zero field and on the axis of vertical blur, where the half angle wraps (there
    both ±90° give the same blur).
    """
    a, b = axis[:, :1].float(), axis[:, 1:2].float()
    squared = a * a + b * b
    still = squared == 0
    # The safe operands keep sqrt and atan2 off 0, whose gradients are infinite there (their
    # where-masked branch would still turn them into NaN gradients).
    length = torch.where(still, 0.0, torch.sqrt(torch.where(still, 1.0, squared)))
    half_angle = 0.5 * torch.atan2(torch.where(still, 0.0, b), torch.where(still, 1.0, a))
    motion = torch.cat([length * torch.cos(half_angle), length * torch.sin(half_angle)], dim=1)
    return motion.to(axis.dtype)


def _gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of N×C×H×W (radius 3σ, image borders repeated)."""
    radius = max(1, round(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).repeat(image.shape[1], 1, 1, 1)  # C×1×1×K
    image = F.conv2d(
        F.pad(image, (radius, radius, 0, 0), mode="replicate"), kernel, groups=image.shape[1]
    )
    return F.conv2d(
        F.pad(image, (0, 0, radius, radius), mode="replicate"),
        kernel.transpose(-1, -2),
        groups=image.shape[1],
    )


def contrast_normalize(
    image: Tensor, detail_sigma: float = 4.0, energy_sigma: float = 8.0
) -> Tensor:
    """Local contrast normalisation: the image's detail (image − its Gaussian blur at
    `detail_sigma`) divided by the local RMS of that detail (Gaussian window `energy_sigma`).

    The blur of a pixel shows in the *relative* strength of its detail along and across the
    motion, whatever the scene's contrast; a ReLU network cannot easily divide by contrast itself.
    Measured (1000 CPU steps, linear camera shake, fresh samples each step): on raw sRGB the
    network stayed at the zero field (validation EPE 9.3 px, zero field 9.5 px); on this input it
    reached 5.8 px. Computed in float32 whatever the network's precision.
    """
    pixels = image.float()
    detail = pixels - _gaussian_blur(pixels, detail_sigma)
    energy = _gaussian_blur(detail.pow(2).mean(dim=1, keepdim=True), energy_sigma)
    return (detail * torch.rsqrt(energy + 1e-4)).to(image.dtype)


class MotionNet(nn.Module):
    """Motion-estimation network: image (N×3×H×W sRGB [0, 1]) → blur-axis field (N×2×H×W
    pixels; `motion_from_axis` gives the motion map).

    The paper does not describe this network. Like the authors' released code, it is a 3-level
    encoder–decoder on a 2× space-to-depth rearrangement of the image, with residual blocks at
    1/2, 1/4 and 1/8 resolution and transposed-convolution upsampling with skip connections; it
    returns to full resolution by depth-to-space (theirs: one more transposed convolution). Their
    size, 16 channels and three residual blocks per level, is the default; their blocks use 5×5
    kernels, ours 3×3 (cheaper on CPU, where the app runs this network for the motion overlay).
    The network sees `contrast_normalize(image)`, not the raw image (see there why).

    It outputs the blur-axis field, not the motion, a choice of ours: the paper's network outputs
    motion and its losses are sign-free, but a sign-free loss on motion has no pull on the
    direction of a near-zero output (turning m costs nothing in loss as |m| → 0), so a freshly
    initialised net, whose outputs are near zero, collapses to the zero field. Measured: every
    CPU run of up to 5000 steps that regressed motion ended at the zero field. A loss on the axis
    field pulls every output straight towards its target's axis, at any length.

    Args:
        width: channels at 1/2 resolution (×2, ×4 at 1/4, 1/8).
        blocks: residual blocks per encoder level.
        max_length: motion lengths (= axis lengths) are bounded by this many pixels (see
            `bound_motion`).
    """

    stride = 8

    def __init__(
        self, width: int = 16, blocks: int = 3, max_length: float = DEFAULT_MAX_LENGTH
    ) -> None:
        super().__init__()
        self.max_length = float(max_length)
        w1, w2, w4 = width, 2 * width, 4 * width

        def level(in_channels: int, channels: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1),
                nn.ReLU(inplace=True),
                *(ResBlock(channels, negative_slope=0.0) for _ in range(blocks)),
            )

        self.encoder1 = level(3 * 4, w1, 1)
        self.encoder2 = level(w1, w2, 2)
        self.encoder4 = level(w2, w4, 2)
        self.up2 = nn.Sequential(nn.ConvTranspose2d(w4, w2, 4, stride=2, padding=1), nn.ReLU())
        self.merge2 = nn.Sequential(nn.Conv2d(2 * w2, w2, 3, padding=1), nn.ReLU(inplace=True))
        self.up1 = nn.Sequential(nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1), nn.ReLU())
        self.merge1 = nn.Sequential(nn.Conv2d(2 * w1, w1, 3, padding=1), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(w1, 2 * 4, 3, padding=1)

    def forward(self, image: Tensor) -> Tensor:
        """Returns the N×2×H×W blur-axis field in pixels of `image`, length < max_length."""
        check_stride(image, self.stride, "MotionNet")
        encoded1 = self.encoder1(F.pixel_unshuffle(contrast_normalize(image), 2))
        encoded2 = self.encoder2(encoded1)
        encoded4 = self.encoder4(encoded2)
        decoded = self.merge2(torch.cat([self.up2(encoded4), encoded2], dim=1))
        decoded = self.merge1(torch.cat([self.up1(decoded), encoded1], dim=1))
        raw = F.pixel_shuffle(self.head(decoded), 2)
        return bound_motion(raw, self.max_length)


def reblur(sharp: Tensor, motion: Tensor, steps: int) -> Tensor:
    """Blur `sharp` along per-pixel motion: the paper's non-trainable reblurring module (Eq. 3).

    Output pixel p is the mean of `sharp` sampled (bilinearly, image borders repeated) at `steps`
    points evenly spaced on the segment p − m(p)/2 … p + m(p)/2, ends included. Differentiable
    w.r.t. both `sharp` and `motion`. With steps = L + 1 and a horizontal motion of even L px,
    every sample falls on a pixel: a uniform horizontal blur over L + 1 pixels.

    Args:
        sharp: N×C×H×W image.
        motion: N×2×H×W (dx, dy) in pixels.
        steps: samples along the segment (≥ 1; 1 samples only p itself).

    Returns:
        N×C×H×W reblurred image.
    """
    if steps < 1:
        raise ValueError(f"reblur: steps must be ≥ 1, not {steps}")
    height, width = sharp.shape[-2:]
    ys = torch.arange(height, dtype=sharp.dtype, device=sharp.device)
    xs = torch.arange(width, dtype=sharp.dtype, device=sharp.device)
    # grid_sample with align_corners=True maps −1 and +1 to the centres of the first and last
    # pixels, so pixel coordinate u becomes 2u/(size − 1) − 1.
    x_scale = 2 / max(width - 1, 1)
    y_scale = 2 / max(height - 1, 1)
    base_x = (xs * x_scale - 1)[None, None, :]
    base_y = (ys * y_scale - 1)[None, :, None]
    motion_x = motion[:, 0] * x_scale
    motion_y = motion[:, 1] * y_scale
    positions = torch.linspace(-0.5, 0.5, steps) if steps > 1 else torch.zeros(1)
    total = torch.zeros_like(sharp)
    for t in positions.tolist():
        grid = torch.stack([base_x + t * motion_x, base_y + t * motion_y], dim=-1)
        total = total + F.grid_sample(
            sharp, grid, mode="bilinear", padding_mode="border", align_corners=True
        )
    return total / steps


class PatchDiscriminator(nn.Module):
    """NeurMAP's natural-image discriminator: a PatchGAN (pix2pix) for LSGAN losses.

    Scores overlapping patches of an N×3×H×W sRGB [0, 1] image as natural (label 1: sharp and
    blurry photos alike) or generated (label 0: deblurred results). No sigmoid: LSGAN regresses the
    raw score to the label. Weights are Xavier-initialised with zero biases, as the paper says.
    Paper (pix2pix 70×70 PatchGAN, instance norm as in the authors' code): width=64, layers=3.

    Args:
        width: channels of the first layer (doubling per layer, at most 8×).
        layers: stride-2 layers; output is N×1×(H/2^layers − 2)×(W/2^layers − 2).
    """

    def __init__(self, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        self.stride = 2**layers
        modules: list[nn.Module] = [nn.Conv2d(3, width, 4, stride=2, padding=1)]
        modules.append(nn.LeakyReLU(0.2, inplace=True))
        channels = width
        for layer in range(1, layers + 1):
            out_channels = width * min(2**layer, 8)
            stride = 2 if layer < layers else 1
            modules += [
                nn.Conv2d(channels, out_channels, 4, stride=stride, padding=1),
                nn.InstanceNorm2d(out_channels),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = out_channels
        modules.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.body = nn.Sequential(*modules)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, image: Tensor) -> Tensor:
        """Returns N×1×h×w patch scores (higher = more natural)."""
        return self.body(image)
