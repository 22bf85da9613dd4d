"""Where a training process runs: its device, its CPU threads, and its rank in a torchrun
(DistributedDataParallel) process group."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import torch
import torch.distributed as dist

from deblurstudio.core.devices import physical_cpu_cores


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


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, Gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), world_size)


def rank_max(value: float, dist_info: DistInfo, device: torch.device) -> float:
    """The largest of every rank's `value` (ranks must stop and fit at the same step)."""
    if not dist_info.enabled:
        return value
    tensor = torch.tensor([float(value)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def configure_cpu_threads(workers: int) -> None:
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
