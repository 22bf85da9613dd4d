"""Entry points: the window comes up without torch; `--self-test` reports in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_python(code_or_args, env_extra=None, tmp_home=None):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    if tmp_home is not None:
        env["XDG_CONFIG_HOME"] = str(tmp_home / "config")
        env["XDG_DATA_HOME"] = str(tmp_home / "data")
    env.update(env_extra or {})
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_main_window_is_built_without_importing_torch(tmp_path):
    code = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from deblurstudio.gui import app\n"
        "from deblurstudio.gui._main_window import MainWindow\n"
        "application = QApplication([])\n"
        "window = MainWindow()\n"
        "print('torch' in sys.modules)\n"
    )
    result = run_python(code, tmp_home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_self_test_fails_in_one_line_naming_a_broken_model(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    manifest = {
        "format": 1,
        "defaults": {"deblur": "broken"},
        "models": {"broken": {"file": "broken.safetensors", "arch": "bladenet", "task": "deblur"}},
    }
    (models / "manifest.json").write_text(json.dumps(manifest))
    result = run_python(
        ["-m", "deblurstudio", "--self-test"],
        env_extra={"DEBLURSTUDIO_MODELS_DIR": str(models)},
        tmp_home=tmp_path,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "self-test FAILED" in lines[0] and "'broken'" in lines[0]


def _desktop_env(**display) -> dict[str, str]:
    """This environment with no Qt platform override and only the display variables given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")
    }
    return dict(env, PYTHONPATH=str(ROOT), **display)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's xcb checks are Linux's")
def test_without_a_display_the_app_says_so_in_one_line_instead_of_aborting():
    result = subprocess.run(
        [sys.executable, "-m", "deblurstudio"],
        cwd=ROOT,
        env=_desktop_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "no display" in lines[0], result.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's xcb checks are Linux's")
def test_a_library_missing_for_qts_x11_plugin_is_named_in_one_line(tmp_path):
    from PySide6.QtCore import QLibraryInfo

    # A copy of the real plugin that needs a library no machine has: its RUNPATH
    # ($ORIGIN/../../lib) still finds Qt's own libraries through the symlinked lib folder.
    qt_dir = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)).parent
    (tmp_path / "Qt" / "plugins" / "platforms").mkdir(parents=True)
    (tmp_path / "Qt" / "lib").symlink_to(qt_dir / "lib")
    plugin = tmp_path / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    binary = (qt_dir / "plugins" / "platforms" / "libqxcb.so").read_bytes()
    assert b"libxcb-cursor.so.0\0" in binary
    plugin.write_bytes(binary.replace(b"libxcb-cursor.so.0\0", b"libxcb-absent.so.0\0"))
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from deblurstudio.gui import _platform, app\n"
        "_platform.XCB_PLUGIN = Path(sys.argv[1])  # absolute: replaces the plugins folder's\n"
        "raise SystemExit(app.main([]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(plugin)],
        cwd=ROOT,
        env=_desktop_env(DISPLAY=":0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "libxcb-absent.so.0" in lines[0], result.stderr
