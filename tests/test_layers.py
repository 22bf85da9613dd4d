"""The layer rules of DESIGN.md, checked mechanically."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    # The contracts live in pyproject.toml: core/models never import Qt, models import nothing else
    # of ours, core/cli never import the GUI.
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_engine_import_loads_no_qt_and_app_never_imports_training():
    code = (
        "import sys, deblurstudio.core.pipeline, deblurstudio.models, deblurstudio.cli.main;"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'qtawesome', 'training'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
