"""Speed of the default deblurring model on a CUDA GPU, for a machine borrowed for a few minutes.

Measures, with `deblurstudio.core.bench` (the code behind `deblurstudio-cli bench`), in the
precision the app picks on that GPU (bf16, or fp16 where bf16 is not supported):
  * megapixels per second of the whole deblur (tiling and blending included) of a 2 MP and a
    24 MP photo, restored photo only (as `deblur` and `batch` run) and with the blur-probability
    and motion maps (as the GUI runs);
  * the forward pass's arithmetic rate next to the matrix-multiply reference (8192³ in the same
    dtype), so "% of matmul" compares with the CPU's.
It takes under 5 minutes on one GPU (the models, and a second of work for each size). Prints a
table; when $OUT is set (a device machine's output folder) also writes gpu_speed.json and
gpu_speed.txt there.

--cpu-dry-run runs the same steps on the CPU at 0.05 and 0.2 MP, to check the script where there
is no GPU.

Usage (from the repository root):
    python benchmarks/gpu_speed.py [--model ID] [--sizes 2,24] [--cpu-dry-run]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from deblurstudio.core import bench  # noqa: E402
from deblurstudio.core.modelstore import default_model_id  # noqa: E402

GPU_SIZES = (2.0, 24.0)
DRY_RUN_SIZES = (0.05, 0.2)


def _sizes(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(","))


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    facts = {"torch": torch.__version__, "python": platform.python_version(),
             "cpu": platform.processor() or platform.machine(), "cpu_cores": str(os.cpu_count())}
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name()
        facts["cuda"] = str(torch.version.cuda)
    return facts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", metavar="ID", help="model id (default: the default model)")
    parser.add_argument("--sizes", type=_sizes, metavar="MP,MP",
                        help="photo sizes in megapixels (default 2,24; dry run 0.05,0.2)")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="run on the CPU at small sizes (checks the script, not the speed)")
    args = parser.parse_args()
    if not args.cpu_dry_run and not torch.cuda.is_available():
        print("gpu_speed: no CUDA device; use --cpu-dry-run to check the script on the CPU",
              file=sys.stderr)
        return 2
    device = "cpu" if args.cpu_dry_run else "cuda"
    sizes = args.sizes or (DRY_RUN_SIZES if args.cpu_dry_run else GPU_SIZES)
    model_id = args.model or default_model_id("deblur")

    started = time.perf_counter()
    results = []
    for megapixels in sizes:
        print(f"{model_id} on {device}, {megapixels:g} MP…", file=sys.stderr, flush=True)
        results.append(bench.bench_model(model_id, device=device, megapixels=megapixels))
    table = bench.format_table(results)
    facts = machine()
    report = "\n".join([
        ", ".join(f"{key} {value}" for key, value in facts.items()),
        table,
        f"({time.perf_counter() - started:.0f} s in all)",
    ])
    print(report)

    out = os.environ.get("OUT")
    if out:
        document = {
            "machine": facts,
            "dry_run": args.cpu_dry_run,
            "results": [
                dataclasses.asdict(r) | {
                    "megapixels_per_second": r.megapixels_per_second,
                    "megapixels_per_second_with_maps": r.megapixels_per_second_with_maps,
                    "flops_per_second": r.flops_per_second,
                    "matmul_ratio": r.matmul_ratio,
                }
                for r in results
            ],
        }
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu_speed.json").write_text(json.dumps(document, indent=1) + "\n")
        (Path(out) / "gpu_speed.txt").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
