"""Peak memory of deblurring a 24-megapixel photo from the command line, and what the file keeps.

Writes a 6000×4000 JPEG (stored sideways, EXIF Orientation 6, with an ICC profile and camera
tags), runs `python -m deblurstudio.cli.main deblur` on it in a subprocess (read → deblur →
write, exactly what a user runs) and reports the child's peak resident memory
(resource.getrusage, RUSAGE_CHILDREN) and its wall time. Then checks the output: upright
6000×4000, EXIF kept with Orientation 1, the same ICC profile.

The models are random-weight checkpoints at the constructors' default sizes (the shipped sizes),
so memory is what the shipped models need without depending on trained files; pass --models-dir
to use installed ones instead. Peak memory depends on the model, the tile and the device, not on
the weights.

Usage (from the repository root):
    python benchmarks/memory_24mp.py [--model lcnet] [--tile 512] [--megapixels 24] [--limit-gb 3]

Exit status 0 when the peak is under --limit-gb and the metadata survived, else 1.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

ROOT = Path(__file__).resolve().parents[1]
ORIENTATION, MAKE, MODEL = 0x0112, 0x010F, 0x0110
# One random-weight checkpoint per role at the constructors' default (= shipped) sizes.
SHIPPED_ARCHS = {
    "bladenet": ("bladenet", "deblur"),
    "lcnet": ("lcnet", "deblur"),
    "refdeblur": ("refdeblur", "reference"),
    "motion": ("neurmap_motion", "motion"),
}


def make_photo(path: Path, megapixels: float) -> tuple[int, int, bytes]:
    """Write a sideways JPEG (Orientation 6) whose upright size is 3:2 landscape.

    Returns (upright width, upright height, ICC profile bytes).
    """
    width = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    height = int(round(width / 1.5))
    rng = np.random.default_rng(0)
    # Smooth gradients plus a little noise, stored sideways: height columns × width rows.
    yy = np.linspace(0, 1, width, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, height, dtype=np.float32)[None, :]
    stored = np.empty((width, height, 3), np.uint8)
    for channel, (a, b) in enumerate([(180, 60), (90, 120), (40, 200)]):
        plane = a * yy + b * xx + rng.normal(0, 6, (width, height)).astype(np.float32)
        stored[..., channel] = np.clip(plane, 0, 255).astype(np.uint8)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # rotate 90° clockwise to display
    exif[MAKE], exif[MODEL] = "DeblurStudio", "memory benchmark"
    Image.fromarray(stored).save(path, quality=92, exif=exif.tobytes(), icc_profile=icc)
    return width, height, icc


def write_random_models(folder: Path) -> None:
    """Shipped-size random-weight checkpoints plus a manifest (format of resources/models)."""
    sys.path.insert(0, str(ROOT))
    from deblurstudio.models import build, save_checkpoint

    entries = {}
    for model_id, (arch, task) in SHIPPED_ARCHS.items():
        save_checkpoint(folder / f"{model_id}.safetensors", build(arch), {"steps": 0})
        entries[model_id] = {"file": f"{model_id}.safetensors", "arch": arch, "task": task}
    defaults = {"deblur": "bladenet", "fast": "lcnet", "reference": "refdeblur", "motion": "motion"}
    manifest = {"format": 1, "defaults": defaults, "models": entries}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))


def peak_rss_bytes_of_children() -> int:
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak if platform.system() == "Darwin" else peak * 1024  # Linux reports KiB


def check_output(path: Path, width: int, height: int, icc: bytes) -> list[str]:
    """What the written file lost, as a list of problems (empty when all kept)."""
    problems = []
    with Image.open(path) as out:
        if out.size != (width, height):
            problems.append(f"size {out.size}, expected upright {(width, height)}")
        exif = out.getexif()
        if exif.get(MAKE) != "DeblurStudio" or exif.get(MODEL) != "memory benchmark":
            problems.append("EXIF camera tags lost")
        if exif.get(ORIENTATION, 1) != 1:
            problems.append(f"EXIF Orientation {exif.get(ORIENTATION)}, expected 1 (upright)")
        if out.info.get("icc_profile") != icc:
            problems.append("ICC profile lost or changed")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=24.0)
    parser.add_argument("--model", help="model id (default: the store's default deblur model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tile", type=int, default=0, help="tile side (0 = automatic)")
    parser.add_argument("--models-dir", type=Path, help="use these models, not random ones")
    parser.add_argument("--limit-gb", type=float, default=3.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="deblurstudio-mem-") as tmp:
        tmp = Path(tmp)
        models = args.models_dir
        if models is None:
            models = tmp / "models"
            models.mkdir()
            write_random_models(models)
        source, output = tmp / "photo.jpg", tmp / "deblurred.jpg"
        width, height, icc = make_photo(source, args.megapixels)
        command = [
            sys.executable,
            "-m",
            "deblurstudio.cli.main",
            "deblur",
            str(source),
            "-o",
            str(output),
            "--device",
            args.device,
            "--tile",
            str(args.tile),
        ]
        if args.model:
            command += ["--model", args.model]
        env = dict(os.environ, DEBLURSTUDIO_MODELS_DIR=str(models))
        started = time.perf_counter()
        completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        peak = peak_rss_bytes_of_children()
        stdout = io.StringIO(completed.stdout).read().strip()
        print(f"photo: {width}×{height} ({width * height / 1e6:.1f} MP) JPEG, EXIF Orientation 6")
        print(f"command: {' '.join(command[1:])}")
        print(f"exit status {completed.returncode}; {stdout or completed.stderr.strip()}")
        print(f"wall time {seconds:.1f} s ({width * height / 1e6 / seconds:.2f} MP/s)")
        print(f"peak resident memory {peak / 2**30:.2f} GiB (limit {args.limit_gb:.1f} GB)")
        if completed.returncode != 0:
            return 1
        problems = check_output(output, width, height, icc)
        print("metadata: " + ("; ".join(problems) if problems else "EXIF, ICC, orientation kept"))
        return 0 if peak < args.limit_gb * 1e9 and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
