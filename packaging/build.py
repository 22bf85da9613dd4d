"""Build the DeblurStudio bundle: a folder (and a .tar.gz of it) that runs without Python.

Usage, from a checkout (Python >= 3.11 for tomllib; nothing else installed needed):

    python3 packaging/build.py

It creates an isolated virtual environment (build/bundle-venv), installs the app with the CPU
build of torch and PyInstaller into it, runs packaging/deblurstudio.spec, and writes
dist/DeblurStudio/ (the one-folder bundle: `DeblurStudio` GUI and `deblurstudio-cli` executables)
and dist/DeblurStudio-<version>-<os>-<arch>.tar.gz, then prints their sizes and the build time.

This module also holds what goes into the bundle (EXCLUDED_MODULES, DROPPED_FILES, keep()): the
spec, packaging/smoke_test.py and tests/test_packaging.py load it from here, so there is one list.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import platform
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
APP_NAME = "DeblurStudio"  # the GUI executable and the bundle folder
CLI_NAME = "deblurstudio-cli"
CONTENTS = "_internal"  # the bundle's contents folder (sys._MEIPASS): libraries, resources/
VENV = ROOT / "build" / "bundle-venv"
DIST = ROOT / "dist"
WORK = ROOT / "build" / "pyinstaller"
SPEC = ROOT / "packaging" / "deblurstudio.spec"
TORCH_PIN = "torch==2.13.0"  # the CPU build (see README); a bare "torch" pulls CUDA (GBs)

# Modules the app never imports (tests/test_packaging.py runs the app's code paths and checks).
# Leaving them out also leaves out what only they import (sympy under torch._inductor, ...).
EXCLUDED_MODULES = (
    # Ours: the training subproject and the test suite.
    "training",
    "tests",
    # GUI toolkits and science stacks other than ours.
    "tkinter",
    "_tkinter",
    "matplotlib",
    "scipy",
    "pandas",
    "IPython",
    "skimage",
    # torch's compiler, exporters and developer tooling: reached only through torch.compile,
    # torch.onnx, tensorboard or C++-extension builds, none of which the app calls. The torch
    # hook lists every torch submodule as a hidden import, so they go in unless excluded.
    "torch._dynamo",
    "torch._inductor",
    "torch.onnx",
    "torch.utils.tensorboard",
    "torch.utils.benchmark",
    "torch.utils.bottleneck",
    "torch.utils.cpp_extension",
    "torch.utils.hipify",
    "functorch",
    "triton",
    "sympy",
    "mpmath",
    "networkx",
    "jinja2",
    "markupsafe",
    "fsspec",
    "sqlite3",  # torch's profiler export
    "setuptools",  # torch.utils.cpp_extension's build tooling
    "pkg_resources",
    # Qt networking (and the TLS/OpenSSL and Kerberos libraries it drags in): no downloads.
    "PySide6.QtNetwork",
)

# Collected files the app never opens, as fnmatch patterns on the path inside the bundle's
# contents folder ('/' separators). The torch hook collects every file in the torch package.
DROPPED_FILES = (
    "torch/include/*",  # C++ headers
    "torch/share/*",  # CMake files
    "torch/test/*",  # C++ unit-test executables
    # torch/bin: test executables, test models and protoc; torch_shm_manager stays (import torch
    # checks that it exists).
    "torch/bin/*Test",
    "torch/bin/test_*",
    "torch/bin/protoc*",
    "torch/bin/*.pt*",
    "torch/bin/upgrader_models/*",
    "torch/lib/*test*",  # libraries only the C++ tests load
    "torch/lib/libbackend_with_compiler.*",
    "torch/lib/libaoti_custom_ops.*",
    "torch/_inductor/*",  # data files of the excluded compiler
    "torch/_dynamo/*",
    "torch/utils/model_dump/*",  # an HTML model viewer
    "PySide6/Qt/translations/*",  # the UI is English-only; Qt's own strings stay English too
    # Qt plugins for platforms and devices the app does not target (kept: xcb, wayland and
    # offscreen platforms, their GL integrations, image formats, icon engines, input contexts,
    # platform themes).
    "PySide6/Qt/plugins/platforms/*qeglfs*",
    "PySide6/Qt/plugins/platforms/*qlinuxfb*",
    "PySide6/Qt/plugins/platforms/*qvnc*",
    "PySide6/Qt/plugins/platforms/*qminimalegl*",
    "PySide6/Qt/plugins/platforms/*qvkkhrdisplay*",
    "PySide6/Qt/plugins/egldeviceintegrations/*",
    "*libQt6EglF*",  # the eglfs platform's own libraries
    "PySide6/Qt/plugins/generic/*",  # evdev/tslib touch input for linuxfb/eglfs
)


# Libraries whose static symbol tables (.symtab/.strtab, unused at run time) are worth removing:
# 85 MiB of libtorch_cpu.so, 17 MiB of a locally built libpython, 8 MiB of libtorch_python.so.
# Not every library: stripping one that auditwheel patched breaks it (numpy's OpenBLAS: "ELF load
# command address/offset not page-aligned"), which is why PyInstaller's strip=True is off.
STRIPPED_LIBRARIES = (
    "torch/lib/libtorch_cpu.so",
    "torch/lib/libtorch_python.so",
    "libpython3*.so*",
)


def strip_symbols(contents: Path) -> None:
    """Strip STRIPPED_LIBRARIES in a bundle's contents folder (Linux; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return  # macOS: stripping breaks code signatures; Windows DLLs carry no symbol tables
    for pattern in STRIPPED_LIBRARIES:
        for library in contents.glob(pattern):
            if not library.is_symlink():
                subprocess.run(["strip", str(library)], check=True)


def keep(dest: str) -> bool:
    """Whether a collected file (its path inside the bundle) belongs in the bundle."""
    dest = dest.replace(os.sep, "/")
    return not any(fnmatch.fnmatch(dest, pattern) for pattern in DROPPED_FILES)


def project_version(root: Path = ROOT) -> str:
    """The version in pyproject.toml."""
    with open(root / "pyproject.toml", "rb") as pyproject:
        return tomllib.load(pyproject)["project"]["version"]


def archive_name(version: str, system: str | None = None, machine: str | None = None) -> str:
    """DeblurStudio-<version>-<os>-<arch>.tar.gz, e.g. DeblurStudio-0.1.0-linux-x86_64.tar.gz."""
    system = (system or platform.system()).lower().replace("darwin", "macos")
    machine = (machine or platform.machine()).lower().replace("amd64", "x86_64")
    return f"{APP_NAME}-{version}-{system}-{machine}.tar.gz"


def executable(bundle: Path, name: str) -> Path:
    """The path of executable `name` in a bundle folder."""
    return bundle / (name + ".exe" if sys.platform == "win32" else name)


def tree_size(folder: Path) -> int:
    """Bytes of the regular files under `folder` (symlinks are not followed nor counted)."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(folder):
        for filename in filenames:
            path = Path(dirpath, filename)
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def _venv_bin(name: str) -> Path:
    scripts = VENV / ("Scripts" if sys.platform == "win32" else "bin")
    return scripts / (name + ".exe" if sys.platform == "win32" else name)


def _run(command: list[str | Path]) -> None:
    print("+", " ".join(str(part) for part in command), flush=True)
    subprocess.run([str(part) for part in command], cwd=ROOT, check=True)


def build(clean: bool = False) -> Path:
    """Create/refresh the build environment, run PyInstaller, write the archive.

    Args:
        clean: recreate the virtual environment from scratch.

    Returns:
        The bundle folder (dist/DeblurStudio).
    """
    started = time.monotonic()
    if clean or not _venv_bin("python").exists():
        _run([sys.executable, "-m", "venv", "--clear", VENV])
    _run([_venv_bin("python"), "-m", "pip", "install", TORCH_PIN, "-e", ".[bundle]"])
    _run(
        [
            _venv_bin("pyinstaller"),
            "--noconfirm",
            "--clean",
            "--distpath",
            DIST,
            "--workpath",
            WORK,
            SPEC,
        ]
    )
    bundle = DIST / APP_NAME
    version = project_version()
    archive = DIST / archive_name(version)
    # Compression level 6: about the size of level 9 at a fraction of the time.
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        tar.add(bundle, arcname=f"{APP_NAME}-{version}")
    minutes = (time.monotonic() - started) / 60
    print(f"bundle  {bundle}: {tree_size(bundle) / 2**20:.0f} MiB")
    print(f"archive {archive}: {archive.stat().st_size / 2**20:.0f} MiB")
    print(f"built in {minutes:.1f} min")
    return bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clean", action="store_true", help="recreate build/bundle-venv from scratch"
    )
    build(parser.parse_args(argv).clean)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
