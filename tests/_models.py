"""Helpers for tests that need random-weight networks to behave like trained ones."""

import math

from torch import nn


def as_if_trained(model: nn.Module) -> nn.Module:
    """Give zero-initialised convolutions (the deblurring nets' residual heads, which make an
    untrained net the identity) PyTorch's default random init, so a random-weight test model
    changes the images it is given, as a trained one does. Returns `model`."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and not module.weight.any():
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    return model
