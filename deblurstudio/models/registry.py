"""The hand-written architecture registry (no folder scanning: PyInstaller cannot see it).

Every network built here carries `arch_id` and `arch_kwargs` so a checkpoint can name how to
rebuild it, and a `stride`: the multiple that input height and width must be padded to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from deblurstudio.models.bladenet import BladeNet
from deblurstudio.models.lcnet import LCNet
from deblurstudio.models.neurmap import MotionNet, PatchDiscriminator
from deblurstudio.models.refdeblur import RefDeblurNet

ARCHS: dict[str, Callable[..., nn.Module]] = {
    "bladenet": BladeNet,
    "lcnet": LCNet,
    "refdeblur": RefDeblurNet,
    "neurmap_motion": MotionNet,
    "patchgan": PatchDiscriminator,
}


def build(arch: str, **kwargs: Any) -> nn.Module:
    """Construct architecture `arch` with constructor arguments `kwargs`."""
    try:
        constructor = ARCHS[arch]
    except KeyError:
        known = ", ".join(sorted(ARCHS))
        raise ValueError(f"unknown architecture '{arch}' (known: {known})") from None
    model = constructor(**kwargs)
    model.arch_id = arch
    model.arch_kwargs = dict(kwargs)
    return model
