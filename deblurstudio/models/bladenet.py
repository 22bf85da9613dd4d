"""BladeNet: blur-aware local deblurring (LODE, paper 000).

A Local Blur Perception (LBP) U-Net predicts where the image is blurred; the main U-Net deblurs
image ⊕ blur probability, with Blur-guided Spatial Attention (BSA) in its last three up stages.
Images are N×3×H×W float sRGB in [0, 1]; H and W must be multiples of `BladeNet.stride` (16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurstudio.models._blocks import check_stride
from deblurstudio.models.outputs import DeblurOutput

_DEPTH = 4  # four Down and four Up blocks (appendix B.1)


NORMS = ("batch", "none")


class _ConvBNReLU(nn.Module):
    """3×3 Conv–BN–ReLU (no conv bias: BN supplies it), or Conv–ReLU with `norm="none"`.

    In eval mode BN is folded into the convolution weights on the fly: the same function, but one
    pass over the activations instead of two (measured ~15% of BladeNet's CPU inference time).
    """

    def __init__(self, c_in: int, c_out: int, norm: str = "batch") -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=norm == "none")
        self.bn = nn.BatchNorm2d(c_out) if norm == "batch" else None

    def forward(self, x: Tensor) -> Tensor:
        if self.bn is None:
            return F.relu(self.conv(x), inplace=True)
        if self.training:
            return F.relu(self.bn(self.conv(x)), inplace=True)
        scale = self.bn.weight * torch.rsqrt(self.bn.running_var + self.bn.eps)
        weight = self.conv.weight * scale.view(-1, 1, 1, 1)
        bias = self.bn.bias - self.bn.running_mean * scale
        return F.relu(F.conv2d(x, weight, bias, padding=1), inplace=True)


class _DoubleConv(nn.Sequential):
    """Conv–BN–ReLU–Conv–BN–ReLU."""

    def __init__(self, c_in: int, c_out: int, c_mid: int | None = None, norm: str = "batch"):
        c_mid = c_mid or c_out
        super().__init__(_ConvBNReLU(c_in, c_mid, norm), _ConvBNReLU(c_mid, c_out, norm))


class SpatialAttention(nn.Module):
    """BSA attention, eqs. (2)–(3): A = σ(Conv7×7([mean_c F; max_c F])), F' = A ⊙ F.

    Eq. (2) did not survive text extraction; the paper calls it the "ordinary" spatial attention
    that BSA supervises explicitly, so we use CBAM's spatial attention (Woo et al., 2018).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (attended features, attention map N×1×h×w in [0, 1])."""
        pooled = torch.cat(
            [features.mean(dim=1, keepdim=True), features.amax(dim=1, keepdim=True)], dim=1
        )
        attention = torch.sigmoid(self.conv(pooled))
        return features * attention, attention


class _Up(nn.Module):
    """bilinearUpsample–Concat–DoubleConv[–BSA–DoubleConv].

    The appendix lists 'Concat' last in each block; we read it as the usual U-Net, where the
    upsampled features are concatenated with the encoder skip of the same resolution before the
    convolutions — the only order in which every skip, the full-resolution one included, reaches
    a 3×3 convolution.
    """

    def __init__(self, c_in: int, c_out: int, c_mid: int, attention: bool, norm: str) -> None:
        super().__init__()
        self.conv = _DoubleConv(c_in, c_out, c_mid, norm)
        self.attention = SpatialAttention() if attention else None
        self.post_attention = _DoubleConv(c_out, c_out, norm=norm) if attention else None

    def forward(self, deep: Tensor, skip: Tensor) -> tuple[Tensor, Tensor | None]:
        deep = F.interpolate(deep, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        features = self.conv(torch.cat([skip, deep], dim=1))
        if self.attention is None:
            return features, None
        features, attention = self.attention(features)
        return self.post_attention(features), attention


class UNet(nn.Module):
    """The U-Net of appendix B.1: input DoubleConv, 4 × (Maxpool–DoubleConv), 4 up blocks, 1×1 out.

    Channels per level are w, 2w, 4w, 8w, 8w (bilinear U-Net: the bottom level does not double,
    and each up block halves its width in its first convolution).

    Args:
        c_in: input channels.
        c_out: output channels (raw, no activation).
        width: channels of the full-resolution level, w.
        attention_stages: how many of the last up blocks carry BSA (BladeNet's main net: 3).
        norm: "batch" (the paper's Conv–BN–ReLU) or "none" (Conv–ReLU).
    """

    def __init__(
        self, c_in: int, c_out: int, width: int, attention_stages: int = 0, norm: str = "batch"
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"UNet: norm must be one of {NORMS}, not {norm!r}")
        widths = [width * 2**level for level in range(_DEPTH)]  # w, 2w, 4w, 8w
        self.inc = _DoubleConv(c_in, widths[0], norm=norm)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _DoubleConv(c, c_next, norm=norm))
            for c, c_next in zip(widths, [*widths[1:], widths[-1]], strict=True)
        )
        # Up block i joins the deep features (as wide as the skip) with skip level 3-i.
        skip_widths = widths[::-1]  # 8w, 4w, 2w, w
        out_widths = [*skip_widths[1:], widths[0]]  # 4w, 2w, w, w
        self.ups = nn.ModuleList(
            _Up(2 * c_skip, c_out_up, c_skip, i >= _DEPTH - attention_stages, norm)
            for i, (c_skip, c_out_up) in enumerate(zip(skip_widths, out_widths, strict=True))
        )
        self.out = nn.Conv2d(widths[0], c_out, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Returns (N×c_out×H×W output, attention maps of the BSA stages, coarse to fine)."""
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        features = skips.pop()
        attention_maps = []
        for up in self.ups:
            features, attention = up(features, skips.pop())
            if attention is not None:
                attention_maps.append(attention)
        return self.out(features), attention_maps


class BladeNet(nn.Module):
    """Blur-aware deblurring network: LBP U-Net + BSA-equipped main U-Net.

    The paper's networks are 40.8 M parameters (appendix B.1), the classic U-Net at width 64 for
    both nets (ours: width=64, perception_width=64 gives 35.0 M; Fig. 8 with the exact channel
    counts did not survive extraction). The shipped defaults (width=24, perception_width=12,
    3.1 M parameters) run in about 3 s per megapixel on a 2-core CPU (fp32, channels_last).

    Where the paper is silent: the main net predicts a residual (restored = image + residual) whose
    output convolution starts at zero, so the untrained net is the identity; with `gate` the
    residual is multiplied by the blur probability, so what the LBP net (or a painted mask) calls
    sharp passes through unchanged. The returned attention is the *mean* of the three upsampled
    BSA maps (eq. 4's sum divided by 3), so it stays in [0, 1] as DICE against the mask requires.
    docs/training.md has the measurements behind `gate` and `norm`.

    Args:
        width: base channels of the main deblurring U-Net.
        perception_width: base channels of the LBP U-Net.
        gate: multiply the residual by the blur probability (see above).
        norm: the main U-Net's normalisation, "batch" (the paper's) or "none"; the LBP net
            keeps BatchNorm.
    """

    stride = 2**_DEPTH
    accepts_blur_probability = True
    needs_reference = False

    def __init__(
        self, width: int = 24, perception_width: int = 12, gate: bool = True, norm: str = "batch"
    ) -> None:
        super().__init__()
        self.gate = gate
        self.perception = UNet(3, 1, perception_width)
        self.deblur = UNet(4, 3, width, attention_stages=3, norm=norm)
        nn.init.zeros_(self.deblur.out.weight)
        nn.init.zeros_(self.deblur.out.bias)

    def perceive(self, image: Tensor) -> Tensor:
        """Per-pixel blur probability N×1×H×W in [0, 1] of `image` (N×3×H×W sRGB in [0, 1])."""
        check_stride(image, self.stride, "BladeNet")
        logits, _ = self.perception(image)
        return torch.sigmoid(logits)

    def forward(
        self, image: Tensor, blur_probability: Tensor | None = None, *, deblur: bool = True
    ) -> DeblurOutput:
        """Deblur `image` (N×3×H×W sRGB in [0, 1]).

        Args:
            image: blurred image.
            blur_probability: optional N×1×H×W map in [0, 1] (e.g. a painted mask) used instead
                of the LBP net's prediction; the LBP net is then not run.
            deblur: False runs the LBP net alone (restored is the image itself, attention None):
                the LBP training stage, which must go through forward for DistributedDataParallel
                and would otherwise pay for the larger main net's forward pass it does not use.

        Returns:
            DeblurOutput(restored, blur_probability (the given or perceived map), attention
            N×1×H×W in [0, 1]).
        """
        check_stride(image, self.stride, "BladeNet")
        if blur_probability is None:
            blur_probability = self.perceive(image)
        elif blur_probability.shape != (image.shape[0], 1, *image.shape[-2:]):
            raise ValueError(
                f"BladeNet: blur_probability has shape {tuple(blur_probability.shape)}, "
                f"expected {(image.shape[0], 1, *image.shape[-2:])}"
            )
        if not deblur:
            return DeblurOutput(restored=image, blur_probability=blur_probability)
        residual, attention_maps = self.deblur(torch.cat([image, blur_probability], dim=1))
        attention = sum(
            F.interpolate(a, size=image.shape[-2:], mode="bilinear", align_corners=False)
            for a in attention_maps
        ) / len(attention_maps)
        return DeblurOutput(
            restored=image + (blur_probability * residual if self.gate else residual),
            blur_probability=blur_probability,
            attention=attention,
        )
