"""Checks, before Qt starts, that it can show a window on Linux.

Qt aborts (SIGABRT, exit 134) when it finds no display or cannot load its xcb platform plugin,
and its message blames libxcb-cursor0 even when another library is the one missing; these
checks name the real cause in one line instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

XCB_PLUGIN = Path("platforms") / "libqxcb.so"


def startup_problem(environ: Mapping[str, str] = os.environ) -> str | None:
    """Why Qt would abort on start-up here (a missing display or library), or None."""
    if not sys.platform.startswith("linux") or environ.get("QT_QPA_PLATFORM"):
        return None  # other systems have their own window system; an override is the user's
    if not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY"):
        return (
            "no display: DISPLAY and WAYLAND_DISPLAY are unset (start it in a desktop session, "
            "or set QT_QPA_PLATFORM=offscreen for a window nobody sees)"
        )
    if environ.get("WAYLAND_DISPLAY"):
        return None  # Qt picks its Wayland plugin first there and has xcb only as a fallback
    from PySide6.QtCore import QLibraryInfo

    plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))
    missing = missing_libraries(plugins / XCB_PLUGIN)
    if missing:
        return (
            f"Qt's X11 plugin {plugins / XCB_PLUGIN} needs {', '.join(missing)}, not installed "
            "(see README.md for the apt-get line)"
        )
    return None


def missing_libraries(library: Path) -> list[str]:
    """Shared libraries `library` needs, directly or through others, that the loader cannot find.

    Empty when there is no `ldd` to ask (then Qt's own message is all there is).
    """
    ldd = shutil.which("ldd")
    if ldd is None or not library.is_file():
        return []
    listing = subprocess.run([ldd, str(library)], capture_output=True, text=True).stdout
    # Lines read "\tlibxcb-icccm.so.4 => not found"; a library needed twice is listed twice.
    missing = [line.split()[0] for line in listing.splitlines() if "not found" in line]
    return list(dict.fromkeys(missing))
