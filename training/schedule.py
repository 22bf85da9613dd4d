"""The LR schedule of a training run: stages run in order, each with linear warm-up then cosine
decay, rescaled to a --steps override or fitted to the steps a time budget leaves."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Stage:
    """A phase of a schedule: global steps [start, start + steps), LR multiplied by lr_scale,
    batches from the named training stream `stream` (None: the trainer's own choice)."""

    name: str
    start: int
    steps: int
    lr_scale: float = 1.0
    stream: str | None = None


def build_stages(train: dict[str, Any], total_steps: int | None = None) -> list[Stage]:
    """The schedule's stages (one stage "main" without `train.stages`).

    `total_steps` (the --steps override) rescales every stage in proportion; each keeps at least
    one step.
    """
    specs = train.get("stages") or [{"name": "main", "steps": train["steps"]}]
    lengths = [int(spec["steps"]) for spec in specs]
    if total_steps is not None:
        # Round the stage boundaries, not the lengths, so the lengths add up to total_steps.
        scale = total_steps / sum(lengths)
        ends = [round(end * scale) for end in np.cumsum(lengths)]
        lengths = [max(1, end - start) for start, end in zip([0, *ends[:-1]], ends, strict=True)]
    stages, start = [], 0
    for spec, length in zip(specs, lengths, strict=True):
        stages.append(
            Stage(spec["name"], start, length, float(spec.get("lr_scale", 1.0)), spec.get("stream"))
        )
        start += length
    return stages


def fit_stages(stages: list[Stage], index: int, steps: int) -> list[Stage]:
    """`stages[index:]` rescaled in proportion to `steps` in all (each at least one step),
    starting where stage `index` starts; the stages before it stay as they ran."""
    start = stages[index].start
    lengths = [stage.steps for stage in stages[index:]]
    scale = steps / sum(lengths)
    ends = [round(end * scale) for end in np.cumsum(lengths)]
    fitted = []
    for stage, begin, end in zip(stages[index:], [0, *ends[:-1]], ends, strict=True):
        length = max(1, end - begin)
        fitted.append(dataclasses.replace(stage, start=start, steps=length))
        start += length
    return [*stages[:index], *fitted]


def stage_at(stages: list[Stage], step: int) -> Stage:
    for stage in stages:
        if step < stage.start + stage.steps:
            return stage
    return stages[-1]


def lr_factor(stages: list[Stage], warmup: int, step: int) -> float:
    """Linear warm-up then cosine decay to 0, restarted at each stage, times its lr_scale."""
    stage = stage_at(stages, step)
    local = step - stage.start
    warmup = min(warmup, max(1, stage.steps // 5))
    if local < warmup:
        return stage.lr_scale * (local + 1) / warmup
    progress = (local - warmup) / max(1, stage.steps - warmup)
    return stage.lr_scale * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
