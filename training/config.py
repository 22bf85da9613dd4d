"""Training configs: read a YAML config (resolving `base:` by deep merge), and write and hash it
as the run folder keeps it.

Config (keys are constructor arguments, BasicSR style):
    base: other.yaml            optional: deep-merged underneath this file (tiny CI configs;
                                a `kinds` mix replaces the base's, see REPLACED_MAPPINGS)
    model: {arch, kwargs}       -> deblurstudio.models.build(arch, **kwargs)
    data: {...}                 -> SyntheticBlurDataset(data_root, split, **data)
    streams: {name: {...}}      optional named training streams: `data` with these keys replaced
    train: {steps | stages, batch_size, lr, warmup, grad_clip, workers, val_every, val_samples,
            log_every, save_every, seed, amp, ...}
                                stages: [{name, steps, lr_scale?, stream?}], run in order;
                                `stream` names the `streams` entry a stage's batches come from
    loss: {term: weight}
"""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path
from typing import Any

import yaml

REPLACED_MAPPINGS = frozenset({"kinds"})
"""Keys whose mapping an override replaces instead of merging into: a mix of sample kinds is
one choice (`kinds: {global: 1.0}` means only global blur, not global plus the base's others)."""


def _deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        mergeable = key not in REPLACED_MAPPINGS and isinstance(merged.get(key), dict)
        if isinstance(value, dict) and mergeable:
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML config, resolving `base:` (a path relative to this file) by deep merge."""
    path = Path(path)
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    base = config.pop("base", None)
    if base is not None:
        config = _deep_merge(load_config(path.parent / base), config)
    for section in ("model", "data", "train"):
        if section not in config:
            raise ValueError(f"{path}: config lacks the '{section}' section")
    return config


def config_digest(config: dict[str, Any]) -> str:
    """sha256 of the config as written to the run folder (stable key order)."""
    return hashlib.sha256(dump_config(config).encode("utf-8")).hexdigest()


def dump_config(config: dict[str, Any]) -> str:
    """The config as YAML, as written to the run folder."""
    return yaml.safe_dump(config, sort_keys=True)
