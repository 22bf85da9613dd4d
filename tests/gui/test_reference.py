"""The reference picker: drop a photo on the panel, see its thumbnail, the reference model is
chosen and used, the confidence overlay appears; clearing returns to the deblurring model."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from skimage import data

from deblurstudio.core import imageio
from tests.gui.conftest import blurred_astronaut

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


@pytest.fixture
def astronaut_opened(window, qtbot, tmp_path):
    """The window with a 128×192 blurred astronaut open (enough detail to match a reference)."""
    path = tmp_path / "blurred.png"
    imageio.write_image(path, imageio.Photo(pixels=blurred_astronaut(128, 192)))
    with qtbot.waitSignal(window.photo_opened, timeout=30_000):
        window.open_photo(str(path))
    return window


def _drop_reference(window, qtbot, path, pixels):
    imageio.write_image(path, imageio.Photo(pixels=pixels))
    with qtbot.waitSignal(window.reference_changed, timeout=30_000) as changed:
        drop_file(window.reference_panel, path)
    assert changed.args == [str(path)]


def _deblurred(window, qtbot, preview=False):
    with qtbot.waitSignal(window.deblur_finished, timeout=RUN_TIMEOUT_MS) as finished:
        (window.preview_action if preview else window.deblur_action).trigger()
    return finished.args[0].result


def test_dropped_reference_is_shown_and_selects_the_reference_model(
    astronaut_opened, qtbot, tmp_path
):
    window = astronaut_opened
    assert not window.reference_panel.has_thumbnail()
    assert window.selected_model_id() == "bladenet"

    # The sharp shot: the whole astronaut photo, of which the blurred photo shows a part.
    reference = tmp_path / "sharp.png"
    _drop_reference(window, qtbot, reference, data.astronaut().astype(np.float32) / 255)
    assert window.reference_panel.has_thumbnail()
    assert window.reference_panel.name_label.text() == "sharp.png"
    assert window.reference_panel.clear_button.isEnabled()
    assert window.selected_model_id() == "refdeblur"

    result = _deblurred(window, qtbot)
    assert result.model_id == "refdeblur" and result.warning is None
    assert result.reference_confidence.shape == (128, 192)
    assert window.overlay_panel.confidence_check.isChecked()
    assert window.view.after.overlays["confidence"].picture is window.maps.confidence
    # A preview of the region in view uses the reference too: registered on the whole photo, as
    # a region this small (about 32 px wide) holds too few features to be matched on its own.
    canvas = window.view.before
    centre = QPointF(canvas.width() / 2, canvas.height() / 2)
    window.view.state.zoom_at(canvas.width() / 32, centre, canvas.size())
    x0, _, x1, _ = window.preview_region()
    assert 0 < x1 - x0 < 64
    preview = _deblurred(window, qtbot, preview=True)
    assert preview.model_id == "refdeblur" and preview.warning is None

    with qtbot.waitSignal(window.reference_changed) as cleared:
        window.reference_panel.clear_button.click()
    assert cleared.args == [""]
    assert not window.reference_panel.has_thumbnail()
    assert window.selected_model_id() == "bladenet"


def test_a_reference_of_another_scene_is_not_used_and_the_user_is_told(
    astronaut_opened, qtbot, tmp_path
):
    window = astronaut_opened
    _drop_reference(window, qtbot, tmp_path / "coffee.png", data.coffee().astype(np.float32) / 255)
    assert window.selected_model_id() == "refdeblur"

    result = _deblurred(window, qtbot)
    assert result.model_id == "bladenet" and result.reference_confidence is None
    assert window.banner.isVisible()
    assert "The reference photo does not show the same scene" in window.banner.label.text()
    assert window.selected_model_id() == "bladenet"  # the model that ran
    assert window.reference_panel.model_note.text() == "Not used: it shows another scene."


def test_a_batch_lists_the_photos_a_reference_does_not_match(astronaut_opened, qtbot, tmp_path):
    window = astronaut_opened
    _drop_reference(window, qtbot, tmp_path / "sharp.png", data.astronaut() / np.float32(255))
    photos = tmp_path / "photos"
    photos.mkdir()
    imageio.write_image(photos / "astronaut.png", imageio.Photo(pixels=window.photo.pixels))
    coffee = imageio.Photo(pixels=data.coffee() / np.float32(255))
    imageio.write_image(photos / "coffee.png", coffee)
    dialog = window.open_batch_dialog()
    dialog.input_row.edit.setText(str(photos))
    dialog.output_row.edit.setText(str(tmp_path / "results"))
    dialog.reference_check.setChecked(True)
    with qtbot.waitSignal(dialog.summary_ready, timeout=RUN_TIMEOUT_MS):
        dialog.start_button.click()
    assert dialog.entries("done") == ["astronaut.png", "coffee.png"]
    rows = [dialog.file_list.item(row).text() for row in range(dialog.file_list.count())]
    assert rows[0] == "astronaut.png — done"
    assert rows[1].startswith("coffee.png — done: the reference photo does not show the same")


def test_photo_dropped_on_the_window_opens_it(window, qtbot, photo_path):
    with qtbot.waitSignal(window.photo_opened, timeout=30_000):
        drop_file(window.view.before, photo_path)
    assert window.photo_path == str(photo_path)
