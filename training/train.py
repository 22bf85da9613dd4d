"""Train one of DeblurStudio's networks from a YAML config.

    python -m training.train --config training/configs/bladenet.yaml --data-root ../shared/data \\
        --run-dir ~/runs/bladenet [--resume] [--steps N] [--device cpu|cuda]
        [--init-from CHECKPOINT] [--stop-at STEP] [--time-budget SECONDS]
    torchrun --nproc-per-node 4 -m training.train ...      # DistributedDataParallel

Config (keys are constructor arguments, BasicSR style):
    base: other.yaml            optional: deep-merged underneath this file (tiny CI configs;
                                a `kinds` mix replaces the base's, see REPLACED_MAPPINGS)
    model: {arch, kwargs}       -> deblurstudio.models.build(arch, **kwargs)
    data: {...}                 -> SyntheticBlurDataset(data_root, split, **data)
    streams: {name: {...}}      optional named training streams: `data` with these keys replaced
    train: {steps | stages, batch_size, lr, warmup, grad_clip, workers, val_every, val_samples,
            log_every, save_every, seed, amp, ...}
                                stages: [{name, steps, lr_scale?, stream?}], run in order;
                                `stream` names the `streams` entry a stage's batches come from
    loss: {term: weight}

The run folder gets config.yaml (the effective config), metrics.jsonl (one JSON object per log or
validation event), last.pt (everything needed to resume) and best.pt (the best validation score's
weights). Each architecture has a trainer class implementing its paper's schedule (TRAINERS).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, Sampler
from tqdm import tqdm

from deblurstudio.core.devices import physical_cpu_cores
from deblurstudio.models import build, load_checkpoint
from deblurstudio.models.neurmap import motion_from_axis
from training.data import SyntheticBlurDataset, UnpairedDataset, data_loader, synthesize_on_device
from training.evaluate import evaluate, to_device
from training.losses import (
    bce_loss,
    charbonnier_loss,
    dice_loss,
    fft_loss,
    kernel_prior_loss,
    lsgan_loss,
    motion_axis_loss,
    patch_contrastive_loss,
    psnr_loss,
    reblur_loss,
    relativistic_average_loss,
    structure_loss,
    tv_loss,
)

CONFIG_NAME = "config.yaml"
LAST = "last.pt"
BEST = "best.pt"
METRICS = "metrics.jsonl"
# What a run started from a checkpoint copies of that checkpoint's card (`_init_weights`).
START_HISTORY = ("title", "steps", "training_hours", "started_from")


# --- configuration ---------------------------------------------------------------------------


REPLACED_MAPPINGS = frozenset({"kinds"})
"""Keys whose mapping an override replaces instead of merging into: a mix of sample kinds is
one choice (`kinds: {global: 1.0}` means only global blur, not global plus the base's others)."""


def _deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        mergeable = key not in REPLACED_MAPPINGS and isinstance(merged.get(key), dict)
        if isinstance(value, dict) and mergeable:
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML config, resolving `base:` (a path relative to this file) by deep merge."""
    path = Path(path)
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    base = config.pop("base", None)
    if base is not None:
        config = _deep_merge(load_config(path.parent / base), config)
    for section in ("model", "data", "train"):
        if section not in config:
            raise ValueError(f"{path}: config lacks the '{section}' section")
    return config


def config_digest(config: dict[str, Any]) -> str:
    """sha256 of the config as written to the run folder (stable key order)."""
    return hashlib.sha256(dump_config(config).encode("utf-8")).hexdigest()


def dump_config(config: dict[str, Any]) -> str:
    """The config as YAML, as written to the run folder."""
    return yaml.safe_dump(config, sort_keys=True)


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


# --- distributed helpers -----------------------------------------------------------------------


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, Gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), world_size)


def _rank_max(value: float, dist_info: DistInfo, device: torch.device) -> float:
    """The largest of every rank's `value` (ranks must stop and fit at the same step)."""
    if not dist_info.enabled:
        return value
    tensor = torch.tensor([float(value)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def _resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def _configure_cpu_threads(workers: int) -> None:
    """Leave the DataLoader workers their cores: torch gets this process's share of the
    physical cores (one of LOCAL_WORLD_SIZE torchrun processes) minus its workers.

    Measured on a busy 2-core machine: LCNet's training step took 4–5 s with one intra-op thread
    next to two synthesis workers, and 40 s with two (threads spinning for the same cores). An
    explicit OMP_NUM_THREADS wins.
    """
    if "OMP_NUM_THREADS" not in os.environ:
        share = physical_cpu_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, share - workers))


def describe_hardware(device: torch.device, world_size: int) -> str:
    """E.g. '4 × NVIDIA A100' or 'CPU (x86_64, 2 threads)'."""
    if device.type == "cuda":
        return f"{world_size} × {torch.cuda.get_device_name(device)}"
    processor = platform.processor() or platform.machine()
    return f"{world_size} × CPU ({processor}, {torch.get_num_threads()} threads)"


# --- data ------------------------------------------------------------------------------------


class InfiniteSampler(Sampler[int]):
    """Endless reshuffled passes over a dataset, a deterministic function of the position.

    Pass e is a permutation seeded by `seed + e`; rank r of `world_size` takes every
    world_size-th element. Starting at `start` (samples this rank already consumed) resumes the
    exact order a run would have seen, without loading the skipped samples.
    """

    def __init__(self, size: int, seed: int, start: int = 0, rank: int = 0, world_size: int = 1):
        if size <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.seed, self.start = size, seed, start
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[int]:
        position = self.start * self.world_size + self.rank
        epoch, order = -1, None
        while True:
            pass_index, offset = divmod(position, self.size)
            if pass_index != epoch:
                epoch = pass_index
                generator = torch.Generator().manual_seed(self.seed + epoch)
                order = torch.randperm(self.size, generator=generator).tolist()
            yield order[offset]
            position += self.world_size


def build_stream_datasets(
    config: dict[str, Any], data_root: str | os.PathLike
) -> dict[str, Dataset]:
    """Training datasets by stream name: `data` with the keys of each `streams` entry replaced.

    NeurMAP's optional unpaired streams ("unpaired_blurred", "unpaired_sharp") are
    UnpairedDataset(data_root, which=..., crop=data.crop) when `neurmap.deblur` is configured.
    """
    data = config["data"]
    streams = config.get("streams") or {"train": {}}
    datasets: dict[str, Dataset] = {
        name: SyntheticBlurDataset(data_root, split="train", **{**data, **(override or {})})
        for name, override in streams.items()
    }
    if (config.get("neurmap") or {}).get("deblur"):
        for which in ("blurred", "sharp"):
            datasets[f"unpaired_{which}"] = UnpairedDataset(
                data_root, which=which, crop=data.get("crop", 128)
            )
    return datasets


def build_val_samples(config: dict[str, Any], data_root: str | os.PathLike) -> list[dict]:
    """The fixed validation samples: the first `train.val_samples` of the "val" split.

    The val split is deterministic per index, so every validation scores the same images.
    """
    count = int(config["train"].get("val_samples", 16))
    if count <= 0:
        return []
    dataset = SyntheticBlurDataset(data_root, split="val", **{**config["data"], "length": count})
    return [dataset[index] for index in range(count)]


def _mixed_seed(*values: int) -> int:
    """One well-mixed 32-bit seed from several integers."""
    return int(np.random.SeedSequence(list(values)).generate_state(1)[0])


class _Streams:
    """Lazily started DataLoader iterators per stream, counting batches drawn (for resume)."""

    def __init__(
        self,
        datasets: dict[str, Dataset],
        train: dict[str, Any],
        device: torch.device,
        dist_info: DistInfo,
        drawn: dict[str, int],
    ):
        self.datasets, self.train, self.device, self.dist_info = datasets, train, device, dist_info
        self.drawn = dict(drawn)
        self.iterators: dict[str, Iterator] = {}

    def next(self, name: str) -> dict[str, Any]:
        if name not in self.iterators:
            batch_size = int(self.train["batch_size"])
            workers = int(self.train.get("workers", 2))
            seed = int(self.train.get("seed", 0)) + sum(map(ord, name))
            drawn = self.drawn.get(name, 0)
            sampler = InfiniteSampler(
                len(self.datasets[name]),
                seed=seed,
                start=drawn * batch_size,
                rank=self.dist_info.rank,
                world_size=self.dist_info.world_size,
            )
            loader = data_loader(
                self.datasets[name],
                workers=workers,
                batch_size=batch_size,
                sampler=sampler,
                pin_memory=self.device.type == "cuda",
                drop_last=True,
                # Its own generator: worker seeds (hence the synthetic samples, which draw from
                # them) depend on the stream, the rank and the position, not on how much of the
                # global RNG the run consumed; ranks differ, and a resumed run gets fresh data.
                generator=torch.Generator().manual_seed(
                    _mixed_seed(seed, self.dist_info.rank, drawn)
                ),
            )
            self.iterators[name] = iter(loader)
        self.drawn[name] = self.drawn.get(name, 0) + 1
        # Ingredients from `data.synthesis: device` are rendered here, on the training device.
        batch = synthesize_on_device(to_device(next(self.iterators[name]), self.device))
        return {
            k: v.contiguous(memory_format=torch.channels_last)
            if isinstance(v, Tensor) and v.ndim == 4
            else v
            for k, v in batch.items()
        }


def concat_batches(*batches: dict[str, Any]) -> dict[str, Any]:
    """One batch of the samples of several: tensors concatenated along N, lists ("kind") joined.
    Only keys every batch has are kept."""
    keys = [k for k in batches[0] if all(k in b for b in batches[1:])]
    return {
        k: torch.cat([b[k] for b in batches])
        if isinstance(batches[0][k], Tensor)
        else [item for b in batches for item in b[k]]
        for k in keys
    }


# --- trainers --------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [
            numpy_state[0],
            torch.from_numpy(numpy_state[1].astype(np.int64)),
            *numpy_state[2:],
        ],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Networks, optimizers (Adam), LR schedules and loss scalers of one paper's schedule.

    `nets["model"]` is the network that is validated and exported; subclasses may add others
    (discriminators, a deblurring backbone). `train_step(batch, step)` runs one iteration on the
    batch of stream `stream(step)` and returns the scalar losses for logging.

    Under DDP each network is wrapped for the call whose backward updates it (`self.wrapped`);
    calls whose gradients only flow *through* a network use the bare module, so no reducer waits
    for gradients that never come. With `train.compile: true` that call also goes through
    `torch.compile` (a compile of a minute or two at the first step; worth it where the net is
    more than convolutions, see lcnet.yaml).
    """

    find_unused_parameters = False
    # Validation key that selects best.pt, and its direction. PSNR in the blurred regions: the
    # whole-image mean is dominated by the sharp samples' capped 100 dB, so it rewarded touching
    # nothing (measured: it chose the untouched identity net of step 250 over every trained one).
    best_metric = ("output_psnr_moving", "max")

    def __init__(
        self,
        config: dict[str, Any],
        device: torch.device,
        dist_info: DistInfo = DistInfo(),
        total_steps: int | None = None,
    ):
        self.config, self.device, self.dist_info = config, device, dist_info
        self.train_config = config["train"]
        self.weights: dict[str, float] = {
            k: float(v) for k, v in (config.get("loss") or {}).items()
        }
        self.stages = build_stages(self.train_config, total_steps)
        self.total_steps = self.stages[-1].start + self.stages[-1].steps
        # amp: true is float16 autocast on CUDA (none on the CPU); a dtype name (float16,
        # bfloat16) autocasts to it on any device, e.g. to check a recipe stays finite in it.
        amp = self.train_config.get("amp", True)
        self.amp_dtype = (
            getattr(torch, amp) if isinstance(amp, str) else torch.float16 if amp else None
        )
        self.amp = self.amp_dtype is not None and (isinstance(amp, str) or device.type == "cuda")
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        self._wrapped: dict[str, nn.Module] = {}
        self.add_net("model", config["model"])

    # construction

    def add_net(self, name: str, spec: dict[str, Any]) -> nn.Module:
        """Build `spec` ({arch, kwargs}) from the registry with its own optimizer and schedule."""
        # Channels-last, as the app runs the nets (`core.devices`). Measured on the 2-core CPU
        # (1 thread, a busy machine): BladeNet's main stage 0.63 vs 0.48 steps/s in NCHW, the
        # motion trainer 2.32 vs 2.22 (its step is mostly reblur and data). `_Streams` hands out
        # image batches in that layout too.
        net = build(spec["arch"], **(spec.get("kwargs") or {}))
        net = net.to(self.device, memory_format=torch.channels_last)
        if self.dist_info.enabled and self.device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        self.nets[name] = net
        lr = self.train_config.get("lr", 1e-4)
        lr = float(lr[name] if isinstance(lr, dict) else lr)
        betas = tuple(self.train_config.get("betas", (0.9, 0.999)))
        optimizer = torch.optim.Adam(net.parameters(), lr=lr, betas=betas)
        warmup = int(self.train_config.get("warmup", 0))
        self.optimizers[name] = optimizer
        self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(self.stages, warmup, step)
        )
        # Loss scaling only for float16, whose range underflows small gradients.
        self.scalers[name] = torch.amp.GradScaler(
            self.device.type, enabled=self.amp and self.amp_dtype == torch.float16
        )
        if self.dist_info.enabled:
            self._wrapped[name] = DistributedDataParallel(
                net,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.find_unused_parameters,
            )
        if self.train_config.get("compile", False):
            # The training calls only: validation and export use the bare net (same parameters),
            # so other image sizes and eval mode cost no recompilation.
            self._wrapped[name] = torch.compile(self.wrapped(name))
        return net

    def wrapped(self, name: str) -> nn.Module:
        return self._wrapped.get(name, self.nets[name])

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp)

    def update(self, name: str, loss: Tensor) -> None:
        """Backpropagate `loss` into net `name` only, clip, and take one optimizer step.

        Raises:
            FloatingPointError: a non-finite loss, or a non-finite gradient in full precision
                (with fp16 the grad scaler skips such steps itself); stepping would turn the
                weights into NaN. Nothing is saved then: the net's BatchNorm statistics already
                saw the bad forward pass, and the run's last checkpoint is its last good state.
        """
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"net '{name}': non-finite loss ({loss.item()}); stopped, the last checkpoint "
                "is kept"
            )
        net, optimizer, scaler = self.nets[name], self.optimizers[name], self.scalers[name]
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward(inputs=params)
        scaler.unscale_(optimizer)
        clip = self.train_config.get("grad_clip")
        norm = torch.nn.utils.clip_grad_norm_(params, float(clip) if clip else math.inf)
        if not scaler.is_enabled() and not torch.isfinite(norm):
            raise FloatingPointError(
                f"net '{name}': gradient norm is {norm.item()} (loss {loss.item()}); "
                "stopped before the weights became NaN, the last checkpoint is kept"
            )
        scaler.step(optimizer)
        scaler.update()

    def end_step(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()

    def fit_schedule(self, step: int, steps_left: int) -> None:
        """Rescale the stage running at `step` and those after it so that `steps_left` steps
        remain (a time-boxed run, once the stage's step rate is known); the LR schedules read
        `self.stages`, so warm-up and cosine follow."""
        index = self.stages.index(self.stage(step))
        done_in_stage = step - self.stages[index].start
        self.stages = fit_stages(self.stages, index, done_in_stage + steps_left)
        self.total_steps = self.stages[-1].start + self.stages[-1].steps

    def stage(self, step: int) -> Stage:
        return stage_at(self.stages, step)

    def stream(self, step: int) -> str:
        """The training stream that feeds `step`: its stage's, else "train"."""
        return self.stage(step).stream or "train"

    def next_batch(self, streams: _Streams, step: int) -> dict[str, Any]:
        return streams.next(self.stream(step))

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        raise NotImplementedError

    def content_loss(self, restored: Tensor, sharp: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Weighted sum of the configured reconstruction terms (l1, charbonnier, mse, psnr, fft,
        structure); `loss.psnr_floor` is psnr_loss's floor."""
        terms = {
            "l1": F.l1_loss,
            "charbonnier": charbonnier_loss,
            "mse": F.mse_loss,
            "psnr": partial(psnr_loss, floor=self.weights.get("psnr_floor", 1e-5)),
            "fft": fft_loss,
            "structure": structure_loss,
        }
        total, parts = restored.new_zeros((), dtype=torch.float32), {}
        for key, fn in terms.items():
            weight = self.weights.get(key, 0.0)
            if weight:
                value = fn(restored.float(), sharp.float())
                total = total + weight * value
                parts[key] = value.item()
        return total, parts

    # state

    def state_dict(self) -> dict[str, Any]:
        return {
            "nets": {k: v.state_dict() for k, v in self.nets.items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "scalers": {k: v.state_dict() for k, v in self.scalers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for group in ("nets", "optimizers", "schedulers", "scalers"):
            for name, target in getattr(self, group).items():
                if state[group].get(name):
                    target.load_state_dict(state[group][name])

    def validate(self, samples: list[dict]) -> dict[str, float]:
        model = self.nets["model"]
        try:
            return evaluate(model, samples, self.device)
        finally:
            model.train()


class DeblurTrainer(Trainer):
    """LCNet (paper 003) and the reference network (paper 001).

    Loss = l1·L1 + fft·FFT + structure·S (+ mse·MSE), all against the sharp frame; with
    `loss.gan` > 0 a PatchDiscriminator (`discriminator: {arch, kwargs}`) adds the relativistic
    average GAN loss of paper 001 (eqs. 10–11). For LCNet, `structure` replaces the paper's VGG
    perceptual loss (see losses.structure_loss). A network that needs a reference gets the
    sample's other view; with probability `train.reference_dropout` a step runs the
    no-reference twin instead (reference=None), so the same weights also work without one, and
    with probability `train.reference_unrelated` it gets another sample's view (the batch rolled
    by one), so it learns to ignore a reference of a different scene. With `loss.match` > 0 the
    matching encoder also learns correspondence: `patch_contrastive_loss` between its features of
    the blurry crop and of the aligned sharp frame.
    """

    def __init__(self, config, device, dist_info=DistInfo(), total_steps=None):
        # Steps without the reference leave the reference modules without gradients.
        self.find_unused_parameters = float(config["train"].get("reference_dropout", 0.0)) > 0
        super().__init__(config, device, dist_info, total_steps)
        self.uses_reference = bool(getattr(self.nets["model"], "needs_reference", False))
        if self.weights.get("gan", 0.0) > 0:
            spec = config.get("discriminator") or {"arch": "patchgan", "kwargs": {}}
            self.add_net("discriminator", spec)

    def restore(self, net: nn.Module, batch: dict[str, Any]):
        if not self.uses_reference:
            return net(batch["blurred"])
        dropout = float(self.train_config.get("reference_dropout", 0.0))
        unrelated = float(self.train_config.get("reference_unrelated", 0.0))
        draw = random.random()
        if draw < dropout:
            reference = None
        elif draw < dropout + unrelated:
            reference = batch["reference"].roll(1, dims=0)
        else:
            reference = batch["reference"]
        match_target = batch["sharp"] if self.weights.get("match", 0.0) > 0 else None
        return net(batch["blurred"], reference, match_target=match_target)

    def train_step(self, batch, step):
        sharp = batch["sharp"]
        with self.autocast():
            output = self.restore(self.wrapped("model"), batch)
            restored = output.restored
            loss, parts = self.content_loss(restored, sharp)
            if output.match_features is not None:
                match = patch_contrastive_loss(*output.match_features)
                loss = loss + self.weights["match"] * match
                parts["match"] = match.item()
            if "discriminator" in self.nets:
                discriminator = self.nets["discriminator"]
                with torch.no_grad():
                    real_logits = discriminator(sharp)
                adversarial = relativistic_average_loss(discriminator(restored), real_logits)
                loss = loss + self.weights["gan"] * adversarial
                parts["gan_g"] = adversarial.item()
        self.update("model", loss)
        if "discriminator" in self.nets:
            with self.autocast():
                logits = self.wrapped("discriminator")(torch.cat([sharp, restored.detach()]))
                real_logits, fake_logits = logits.chunk(2)
                d_loss = relativistic_average_loss(real_logits, fake_logits)
            self.update("discriminator", d_loss)
            parts["gan_d"] = d_loss.item()
        parts["loss"] = loss.item()
        return parts


class BladeNetTrainer(Trainer):
    """BladeNet's schedule (paper 000, §4.4 and appendix), stages named in `train.stages`:

    - "lbp": the Local Blur Perception net alone, BCE of its probability against blur_mask.
    - "main": LBP fixed (its map is computed without gradients, in eval mode), the main net
      trained with mse·MSE (the paper's) and/or psnr·`psnr_loss`, plus dice·DICE(attention,
      blur_mask) on the synthetic local stream.
    - "joint": everything fine-tuned with the same terms + bce·BCE (the paper's weights: MSE 1.0,
      DICE 0.25, BCE 0.01).

    Every step trains on both data streams: `train.batch_size` samples of "global" (mostly camera
    shake; the paper's REDS) and as many of "local" (Local Blur Synthesis with masks), in one
    batch. The paper alternates the two datasets; with BatchNorm that fails here: a batch that is
    all camera shake is normalised by its own statistics, which erases exactly the "how blurred
    is this photo" signal the LBP net must learn (measured: its BCE stayed at the constant
    predictor's ~0.69 for 400 steps, blur-mask IoU 0.31). The DICE term applies to the local
    stream's samples only (kind other than "global"), as in the paper.
    """

    find_unused_parameters = True  # each stage trains only part of the network

    def next_batch(self, streams, step):
        return concat_batches(streams.next("global"), streams.next("local"))

    def train_step(self, batch, step):
        stage = self.stage(step).name
        image, mask, sharp = batch["blurred"], batch["blur_mask"], batch["sharp"]
        model = self.nets["model"]
        parts: dict[str, float] = {}
        with self.autocast():
            if stage == "lbp":
                probability = self.wrapped("model")(image, deblur=False).blur_probability
                loss = bce_loss(probability, mask)
                parts["bce"] = loss.item()
            else:
                probability = None
                if stage == "main":
                    with torch.no_grad():
                        model.eval()
                        probability = model.perceive(image)
                        model.train()
                output = self.wrapped("model")(image, probability)
                loss, parts = self.content_loss(output.restored, sharp)
                local = [i for i, kind in enumerate(batch["kind"]) if kind != "global"]
                if local and self.weights.get("dice", 0.0):
                    dice = dice_loss(output.attention[local], mask[local])
                    loss = loss + self.weights["dice"] * dice
                    parts["dice"] = dice.item()
                if stage == "joint" and self.weights.get("bce", 0.0):
                    bce = bce_loss(output.blur_probability, mask)
                    loss = loss + self.weights["bce"] * bce
                    parts["bce"] = bce.item()
        self.update("model", loss)
        parts["loss"] = loss.item()
        return parts


class MotionTrainer(Trainer):
    """NeurMAP's motion-estimation network (paper 002).

    M outputs blur-axis fields (see `MotionNet`); priors and TV act on them, reblur on the motion
    maps `motion_from_axis` gives (TV on motion would penalise the jump between the equal blurs
    m and −m where the half-angle wraps; the paper's maps are motion).
    Supervised part, on synthetic pairs: motion·motion_axis_loss(M(B), motion) over motion_valid
    (sign-free), kernel_prior·(M(S) → 0 field), tv·TV of both maps, reblur·L1(reblur(S, M(B)), B).

    Optional unpaired MAP part (`neurmap.deblur: {arch, kwargs}` configured): a deblurring
    backbone G and an LSGAN natural-image PatchDiscriminator D join, trained on the unpaired
    streams (real blurry B_u, sharp photos S_u) exactly as eqs. (4)–(12) describe:
      M: reblur·L1(reblur(D_u, M(B_u) − M(D_u)), B_u) + kernel_prior·(M(B_u) → long,
         M(S_u) → 0, M(D_u) → s·M(B_u)) + tv·TV(all maps), D_u = G(B_u) held fixed;
      G: content·L1 on the paired batch + reblur·(data term through D_u) + sharp_prior·(M(D_u) → 0)
         + tv·TV(M(D_u)) + gan·LSGAN(D(D_u) → natural);
      D: LSGAN, natural = B_u and S_u, fake = D_u.
    Without it the motion network is trained by the supervised part alone.
    """

    best_metric = ("epe", "min")

    def __init__(self, config, device, dist_info=DistInfo(), total_steps=None):
        super().__init__(config, device, dist_info, total_steps)
        neurmap = config.get("neurmap") or {}
        model = self.nets["model"]
        self.max_length = float(neurmap.get("prior_max_length", model.max_length))
        self.reblur_steps = int(neurmap.get("reblur_steps", 16))
        self.unremoved_fraction = float(neurmap.get("unremoved_fraction", 0.5))
        self.with_map = bool(neurmap.get("deblur"))
        if self.with_map:
            self.add_net("deblur", neurmap["deblur"])
            self.add_net(
                "discriminator", neurmap.get("discriminator") or {"arch": "patchgan", "kwargs": {}}
            )

    def next_batch(self, streams, step):
        batch = streams.next(self.stream(step))
        if self.with_map:
            batch["unpaired_blurred"] = streams.next("unpaired_blurred")["blurred"]
            batch["unpaired_sharp"] = streams.next("unpaired_sharp")["sharp"]
        return batch

    def train_step(self, batch, step):
        if self.with_map:
            return self._map_step(batch)
        blurred, sharp = batch["blurred"], batch["sharp"]
        with self.autocast():
            axis_blurred, axis_sharp = self.wrapped("model")(torch.cat([blurred, sharp])).chunk(2)
            loss, parts = self._supervised_terms(batch, axis_blurred, axis_sharp)
        self.update("model", loss)
        parts["loss"] = loss.item()
        return parts

    def _supervised_terms(self, batch, axis_blurred, axis_sharp):
        w = self.weights
        motion = motion_axis_loss(axis_blurred, batch["motion"], batch["motion_valid"])
        prior = kernel_prior_loss(self.max_length, sharp=axis_sharp)
        tv = tv_loss(axis_blurred.float()) + tv_loss(axis_sharp.float())
        reblur = reblur_loss(
            batch["sharp"], motion_from_axis(axis_blurred), batch["blurred"], self.reblur_steps
        )
        loss = (
            w.get("motion", 1.0) * motion
            + w.get("kernel_prior", 0.0) * prior
            + w.get("tv", 0.0) * tv
            + w.get("reblur", 0.0) * reblur
        )
        parts = {
            "motion": motion.item(),
            "kernel_prior": prior.item(),
            "tv": tv.item(),
            "reblur": reblur.item(),
        }
        return loss, parts

    def _map_step(self, batch):
        w = self.weights
        unpaired_blurred, unpaired_sharp = batch["unpaired_blurred"], batch["unpaired_sharp"]
        n = batch["blurred"].shape[0]
        with self.autocast():
            restored = self.wrapped("deblur")(
                torch.cat([batch["blurred"], unpaired_blurred])
            ).restored
            restored_paired, deblurred = restored[:n], restored[n:]
            # M update: one call (DDP allows one forward per backward) on all five image sets.
            motions = self.wrapped("model")(
                torch.cat(
                    [
                        batch["blurred"],
                        batch["sharp"],
                        unpaired_blurred,
                        unpaired_sharp,
                        deblurred.detach(),
                    ]
                )
            )
            m_blurred, m_sharp, m_unpaired, m_unpaired_sharp, m_deblurred = motions.split(
                [n, n, len(unpaired_blurred), len(unpaired_sharp), len(deblurred)]
            )
            loss_m, parts = self._supervised_terms(batch, m_blurred, m_sharp)
            data_m = reblur_loss(
                deblurred.detach(),
                motion_from_axis(m_unpaired) - motion_from_axis(m_deblurred),
                unpaired_blurred,
                self.reblur_steps,
            )
            prior_m = kernel_prior_loss(
                self.max_length,
                sharp=m_unpaired_sharp,
                blurred=m_unpaired,
                deblurred=m_deblurred,
                blurred_reference=m_unpaired,
                unremoved_fraction=self.unremoved_fraction,
            )
            tv_m = sum(tv_loss(m.float()) for m in (m_unpaired, m_unpaired_sharp, m_deblurred))
            loss_m = (
                loss_m
                + w.get("reblur", 0.0) * data_m
                + w.get("kernel_prior", 0.0) * prior_m
                + w.get("tv", 0.0) * tv_m
            )
        self.update("model", loss_m)

        with self.autocast():
            # G update: gradients flow through the bare M and D into G only.
            m_restored = self.nets["model"](deblurred)
            content = F.l1_loss(restored_paired.float(), batch["sharp"].float())
            data_g = reblur_loss(
                deblurred,
                motion_from_axis(m_unpaired.detach()) - motion_from_axis(m_restored),
                unpaired_blurred,
                self.reblur_steps,
            )
            sharp_prior = kernel_prior_loss(self.max_length, sharp=m_restored)
            adversarial = lsgan_loss(self.nets["discriminator"](deblurred), True)
            loss_g = (
                w.get("content", 1.0) * content
                + w.get("reblur", 0.0) * data_g
                + w.get("sharp_prior", 0.0) * sharp_prior
                + w.get("tv", 0.0) * tv_loss(m_restored.float())
                + w.get("gan", 0.0) * adversarial
            )
        self.update("deblur", loss_g)

        with self.autocast():
            logits = self.wrapped("discriminator")(
                torch.cat([unpaired_blurred, unpaired_sharp, deblurred.detach()])
            )
            natural, fake = logits.split(
                [len(unpaired_blurred) + len(unpaired_sharp), len(deblurred)]
            )
            loss_d = lsgan_loss(natural, True) + lsgan_loss(fake, False)
        self.update("discriminator", loss_d)
        parts.update(
            loss=loss_m.item(),
            map_reblur=data_m.item(),
            map_prior=prior_m.item(),
            content=content.item(),
            sharp_prior=sharp_prior.item(),
            gan_g=adversarial.item(),
            gan_d=loss_d.item(),
        )
        return parts


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


# --- the run loop ----------------------------------------------------------------------------


def _is_better(value: float, best: float | None, mode: str) -> bool:
    if value is None or math.isnan(value):
        return False
    return best is None or (value > best if mode == "max" else value < best)


def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _log(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _init_weights(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Copy a checkpoint's weights into `model`; both must be the same arch with the same kwargs.

    Returns what the new model card records as its start: the file's name and sha256, and its
    own card's training record (steps, hours and, recursively, where that run started), so a
    chain of fine-tunes keeps its whole history.
    """
    pretrained, info = load_checkpoint(path, "cpu")
    found = (pretrained.arch_id, pretrained.arch_kwargs)
    if found != (model.arch_id, model.arch_kwargs):
        raise ValueError(
            f"{path}: a {found[0]} {found[1]} checkpoint cannot start a run of "
            f"{model.arch_id} {model.arch_kwargs}"
        )
    model.load_state_dict(pretrained.state_dict())
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    history = {k: info.card[k] for k in START_HISTORY if k in info.card}
    return {"file": Path(path).name, "sha256": digest, **history}


# A time-boxed run measures each stage's step rate over this much training time before fitting
# the rest of its schedule to it (stages differ: BladeNet's LBP steps cost a third of its main
# steps); a stage's first steps (cuDNN autotuning, compilation) are left out.
FIT_AFTER_SECONDS = 20.0
FIT_SKIP_STEPS = 5


def _record_schedule(train_config: dict[str, Any], trainer: Trainer) -> None:
    """Write the schedule that runs into the config the run folder keeps."""
    if train_config.get("stages"):
        train_config["stages"] = [
            {"name": s.name, "steps": s.steps, "lr_scale": s.lr_scale}
            | ({"stream": s.stream} if s.stream else {})
            for s in trainer.stages
        ]
    train_config["steps"] = trainer.total_steps


def _steps_that_fit(
    seconds_left: float, step_seconds: float, val_seconds: float, val_every: int
) -> int:
    """Steps of `step_seconds` each, plus a validation of `val_seconds` every `val_every`."""
    return max(1, int(seconds_left / (step_seconds + val_seconds / max(1, val_every))))


def train(
    config_path: str | os.PathLike,
    data_root: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    steps: int | None = None,
    device: str | None = None,
    stop_at: int | None = None,
    init_from: str | os.PathLike | None = None,
    time_budget: float | None = None,
) -> Path:
    """Run (or resume) training; returns the run folder.

    Args:
        config_path: YAML config.
        data_root: the training data folder (e.g. ../shared/data).
        run_dir: where config.yaml, metrics.jsonl, last.pt and best.pt go.
        resume: continue from run_dir/last.pt.
        steps: total steps override (stages rescaled in proportion).
        device: "cpu" | "cuda" | None (CUDA when available).
        stop_at: save and return after this step (continue later with `resume`), e.g. to split
            a long CPU run into sessions; the schedule still spans all steps.
        init_from: a .safetensors checkpoint (e.g. a shipped model) whose weights the model
            starts from, for fine-tuning; its architecture and kwargs must be the config's.
            Ignored when resuming (last.pt has the weights).
        time_budget: seconds of wall time (setup and validation included) for the whole run,
            e.g. a borrowed GPU's: after FIT_AFTER_SECONDS of training the schedule (stages,
            warm-up, cosine) is fitted to the steps that fit, and the run saves and ends
            before the budget is spent even if it turns slower later.

    Raises:
        FloatingPointError: a loss turned non-finite; last.pt and best.pt on disk keep the last
            good weights.
    """
    deadline = None if time_budget is None else time.monotonic() + time_budget
    config = load_config(config_path)
    run_dir = Path(run_dir).expanduser()
    torch_device = _resolve_device(device)
    # Synthesis runs in parallel across the DataLoader workers already; OpenCV's own thread pool
    # would compete for their cores, and a pool started before the workers fork can deadlock them.
    cv2.setNumThreads(1)
    if torch_device.type == "cpu":
        _configure_cpu_threads(int(config["train"].get("workers", 2)))
    else:  # training crops are all one size: let cuDNN pick its fastest convolutions once
        torch.backends.cudnn.benchmark = True
    dist_info = _init_distributed(torch_device)
    train_config = config["train"]
    # Per-rank seeds: data synthesised in the main process (workers: 0) must differ between
    # ranks; DDP broadcasts rank 0's initial weights, so they still start alike.
    seed = int(train_config.get("seed", 0)) + dist_info.rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    trainer = make_trainer(config, torch_device, dist_info, steps)
    if steps is not None:  # the run folder's config states the schedule that actually ran
        _record_schedule(train_config, trainer)
    start_step, best, drawn, seconds, last_validation = 0, None, {}, 0.0, {}
    last_path = run_dir / LAST
    if init_from is not None and not resume:
        # The run folder's config says where the weights came from (the model card shows it).
        train_config["init_from"] = _init_weights(trainer.nets["model"], init_from)
    if resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"{last_path}: no checkpoint to resume from")
        # Plain tensors and containers only: never unpickle arbitrary objects.
        checkpoint = torch.load(last_path, map_location="cpu", weights_only=True)
        trainer.load_state_dict(checkpoint)
        _set_rng_state(checkpoint["rng"])
        start_step, best = checkpoint["step"], checkpoint.get("best")
        drawn, seconds = checkpoint.get("drawn", {}), checkpoint.get("train_seconds", 0.0)
        last_validation = checkpoint.get("validation", {})
        # A resumed fine-tune keeps the start its run folder recorded (not in the config given).
        started = load_config(run_dir / CONFIG_NAME)["train"].get("init_from")
        if started is not None:
            train_config["init_from"] = started
    hardware = describe_hardware(torch_device, dist_info.world_size)
    if dist_info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_NAME).write_text(dump_config(config), encoding="utf-8")

    datasets = build_stream_datasets(config, data_root)
    unknown = {stage.stream for stage in trainer.stages} - {None, *datasets}
    if unknown:
        raise ValueError(
            f"train.stages name the streams {sorted(unknown)}, but the config's streams are "
            f"{sorted(datasets)}"
        )
    streams = _Streams(datasets, train_config, torch_device, dist_info, drawn)
    val_samples = build_val_samples(config, data_root) if dist_info.is_main else []
    metric_name, metric_mode = trainer.best_metric
    val_every = int(train_config.get("val_every", 500))
    log_every = int(train_config.get("log_every", 10))
    save_every = int(train_config.get("save_every", val_every))

    def checkpoint_payload(step: int) -> dict[str, Any]:
        return {
            **trainer.state_dict(),
            "step": step,
            "best": best,
            "drawn": streams.drawn,
            "rng": _rng_state(),
            "train_seconds": seconds,
            "hardware": hardware,
            "data_root": str(Path(data_root).resolve()),
            "config_digest": config_digest(config),
            "validation": last_validation,
        }

    progress = tqdm(
        total=trainer.total_steps,
        initial=start_step,
        desc=run_dir.name,
        disable=not dist_info.is_main,
        dynamic_ncols=True,
    )
    for module in trainer.nets.values():
        module.train()
    tick = time.perf_counter()
    logged_seconds, logged_step = seconds, start_step
    # A time-boxed run measures the step rate of each stage it enters from (step, seconds),
    # once, and fits the rest of the schedule to it.
    measured_index, fit_pending = -1, False
    rate_origin: tuple[int, float] | None = None
    val_seconds: float | None = None
    # A margin for the last validation and save, and for a slower step now and then.
    margin = 0.0 if time_budget is None else max(5.0, 0.05 * time_budget)

    def stop_step() -> int:
        return trainer.total_steps if stop_at is None else min(stop_at, trainer.total_steps)

    step = start_step
    while step < stop_step():
        batch = trainer.next_batch(streams, step)
        losses = trainer.train_step(batch, step)
        trainer.end_step()
        now = time.perf_counter()
        seconds += now - tick
        tick = now
        done = step = step + 1
        progress.update(1)
        progress.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=False)
        stage_index = trainer.stages.index(trainer.stage(done - 1))
        if deadline is not None and stage_index != measured_index:
            measured_index, rate_origin, fit_pending = stage_index, None, True
        if fit_pending and rate_origin is None:
            if done - trainer.stages[stage_index].start >= FIT_SKIP_STEPS:
                rate_origin = (done, seconds)
        elif fit_pending and seconds - rate_origin[1] >= FIT_AFTER_SECONDS:
            fit_pending = False
            step_seconds = (seconds - rate_origin[1]) / (done - rate_origin[0])
            if val_seconds is None:  # a point on the learning curve, and what one costs
                started = time.perf_counter()
                if val_samples:
                    last_validation = trainer.validate(val_samples)
                    _log(run_dir, {"step": done, "split": "val", **last_validation})
                val_seconds = _rank_max(time.perf_counter() - started, dist_info, torch_device)
            seconds_left = deadline - time.monotonic() - margin
            steps_left = _steps_that_fit(seconds_left, step_seconds, val_seconds, val_every)
            trainer.fit_schedule(done, int(_rank_max(steps_left, dist_info, torch_device)))
            _record_schedule(train_config, trainer)
            progress.total = trainer.total_steps
            if dist_info.is_main:
                (run_dir / CONFIG_NAME).write_text(dump_config(config), encoding="utf-8")
                progress.write(
                    f"{run_dir}: {1 / step_seconds:.2f} steps/s in stage "
                    f"{trainer.stages[stage_index].name}: "
                    f"schedule fitted to {trainer.total_steps} steps"
                )
            tick = time.perf_counter()
        out_of_time = (
            deadline is not None
            # Every step alone; under DDP, where asking every rank costs a round trip, at logs.
            and (done % log_every == 0 or not dist_info.enabled)
            and done < stop_step()
            and _rank_max(time.monotonic() > deadline - margin, dist_info, torch_device) > 0
        )
        end_step = stop_step()
        if not dist_info.is_main:
            if out_of_time:
                break
            continue
        if done % log_every == 0 or done == trainer.total_steps:
            lr = trainer.optimizers["model"].param_groups[0]["lr"]
            # Data loading included, validation and checkpointing excluded.
            rate = (done - logged_step) / max(seconds - logged_seconds, 1e-9)
            logged_seconds, logged_step = seconds, done
            _log(
                run_dir,
                {
                    "step": done,
                    "split": "train",
                    "stage": trainer.stage(step).name,
                    "lr": lr,
                    "steps_per_s": rate,
                    **losses,
                },
            )
        if val_samples and (done % val_every == 0 or done == trainer.total_steps):
            last_validation = trainer.validate(val_samples)
            _log(run_dir, {"step": done, "split": "val", **last_validation})
            value = last_validation.get(metric_name)
            if _is_better(value, best, metric_mode):
                best = value
                _save(run_dir / BEST, checkpoint_payload(done))
        if done % save_every == 0 or done == end_step or out_of_time:
            _save(last_path, checkpoint_payload(done))
        if out_of_time:
            progress.write(
                f"{run_dir}: time budget of {time_budget:g} s spent at step {done} of "
                f"{trainer.total_steps}; saved {LAST}",
                file=sys.stderr,
            )
            break
        tick = time.perf_counter()  # validation and saving are not training time
    progress.close()
    if dist_info.enabled:
        dist.barrier()
        dist.destroy_process_group()
    return run_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", required=True, help="YAML config (training/configs/*.yaml)")
    parser.add_argument("--data-root", required=True, help="training data folder")
    parser.add_argument("--run-dir", required=True, help="run folder (checkpoints, metrics)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    parser.add_argument("--steps", type=int, help="total steps (stages rescaled in proportion)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--stop-at",
        type=int,
        metavar="STEP",
        help="save and exit after this step; continue later with --resume",
    )
    parser.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start the model from these weights (.safetensors, e.g. a shipped model)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="wall time for the whole run: the schedule is fitted to the steps that fit",
    )
    args = parser.parse_args(argv)
    train(
        args.config,
        args.data_root,
        args.run_dir,
        resume=args.resume,
        steps=args.steps,
        device=args.device,
        stop_at=args.stop_at,
        init_from=args.init_from,
        time_budget=args.time_budget,
    )


if __name__ == "__main__":
    main()
