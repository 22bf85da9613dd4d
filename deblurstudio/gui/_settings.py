"""Persistent settings (QSettings, INI format) under the platform's config directory."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from PySide6.QtCore import QSettings

MAX_RECENT_FILES = 10


def settings_path() -> Path:
    """platformdirs.user_config_dir("DeblurStudio")/settings.ini."""
    return Path(platformdirs.user_config_dir("DeblurStudio", appauthor=False)) / "settings.ini"


def open_settings(path: str | os.PathLike | None = None) -> QSettings:
    """The application's settings store (`path` overrides the location, e.g. in tests)."""
    return QSettings(os.fspath(path or settings_path()), QSettings.Format.IniFormat)


def read_list(settings: QSettings, key: str) -> list[str]:
    """A string list stored under `key` (QSettings returns a bare string for one element)."""
    value = settings.value(key, [])
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(item) for item in value]


def add_recent_file(settings: QSettings, path: str) -> list[str]:
    """Put `path` first in the recent-files list (no duplicates, at most MAX_RECENT_FILES)."""
    path = os.path.abspath(path)
    recent = [path] + [p for p in read_list(settings, "recent_files") if p != path]
    recent = recent[:MAX_RECENT_FILES]
    settings.setValue("recent_files", recent)
    return recent


def last_folder(settings: QSettings, kind: str) -> str:
    """The folder last used for `kind` ("open", "save", "reference", "mask", "batch_in", ...)."""
    folder = str(settings.value(f"folders/{kind}", "") or "")
    return folder if folder and os.path.isdir(folder) else str(Path.home())


def remember_folder(settings: QSettings, kind: str, path: str) -> None:
    """Remember the folder of `path` (or `path` itself when it is a folder) for `kind`."""
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    settings.setValue(f"folders/{kind}", folder)


def read_float(settings: QSettings, key: str, default: float) -> float:
    try:
        return float(settings.value(key, default))
    except (TypeError, ValueError):
        return default
