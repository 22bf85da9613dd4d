"""Entry points: the window comes up without torch; `--self-test` reports in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
