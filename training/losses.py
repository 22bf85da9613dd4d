"""Training losses of the four papers. None needs downloaded weights.

Conventions: images N×3×H×W sRGB in [0, 1]; masks and probabilities N×1×H×W in [0, 1]; motion maps
N×2×H×W (dx, dy) in pixels; discriminator outputs are raw logits of any shape. Every loss returns a
scalar (mean over the batch). L1 and MSE are `torch.nn.functional.l1_loss` / `mse_loss`.

Losses that take a log or a reciprocal run in float32 even under autocast, where fp16 would
overflow or underflow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from deblurstudio.models.neurmap import doubled_angle, reblur


def fft_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Frequency reconstruction loss (paper 001, eq. 9): mean |F(pred) − F(target)|.

    The 2-D FFT is orthonormal, so the loss has the scale of a pixel-domain error; the modulus of
    the complex difference penalises amplitude and phase errors alike. Zero for identical images.
    """
    difference = torch.fft.rfft2(pred.float() - target.float(), norm="ortho")
    return difference.abs().mean()


def psnr_loss(pred: Tensor, target: Tensor, floor: float = 1e-5) -> Tensor:
    """Negative PSNR in dB, per image then averaged: mean 10·log10(MSE_i + floor).

    MSE over a batch weights every image by its squared error, so a net trained with it buys
    small gains on heavily blurred images with larger losses in dB on mildly blurred ones
    (measured on the MSE-trained BladeNet: 20.7 → 20.7 dB but 36.7 → 34.8 dB, mean PSNR down
    0.27 dB). The log weights each image by 1 / its MSE, i.e. what the mean PSNR rewards (the
    "PSNR loss" of NAFNet, Chen et al. 2022). `floor` (PSNR 50 dB) bounds that weight on images
    that are already nearly right, which would otherwise take every step for themselves.
    """
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(mse + floor).mean()


def charbonnier_loss(pred: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    """Charbonnier loss, mean sqrt((pred − target)² + eps²): L1 with a smooth minimum."""
    return torch.sqrt((pred.float() - target.float()).pow(2) + eps * eps).mean()


def bce_loss(probability: Tensor, target: Tensor) -> Tensor:
    """Pixel-wise binary cross-entropy (paper 000, eq. 1) of a probability map against a mask."""
    # Written out: F.binary_cross_entropy refuses to run under CUDA autocast at all.
    probability = probability.float().clamp(1e-6, 1 - 1e-6)
    target = target.float()
    return -(target * probability.log() + (1 - target) * (1 - probability).log()).mean()


def dice_loss(prediction: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft DICE loss (Milletari et al. 2016), 1 − 2|P∩T| / (|P| + |T|), per image then averaged.

    `smooth` keeps images whose mask and prediction are both empty at zero loss (a sharp sample
    with no attention is right, not undefined).
    """
    prediction, target = prediction.float().flatten(1), target.float().flatten(1)
    overlap = (prediction * target).sum(1)
    score = (2 * overlap + smooth) / (prediction.sum(1) + target.sum(1) + smooth)
    return (1 - score).mean()


def _differences(x: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences along x (width) and y (height)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def tv_loss(x: Tensor) -> Tensor:
    """Anisotropic total variation: mean |∂x| + mean |∂y| (paper 002, eqs. 6 and 9)."""
    dx, dy = _differences(x)
    return dx.abs().mean() + dy.abs().mean()


def lsgan_loss(logits: Tensor, is_real: bool) -> Tensor:
    """Least-squares GAN loss (Mao et al. 2017; paper 002, eqs. 8 and 12): mean (D(x) − label)².

    Discriminator: `lsgan_loss(D(natural), True) + lsgan_loss(D(fake), False)`;
    generator: `lsgan_loss(D(fake), True)`.
    """
    return ((logits.float() - (1.0 if is_real else 0.0)) ** 2).mean()


def relativistic_average_loss(preferred: Tensor, other: Tensor) -> Tensor:
    """Relativistic average GAN loss (Jolicoeur-Martineau 2019; paper 001, eqs. 10–11).

    Low when the `preferred` logits exceed the average `other` logit and the `other` logits fall
    below the average `preferred` one. Discriminator: `relativistic_average_loss(D(real), D(fake))`;
    generator: `relativistic_average_loss(D(fake), D(real))` (eq. 11 is eq. 10 with the roles
    swapped).
    """
    preferred, other = preferred.float(), other.float()
    return F.binary_cross_entropy_with_logits(
        preferred - other.mean(), torch.ones_like(preferred)
    ) + F.binary_cross_entropy_with_logits(other - preferred.mean(), torch.zeros_like(other))


def _motion_length(motion: Tensor) -> Tensor:
    return torch.sqrt((motion.float() ** 2).sum(1) + 1e-12)


def kernel_prior_loss(
    max_length: float,
    *,
    sharp: Tensor | None = None,
    blurred: Tensor | None = None,
    deblurred: Tensor | None = None,
    blurred_reference: Tensor | None = None,
    unremoved_fraction: float = 0.5,
) -> Tensor:
    """NeurMAP's kernel prior (paper 002, eq. 5) on the motion network's blur-axis fields in px
    (their lengths are the motion lengths), normalised by `max_length`.

    The paper's equation is missing from the text; its three priors, as the text states them:

    - `sharp`: motion estimated from sharp images (or, as the deblurring network's sharp-image
      prior of eq. 7, from deblurred ones) is pulled to the zero field: mean |m| / max_length. The
      paper's target E[M(S)] is the value this very term drives to, zero.
    - `blurred`: motion estimated from blurry images that have no ground truth "should be
      relatively large, with max_length regarded as the upper limit": mean ||m| − max_length| /
      max_length pulls lengths up towards the limit and penalises implausibly long ones beyond it
      (kernels longer than the 30–40 px the paper cites). Irregular motion is penalised by
      `tv_loss` on the same maps (eq. 6).
    - `deblurred` with `blurred_reference`: the blur a deblurring network left in its output is a
      scaled-down copy of the input's, M(D) ≈ s·M(B) with M(B) held fixed; the paper's s is lost,
      `unremoved_fraction` = 0.5 is our choice. Compared as axis fields, so the sign of neither
      matters.

    Args:
        max_length: the motion limit m_max in px.
        sharp, blurred, deblurred, blurred_reference: N×2×H×W axis fields; give any subset.
        unremoved_fraction: s above.

    Returns:
        The sum of the given terms (0 when none is given).
    """
    terms = []
    if sharp is not None:
        terms.append(_motion_length(sharp).mean() / max_length)
    if blurred is not None:
        terms.append((_motion_length(blurred) - max_length).abs().mean() / max_length)
    if deblurred is not None:
        target = unremoved_fraction * blurred_reference.detach().float()
        terms.append(_motion_length(deblurred.float() - target).mean() / max_length)
    return torch.stack(terms).sum() if terms else torch.zeros(())


def motion_axis_loss(axis: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Supervised motion loss in px² over pixels with a known linear motion, sign-free.

    `axis` is the network's blur-axis field (`deblurstudio.models.neurmap.doubled_angle`),
    `target` the true motion: the mean squared distance between `axis` and the target's axis
    field. 0 for ±target, |target|² for the zero field, about the squared end-point error
    otherwise.

    Why neither the metric itself, min(|p − t|, |p + t|) on a predicted motion p, nor a distance
    computed from a predicted motion: with the metric, each pixel near the zero field is pulled
    towards whichever of ±t it happens to be closer to, and a convolutional net's smooth output
    cannot follow those random signs, so the pulls cancel (measured: 5000 CPU steps at lr 1e-4
    and 1e-3 stayed at the zero field, validation EPE 1.40 px, the zero field's 1.40 px).
    Through a predicted motion, the pull on the direction vanishes as |p| → 0, so outputs
    pointing the wrong way shrink instead of turning; every such run ended at the zero field.
    On the axis field the gradient points straight at the target's axis whatever the output's
    length. Squared, not the distance itself: a distance loss is minimised by the median of the
    targets the net cannot yet tell apart, and half of the pixels with known motion are still
    (sharp photos, static backgrounds), so that median is the zero field (measured: 1250 steps
    on the full mix stayed there); the squared one's minimiser is their mean, and its gradient
    grows with the error. The reblur term cannot help at the zero field: blurring along m and
    −m is the same, so its gradient vanishes there.
    Images without any valid pixel do not count; 0 when the batch has none.
    """
    difference = axis.float() - doubled_angle(target.float())
    distance = (difference**2).sum(1, keepdim=True)
    weight = valid.float()
    total = weight.flatten(1).sum(1)
    per_image = (distance * weight).flatten(1).sum(1) / total.clamp_min(1e-12)
    known = total > 0
    return per_image[known].mean() if known.any() else per_image.new_zeros(())


def reblur_loss(sharp: Tensor, motion: Tensor, blurred: Tensor, steps: int) -> Tensor:
    """Reblur consistency (paper 002, eq. 4): L1 between reblur(sharp, motion) and `blurred`.

    `reblur` warps `sharp` along each pixel's segment p − m/2 → p + m/2 in `steps` samples and
    averages (in sRGB, as the paper's module does).
    """
    return F.l1_loss(reblur(sharp, motion, steps).float(), blurred.float())


def structure_loss(pred: Tensor, target: Tensor, scales: int = 3) -> Tensor:
    """Weight-free stand-in for LCNet's VGG-19 perceptual loss (paper 003, eq. 3).

    VGG weights would have to be downloaded, which this project never does. Like the VGG features
    it replaces, this compares local structure rather than raw pixels: the L1 distance of image
    gradients (edges) on a pyramid of `scales` resolutions (halved each time, so coarse scales see
    larger structures), plus `fft_loss` for the high-frequency detail a pixel loss smooths away.
    """
    level_pred, level_target = pred.float(), target.float()
    edge = level_pred.new_zeros(())
    for level in range(scales):
        if level:
            level_pred = F.avg_pool2d(level_pred, 2)
            level_target = F.avg_pool2d(level_target, 2)
        for d_pred, d_target in zip(
            _differences(level_pred), _differences(level_target), strict=True
        ):
            edge = edge + F.l1_loss(d_pred, d_target)
    return edge / scales + fft_loss(pred, target)


def patch_contrastive_loss(query: Tensor, key: Tensor, temperature: float = 0.1) -> Tensor:
    """InfoNCE over positions: each query patch must match the key patch at its own position.

    Trains the reference network's matching encoder (paper 001, Eq. 1–3). The paper matches
    features of a pretrained VGG, which this project cannot download; a learned encoder trained
    only through the deblurring loss collapses to nearly constant features, so every reference
    patch matches equally well. Here `query` are the features of the blurry image and `key` those
    of its aligned sharp frame (N×C×H×W each): the patch at position p of the query is the
    positive for key patch p, and every other position of the same image is a negative (as in
    PatchNCE, Park et al. 2020). Patches are the zero-padded 3×3 windows `match_patches` compares,
    L2-normalised, so the logits are the cosine similarities it ranks, divided by `temperature`
    (0.1 as in PatchNCE; the paper has no such loss). Cross-entropy, mean over all positions.
    Near 0 when every position is distinct and matches itself; log(H·W) for constant features.
    """
    query_patches = F.normalize(F.unfold(query.float(), 3, padding=1), dim=1)  # N×9C×P
    key_patches = F.normalize(F.unfold(key.float(), 3, padding=1), dim=1)
    logits = torch.bmm(query_patches.transpose(1, 2), key_patches) / temperature  # N×P×P
    n, positions = logits.shape[:2]
    target = torch.arange(positions, device=logits.device).expand(n, positions)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())
