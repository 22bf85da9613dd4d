"""The reference picker: drop a photo on the panel, see its thumbnail, the reference model is
chosen and used, the confidence overlay appears; clearing returns to the deblurring model."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from deblurstudio.core import imageio

RUN_TIMEOUT_MS = 120_000


def drop_file(widget, path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    enter = QDragEnterEvent(
        centre,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        centre,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, drop)


def test_dropped_reference_is_shown_and_selects_the_reference_model(opened, qtbot, tmp_path):
    window = opened
    reference = tmp_path / "sharp.png"
    imageio.write_image(reference, imageio.Photo(pixels=window.photo.pixels[::-1].copy()))
    assert not window.reference_panel.has_thumbnail()
    assert window.selected_model_id() == "bladenet"

    with qtbot.waitSignal(window.reference_changed, timeout=30_000) as changed:
        drop_file(window.reference_panel, reference)
    assert changed.args == [str(reference)]
    assert window.reference_panel.has_thumbnail()
    assert window.reference_panel.name_label.text() == "sharp.png"
    assert window.reference_panel.clear_button.isEnabled()
    assert window.selected_model_id() == "refdeblur"

    with qtbot.waitSignal(window.deblur_finished, timeout=RUN_TIMEOUT_MS) as finished:
        window.deblur_action.trigger()
    result = finished.args[0].result
    assert result.model_id == "refdeblur"
    assert result.reference_confidence.shape == (64, 96)
    assert window.overlay_panel.confidence_check.isChecked()
    assert window.view.after.overlays["confidence"].picture is window.maps.confidence

    with qtbot.waitSignal(window.reference_changed) as cleared:
        window.reference_panel.clear_button.click()
    assert cleared.args == [""]
    assert not window.reference_panel.has_thumbnail()
    assert window.selected_model_id() == "bladenet"


def test_photo_dropped_on_the_window_opens_it(window, qtbot, photo_path):
    with qtbot.waitSignal(window.photo_opened, timeout=30_000):
        drop_file(window.view.before, photo_path)
    assert window.photo_path == str(photo_path)
