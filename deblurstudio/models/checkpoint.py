"""Checkpoints: a `.safetensors` file whose header metadata says how to rebuild the network.

Loading never unpickles: weights come from safetensors, the architecture from the hand-written
registry, its constructor arguments from JSON in the header.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from deblurstudio.models.registry import ARCHS, build

FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint file that cannot be used; the message names the file and the reason."""


@dataclass
class CheckpointInfo:
    """What a checkpoint's header says about it.

    Attributes:
        arch: architecture id, a key of `ARCHS`.
        kwargs: constructor arguments.
        card: the model card (training data, steps, hardware, metrics, ...), free-form JSON.
        format_version: checkpoint format version.
    """

    arch: str
    kwargs: dict[str, Any]
    card: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION


def save_checkpoint(
    path: str | os.PathLike, model: nn.Module, card: dict[str, Any] | None = None
) -> None:
    """Write `model` (built by `registry.build`) atomically to `path` as safetensors."""
    path = Path(path)
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "arch": model.arch_id,
        "kwargs": json.dumps(model.arch_kwargs, sort_keys=True),
        "card": json.dumps(card or {}, sort_keys=True),
    }
    # safetensors refuses shared or non-contiguous storage: store plain contiguous copies.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a shipped checkpoint is world-readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checkpoint_info(path: str | os.PathLike) -> CheckpointInfo:
    """Read only the header of a checkpoint (fast; no weights are loaded)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({exc})") from None
    try:
        info = CheckpointInfo(
            arch=metadata["arch"],
            kwargs=json.loads(metadata["kwargs"]),
            card=json.loads(metadata.get("card", "{}")),
            format_version=int(metadata.get("format_version", "0")),
        )
    except (KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: checkpoint header lacks architecture metadata ({exc})"
        ) from None
    if info.arch not in ARCHS:
        raise CheckpointError(f"{path}: unknown architecture '{info.arch}'")
    if info.format_version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {info.format_version} is newer than this version supports"
        )
    return info


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, CheckpointInfo]:
    """Rebuild the network from the registry and load its weights; returns it in eval mode."""
    path = Path(path)
    info = read_checkpoint_info(path)
    model = build(info.arch, **info.kwargs)
    state = {}
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        for key in f.keys():
            state[key] = f.get_tensor(key)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[1:2] or [str(exc)]
        raise CheckpointError(
            f"{path}: weights do not fit '{info.arch}' ({first_line[0].strip()})"
        ) from None
    return model.to(device).eval(), info
