"""The trainers, one per paper, each implementing its paper's schedule, and `make_trainer`, which
picks the one for a config's architecture (TRAINERS)."""

from __future__ import annotations

from typing import Any

import torch

from training.distributed import DistInfo
from training.trainers.base import Trainer
from training.trainers.bladenet import BladeNetTrainer
from training.trainers.deblur import DeblurTrainer
from training.trainers.motion import MotionTrainer

TRAINERS: dict[str, type[Trainer]] = {
    "bladenet": BladeNetTrainer,
    "lcnet": DeblurTrainer,
    "refdeblur": DeblurTrainer,
    "neurmap_motion": MotionTrainer,
}


def make_trainer(
    config: dict[str, Any],
    device: torch.device,
    dist_info: DistInfo = DistInfo(),
    total_steps: int | None = None,
) -> Trainer:
    arch = config["model"]["arch"]
    if arch not in TRAINERS:
        raise ValueError(f"no trainer for architecture '{arch}' (known: {', '.join(TRAINERS)})")
    return TRAINERS[arch](config, device, dist_info, total_steps)
