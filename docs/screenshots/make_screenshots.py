"""Regenerate the README screenshots of the desktop application.

Run under a virtual X server from the repository root, with the models you want shown installed
(or DEBLURSTUDIO_MODELS_DIR pointing at them):

    xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots/make_screenshots.py

It opens resources/sample.jpg, analyses and deblurs it, and saves main_overlays.png,
split_view.png, mask_painting.png and batch_dialog.png next to this script (each under 300 KB).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageOps
from PySide6.QtCore import QEvent, QEventLoop, QPointF, Qt, QTimer
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from deblurstudio.gui._main_window import MainWindow  # noqa: E402
from deblurstudio.gui._settings import open_settings  # noqa: E402

OUT = Path(__file__).resolve().parent
SAMPLE = ROOT / "resources" / "sample.jpg"
MAX_BYTES = 300_000


def wait_for(signal, failure=None, timeout_ms: int = 600_000) -> list:
    """Run the event loop until `signal` fires; returns its arguments. Raises when `failure`
    (a signal carrying a message) fires first, or on timeout."""
    loop, received, fired, failed = QEventLoop(), [], [], []

    def on_signal(*args):
        received.extend(args)
        fired.append(True)
        loop.quit()

    def on_failure(message):
        failed.append(message)
        loop.quit()

    signal.connect(on_signal)
    if failure is not None:
        failure.connect(on_failure)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    signal.disconnect(on_signal)
    if failure is not None:
        failure.disconnect(on_failure)
    if failed or not fired:
        raise RuntimeError(failed[0] if failed else "timed out waiting for the window")
    return received


def settle(milliseconds: int = 300) -> None:
    loop = QEventLoop()
    QTimer.singleShot(milliseconds, loop.quit)
    loop.exec()


def save(widget, name: str) -> None:
    """Grab `widget` as a PNG under MAX_BYTES: lossless when it fits, else with the fewest low
    bits per channel dropped (5 bits keep UI text crisp and gradients smooth, unlike a palette)."""
    path = OUT / name
    widget.grab().save(str(path))
    grabbed = Image.open(path).convert("RGB")
    for bits in (7, 6, 5, 4):
        if path.stat().st_size <= MAX_BYTES:
            break
        ImageOps.posterize(grabbed, bits).save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1000:.0f} KB")


def mouse(canvas, kind, image_point: tuple[float, float], buttons=Qt.MouseButton.NoButton):
    position = canvas.to_widget(QPointF(*image_point))
    button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
    QApplication.sendEvent(canvas, QMouseEvent(
        kind, position, canvas.mapToGlobal(position), button, buttons,
        Qt.KeyboardModifier.NoModifier,
    ))


def paint(canvas, points) -> None:
    left = Qt.MouseButton.LeftButton
    mouse(canvas, QEvent.Type.MouseButtonPress, points[0], left)
    for point in points[1:]:
        mouse(canvas, QEvent.Type.MouseMove, point, left)
    mouse(canvas, QEvent.Type.MouseButtonRelease, points[-1])


def main() -> None:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    scratch = Path(tempfile.mkdtemp(prefix="deblurstudio-shots-"))
    window = MainWindow(open_settings(scratch / "settings.ini"))
    window.resize(1360, 840)
    window.show()
    wait_for(window.engine_ready)
    window.open_photo(str(SAMPLE))
    wait_for(window.photo_opened, window.job_failed)

    # 1. Photo, result, and both overlays.
    window.overlay_panel.blur_opacity.slider.setValue(55)
    window.analyse_action.trigger()
    wait_for(window.maps_changed, window.job_failed)
    window.overlay_panel.blur_check.setChecked(True)
    window.overlay_panel.motion_lines_check.setChecked(True)
    window.deblur_action.trigger()
    wait_for(window.deblur_finished, window.job_failed)
    window.view.before.hovered.emit(QPointF(250, 200))
    settle()
    save(window, "main_overlays.png")

    # 2. Split view at 200 % around the face.
    window.overlay_panel.blur_check.setChecked(False)
    window.overlay_panel.motion_lines_check.setChecked(False)
    window.split_action.setChecked(True)
    settle()
    state = window.view.state
    state.scale, state.center, state.fitted = 2.0, QPointF(256, 185), False
    state.changed.emit()
    window.view.split.divider = 0.45
    settle()
    save(window, "split_view.png")

    # 3. Painting a mask with the brush.
    window.split_action.setChecked(False)
    window._docks["mask"].raise_()
    window.mask_panel.size.slider.setValue(36)
    window.mask_panel.tool_buttons["brush"].click()
    window.view.fit()
    settle()
    canvas = window.view.before
    paint(canvas, [(200, 120), (240, 105), (290, 110), (320, 140), (330, 190)])
    paint(canvas, [(185, 160), (200, 220), (250, 250), (300, 240)])
    mouse(canvas, QEvent.Type.MouseMove, (312, 215))
    settle()
    save(window, "mask_painting.png")

    # 4. The batch dialog while it runs.
    photos = scratch / "photos"
    photos.mkdir()
    for index in range(6):
        shutil.copy(SAMPLE, photos / f"holiday_{index + 1:02d}.jpg")
    (photos / "holiday_03.jpg").write_bytes(b"\xff\xd8\xff\xe0 damaged in transfer")
    window.mask_panel.tool_buttons["pan"].click()
    dialog = window.open_batch_dialog()
    dialog.input_row.edit.setText(str(photos))
    dialog.output_row.edit.setText(str(scratch / "results"))
    dialog.start()
    while dialog.file_list.count() < 3:
        wait_for(dialog.job.progress)
    wait_for(dialog.job.progress)
    settle(100)
    save(dialog, "batch_dialog.png")
    dialog.cancel_button.click()
    wait_for(dialog.batch_cancelled, dialog.batch_failed)
    dialog.reject()
    window.close()
    shutil.rmtree(scratch, ignore_errors=True)
    app.quit()


if __name__ == "__main__":
    main()
