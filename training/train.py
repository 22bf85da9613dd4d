"""Train one of DeblurStudio's networks from a YAML config.

    python -m training.train --config training/configs/bladenet.yaml --data-root ../shared/data \\
        --run-dir ~/runs/bladenet [--resume] [--steps N] [--device cpu|cuda]
        [--init-from CHECKPOINT] [--stop-at STEP] [--time-budget SECONDS]
    torchrun --nproc-per-node 4 -m training.train ...      # DistributedDataParallel

The run folder gets config.yaml (the effective config, see training.config), metrics.jsonl (one
JSON object per log or validation event), last.pt (everything needed to resume) and best.pt (the
best validation score's weights).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from deblurstudio.models import load_checkpoint
from training.config import config_digest, dump_config, load_config
from training.distributed import (
    configure_cpu_threads,
    describe_hardware,
    init_distributed,
    rank_max,
    resolve_device,
)
from training.streams import Streams, build_stream_datasets, build_val_samples
from training.trainers import Trainer, make_trainer

CONFIG_NAME = "config.yaml"
LAST = "last.pt"
BEST = "best.pt"
METRICS = "metrics.jsonl"
# What a run started from a checkpoint copies of that checkpoint's card (`_init_weights`).
START_HISTORY = ("title", "steps", "training_hours", "started_from")


# --- checkpoints and logs --------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [
            numpy_state[0],
            torch.from_numpy(numpy_state[1].astype(np.int64)),
            *numpy_state[2:],
        ],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _is_better(value: float, best: float | None, mode: str) -> bool:
    if value is None or math.isnan(value):
        return False
    return best is None or (value > best if mode == "max" else value < best)


def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _log(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _init_weights(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Copy a checkpoint's weights into `model`; both must be the same arch with the same kwargs.

    Returns what the new model card records as its start: the file's name and sha256, and its
    own card's training record (steps, hours and, recursively, where that run started), so a
    chain of fine-tunes keeps its whole history.
    """
    pretrained, info = load_checkpoint(path, "cpu")
    found = (pretrained.arch_id, pretrained.arch_kwargs)
    if found != (model.arch_id, model.arch_kwargs):
        raise ValueError(
            f"{path}: a {found[0]} {found[1]} checkpoint cannot start a run of "
            f"{model.arch_id} {model.arch_kwargs}"
        )
    model.load_state_dict(pretrained.state_dict())
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    history = {k: info.card[k] for k in START_HISTORY if k in info.card}
    return {"file": Path(path).name, "sha256": digest, **history}


# --- the run loop ----------------------------------------------------------------------------


# A time-boxed run measures each stage's step rate over this much training time before fitting
# the rest of its schedule to it (stages differ: BladeNet's LBP steps cost a third of its main
# steps); a stage's first steps (cuDNN autotuning, compilation) are left out.
FIT_AFTER_SECONDS = 20.0
FIT_SKIP_STEPS = 5


def _record_schedule(train_config: dict[str, Any], trainer: Trainer) -> None:
    """Write the schedule that runs into the config the run folder keeps."""
    if train_config.get("stages"):
        train_config["stages"] = [
            {"name": s.name, "steps": s.steps, "lr_scale": s.lr_scale}
            | ({"stream": s.stream} if s.stream else {})
            for s in trainer.stages
        ]
    train_config["steps"] = trainer.total_steps


def _steps_that_fit(
    seconds_left: float, step_seconds: float, val_seconds: float, val_every: int
) -> int:
    """Steps of `step_seconds` each, plus a validation of `val_seconds` every `val_every`."""
    return max(1, int(seconds_left / (step_seconds + val_seconds / max(1, val_every))))


def train(
    config_path: str | os.PathLike,
    data_root: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    steps: int | None = None,
    device: str | None = None,
    stop_at: int | None = None,
    init_from: str | os.PathLike | None = None,
    time_budget: float | None = None,
) -> Path:
    """Run (or resume) training; returns the run folder.

    Args:
        config_path: YAML config.
        data_root: the training data folder (e.g. ../shared/data).
        run_dir: where config.yaml, metrics.jsonl, last.pt and best.pt go.
        resume: continue from run_dir/last.pt.
        steps: total steps override (stages rescaled in proportion).
        device: "cpu" | "cuda" | None (CUDA when available).
        stop_at: save and return after this step (continue later with `resume`), e.g. to split
            a long CPU run into sessions; the schedule still spans all steps.
        init_from: a .safetensors checkpoint (e.g. a shipped model) whose weights the model
            starts from, for fine-tuning; its architecture and kwargs must be the config's.
            Ignored when resuming (last.pt has the weights).
        time_budget: seconds of wall time (setup and validation included) for the whole run,
            e.g. a borrowed GPU's: after FIT_AFTER_SECONDS of training the schedule (stages,
            warm-up, cosine) is fitted to the steps that fit, and the run saves and ends
            before the budget is spent even if it turns slower later.

    Raises:
        FloatingPointError: a loss turned non-finite; last.pt and best.pt on disk keep the last
            good weights.
    """
    deadline = None if time_budget is None else time.monotonic() + time_budget
    config = load_config(config_path)
    run_dir = Path(run_dir).expanduser()
    torch_device = resolve_device(device)
    # Synthesis runs in parallel across the DataLoader workers already; OpenCV's own thread pool
    # would compete for their cores, and a pool started before the workers fork can deadlock them.
    cv2.setNumThreads(1)
    if torch_device.type == "cpu":
        configure_cpu_threads(int(config["train"].get("workers", 2)))
    else:  # training crops are all one size: let cuDNN pick its fastest convolutions once
        torch.backends.cudnn.benchmark = True
    dist_info = init_distributed(torch_device)
    train_config = config["train"]
    # Per-rank seeds: data synthesised in the main process (workers: 0) must differ between
    # ranks; DDP broadcasts rank 0's initial weights, so they still start alike.
    seed = int(train_config.get("seed", 0)) + dist_info.rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    trainer = make_trainer(config, torch_device, dist_info, steps)
    if steps is not None:  # the run folder's config states the schedule that actually ran
        _record_schedule(train_config, trainer)
    start_step, best, drawn, seconds, last_validation = 0, None, {}, 0.0, {}
    last_path = run_dir / LAST
    if init_from is not None and not resume:
        # The run folder's config says where the weights came from (the model card shows it).
        train_config["init_from"] = _init_weights(trainer.nets["model"], init_from)
    if resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"{last_path}: no checkpoint to resume from")
        # Plain tensors and containers only: never unpickle arbitrary objects.
        checkpoint = torch.load(last_path, map_location="cpu", weights_only=True)
        trainer.load_state_dict(checkpoint)
        _set_rng_state(checkpoint["rng"])
        start_step, best = checkpoint["step"], checkpoint.get("best")
        drawn, seconds = checkpoint.get("drawn", {}), checkpoint.get("train_seconds", 0.0)
        last_validation = checkpoint.get("validation", {})
        # A resumed fine-tune keeps the start its run folder recorded (not in the config given).
        started = load_config(run_dir / CONFIG_NAME)["train"].get("init_from")
        if started is not None:
            train_config["init_from"] = started
    hardware = describe_hardware(torch_device, dist_info.world_size)
    if dist_info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_NAME).write_text(dump_config(config), encoding="utf-8")

    datasets = build_stream_datasets(config, data_root)
    unknown = {stage.stream for stage in trainer.stages} - {None, *datasets}
    if unknown:
        raise ValueError(
            f"train.stages name the streams {sorted(unknown)}, but the config's streams are "
            f"{sorted(datasets)}"
        )
    streams = Streams(datasets, train_config, torch_device, dist_info, drawn)
    val_samples = build_val_samples(config, data_root) if dist_info.is_main else []
    metric_name, metric_mode = trainer.best_metric
    val_every = int(train_config.get("val_every", 500))
    log_every = int(train_config.get("log_every", 10))
    save_every = int(train_config.get("save_every", val_every))

    def checkpoint_payload(step: int) -> dict[str, Any]:
        return {
            **trainer.state_dict(),
            "step": step,
            "best": best,
            "drawn": streams.drawn,
            "rng": _rng_state(),
            "train_seconds": seconds,
            "hardware": hardware,
            "data_root": str(Path(data_root).resolve()),
            "config_digest": config_digest(config),
            "validation": last_validation,
        }

    progress = tqdm(
        total=trainer.total_steps,
        initial=start_step,
        desc=run_dir.name,
        disable=not dist_info.is_main,
        dynamic_ncols=True,
    )
    for module in trainer.nets.values():
        module.train()
    tick = time.perf_counter()
    logged_seconds, logged_step = seconds, start_step
    # A time-boxed run measures the step rate of each stage it enters from (step, seconds),
    # once, and fits the rest of the schedule to it.
    measured_index, fit_pending = -1, False
    rate_origin: tuple[int, float] | None = None
    val_seconds: float | None = None
    # A margin for the last validation and save, and for a slower step now and then.
    margin = 0.0 if time_budget is None else max(5.0, 0.05 * time_budget)

    def stop_step() -> int:
        return trainer.total_steps if stop_at is None else min(stop_at, trainer.total_steps)

    step = start_step
    while step < stop_step():
        batch = trainer.next_batch(streams, step)
        losses = trainer.train_step(batch, step)
        trainer.end_step()
        now = time.perf_counter()
        seconds += now - tick
        tick = now
        done = step = step + 1
        progress.update(1)
        progress.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=False)
        stage_index = trainer.stages.index(trainer.stage(done - 1))
        if deadline is not None and stage_index != measured_index:
            measured_index, rate_origin, fit_pending = stage_index, None, True
        if fit_pending and rate_origin is None:
            if done - trainer.stages[stage_index].start >= FIT_SKIP_STEPS:
                rate_origin = (done, seconds)
        elif fit_pending and seconds - rate_origin[1] >= FIT_AFTER_SECONDS:
            fit_pending = False
            step_seconds = (seconds - rate_origin[1]) / (done - rate_origin[0])
            if val_seconds is None:  # a point on the learning curve, and what one costs
                started = time.perf_counter()
                if val_samples:
                    last_validation = trainer.validate(val_samples)
                    _log(run_dir, {"step": done, "split": "val", **last_validation})
                val_seconds = rank_max(time.perf_counter() - started, dist_info, torch_device)
            seconds_left = deadline - time.monotonic() - margin
            steps_left = _steps_that_fit(seconds_left, step_seconds, val_seconds, val_every)
            trainer.fit_schedule(done, int(rank_max(steps_left, dist_info, torch_device)))
            _record_schedule(train_config, trainer)
            progress.total = trainer.total_steps
            if dist_info.is_main:
                (run_dir / CONFIG_NAME).write_text(dump_config(config), encoding="utf-8")
                progress.write(
                    f"{run_dir}: {1 / step_seconds:.2f} steps/s in stage "
                    f"{trainer.stages[stage_index].name}: "
                    f"schedule fitted to {trainer.total_steps} steps"
                )
            tick = time.perf_counter()
        out_of_time = (
            deadline is not None
            # Every step alone; under DDP, where asking every rank costs a round trip, at logs.
            and (done % log_every == 0 or not dist_info.enabled)
            and done < stop_step()
            and rank_max(time.monotonic() > deadline - margin, dist_info, torch_device) > 0
        )
        end_step = stop_step()
        if not dist_info.is_main:
            if out_of_time:
                break
            continue
        if done % log_every == 0 or done == trainer.total_steps:
            lr = trainer.optimizers["model"].param_groups[0]["lr"]
            # Data loading included, validation and checkpointing excluded.
            rate = (done - logged_step) / max(seconds - logged_seconds, 1e-9)
            logged_seconds, logged_step = seconds, done
            _log(
                run_dir,
                {
                    "step": done,
                    "split": "train",
                    "stage": trainer.stage(step).name,
                    "lr": lr,
                    "steps_per_s": rate,
                    **losses,
                },
            )
        if val_samples and (done % val_every == 0 or done == trainer.total_steps):
            last_validation = trainer.validate(val_samples)
            _log(run_dir, {"step": done, "split": "val", **last_validation})
            value = last_validation.get(metric_name)
            if _is_better(value, best, metric_mode):
                best = value
                _save(run_dir / BEST, checkpoint_payload(done))
        if done % save_every == 0 or done == end_step or out_of_time:
            _save(last_path, checkpoint_payload(done))
        if out_of_time:
            progress.write(
                f"{run_dir}: time budget of {time_budget:g} s spent at step {done} of "
                f"{trainer.total_steps}; saved {LAST}",
                file=sys.stderr,
            )
            break
        tick = time.perf_counter()  # validation and saving are not training time
    progress.close()
    if dist_info.enabled:
        dist.barrier()
        dist.destroy_process_group()
    return run_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", required=True, help="YAML config (training/configs/*.yaml)")
    parser.add_argument("--data-root", required=True, help="training data folder")
    parser.add_argument("--run-dir", required=True, help="run folder (checkpoints, metrics)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    parser.add_argument("--steps", type=int, help="total steps (stages rescaled in proportion)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--stop-at",
        type=int,
        metavar="STEP",
        help="save and exit after this step; continue later with --resume",
    )
    parser.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start the model from these weights (.safetensors, e.g. a shipped model)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="wall time for the whole run: the schedule is fitted to the steps that fit",
    )
    args = parser.parse_args(argv)
    train(
        args.config,
        args.data_root,
        args.run_dir,
        resume=args.resume,
        steps=args.steps,
        device=args.device,
        stop_at=args.stop_at,
        init_from=args.init_from,
        time_budget=args.time_budget,
    )


if __name__ == "__main__":
    main()
