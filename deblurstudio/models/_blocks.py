"""Small building blocks and checks shared by several networks."""

from __future__ import annotations

from torch import Tensor, nn


class ResBlock(nn.Module):
    """Conv–LeakyReLU–Conv plus identity: the norm-free residual block of Nah et al. (DeepDeblur).

    Dropping normalisation and the post-activation suits image restoration (LCNet §2.1).

    Args:
        channels: input and output channels.
        negative_slope: LeakyReLU slope (LCNet uses 0.2).
    """

    def __init__(self, channels: int, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(negative_slope, inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def check_stride(image: Tensor, stride: int, network: str) -> None:
    """Raise ValueError unless `image` (N×C×H×W) has H and W divisible by `stride`.

    The pipeline pads to the stride; this turns a forgotten pad into a clear message instead of a
    shape mismatch deep inside the network.
    """
    height, width = image.shape[-2:]
    if height % stride or width % stride:
        raise ValueError(
            f"{network}: input {height}×{width} is not a multiple of its stride {stride}; "
            "pad the image first"
        )
