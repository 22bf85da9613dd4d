"""Smoke-test the frozen bundle the way a user without Python runs it.

Usage (in the build environment, which has the app's own dependencies for checking images):

    build/bundle-venv/bin/python packaging/smoke_test.py                # build, unpack, test
    build/bundle-venv/bin/python packaging/smoke_test.py --bundle dist/DeblurStudio
    ... --models-dir DIR   # also use the checkpoints in DIR (DEBLURSTUDIO_MODELS_DIR)

Without --bundle it runs packaging/build.py and unpacks the archive it wrote into a temporary
folder, so what is tested is what users download. Every frozen executable runs from a temporary
folder with a fresh HOME and an environment with no Python in it (no PYTHON* variables, PATH =
the OS default), under QT_QPA_PLATFORM=offscreen:

  - `DeblurStudio --version` names the pyproject version;
  - `DeblurStudio --self-test` passes (every model loads, the sample photo gets sharper);
  - `deblurstudio-cli models` lists every installed model;
  - `deblurstudio-cli deblur` restores a photo: same size, sharper, same picture;
  - `deblurstudio-cli analyse` writes a blur map;
  - `deblurstudio-cli deblur` on a missing file exits 2 with one line and no traceback;
  - on Linux, `DeblurStudio` without a display (no DISPLAY, no QT_QPA_PLATFORM) exits 2 with one
    line instead of Qt's abort;
  - `DeblurStudio PHOTO` shows its main window and keeps running while it opens the photo.

Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build as bundle  # noqa: E402 — packaging/build.py, beside this file

sys.path.insert(1, str(bundle.ROOT))
from deblurstudio.core.imageio import read_image  # noqa: E402
from deblurstudio.core.selftest import check_restoration  # noqa: E402

RUN_TIMEOUT_S = 600  # one frozen command on a slow CPU, the first start unpacking nothing
WINDOW_TIMEOUT_S = 120  # until the GUI reports its main window shown
GUI_GRACE_S = 15  # the GUI must keep running this long after showing (opening the photo)
SHOWN_MARKER_ENV = "DEBLURSTUDIO_SHOWN_MARKER"  # deblurstudio/gui/app.py writes it when shown


def frozen_env(home: Path, models_dir: Path | None) -> dict[str, str]:
    """A user's environment with no Python in it: fresh HOME, OS-default PATH, offscreen Qt."""
    env = {
        "HOME": str(home),
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "TMPDIR": str(home),
        "QT_QPA_PLATFORM": "offscreen",
    }
    if sys.platform == "win32":  # Windows programs need these to start at all
        env.update({k: os.environ[k] for k in ("SYSTEMROOT", "WINDIR") if k in os.environ})
        env.update(USERPROFILE=str(home), APPDATA=str(home), LOCALAPPDATA=str(home))
    if models_dir is not None:
        env["DEBLURSTUDIO_MODELS_DIR"] = str(models_dir.resolve())
    return env


class Smoke:
    """Runs frozen executables in the clean environment and records each check's verdict."""

    def __init__(self, bundle_dir: Path, work: Path, models_dir: Path | None) -> None:
        self.bundle_dir = bundle_dir
        self.work = work
        home = work / "home"
        home.mkdir()
        self.env = frozen_env(home, models_dir)
        self.failures: list[str] = []
        self.passes = 0

    def run(self, name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [str(bundle.executable(self.bundle_dir, name)), *map(str, args)]
        return subprocess.run(
            command,
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )

    def check(self, title: str, test: Callable[[], str]) -> None:
        """Run one check: `test` returns a detail line or raises AssertionError."""
        started = time.monotonic()
        try:
            detail = test()
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            self.failures.append(title)
            print(f"FAIL {title} ({time.monotonic() - started:.1f} s): {exc}", flush=True)
            return
        self.passes += 1
        print(f"ok   {title} ({time.monotonic() - started:.1f} s): {detail}", flush=True)


def _succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout}{result.stderr}".rstrip()
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout.strip() or result.stderr.strip()


def installed_model_ids(bundle_dir: Path, models_dir: Path | None) -> set[str]:
    """Model ids the manifests in the bundle and in `models_dir` declare with a present file."""
    ids = set()
    for folder in (bundle_dir / bundle.CONTENTS / "resources" / "models", models_dir):
        manifest = folder / "manifest.json" if folder is not None else None
        if manifest is not None and manifest.is_file():
            models = json.loads(manifest.read_text(encoding="utf-8"))["models"]
            ids |= {mid for mid, spec in models.items() if (folder / spec["file"]).is_file()}
    return ids


def smoke_test(bundle_dir: Path, models_dir: Path | None) -> bool:
    """Run every check against the bundle folder; print one line per check; True if all pass."""
    with tempfile.TemporaryDirectory(prefix="deblurstudio-smoke-") as tmp:
        smoke = Smoke(bundle_dir, Path(tmp), models_dir)
        photo = smoke.work / "a blurred photo.jpg"  # a space: paths are quoted nowhere
        shutil.copyfile(bundle.ROOT / "resources" / "sample.jpg", photo)
        version = bundle.project_version()

        def version_line() -> str:
            out = _succeeded(smoke.run(bundle.APP_NAME, "--version"))
            assert out == f"{bundle.APP_NAME} {version}", f"got {out!r}, pyproject has {version}"
            return out

        def self_test() -> str:
            return _succeeded(smoke.run(bundle.APP_NAME, "--self-test"))

        def models() -> str:
            out = _succeeded(smoke.run(bundle.CLI_NAME, "models"))
            expected = installed_model_ids(bundle_dir, models_dir)
            assert expected, "no manifest declares an installed model"
            missing = sorted(mid for mid in expected if mid not in out)
            assert not missing, f"not listed: {', '.join(missing)}\n{out}"
            return f"lists {', '.join(sorted(expected))}"

        def deblur() -> str:
            restored_path = smoke.work / "restored.png"
            _succeeded(smoke.run(bundle.CLI_NAME, "deblur", photo, "-o", restored_path))
            assert restored_path.is_file(), f"{restored_path} was not written"
            image, restored = read_image(photo).pixels, read_image(restored_path).pixels
            check = check_restoration(image, restored)
            assert check.passed, check.problem
            return (
                f"sharpness {check.sharpness_before:.3g} -> {check.sharpness_after:.3g}, "
                f"fidelity {check.fidelity_db:.1f} dB"
            )

        def analyse() -> str:
            blur_map = smoke.work / "blur map.png"
            _succeeded(smoke.run(bundle.CLI_NAME, "analyse", photo, "--blur-map", blur_map))
            pixels = read_image(blur_map).pixels
            assert pixels.shape[:2] == read_image(photo).pixels.shape[:2], pixels.shape
            return f"blur map {pixels.shape[1]}x{pixels.shape[0]}"

        def missing_input() -> str:
            missing = smoke.work / "no such photo.jpg"
            result = smoke.run(bundle.CLI_NAME, "deblur", missing, "-o", smoke.work / "x.png")
            message = result.stderr.strip()
            assert result.returncode == 2, f"exit {result.returncode}: {message}"
            assert "Traceback" not in message and len(message.splitlines()) == 1, message
            assert "no such photo.jpg" in message, message
            return message

        def no_display() -> str:
            env = {k: v for k, v in smoke.env.items() if k != "QT_QPA_PLATFORM"}
            command = [str(bundle.executable(bundle_dir, bundle.APP_NAME))]
            result = subprocess.run(
                command, cwd=smoke.work, env=env, capture_output=True, text=True, timeout=60
            )
            message = result.stderr.strip()
            assert result.returncode == 2, f"exit {result.returncode}: {message}"
            assert len(message.splitlines()) == 1 and "no display" in message, message
            return message

        def window() -> str:
            marker = smoke.work / "shown.txt"
            log_path = smoke.work / "gui.log"
            env = dict(smoke.env, **{SHOWN_MARKER_ENV: str(marker)})
            command = [str(bundle.executable(bundle_dir, bundle.APP_NAME)), str(photo)]
            with open(log_path, "w+", encoding="utf-8") as log:
                gui = subprocess.Popen(
                    command, cwd=smoke.work, env=env, stdout=log, stderr=subprocess.STDOUT
                )
                try:
                    deadline = time.monotonic() + WINDOW_TIMEOUT_S
                    while not marker.exists() and gui.poll() is None:
                        assert time.monotonic() < deadline, "no main window shown in time"
                        time.sleep(0.2)
                    assert marker.exists(), f"exited {gui.returncode} before showing a window"
                    try:  # still alive after opening the photo?
                        gui.wait(GUI_GRACE_S)
                    except subprocess.TimeoutExpired:
                        pass
                    assert gui.returncode is None, f"exited {gui.returncode} after showing"
                finally:
                    if gui.poll() is None:
                        gui.terminate()
                        gui.wait(30)
                log.seek(0)
                output = log.read()
            assert "Traceback" not in output, output
            title, size = marker.read_text(encoding="utf-8").strip().split("\t")
            return f"'{title}' shown at {size}, running {GUI_GRACE_S} s later"

        smoke.check("GUI --version", version_line)
        smoke.check("GUI --self-test", self_test)
        smoke.check("CLI models", models)
        smoke.check("CLI deblur", deblur)
        smoke.check("CLI analyse", analyse)
        smoke.check("CLI bad input", missing_input)
        if sys.platform.startswith("linux"):
            smoke.check("GUI without a display", no_display)
        smoke.check("GUI main window (offscreen)", window)
        print(f"{smoke.passes} passed, {len(smoke.failures)} failed")
        return not smoke.failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="a built bundle folder (default: build one)")
    parser.add_argument(
        "--models-dir", type=Path, help="extra checkpoints folder (DEBLURSTUDIO_MODELS_DIR)"
    )
    args = parser.parse_args(argv)
    if args.bundle is not None:
        return 0 if smoke_test(args.bundle.resolve(), args.models_dir) else 1
    bundle.build()
    archive = bundle.DIST / bundle.archive_name(bundle.project_version())
    with tempfile.TemporaryDirectory(prefix="deblurstudio-unpacked-") as unpacked:
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="tar")
        (bundle_dir,) = Path(unpacked).iterdir()
        return 0 if smoke_test(bundle_dir, args.models_dir) else 1


if __name__ == "__main__":
    raise SystemExit(main())
