"""The mask tool: painting with the mouse, undo/redo, threshold from the blur map, save/load, and
the mask steering the next Deblur."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

RUN_TIMEOUT_MS = 120_000


def drag(canvas, image_points) -> None:
    """Press the left button at the first image point, move through the rest, release."""
    left = Qt.MouseButton.LeftButton
    positions = [canvas.to_widget(QPointF(x, y)) for x, y in image_points]
    events = [(QEvent.Type.MouseButtonPress, positions[0], left)]
    events += [(QEvent.Type.MouseMove, p, left) for p in positions[1:]]
    events.append((QEvent.Type.MouseButtonRelease, positions[-1], Qt.MouseButton.NoButton))
    for kind, position, buttons in events:
        event = QMouseEvent(
            kind,
            position,
            canvas.mapToGlobal(position),
            left,
            buttons,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(canvas, event)


def shown_mask_alpha(window, x: int, y: int) -> int:
    return window.view.before.overlays["mask"].picture.levels[0].pixelColor(x, y).alpha()


def test_paint_a_stroke_then_undo_and_redo(opened):
    window = opened
    window.mask_panel.tool_buttons["brush"].click()
    window.mask_panel.size.slider.setValue(10)  # 5 px radius
    window.mask_panel.feather.slider.setValue(0)
    drag(window.view.before, [(20, 30), (40, 30), (60, 32)])
    painted = window.mask.mask.copy()
    assert painted[30, 20] == 1.0 and painted[30, 40] == 1.0 and painted[32, 60] == 1.0
    assert painted[5, 5] == 0.0 and painted[30, 90] == 0.0  # far from the stroke
    assert shown_mask_alpha(window, 40, 30) == 255 and shown_mask_alpha(window, 5, 5) == 0
    assert window.mask_panel.use_check.isChecked()  # painting means "use the mask"

    window.undo_action.trigger()
    assert not window.mask.mask.any()
    assert shown_mask_alpha(window, 40, 30) == 0
    window.redo_action.trigger()
    np.testing.assert_array_equal(window.mask.mask, painted)


def test_eraser_removes_paint_and_the_pan_tool_does_not_paint(opened):
    window = opened
    window.mask_panel.size.slider.setValue(20)
    window.mask_panel.feather.slider.setValue(0)
    window.mask_panel.tool_buttons["brush"].click()
    drag(window.view.before, [(30, 30), (31, 30)])
    assert window.mask.mask[30, 30] == 1.0
    window.mask_panel.tool_buttons["eraser"].click()
    window.mask_panel.size.slider.setValue(30)  # wider than the stroke, soft rim included
    drag(window.view.before, [(30, 30), (31, 30)])
    assert not window.mask.mask.any()
    window.mask_panel.tool_buttons["pan"].click()
    drag(window.view.before, [(50, 30), (60, 30)])
    assert not window.mask.mask.any() and window.mask.undo_stack.count() == 2


def test_threshold_slider_follows_the_blur_map_in_one_undo_step(opened, qtbot):
    window = opened
    with qtbot.waitSignal(window.maps_changed, timeout=RUN_TIMEOUT_MS):
        window.analyse_action.trigger()
    probability = window.maps.blur_probability
    threshold = float(np.median(probability))  # random weights: pick a level that splits the map
    window.mask_panel.threshold.slider.setValue(round(100 * threshold))
    window.mask_panel.threshold_button.click()
    expected = probability >= window.mask_panel.threshold.slider.value() / 100
    np.testing.assert_array_equal(window.mask.mask == 1.0, expected)
    window.mask_panel.threshold.slider.setValue(window.mask_panel.threshold.slider.value() + 5)
    assert window.mask.undo_stack.count() == 1  # slider moves merged into the threshold edit
    window.undo_action.trigger()
    assert not window.mask.mask.any()


def test_invert_clear_save_and_load(opened, tmp_path):
    window = opened
    window.mask.invert()
    assert window.mask.mask.all()
    path = tmp_path / "mask.png"
    window.mask.clear()
    window.mask_panel.tool_buttons["brush"].click()
    drag(window.view.before, [(10, 10), (80, 50)])
    painted = window.mask.mask.copy()
    from deblurstudio.core import imageio

    imageio.write_mask(path, painted)
    window.mask.clear()
    window.load_mask(str(path))
    assert np.abs(window.mask.mask - painted).max() <= 1 / 255 + 1e-6
    window.undo_action.trigger()
    assert not window.mask.mask.any()


def test_a_mask_of_another_aspect_ratio_is_refused_not_stretched(opened, tmp_path):
    window = opened  # a 96×64 photo
    from deblurstudio.core import imageio

    path = tmp_path / "square_mask.png"
    imageio.write_mask(path, np.ones((64, 64), np.float32))
    window.load_mask(str(path))
    assert not window.mask.mask.any()
    message = window.banner.label.text()
    assert window.banner.isVisible() and "square_mask.png" in message
    assert "aspect ratio" in message and "\n" not in message


def test_deblur_changes_only_the_masked_area(opened, qtbot):
    window = opened
    window.mask_panel.tool_buttons["brush"].click()
    window.mask_panel.size.slider.setValue(30)
    drag(window.view.before, [(30, 30), (50, 30)])
    with qtbot.waitSignal(window.deblur_finished, timeout=RUN_TIMEOUT_MS) as finished:
        window.deblur_action.trigger()
    restored = finished.args[0].result.restored
    outside = window.mask.mask == 0
    np.testing.assert_array_equal(restored[outside], window.photo.pixels[outside])
    assert not np.array_equal(restored[30, 40], window.photo.pixels[30, 40])


def test_empty_mask_in_use_is_refused_with_a_message(opened):
    window = opened
    window.mask_panel.use_check.setChecked(True)
    assert window.start_deblur() is None
    assert window.banner.isVisible() and "mask is empty" in window.banner.label.text()
