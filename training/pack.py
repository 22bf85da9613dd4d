"""Bring a run folder back from a borrowed GPU machine: weights only.

    python -m training.pack --run-dir /tmp/run --out "$OUT/run"

Such a machine sends back at most 8 files of at most 16 MiB each. This copies a run folder's
config, metrics and checkpoints without the optimizer state, which is twice the size of the
weights (BladeNet: 37 MB in all, 12 MB without): what `training.export` reads, nothing to resume
from; the next lease starts from the exported model with `--init-from` instead. The data that
travels the other way is `../shared/tools/make_data_pack.py`'s copy (training/README.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from deblurstudio.core.errors import DeblurStudioError
from training.train import BEST, CONFIG_NAME, LAST, METRICS

# Trainer state only a resumed run needs; export reads the rest (weights, step, hardware, ...).
_RESUME_ONLY = ("optimizers", "schedulers", "scalers", "rng", "drawn")


class PackError(DeblurStudioError):
    """A folder that is not a run folder."""


def pack_run(run_dir: str | Path, out: str | Path) -> list[Path]:
    """Copy a run folder's config, metrics and checkpoints, without resume-only state, to `out`.

    Returns the files written. Raises PackError when `run_dir` holds no checkpoint.
    """
    run_dir, out = Path(run_dir), Path(out)
    checkpoints = [run_dir / name for name in (BEST, LAST) if (run_dir / name).is_file()]
    if not (run_dir / CONFIG_NAME).is_file() or not checkpoints:
        raise PackError(f"{run_dir}: no {CONFIG_NAME} and checkpoint (is it a run folder?)")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in (CONFIG_NAME, METRICS):
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, out / name)
            written.append(out / name)
    for path in checkpoints:
        state = torch.load(path, map_location="cpu", weights_only=True)
        slim = {key: value for key, value in state.items() if key not in _RESUME_ONLY}
        slim["nets"] = {"model": state["nets"]["model"]}  # discriminators etc. are not shipped
        partial = out / f".{path.name}.partial"
        torch.save(slim, partial)
        partial.replace(out / path.name)
        written.append(out / path.name)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.pack", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        for path in pack_run(args.run_dir, args.out):
            print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    except PackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
