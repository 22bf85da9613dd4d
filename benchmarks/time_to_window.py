"""Time from starting `python -m deblurstudio` to its main window being shown.

Starts the GUI in a subprocess (offscreen unless --screen), waits for the marker file the app
writes once its window is shown (DEBLURSTUDIO_SHOWN_MARKER, see deblurstudio/gui/app.py), stops
it, and prints the median of --runs starts. torch is loaded off the UI thread after the window
appears, so this is what a user waits before seeing the window.

Usage (from the repository root):
    python benchmarks/time_to_window.py [--runs 5] [--screen]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOWN_MARKER_ENV = "DEBLURSTUDIO_SHOWN_MARKER"
TIMEOUT_S = 120.0


def time_one_start(screen: bool) -> float:
    """Seconds until the window is shown (raises RuntimeError if it never is)."""
    with tempfile.TemporaryDirectory() as scratch:
        marker = Path(scratch) / "shown"
        env = dict(os.environ, **{SHOWN_MARKER_ENV: str(marker), "HOME": scratch})
        if not screen:
            env["QT_QPA_PLATFORM"] = "offscreen"
        started = time.perf_counter()
        app = subprocess.Popen([sys.executable, "-m", "deblurstudio"], cwd=ROOT, env=env)
        try:
            while not marker.exists():
                if app.poll() is not None:
                    raise RuntimeError(f"the app exited with status {app.returncode}")
                if time.perf_counter() - started > TIMEOUT_S:
                    raise RuntimeError(f"no window after {TIMEOUT_S:.0f} s")
                time.sleep(0.005)
            return time.perf_counter() - started
        finally:
            app.terminate()
            app.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--screen", action="store_true", help="use the real display ($DISPLAY)")
    args = parser.parse_args()
    times = [time_one_start(args.screen) for _ in range(args.runs)]
    print(
        f"time to window: median {statistics.median(times):.2f} s "
        f"(min {min(times):.2f}, max {max(times):.2f}, {args.runs} starts)"
    )


if __name__ == "__main__":
    main()
