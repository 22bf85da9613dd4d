"""The main window driven like a user would: open, deblur, cancel, preview, save, errors."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtGui import QTextDocumentFragment
from PySide6.QtWidgets import QFileDialog, QMessageBox

from deblurstudio.core import imageio
from deblurstudio.gui._settings import read_list

RUN_TIMEOUT_MS = 120_000


def shown_pixel(picture, x: int, y: int) -> tuple[int, int, int]:
    return picture.levels[0].pixelColor(x, y).getRgb()[:3]


def as_8bit(rgb: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8))


def test_open_photo_shows_it_and_adds_it_to_recent_files(window, qtbot, photo_path):
    with qtbot.waitSignal(window.photo_opened, timeout=30_000):
        window.open_photo(str(photo_path))
    picture = window.view.before.picture
    assert (picture.size.width(), picture.size.height()) == (96, 64)
    assert shown_pixel(picture, 10, 20) == as_8bit(window.photo.pixels[20, 10])
    assert window.view.after.picture is None  # nothing deblurred yet
    assert str(photo_path) in read_list(window.settings, "recent_files")
    assert photo_path.name in window.windowTitle()
    assert window.deblur_action.isEnabled()


def test_unreadable_photo_shows_a_message_in_the_window(window, qtbot, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"these are holiday notes, not a photo")
    with qtbot.waitSignal(window.job_failed, timeout=30_000) as failure:
        window.open_photo(str(broken))
    message = failure.args[0]
    assert "broken.jpg" in message and "\n" not in message
    assert window.banner.isVisible() and window.banner.label.text() == message
    assert window.photo is None


def test_a_cmyk_photo_opens_with_a_note_that_its_result_will_be_rgb(window, qtbot, tmp_path):
    from PIL import Image

    path = tmp_path / "print.jpg"
    Image.fromarray(np.zeros((64, 96, 4), np.uint8), mode="CMYK").save(path)
    with qtbot.waitSignal(window.photo_opened, timeout=30_000):
        window.open_photo(str(path))
    message = window.banner.label.text()
    assert window.banner.isVisible() and "print.jpg" in message and "CMYK" in message


def test_deblur_shows_the_result_and_run_details(opened, qtbot):
    window = opened
    with qtbot.waitSignal(window.deblur_finished, timeout=RUN_TIMEOUT_MS) as finished:
        window.deblur_action.trigger()
    outcome = finished.args[0]
    restored = outcome.result.restored
    assert restored.shape == window.photo.pixels.shape
    after = window.view.after.picture
    assert after is window.view.split.wipe_picture
    for x, y in ((0, 0), (50, 30), (95, 63)):
        assert shown_pixel(after, x, y) == as_8bit(restored[y, x])
    assert window.outcome is outcome and window.save_action.isEnabled()
    assert window.last_run_label.text().startswith("Last run: ")
    assert outcome.result.model_id == "bladenet"
    assert window.device_label.text() == f"Device: {outcome.result.device}"
    # The run's maps are ready to overlay; the motion model is installed.
    assert window.maps.blur is not None and window.maps.motion_map.shape == (64, 96, 2)


def test_deblur_after_analysis_keeps_the_photos_motion_map(opened, qtbot):
    window = opened
    with qtbot.waitSignal(window.maps_changed, timeout=RUN_TIMEOUT_MS):
        window.analyse_action.trigger()
    analysed = window.maps.motion_map
    with qtbot.waitSignal(window.deblur_finished, timeout=RUN_TIMEOUT_MS) as finished:
        window.deblur_action.trigger()
    # The motion of the photo was known: the run shows that map and did not estimate it again.
    assert finished.args[0].result.motion_map is analysed
    assert window.maps.motion_map is analysed


def test_cancelled_run_changes_nothing(opened, qtbot):
    window = opened
    with qtbot.waitSignal(window.job_cancelled, timeout=RUN_TIMEOUT_MS):
        job = window.start_deblur()
        assert window.progress.cancel_button.isEnabled()
        window.progress.cancel_button.click()
    assert job.token.cancelled
    assert window.view.after.picture is None and window.outcome is None
    assert window.last_run_label.text() == "Last run: —"
    assert not window.busy() and window.deblur_action.isEnabled()


def test_window_stays_usable_while_a_job_runs(opened, qtbot):
    window = opened
    with qtbot.waitSignal(window.deblur_finished, timeout=RUN_TIMEOUT_MS):
        window.start_deblur()
        assert window.busy() and not window.deblur_action.isEnabled()
        scale = window.view.state.scale
        window.zoom_in_action.trigger()  # handled on the UI thread while the worker runs
        assert window.view.state.scale > scale
    assert not window.busy()


def test_preview_deblurs_only_the_region_in_view(opened, qtbot):
    window = opened
    canvas = window.view.before
    window.view.state.zoom_at(canvas.width() / 32, QPointF(canvas.width() / 2, 0), canvas.size())
    x0, y0, x1, y1 = window.preview_region()
    assert (x1 - x0) < 96 and (y1 - y0) <= 64
    with qtbot.waitSignal(window.deblur_finished, timeout=RUN_TIMEOUT_MS) as finished:
        window.preview_action.trigger()
    outcome = finished.args[0]
    assert outcome.region == (x0, y0, x1, y1)
    assert outcome.result.restored.shape == (y1 - y0, x1 - x0, 3)
    assert outcome.result.motion_map is None  # nor any map: a preview shows none
    after = window.view.after.picture
    outside_x = 95 if x1 < 96 else 0
    assert shown_pixel(after, outside_x, 10) == as_8bit(window.photo.pixels[10, outside_x])
    inside = (x0 + 2, y0 + 2)
    assert shown_pixel(after, *inside) == as_8bit(outcome.result.restored[2, 2])
    assert window.outcome is None and not window.save_action.isEnabled()  # whole photo on request


def test_save_keeps_the_original_unless_the_user_agrees(opened, qtbot, tmp_path, monkeypatch):
    window = opened
    with qtbot.waitSignal(window.deblur_finished, timeout=RUN_TIMEOUT_MS):
        window.deblur_action.trigger()
    destination = tmp_path / "result.png"
    with qtbot.waitSignal(window.file_saved, timeout=30_000):
        window.save_result(str(destination))
    saved = imageio.read_image(destination)
    assert np.abs(saved.pixels - window.outcome.result.restored).max() <= 1 / 255 + 1e-6

    original = window.photo_path
    before = open(original, "rb").read()
    asked = []
    monkeypatch.setattr(
        QMessageBox,
        "question",
        lambda *args, **kwargs: asked.append(args[1]) or QMessageBox.StandardButton.No,
    )
    assert window.save_result(original) is None
    assert asked and open(original, "rb").read() == before


def test_save_result_as_starts_in_the_photos_folder(window, qtbot, tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    imageio.write_image(photos / "street.png", imageio.Photo(pixels=np.full((64, 96, 3), 0.5)))
    (tmp_path / "elsewhere").mkdir()
    window.settings.setValue("folders/save", str(tmp_path / "elsewhere"))  # an earlier save
    monkeypatch.chdir(tmp_path)
    with qtbot.waitSignal(window.photo_opened, timeout=30_000):
        window.open_photo("photos/street.png")  # relative, as from the command line
    with qtbot.waitSignal(window.deblur_finished, timeout=RUN_TIMEOUT_MS):
        window.deblur_action.trigger()
    offered = []
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda *args: offered.append(args[2]) or ("", "")
    )
    window.save_action.trigger()
    assert offered == [str(photos / "street_deblurred.png")]


def test_settings_survive_a_restart(window, make_window, settings):
    window.overlay_panel.blur_opacity.slider.setValue(35)
    window.split_action.setChecked(True)
    window.mask_panel.size.slider.setValue(77)
    window.resize(700, 500)  # the offscreen screen is 800×800
    window.close()
    again = make_window(settings)
    assert again.overlay_panel.blur_opacity.slider.value() == 35
    assert again.split_action.isChecked() and again.view.is_split()
    assert again.mask_panel.size.slider.value() == 77
    assert (again.width(), again.height()) == (700, 500)


def test_about_box_lists_the_installed_models(window):
    text = window.about_html()
    for model_id in ("bladenet", "lcnet", "refdeblur", "motion"):
        assert f"<code>{model_id}</code>" in text
    assert "PyTorch" in text


def test_hover_reads_the_maps_under_the_cursor(opened, qtbot):
    window = opened
    with qtbot.waitSignal(window.maps_changed, timeout=RUN_TIMEOUT_MS):
        window.overlay_panel.blur_check.setChecked(True)  # no maps yet: analyses the photo
    assert window.view.before.overlays["blur"].picture is window.maps.blur
    dx, dy = window.maps.motion_map[20, 30]
    text = window.readout_at(QPointF(30.5, 20.5))
    assert f"blur probability {window.maps.blur_probability[20, 30]:.2f}" in text
    assert f"dx {dx:+.1f}, dy {dy:+.1f}" in text
    assert window.readout_at(QPointF(-3, 5)).startswith("Hover")
    window.maps.motion_map[20, 30] = (0.02, -0.03)  # still: no direction to read
    assert "motion none" in window.readout_at(QPointF(30.5, 20.5))


def test_model_panel_says_what_the_model_is_for_its_gain_and_speed_with_history_in_details(
    tiny_models, make_window, settings, photo_path, qtbot, tmp_path, monkeypatch
):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(tiny_models / "bladenet.safetensors", models / "bladenet.safetensors")
    card = {"steps": 2000, "metrics": {"input_psnr": 30.0, "output_psnr": 31.3}}
    description = (
        "Local Blur Perception U-Net (paper 000): deblurs moving subjects and camera shake. "
        "This checkpoint: v9 with its LBP net "
        "fine-tuned 2000 steps on 256 px crops."
    )
    spec = {"file": "bladenet.safetensors", "arch": "bladenet", "task": "deblur",
            "title": "BladeNet", "description": description, "card": card}
    manifest = {"format": 1, "defaults": {"deblur": "bladenet"}, "models": {"bladenet": spec}}
    (models / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("DEBLURSTUDIO_MODELS_DIR", f"{models}{os.pathsep}{tiny_models}")
    window = make_window(settings)
    panel = window.model_panel
    summary = QTextDocumentFragment.fromHtml(panel.summary.text()).toPlainText()
    assert "Deblurs moving subjects and camera shake." in summary
    assert "+1.3 dB" in summary
    assert "U-Net" not in summary and "This checkpoint" not in summary
    assert "MP/s" not in summary  # no speed measured yet
    assert not panel.card.isVisible()
    panel.details_button.click()
    assert panel.card.isVisible() and "fine-tuned 2000 steps" in panel.card.toPlainText()

    with qtbot.waitSignal(window.photo_opened, timeout=30_000):
        window.open_photo(str(photo_path))
    with qtbot.waitSignal(window.deblur_finished, timeout=RUN_TIMEOUT_MS):
        window.deblur_action.trigger()
    assert "MP/s" in QTextDocumentFragment.fromHtml(panel.summary.text()).toPlainText()
