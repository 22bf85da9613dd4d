"""Fixtures for the GUI tests: a settings file per test, a small motion-blurred photo, and the
main window on the tiny random-weight models (QT_QPA_PLATFORM=offscreen comes from
tests/conftest.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from deblurstudio.core import imageio
from deblurstudio.gui._main_window import MainWindow
from deblurstudio.gui._settings import open_settings

ENGINE_TIMEOUT_MS = 120_000  # torch's first import on a busy 2-core machine


def blurred_astronaut(height: int = 64, width: int = 96) -> np.ndarray:
    """A crop of skimage's astronaut with a diagonal motion blur: float32 RGB H×W×3 in [0, 1]."""
    sharp = data.astronaut()[40 : 40 + 2 * height, 120 : 120 + 2 * width].astype(np.float32) / 255
    sharp = cv2.resize(sharp, (width, height), interpolation=cv2.INTER_AREA)
    kernel = np.zeros((9, 9), np.float32)
    cv2.line(kernel, (1, 2), (7, 6), 1.0, 1)
    return np.clip(cv2.filter2D(sharp, -1, kernel / kernel.sum()), 0.0, 1.0)


@pytest.fixture
def settings(tmp_path):
    return open_settings(tmp_path / "settings.ini")


@pytest.fixture
def photo_path(tmp_path):
    path = tmp_path / "blurred.png"
    imageio.write_image(path, imageio.Photo(pixels=blurred_astronaut()))
    return path


@pytest.fixture
def make_window(qtbot, tiny_models):
    """Build and show a main window on `settings`; returns it once the models are listed."""

    def make(settings) -> MainWindow:
        main_window = MainWindow(settings)
        qtbot.addWidget(main_window)
        with qtbot.waitSignal(main_window.engine_ready, timeout=ENGINE_TIMEOUT_MS):
            main_window.show()
        return main_window

    return make


@pytest.fixture
def window(make_window, settings):
    """The main window, shown, with the tiny models listed."""
    return make_window(settings)


@pytest.fixture
def opened(window, qtbot, photo_path):
    """The main window with `photo_path` open."""
    with qtbot.waitSignal(window.photo_opened, timeout=30_000):
        window.open_photo(str(photo_path))
    return window
