"""What goes into the PyInstaller bundle (packaging/build.py), checked without building it.

The bundle itself is built and smoke-tested by packaging/smoke_test.py, a release step (the build
takes longer than CI has). These tests catch, cheaply, the two ways the bundle breaks silently:
the app starts importing a module the spec excludes, or a drop pattern swallows a file the frozen
app needs.
"""

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rules():
    spec = importlib.util.spec_from_file_location("bundle_rules", ROOT / "packaging" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_archive_is_named_after_the_pyproject_version_and_platform(rules, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "9.8.7"\n')
    name = rules.archive_name
    version = rules.project_version(tmp_path)
    assert name(version, "Linux", "x86_64") == "DeblurStudio-9.8.7-linux-x86_64.tar.gz"
    assert name(version, "Darwin", "arm64") == "DeblurStudio-9.8.7-macos-arm64.tar.gz"
    assert name(version, "Windows", "AMD64") == "DeblurStudio-9.8.7-windows-x86_64.tar.gz"


@pytest.mark.parametrize(
    "dest",
    [
        "torch/lib/libtorch_cpu.so",
        "torch/lib/libc10.so",
        "torch/bin/torch_shm_manager",
        "torch/_C.cpython-311-x86_64-linux-gnu.so",
        "PySide6/Qt/plugins/platforms/libqxcb.so",
        "PySide6/Qt/plugins/platforms/libqwayland.so",
        "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "PySide6/Qt/plugins/xcbglintegrations/libqxcb-glx-integration.so",
        "PySide6/Qt/plugins/imageformats/libqjpeg.so",
        "PySide6/Qt/plugins/iconengines/libqsvgicon.so",
        "PySide6/Qt/lib/libQt6XcbQpa.so.6",
        "libQt6Gui.so.6",
        "resources/models/bladenet.safetensors",
        "resources/models/manifest.json",
        "resources/sample.jpg",
        "qtawesome/fonts/fontawesome5-solid-webfont.ttf",
    ],
)
def test_files_the_frozen_app_needs_are_kept(rules, dest):
    assert rules.keep(dest)


@pytest.mark.parametrize(
    "dest",
    [
        "torch/include/ATen/ATen.h",
        "torch/test/scalar_test",
        "torch/bin/protoc",
        "torch/bin/test_jit",
        "torch/bin/TCPStoreTest",
        "torch/lib/libtorchbind_test.so",
        "PySide6/Qt/translations/qtbase_de.qm",
        "PySide6/Qt/plugins/platforms/libqeglfs.so",
        "PySide6/Qt/lib/libQt6EglFSDeviceIntegration.so.6",
        "libQt6EglFSDeviceIntegration.so.6",
    ],
)
def test_developer_files_are_dropped(rules, dest):
    assert not rules.keep(dest)


# Exercises the app's code paths (GUI window, CLI deblur/analyse/models, reference and mask
# deblurring, the fast model) in a fresh interpreter, then reports every module it imported.
_APP_RUN = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from deblurstudio.cli.main import main as cli
    from deblurstudio.core import imageio, pipeline
    from deblurstudio.core.cancel import CancelToken
    from deblurstudio.gui import app
    from deblurstudio.gui._main_window import MainWindow
    from deblurstudio.gui._settings import open_settings

    folder = sys.argv[1]
    photo = np.random.default_rng(0).random((48, 64, 3), dtype=np.float32)
    imageio.write_image(folder + "/in.png", imageio.Photo(photo))
    assert cli(["models"]) == 0
    assert cli(["deblur", folder + "/in.png", "-o", folder + "/out.png"]) == 0
    assert cli(["analyse", folder + "/in.png", "--blur-map", folder + "/blur.png"]) == 0
    mask = np.zeros(photo.shape[:2], np.float32)
    mask[8:40, 8:56] = 1
    for request in (
        pipeline.DeblurRequest(image=photo, model_id="lcnet"),
        pipeline.DeblurRequest(image=photo, mask=mask),
        pipeline.DeblurRequest(image=photo, reference=photo[::-1].copy()),
    ):
        pipeline.run(pipeline.deblur(request, CancelToken()))
    app._application("deblurstudio")
    MainWindow(open_settings(folder + "/settings.ini"))
    print(json.dumps(sorted(sys.modules)))
    """
)


def test_the_app_never_imports_a_module_the_bundle_excludes(rules, tiny_models, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _APP_RUN, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert "deblurstudio.gui._main_window" in imported and "torch" in imported
    excluded = [
        module
        for module in imported
        if any(module == ex or module.startswith(ex + ".") for ex in rules.EXCLUDED_MODULES)
    ]
    assert not excluded, f"the bundle leaves out modules the app imports: {excluded}"
