"""The model store: which checkpoints are installed, the default for each role, cached loading.

Folders searched, first match of an id wins:
  1. each folder in the environment variable DEBLURSTUDIO_MODELS_DIR (os.pathsep-separated),
  2. platformdirs.user_data_dir("DeblurStudio")/models (the user's own trained/exported models),
  3. the bundled resources/models (<package dir>/../resources, or sys._MEIPASS/resources when
     frozen by PyInstaller).
Each folder may hold a manifest.json (format in /work/notes/COMMON.md: {"format": 1, "defaults":
{role: id}, "models": {id: {"file", "arch", "task", "title", "description", "card"}}}) and/or bare
*.safetensors checkpoints, whose header card supplies "task", "title" and "description" (the id is
the file name without extension).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deblurstudio.core.errors import DeblurStudioError, ModelNotFoundError

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

MODELS_DIR_ENV = "DEBLURSTUDIO_MODELS_DIR"
MANIFEST = "manifest.json"
ROLES = ("deblur", "fast", "reference", "motion")
TASKS = ("deblur", "reference", "motion")
_ROLE_TASK = {"deblur": "deblur", "fast": "deblur", "reference": "reference", "motion": "motion"}
# What the shipped manifest names, used when no manifest is installed at all (fresh checkout) so
# the error can still say which network to train.
_FALLBACK_DEFAULTS = {
    "deblur": "bladenet",
    "fast": "lcnet",
    "reference": "refdeblur",
    "motion": "motion",
}
_FALLBACK_ARCHS = {
    "bladenet": "bladenet",
    "lcnet": "lcnet",
    "refdeblur": "refdeblur",
    "motion": "neurmap_motion",
}
# The training config of each architecture's shipped model (training/configs/<name>.yaml).
_ARCH_CONFIG = {"neurmap_motion": "motion"}
_ARCH_TASK = {
    "bladenet": "deblur",
    "lcnet": "deblur",
    "refdeblur": "reference",
    "neurmap_motion": "motion",
}


@dataclass(frozen=True)
class ModelEntry:
    """An installed checkpoint.

    Attributes:
        id: model id (manifest key, or file stem for a bare checkpoint).
        path: the .safetensors file.
        arch: architecture id (a key of deblurstudio.models.ARCHS).
        task: "deblur" | "reference" | "motion".
        title: short human-readable name. description: one or two sentences.
        card: the model card (training data, steps, hardware, metrics, ...).
    """

    id: str
    path: Path
    arch: str
    task: str
    title: str
    description: str = ""
    card: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Folder:
    """What one models folder declares: installed entries, role defaults, and manifest entries
    whose file is missing (remembered for the error message)."""

    path: Path
    entries: list[ModelEntry]
    defaults: dict[str, str]
    missing: dict[str, tuple[Path, str]]


_CARD_LABELS = {
    "trained_on": "trained on",
    "validation_split": "validation",
    "steps": "steps",
    "started_from": "started from",
    "hardware": "hardware",
    "training_hours": "training hours",
    "config_digest": "config",
    "metrics": "validation scores",
}


def _card_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):  # nested (a fine-tune's start and where that started) in ( )
        return ", ".join(
            f"{k} ({_card_value(v)})" if isinstance(v, dict) else f"{k} {_card_value(v)}"
            for k, v in value.items()
        )
    return str(value)


def card_fields(card: dict[str, Any]) -> list[tuple[str, str]]:
    """A model card as (label, text) rows in a stable order, for the CLI and the GUI: the
    training facts, the validation scores on the training mix, then one row per target
    condition ("targets": {condition: scores})."""
    rows = [
        (label, _card_value(card[key]))
        for key, label in _CARD_LABELS.items()
        if card.get(key) not in (None, "", [], {})
    ]
    targets = card.get("targets")
    if isinstance(targets, dict):
        rows += [(f"scores, {suite}", _card_value(scores)) for suite, scores in targets.items()]
    return rows


def resources_dir() -> Path:
    """The bundled resources folder (inside the PyInstaller bundle when frozen)."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def model_dirs() -> list[Path]:
    """Folders searched for models, highest priority first."""
    env = os.environ.get(MODELS_DIR_ENV, "")
    dirs = [Path(part) for part in env.split(os.pathsep) if part]
    # The app always has platformdirs; a borrowed GPU machine with only the training packages
    # (training.export, benchmarks/gpu_speed.py) has none, and no user folder to search either.
    try:
        import platformdirs
    except ModuleNotFoundError:
        platformdirs = None
    if platformdirs is not None:
        dirs.append(Path(platformdirs.user_data_dir("DeblurStudio")) / "models")
    dirs.append(resources_dir() / "models")
    return dirs


def _scan(folder: Path) -> _Folder:
    entries: list[ModelEntry] = []
    missing: dict[str, tuple[Path, str]] = {}
    defaults: dict[str, str] = {}
    listed: set[Path] = set()
    manifest_path = folder / MANIFEST
    if manifest_path.is_file():
        manifest = _read_manifest(manifest_path)
        defaults = dict(manifest.get("defaults", {}))
        for model_id, spec in manifest["models"].items():
            path = folder / spec["file"]
            listed.add(path)
            if not path.is_file():
                missing[model_id] = (path, spec["arch"])
                continue
            entries.append(
                ModelEntry(
                    id=model_id,
                    path=path,
                    arch=spec["arch"],
                    task=spec["task"],
                    title=spec.get("title", model_id),
                    description=spec.get("description", ""),
                    card=spec.get("card", {}),
                )
            )
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        if path not in listed and (entry := _bare_entry(path)) is not None:
            entries.append(entry)
    return _Folder(folder, entries, defaults, missing)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest.get("models"), dict):
            raise ValueError('no "models" object')
        for model_id, spec in manifest["models"].items():
            missing_keys = {"file", "arch", "task"} - set(spec)
            if missing_keys:
                raise ValueError(f"model '{model_id}' lacks {', '.join(sorted(missing_keys))}")
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise DeblurStudioError(f"{path}: not a valid model manifest ({exc})") from None
    return manifest


def _bare_entry(path: Path) -> ModelEntry | None:
    """An entry for a checkpoint no manifest lists; None (logged) when it is no app model."""
    # Imported here: the models package loads torch (~2 s), which listing a manifest never needs.
    from deblurstudio.models import CheckpointError, read_checkpoint_info

    try:
        info = read_checkpoint_info(path)
    except CheckpointError as exc:
        log.warning("skipping %s", exc)
        return None
    task = info.card.get("task") or _ARCH_TASK.get(info.arch)
    if task not in TASKS:
        return None  # e.g. a discriminator: a training-only network
    return ModelEntry(
        id=path.stem,
        path=path,
        arch=info.arch,
        task=task,
        title=info.card.get("title", path.stem),
        description=info.card.get("description", ""),
        card=info.card,
    )


def _folders() -> list[_Folder]:
    return [_scan(folder) for folder in model_dirs()]


def list_models() -> list[ModelEntry]:
    """Installed models, one per id (the highest-priority folder's), in folder order."""
    return list(_installed(_folders()).values())


def find_model(model_id: str) -> ModelEntry:
    """The installed model `model_id`, or the default model of a role ("deblur", "fast",
    "reference", "motion") when no installed model has that id.

    Raises:
        ModelNotFoundError: not installed; the message lists the installed models with their
            roles, and for a model the app ships says how to train and export it.
    """
    folders = _folders()
    installed = _installed(folders)
    if model_id in installed:
        return installed[model_id]
    if model_id in ROLES:
        return installed[_required_default(model_id, folders)]
    raise ModelNotFoundError(_not_found_message(model_id, folders))


def default_model_id(role: str) -> str:
    """The model id to use for `role` ("deblur", "fast", "reference" or "motion").

    The first manifest default (by folder priority) that is installed; else the shipped default
    id; else any installed model of the role's task.

    Raises:
        ModelNotFoundError: nothing installed can fill the role.
    """
    if role not in ROLES:
        raise ValueError(f"unknown model role '{role}' (known: {', '.join(ROLES)})")
    return _required_default(role, _folders())


def _installed(folders: list[_Folder]) -> dict[str, ModelEntry]:
    """Installed models by id, the highest-priority folder's for each id, in folder order."""
    installed: dict[str, ModelEntry] = {}
    for folder in folders:
        for entry in folder.entries:
            installed.setdefault(entry.id, entry)
    return installed


def _candidates(role: str, folders: list[_Folder]) -> list[str]:
    """The ids named as `role`'s default, by folder priority, then the shipped default's."""
    return [f.defaults[role] for f in folders if role in f.defaults] + [_FALLBACK_DEFAULTS[role]]


def _default_for(role: str, folders: list[_Folder]) -> str | None:
    """default_model_id on already scanned folders; None when nothing installed fills `role`."""
    installed = _installed(folders)
    for model_id in _candidates(role, folders):
        if model_id in installed and installed[model_id].task == _ROLE_TASK[role]:
            return model_id
    return next((e.id for e in installed.values() if e.task == _ROLE_TASK[role]), None)


def _required_default(role: str, folders: list[_Folder]) -> str:
    """_default_for, or ModelNotFoundError naming the model the role should have."""
    model_id = _default_for(role, folders)
    if model_id is None:
        raise ModelNotFoundError(_not_found_message(_candidates(role, folders)[0], folders))
    return model_id


def _installed_with_roles(folders: list[_Folder]) -> str:
    """"id (role, ...)" of every installed model, for error messages; "none" when empty."""
    roles: dict[str | None, list[str]] = {}
    for role in ROLES:
        roles.setdefault(_default_for(role, folders), []).append(role)
    return ", ".join(
        f"{model_id} ({', '.join(roles[model_id])})" if model_id in roles else model_id
        for model_id in _installed(folders)
    ) or "none"


def _not_found_message(model_id: str, folders: list[_Folder]) -> str:
    """One line: which id is missing, the installed models with their roles, and for a model the
    app ships (declared in a manifest, or a shipped default) how to produce it."""
    installed = _installed_with_roles(folders)
    declared = next((f.missing[model_id] for f in folders if model_id in f.missing), None)
    if declared is not None:
        path, arch = declared
        where = f"its checkpoint {path} does not exist"
        target = path.parent
    elif model_id in _FALLBACK_ARCHS:
        arch = _FALLBACK_ARCHS[model_id]
        where = "no models folder has it"
        target = folders[-1].path if folders else resources_dir() / "models"
    else:
        return (
            f"model '{model_id}' is not installed; installed: {installed}; a role "
            f"({', '.join(ROLES)}) also names its model"
        )
    config = _ARCH_CONFIG.get(arch, arch)
    task = _ARCH_TASK.get(arch, "<task>")
    return (
        f"model '{model_id}' is not installed ({where}; installed: {installed})"
        f"; train one with `python -m training.train --config training/configs/{config}.yaml "
        f"--data-root DATA --run-dir runs/{model_id}`, then `python -m training.export --run-dir "
        f"runs/{model_id} --id {model_id} --task {task} --title TITLE --models-dir {target}` "
        f"(or point {MODELS_DIR_ENV} at a folder of checkpoints)"
    )


_cache: dict[tuple[str, str, torch.dtype], tuple[tuple[str, int], nn.Module]] = {}
_cache_lock = threading.Lock()


def load_model(
    model_id: str, device: torch.device, dtype: torch.dtype | None = None
) -> nn.Module:
    """Load model `model_id` prepared for inference on `device` in `dtype` (None: float32).

    Cached: one loaded copy per (id, device, dtype); it is reloaded when the checkpoint file
    changes (re-exported), so a running app picks up a new export.

    Raises:
        ModelNotFoundError: not installed. DeblurStudioError: the checkpoint is unusable.
    """
    # Imported here, not at the top: listing models (`deblurstudio-cli models`, the GUI's model
    # cards) must not wait ~2 s for torch.
    import torch

    from deblurstudio.core.devices import prepare_for_inference
    from deblurstudio.models import CheckpointError, load_checkpoint

    dtype = torch.float32 if dtype is None else dtype
    entry = find_model(model_id)
    key = (model_id, str(device), dtype)
    stamp = (str(entry.path), entry.path.stat().st_mtime_ns)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None or cached[0] != stamp:
            try:
                model, _info = load_checkpoint(entry.path, device="cpu")
            except CheckpointError as exc:
                raise DeblurStudioError(str(exc)) from None
            _cache[key] = (stamp, prepare_for_inference(model, device, dtype))
        return _cache[key][1]


def clear_model_cache() -> None:
    """Forget every loaded model (frees their memory once no job holds them)."""
    with _cache_lock:
        _cache.clear()
