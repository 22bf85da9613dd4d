"""Export a training run as a shipped model: checkpoint + manifest entry with its model card.

    python -m training.export --run-dir ~/runs/bladenet [--checkpoint best|last] --id bladenet \\
        --task deblur --title "BladeNet (local deblurring)" [--evaluate-samples N]

Writes <models-dir>/<id>.safetensors (deblurstudio.models.save_checkpoint, card in its header)
and adds or replaces <id> in <models-dir>/manifest.json (written atomically; other entries are
kept; a role default is set only where the manifest has none). The models folder defaults to the
repository's resources/models. Checkpoints over 25 MB are refused: they would bloat the app.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from deblurstudio.core.modelstore import MANIFEST, TASKS, resources_dir
from deblurstudio.models import build, save_checkpoint
from training.config import load_config
from training.data.splits import (
    CAMVID_DIRS,
    PHOTO_DIRS,
    SEGMENT_DIRS,
    UNPAIRED_BLURRED_DIRS,
    VALIDATION_SPLIT,
)
from training.evaluate import evaluate, load_samples, suites_for
from training.streams import build_val_samples
from training.train import BEST, CONFIG_NAME, LAST

MAX_CHECKPOINT_BYTES = 25 * 1024 * 1024


class ExportError(Exception):
    """A run that cannot be exported; the message names the file and the reason."""


def training_folders(config: dict[str, Any]) -> list[str]:
    """The data a run of `config` trained on: shared-data folders of the training split (as
    `training.data.splits` fixes them), the unpaired real-blur folder when NeurMAP's unpaired
    part ran, and any extra synthesis sources ("<layout>:<root>")."""
    train_photos = PHOTO_DIRS["train"]
    folders = [
        *train_photos,
        *(SEGMENT_DIRS[d] for d in train_photos if d in SEGMENT_DIRS),
        *CAMVID_DIRS["train"],
    ]
    if (config.get("neurmap") or {}).get("deblur"):
        folders += UNPAIRED_BLURRED_DIRS
    for spec in config["data"].get("extra_sources") or ():
        folders.append(f"{spec.get('layout')}:{spec.get('root')}")
    return folders


def _state_bytes(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def _write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the manifest ships with the app
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_manifest(
    models_dir: Path, model_id: str, entry: dict[str, Any], role: str | None = None
) -> dict[str, Any]:
    """Add or replace `model_id` in models_dir/manifest.json; returns the new manifest.

    `role` ("deblur", "fast", "reference" or "motion") becomes this model's default role only if
    the manifest has no default for it yet.
    """
    path = models_dir / MANIFEST
    if path.is_file():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ExportError(f"{path}: not valid JSON ({exc})") from None
    else:
        manifest = {}
    manifest.setdefault("format", 1)
    manifest.setdefault("defaults", {})
    manifest.setdefault("models", {})
    manifest["models"][model_id] = entry
    if role is not None:
        manifest["defaults"].setdefault(role, model_id)
    _write_json_atomically(path, manifest)
    return manifest


def export_run(
    run_dir: str | os.PathLike,
    model_id: str,
    task: str,
    title: str,
    *,
    description: str = "",
    checkpoint: str = "best",
    evaluate_samples: int = 0,
    data_root: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
    role: str | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Export a run's best or last weights; returns the manifest entry (with the card).

    Args:
        run_dir: a training run folder (config.yaml, best.pt / last.pt).
        model_id: the id in the manifest and the file name.
        task: "deblur" | "reference" | "motion".
        title, description: shown in the app.
        checkpoint: "best" or "last".
        evaluate_samples: score this many validation samples of the training mix for the card's
            "metrics", and as many of each target condition (evaluate.SUITES, 256 px) for its
            "targets"; 0 = the run's last validation scores and no targets.
        data_root: data for that evaluation (default: the run's own data root).
        models_dir: destination folder (default: resources/models of this repository).
        role: default role to claim if still free (default: the task's own role).
        device: where to evaluate.

    Raises:
        ExportError: missing run files, a checkpoint over 25 MB, an unreadable manifest.
    """
    if task not in TASKS:
        raise ExportError(f"unknown task '{task}' (known: {', '.join(TASKS)})")
    run_dir = Path(run_dir).expanduser()
    models_dir = Path(models_dir) if models_dir is not None else resources_dir() / "models"
    config_path = run_dir / CONFIG_NAME
    weights_path = run_dir / {"best": BEST, "last": LAST}[checkpoint]
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ExportError(f"{path}: missing (is {run_dir} a training run folder?)")
    config_text = config_path.read_text(encoding="utf-8")
    config = load_config(config_path)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model_state = state["nets"]["model"]
    size = _state_bytes(model_state)
    if size > MAX_CHECKPOINT_BYTES:
        raise ExportError(
            f"{weights_path}: weights are {size / 2**20:.1f} MB, over the "
            f"{MAX_CHECKPOINT_BYTES / 2**20:.0f} MB limit for shipped models"
        )
    model = build(config["model"]["arch"], **(config["model"].get("kwargs") or {}))
    model.load_state_dict(model_state)

    data_root = Path(data_root or state["data_root"])
    if evaluate_samples > 0:
        samples = build_val_samples(
            {**config, "train": {**config["train"], "val_samples": evaluate_samples}}, data_root
        )
        metrics = evaluate(model, samples, device)
        targets = {
            suite: evaluate(
                model,
                load_samples(
                    model,
                    data_root=data_root,
                    split="val",
                    layout=None,
                    samples=evaluate_samples,
                    crop=None,
                    suite=suite,
                ),
                device,
            )
            for suite in suites_for(model)
        }
    else:
        metrics, targets = dict(state.get("validation") or {}), {}
    card = {
        "task": task,
        "title": title,
        "description": description,
        "trained_on": training_folders(config),
        "validation_split": VALIDATION_SPLIT,
        "steps": int(state["step"]),
        "started_from": config["train"].get("init_from", "random weights"),
        "hardware": state.get("hardware", "unknown"),
        "training_hours": round(float(state.get("train_seconds", 0.0)) / 3600, 3),
        "config_digest": hashlib.sha256(config_text.encode("utf-8")).hexdigest(),
        "metrics": metrics,
        "targets": targets,
    }
    file_name = f"{model_id}.safetensors"
    save_checkpoint(models_dir / file_name, model.cpu(), card)
    entry = {
        "file": file_name,
        "arch": config["model"]["arch"],
        "task": task,
        "title": title,
        "description": description,
        "card": card,
    }
    update_manifest(models_dir, model_id, entry, role or task)
    return entry


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.export", description="Export a training run as a shipped model."
    )
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best")
    parser.add_argument("--id", required=True, dest="model_id", help="model id (file name)")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--title", required=True)
    parser.add_argument("--description", default="")
    parser.add_argument(
        "--evaluate-samples",
        type=int,
        default=0,
        metavar="N",
        help="score N validation samples for the card (0: the run's last scores)",
    )
    parser.add_argument("--data-root", help="data for --evaluate-samples (default: the run's)")
    parser.add_argument("--models-dir", help="destination (default: resources/models)")
    parser.add_argument(
        "--role",
        choices=["deblur", "fast", "reference", "motion"],
        help="default role to claim if free (default: the task)",
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        entry = export_run(
            args.run_dir,
            args.model_id,
            args.task,
            args.title,
            description=args.description,
            checkpoint=args.checkpoint,
            evaluate_samples=args.evaluate_samples,
            data_root=args.data_root,
            models_dir=args.models_dir,
            role=args.role,
            device=args.device,
        )
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(entry, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
