"""Training data: endless, resumable per-rank streams of batches from the configured datasets,
rendered on the training device, and the fixed validation samples."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from training.data import SyntheticBlurDataset, UnpairedDataset, data_loader, synthesize_on_device
from training.distributed import DistInfo
from training.evaluate import to_device


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


class Streams:
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
