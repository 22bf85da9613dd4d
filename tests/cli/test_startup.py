"""Commands that compute nothing answer without loading torch or OpenCV (about 2 s of imports on
a small machine; `benchmarks/startup.py` measures the wall times)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv", [["--help"], ["models"], ["models", "--json"]])
def test_listing_commands_load_no_torch_or_opencv(argv):
    code = (
        "import sys\n"
        "from deblurstudio.cli.main import main\n"
        f"status = main({argv!r})\n"
        "heavy = sorted(m for m in ('torch', 'cv2', 'numpy') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
        "sys.exit(status or (1 if heavy else 0))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout  # it did list / explain something
