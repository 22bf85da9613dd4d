"""Image-quality and motion metrics in torch, per image, with masked variants.

Conventions: images are N×C×H×W float sRGB in [0, 1]; masks N×1×H×W in [0, 1] (1 = the region to
score, e.g. the blur mask for "moving" and 1 − blur mask for "static"); motion maps N×2×H×W (dx, dy)
in pixels. Every function returns a length-N float tensor; an image whose mask is empty scores NaN
(undefined, not zero) so callers average with `nanmean`. Metrics are differentiable where the maths
is, so the supervised end-point-error loss reuses `endpoint_error`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# Identical images have infinite PSNR; a finite cap keeps averages and JSON meaningful.
PSNR_CAP_DB = 100.0


def _masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Per-image mean of N×C×H×W `values` weighted by an N×1×H×W mask (NaN where it is empty)."""
    if mask is None:
        return values.flatten(1).mean(1)
    weight = mask.expand_as(values)
    total = weight.flatten(1).sum(1)
    mean = (values * weight).flatten(1).sum(1) / total.clamp_min(1e-12)
    return torch.where(total > 0, mean, torch.full_like(mean, math.nan))


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, for data range 1, capped at `PSNR_CAP_DB`.

    Args:
        pred, target: N×C×H×W images in [0, 1] (clamp network outputs first).
        mask: optional N×1×H×W region weights; the MSE is taken over the region only.
    """
    mse = _masked_mean((pred.float() - target.float()) ** 2, mask)
    floor = 10.0 ** (-PSNR_CAP_DB / 10.0)
    return -10.0 * torch.log10(mse.clamp_min(floor))


def _gaussian_window(size: int, sigma: float, device: torch.device) -> Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """SSIM per pixel (Wang et al. 2004, Gaussian window, data range 1), channel-averaged.

    Only windows lying fully inside the image are scored, as scikit-image does, so the map is
    N×1×(H−window+1)×(W−window+1); values match `skimage.metrics.structural_similarity(...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)`.
    """
    pred, target = pred.float(), target.float()
    channels = pred.shape[1]
    kernel = _gaussian_window(window, sigma, pred.device).expand(channels, 1, -1, -1)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, kernel, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    numerator = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    denominator = (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    return (numerator / denominator).mean(1, keepdim=True)


def ssim(pred: Tensor, target: Tensor, mask: Tensor | None = None, window: int = 11) -> Tensor:
    """Mean SSIM per image; with `mask`, the mean over windows centred inside the region.

    Args:
        pred, target: N×C×H×W images in [0, 1], H and W at least `window`.
        mask: optional N×1×H×W region weights.
    """
    local = ssim_map(pred, target, window)
    if mask is not None:
        border = window // 2
        mask = mask[..., border : mask.shape[-2] - border, border : mask.shape[-1] - border]
    return _masked_mean(local, mask)


def blur_mask_iou(probability: Tensor, mask: Tensor, threshold: float = 0.5) -> Tensor:
    """Intersection over union of `probability > threshold` and `mask > 0.5`, per image.

    Args:
        probability: N×1×H×W predicted blur probability in [0, 1].
        mask: N×1×H×W ground-truth blur mask (1 = blurred).

    Returns:
        IoU in [0, 1]; NaN for an image where both the prediction and the mask are empty.
    """
    predicted = (probability > threshold).flatten(1)
    truth = (mask > 0.5).flatten(1)
    intersection = (predicted & truth).sum(1).float()
    union = (predicted | truth).sum(1).float()
    iou = intersection / union.clamp_min(1)
    return torch.where(union > 0, iou, torch.full_like(iou, math.nan))


def blur_mask_auc(probability: Tensor, mask: Tensor) -> Tensor:
    """Area under the ROC curve of `probability` as a detector of `mask > 0.5`, per image.

    The chance that a random blurred pixel scores higher than a random sharp one (ties count
    half): how well the map *separates* blur from sharpness, whatever its calibration. IoU at a
    fixed threshold mixes that with calibration, so a run that only shifts every probability
    moves IoU and the mean probability on sharp photos against each other; AUC tells such a
    shift from a better detector.

    Args:
        probability: N×1×H×W predicted blur probability.
        mask: N×1×H×W ground-truth blur mask (1 = blurred).

    Returns:
        AUC in [0, 1] (0.5 = no better than chance); NaN for an image that is all blurred or all
        sharp.
    """
    scores = []
    for p, truth in zip(probability.flatten(1).float(), mask.flatten(1) > 0.5, strict=True):
        positives = int(truth.sum())
        negatives = truth.numel() - positives
        if positives == 0 or negatives == 0:
            scores.append(math.nan)
            continue
        # Mann-Whitney U from the rank sum of the blurred pixels, tied values at their mean rank.
        _, inverse, counts = torch.unique(p, return_inverse=True, return_counts=True)
        first_rank = torch.cumsum(counts, 0) - counts + 1
        mean_rank = first_rank.double() + (counts.double() - 1) / 2
        rank_sum = mean_rank[inverse][truth].sum().item()
        scores.append((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))
    return torch.tensor(scores, dtype=torch.float32)


def endpoint_error_map(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pixel end-point error in px, the better of ±`target`.

    A linear blur from p − m/2 to p + m/2 looks the same as one from p + m/2 to p − m/2, so the
    sign of a motion vector cannot be recovered from the image; each pixel is scored against the
    closer of m and −m.

    Args:
        pred, target: N×2×H×W motion maps (dx, dy) in pixels.

    Returns:
        N×1×H×W error in pixels.
    """
    pred, target = pred.float(), target.float()
    # The small epsilon keeps the gradient of the norm finite at a perfect prediction.
    forward = torch.sqrt(((pred - target) ** 2).sum(1, keepdim=True) + 1e-12)
    backward = torch.sqrt(((pred + target) ** 2).sum(1, keepdim=True) + 1e-12)
    return torch.minimum(forward, backward)


def endpoint_error(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean sign-ambiguous end-point error in px per image over `valid` pixels (N×1×H×W)."""
    return _masked_mean(endpoint_error_map(pred, target), valid)
