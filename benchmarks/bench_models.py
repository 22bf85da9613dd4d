"""Throughput of every installed deblurring model: megapixels/second, peak memory, and the achieved
arithmetic rate next to this machine's matrix-multiply rate in the model's precision
(`deblurstudio.core.bench`).

Without installed models (or with --random), random-weight checkpoints at the constructors'
default (= shipped) sizes are used: speed does not depend on the weights.

Extra measurements:
  --preparation  forward-pass rate with the model as the pipeline prepares it
                 (devices.prepare_for_inference: channels_last weights and input, eval, no grad)
                 against the plain model (eval, contiguous NCHW input);
  --profile      per-operator profile of one forward pass (torch.profiler with FLOP counts), to
                 see which layers fall short of the matmul rate.

Usage (from the repository root):
    python benchmarks/bench_models.py [--random] [--device cpu] [--size 2] [--tile 0]
                                      [--preparation] [--profile]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memory_24mp import write_random_models  # noqa: E402 — a sibling script, same folder

from deblurstudio.core import bench  # noqa: E402
from deblurstudio.core.devices import resolve_device, resolve_precision  # noqa: E402
from deblurstudio.core.modelstore import (  # noqa: E402
    MODELS_DIR_ENV,
    find_model,
    list_models,
    load_model,
)
from deblurstudio.models import load_checkpoint  # noqa: E402


def compare_preparation(model_id: str, tile: int, device: str, precision: str) -> str:
    """One line: forward rate prepared for inference vs. plain."""
    torch_device = resolve_device(device)
    dtype = resolve_precision(precision, torch_device)
    prepared = load_model(model_id, torch_device, dtype)
    plain, _ = load_checkpoint(find_model(model_id).path, device=torch_device)
    plain = plain.to(dtype=dtype).eval()
    rates = {}
    for name, model, channels_last in (("prepared", prepared, True), ("plain", plain, False)):
        flops, seconds = bench.forward_rate(
            model, tile, torch_device, dtype, channels_last=channels_last
        )
        rates[name] = (flops / seconds, seconds)
    (fast, fast_s), (slow, slow_s) = rates["prepared"], rates["plain"]
    return (
        f"{model_id}: prepared {fast / 1e9:.1f} GFLOP/s ({fast_s * 1e3:.0f} ms/tile), plain "
        f"{slow / 1e9:.1f} GFLOP/s ({slow_s * 1e3:.0f} ms/tile): ×{fast / slow:.2f}"
    )


def profile(model_id: str, tile: int, device: str, precision: str, rows: int = 14) -> str:
    """Per-operator table of one forward pass on a tile (after a warm-up pass)."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch_device = resolve_device(device)
    dtype = resolve_precision(precision, torch_device)
    model = load_model(model_id, torch_device, dtype)
    image = torch.rand(1, 3, tile, tile, device=torch_device, dtype=dtype).contiguous(
        memory_format=torch.channels_last
    )
    activities = [ProfilerActivity.CPU]
    if torch_device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with torch.inference_mode():
        model(image)
        with torch_profile(activities=activities, record_shapes=True, with_flops=True) as prof:
            model(image)
    sort = "self_cuda_time_total" if torch_device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=rows)
    return f"{model_id}, one {tile}×{tile} forward pass:\n{table}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", action="store_true",
                        help="random-weight default-size models instead of the installed ones")
    parser.add_argument("--models", nargs="*", help="model ids (default: all deblurring models)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--size", type=float, default=2.0, help="photo size in megapixels")
    parser.add_argument("--tile", type=int, default=0, help="tile side (0 = the device default)")
    parser.add_argument("--preparation", action="store_true",
                        help="compare prepare_for_inference with the plain model")
    parser.add_argument("--profile", action="store_true", help="per-operator profile")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="deblurstudio-bench-") as tmp:
        installed = [e for e in list_models() if e.task in ("deblur", "reference")]
        if args.random or not installed:
            write_random_models(Path(tmp))
            os.environ[MODELS_DIR_ENV] = tmp
            print("models: random weights at the default sizes\n")
        model_ids = args.models or [
            e.id for e in list_models() if e.task in ("deblur", "reference")
        ]
        results = []
        for model_id in model_ids:
            results.append(bench.bench_model(
                model_id, device=args.device, megapixels=args.size, tile=args.tile,
                precision=args.precision,
            ))
            print(f"measured {model_id}", file=sys.stderr)
        print(bench.format_table(results))
        if (warning := bench.load_warning()) is not None:
            print(warning)
        for result in results:
            if args.preparation:
                print(compare_preparation(result.model_id, result.tile, args.device,
                                          args.precision))
            if args.profile:
                print(profile(result.model_id, result.tile, args.device, args.precision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
