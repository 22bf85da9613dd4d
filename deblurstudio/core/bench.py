"""Throughput measurements: megapixels per second, peak memory, and how close a network's
arithmetic rate comes to the machine's plain matrix-multiply rate.

The arithmetic rate counts the FLOPs of one forward pass on one tile (torch's FlopCounterMode:
convolutions and matrix products, 2 FLOPs per multiply-add; element-wise work is not counted, so
the rate is a lower bound of useful work) and divides by the best time of that forward pass. The
reference is the best time of an n×n matrix product (2n³ FLOPs) measured in the same run, with the
same threads and in the dtype the model runs in (fp32 on the CPU, fp16/bf16 on a GPU, whose tensor
cores multiply those many times faster than fp32), at a size that keeps the device busy (n = 2048 on
the CPU, 8192 on a GPU). So the ratio says how much of the practical peak *for that precision* a
network uses, and means the same on the CPU and on a GPU.

Peak memory: on CUDA, the most bytes torch allocated during the run (beyond those allocated
before it); on Linux CPUs, the peak resident set size during the run (VmHWM, reset through
/proc/self/clear_refs) minus the resident size before it, after returning freed heap to the
system; None where neither can be read.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from deblurstudio.core.cancel import CancelToken
from deblurstudio.core.devices import resolve_device, resolve_precision
from deblurstudio.core.modelstore import find_model, load_model
from deblurstudio.core.pipeline import DeblurRequest, deblur, run
from deblurstudio.core.tiling import choose_tile, round_up

# Sides of the reference matrix product: large enough to reach the device's full rate (a GPU
# needs far more work in flight than a CPU), small enough to keep `bench` short on a small CPU.
MATMUL_SIZES = {"cpu": 2048, "cuda": 8192, "mps": 8192}
_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class BenchResult:
    """One model on one device.

    Attributes:
        model_id, arch: the model. device: torch device string. dtype: e.g. "float32".
        threads: torch intra-op threads (CPU).
        width, height: the synthetic photo deblurred end to end, in pixels.
        seconds: wall time of that deblur through the pipeline (tiling, blending), restored
            photo only, as the CLI's deblur and the batch run it.
        seconds_with_maps: the same deblur with the maps the GUI overlays (blur probability,
            motion), as the GUI runs it.
        peak_memory_bytes: of the deblur with maps; see the module docstring; None when unknown.
        tile: side of the square tile the forward pass was measured on, in pixels.
        tile_flops: FLOPs of one forward pass on that tile.
        tile_seconds: best wall time of that forward pass.
        matmul_flops_per_second: matrix-multiply rate on the same device in `dtype`.
    """

    model_id: str
    arch: str
    device: str
    dtype: str
    threads: int
    width: int
    height: int
    seconds: float
    seconds_with_maps: float
    peak_memory_bytes: int | None
    tile: int
    tile_flops: float
    tile_seconds: float
    matmul_flops_per_second: float

    @property
    def megapixels_per_second(self) -> float:
        return self.width * self.height / 1e6 / self.seconds

    @property
    def megapixels_per_second_with_maps(self) -> float:
        return self.width * self.height / 1e6 / self.seconds_with_maps

    @property
    def flops_per_second(self) -> float:
        """Achieved arithmetic rate of the forward pass."""
        return self.tile_flops / self.tile_seconds

    @property
    def matmul_ratio(self) -> float:
        """Achieved rate / matrix-multiply rate."""
        return self.flops_per_second / self.matmul_flops_per_second


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def best_time(function: Callable[[], object], device: torch.device, repeats: int = 3) -> float:
    """Best wall time in seconds of `function()` over `repeats` runs, after one warm-up run
    (which creates oneDNN / cuDNN kernels and allocator pools)."""
    function()
    synchronize(device)
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return best


_matmul_rates: dict[tuple[str, torch.dtype, int, int], float] = {}


def matmul_rate(
    device: torch.device, dtype: torch.dtype = torch.float32, size: int = 0, repeats: int = 5
) -> float:
    """This device's matrix-multiply rate in FLOP/s for `dtype` operands (best of `repeats`;
    cached per process, dtype, size and thread count).

    Args:
        size: side n of the n×n matrices; 0 = `MATMUL_SIZES` for the device type.
    """
    size = size or MATMUL_SIZES.get(device.type, MATMUL_SIZES["cpu"])
    key = (str(device), dtype, size, torch.get_num_threads())
    if key not in _matmul_rates:
        a = torch.rand(size, size, device=device, dtype=dtype)
        b = torch.rand(size, size, device=device, dtype=dtype)
        with torch.inference_mode():
            seconds = best_time(lambda: torch.mm(a, b), device, repeats)
        _matmul_rates[key] = 2.0 * size**3 / seconds
    return _matmul_rates[key]


def count_flops(model: nn.Module, image: torch.Tensor) -> float:
    """FLOPs of `model(image)` (convolutions and matrix products; 2 per multiply-add)."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(image)
    return float(counter.get_total_flops())


def forward_rate(
    model: nn.Module, tile: int, device: torch.device, dtype: torch.dtype, repeats: int = 3,
    channels_last: bool = True,
) -> tuple[float, float]:
    """FLOPs of one forward pass on a tile×tile image, and its best time in seconds.

    Args:
        channels_last: feed the input in channels-last memory layout, as the pipeline does.
    """
    image = torch.rand(1, 3, tile, tile, device=device, dtype=dtype)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    flops = count_flops(model, image)
    with torch.inference_mode():
        seconds = best_time(lambda: model(image), device, repeats)
    return flops, seconds


class PeakMemory:
    """Context manager measuring peak memory during its block (see the module docstring).

    After the block, `bytes` holds the peak extra memory, or None when it cannot be measured.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bytes: int | None = None
        self._base = 0
        self._cpu = False

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        elif self.device.type == "cpu":
            _release_free_heap()
            try:
                _PROC_CLEAR_REFS.write_text("5")  # 5 = reset the peak RSS to the current RSS
                self._base = _proc_status_kib("VmRSS") * 1024
                self._cpu = True
            except OSError:
                self._cpu = False
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        elif self._cpu:
            self.bytes = max(0, _proc_status_kib("VmHWM") * 1024 - self._base)


def _proc_status_kib(field: str) -> int:
    for line in _PROC_STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{_PROC_STATUS} has no {field}")


def _release_free_heap() -> None:
    """Hand memory freed by earlier work back to the system (glibc keeps it otherwise), so the
    resident size before a measurement is not inflated by it. Best effort."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def synthetic_photo(megapixels: float, seed: int = 0) -> np.ndarray:
    """A 4:3 float32 RGB photo in [0, 1] of about `megapixels`: smoothed noise (content does not
    change the speed of a convolutional network, but keeps values photo-like)."""
    width = max(16, round(math.sqrt(megapixels * 1e6 * 4 / 3)))
    height = max(16, round(width * 3 / 4))
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3), dtype=np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 3.0) * 4 - 1.5, 0.0, 1.0)


def bench_model(
    model_id: str,
    device: str = "auto",
    megapixels: float = 2.0,
    tile: int = 0,
    precision: str = "auto",
    repeats: int = 3,
) -> BenchResult:
    """Benchmark one installed model (see BenchResult).

    The pipeline run is preceded by a small warm-up deblur, so model loading and kernel creation
    are not counted.
    """
    torch_device = resolve_device(device)
    dtype = resolve_precision(precision, torch_device)
    entry = find_model(model_id)
    image = synthetic_photo(megapixels)
    height, width = image.shape[:2]

    def timed_deblur(pixels: np.ndarray, maps: bool) -> float:
        started = time.perf_counter()
        run(deblur(DeblurRequest(
            image=pixels, model_id=model_id, device=device, tile=tile, precision=precision,
            maps=maps,
        ), CancelToken()))
        synchronize(torch_device)
        return time.perf_counter() - started

    timed_deblur(synthetic_photo(0.05, seed=1), maps=True)  # loads every model
    with PeakMemory(torch_device) as peak:
        seconds_with_maps = timed_deblur(image, maps=True)
    seconds = timed_deblur(image, maps=False)

    model = load_model(model_id, torch_device, dtype)
    stride = model.stride
    side = min(choose_tile(torch_device, tile), round_up(max(height, width), stride))
    side = max(stride, side // stride * stride)
    tile_flops, tile_seconds = forward_rate(model, side, torch_device, dtype, repeats)
    return BenchResult(
        model_id=model_id,
        arch=entry.arch,
        device=str(torch_device),
        dtype=str(dtype).removeprefix("torch."),
        threads=torch.get_num_threads(),
        width=width,
        height=height,
        seconds=seconds,
        seconds_with_maps=seconds_with_maps,
        peak_memory_bytes=peak.bytes,
        tile=side,
        tile_flops=tile_flops,
        tile_seconds=tile_seconds,
        matmul_flops_per_second=matmul_rate(torch_device, dtype),
    )


def load_warning() -> str | None:
    """A warning when other processes keep this machine's cores busy (1-minute load average above
    the core count): CPU timings are then slower than the machine can do, and long runs (a large
    matrix product, a forward pass of seconds) suffer more than short ones. None when quiet."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    cores = os.cpu_count() or 1
    if load <= cores:
        return None
    return (f"warning: load average {load:.1f} on {cores} cores; other processes share the CPU, "
            "so these timings are unreliable")


def format_table(results: list[BenchResult]) -> str:
    """A plain-text table of results, one row per model and device."""
    header = ("model", "arch", "device", "photo", "MP/s", "MP/s +maps", "peak MB", "tile",
              "GFLOP/tile", "GFLOP/s", "matmul GFLOP/s", "of matmul")
    rows = [header]
    for r in results:
        rows.append((
            r.model_id, r.arch, f"{r.device} {r.dtype}" + (
                f" ×{r.threads}" if r.device == "cpu" else ""),
            f"{r.width}×{r.height}", f"{r.megapixels_per_second:.3g}",
            f"{r.megapixels_per_second_with_maps:.3g}",
            "?" if r.peak_memory_bytes is None else f"{r.peak_memory_bytes / 2**20:.0f}",
            str(r.tile), f"{r.tile_flops / 1e9:.3g}", f"{r.flops_per_second / 1e9:.3g}",
            f"{r.matmul_flops_per_second / 1e9:.3g}", f"{100 * r.matmul_ratio:.0f} %",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])
