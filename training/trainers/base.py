"""The Trainer base class: a paper's networks with their optimizers, LR schedules, loss scalers,
mixed precision, DDP wrapping, checkpoint state and validation."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from deblurstudio.models import build
from training.distributed import DistInfo
from training.evaluate import evaluate
from training.losses import charbonnier_loss, fft_loss, psnr_loss, structure_loss
from training.schedule import Stage, build_stages, fit_stages, lr_factor, stage_at
from training.streams import Streams


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
        # motion trainer 2.32 vs 2.22 (its step is mostly reblur and data). `Streams` hands out
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

    def next_batch(self, streams: Streams, step: int) -> dict[str, Any]:
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
