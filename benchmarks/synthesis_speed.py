"""Training-sample synthesis rate: the CPU path per core against the device path.

For each crop size it measures, on one CPU core (what one DataLoader worker gets):
  cpu finished   SyntheticBlurDataset samples synthesised with numpy/OpenCV (synthesis="cpu");
  cpu ingredients the same samples as device ingredients (synthesis="device": load, crop, draw);
and on the device (cuda if present, else the CPU with all its threads):
  device render  `synthesize_on_device` on collated batches of ingredients already on the device.
Training in device mode runs at about min(workers × ingredients rate, device rate) samples/s, less
the network's share of the device.

Usage (from the repository root; well under a minute on a GPU):
    python benchmarks/synthesis_speed.py [--data-root ../shared/data] [--device cuda]
        [--crops 128 256] [--batch 32] [--seconds 3] [--warmup 100] [--samples 150]
Without the shared data (e.g. on a leased GPU machine) it falls back to the tests' tiny fixture
photos, which load faster than real ones: the CPU rates are then optimistic.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import default_collate  # noqa: E402

from tests.training._data_root import make_data_root  # noqa: E402
from training.data import SyntheticBlurDataset  # noqa: E402
from training.data.device_synthesis import synthesize_on_device  # noqa: E402
from training.evaluate import to_device  # noqa: E402


def device_rate(step: Callable[[], int], seconds: float, sync: Callable[[], None]) -> float:
    """Samples per second of ``step`` (which returns how many it made), after two warm-up calls
    (CUDA's first calls load kernels and plan FFTs)."""
    for _ in range(2):
        step()
    sync()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += step()
    sync()
    return done / (time.perf_counter() - start)


def per_core_rate(dataset: SyntheticBlurDataset, warmup: int, samples: int) -> float:
    """Samples/s of ``dataset[i]`` on one core (torch and OpenCV limited to one thread).

    Counted in samples, not seconds, so that both paths fill their caches of cut-outs and object
    regions equally before the timing (they draw the same photos and objects).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        for index in range(warmup):
            dataset[index]
        start = time.perf_counter()
        for index in range(warmup, warmup + samples):
            dataset[index]
        return samples / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--crops", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0, help="device timing")
    parser.add_argument("--warmup", type=int, default=100, help="CPU samples before timing")
    parser.add_argument("--samples", type=int, default=150, help="CPU samples timed")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        data_root = args.data_root
        if not (data_root / "photos").is_dir():
            data_root = make_data_root(Path(scratch))
            print(f"{args.data_root} not found: using the test fixture photos (96 px)")
        print(f"data {data_root}; device {device}; batch {args.batch}; default sample mix")
        header = (
            f"{'crop':>5} | {'cpu finished /s/core':>20} | {'cpu ingredients /s/core':>23} | "
            f"{'device render /s':>16} | {'ms/batch':>8} | {'ingredient kB':>13}"
        )
        print(header)
        print("-" * len(header))
        for crop in args.crops:
            cpu = SyntheticBlurDataset(data_root, crop=crop)
            ingredients = SyntheticBlurDataset(data_root, crop=crop, synthesis="device")
            cpu_rate = per_core_rate(cpu, args.warmup, args.samples)
            ingredient_rate = per_core_rate(ingredients, args.warmup, args.samples)
            # A few distinct batches, on the device already: only the rendering is timed.
            batches = [
                to_device(
                    default_collate([ingredients[i] for i in range(k, k + args.batch)]), device
                )
                for k in range(0, 4 * args.batch, args.batch)
            ]
            kilobytes = sum(
                value.nbytes for value in batches[0].values() if isinstance(value, torch.Tensor)
            ) / (1024 * args.batch)
            turn = iter(range(10**9))

            def render(batches=batches, turn=turn) -> int:
                synthesize_on_device(batches[next(turn) % len(batches)])
                return args.batch

            sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
            render_rate = device_rate(render, args.seconds, sync)
            print(
                f"{crop:>5} | {cpu_rate:>20.1f} | {ingredient_rate:>23.1f} | "
                f"{render_rate:>16.0f} | {1e3 * args.batch / render_rate:>8.1f} | "
                f"{kilobytes:>13.0f}"
            )


if __name__ == "__main__":
    main()
