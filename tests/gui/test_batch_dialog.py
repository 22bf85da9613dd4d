"""The batch dialog runs `core.batch` on a folder: per-file list, summary, a bad file goes on."""

from __future__ import annotations

from PySide6.QtCore import Qt

from deblurstudio.core import imageio

RUN_TIMEOUT_MS = 120_000


def test_two_file_batch_with_one_corrupt_file(window, qtbot, tmp_path, photo_path):
    photos, results = tmp_path / "photos", tmp_path / "results"
    photos.mkdir()
    (photos / "a_good.png").write_bytes(photo_path.read_bytes())
    (photos / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG at all")
    dialog = window.open_batch_dialog()
    dialog.input_row.edit.setText(str(photos))
    dialog.output_row.edit.setText(str(results))
    with qtbot.waitSignal(dialog.summary_ready, timeout=RUN_TIMEOUT_MS) as finished:
        dialog.start_button.click()
        assert not dialog.start_button.isEnabled() and dialog.cancel_button.isEnabled()
    summary = finished.args[0]
    assert (summary.total, summary.done, summary.failed) == (2, 1, 1)
    assert dialog.entries("done") == ["a_good.png"]
    assert dialog.entries("failed") == ["b_corrupt.jpg"]
    failed_row = dialog.file_list.findItems("b_corrupt.jpg", Qt.MatchFlag.MatchStartsWith)[0]
    assert len(failed_row.text()) > len("b_corrupt.jpg — failed: ")  # says why
    assert "1 deblurred, 1 failed" in dialog.summary_label.text()
    assert imageio.read_image(results / "a_good.png").pixels.shape == (64, 96, 3)
    assert not (results / "b_corrupt.jpg").exists()
    assert dialog.start_button.isEnabled() and dialog.close_button.isEnabled()
    assert window.settings.value("folders/batch_in") == str(photos)


def test_batch_cancel_stops_and_says_so(window, qtbot, tmp_path, photo_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (photos / name).write_bytes(photo_path.read_bytes())
    dialog = window.open_batch_dialog()
    dialog.input_row.edit.setText(str(photos))
    dialog.output_row.edit.setText(str(tmp_path / "results"))
    with qtbot.waitSignal(dialog.batch_cancelled, timeout=RUN_TIMEOUT_MS):
        dialog.start_button.click()
        dialog.cancel_button.click()
    assert dialog.summary_label.text().startswith("Cancelled")
    assert dialog.start_button.isEnabled()


def test_missing_input_folder_is_reported_before_starting(window, tmp_path):
    dialog = window.open_batch_dialog()
    dialog.input_row.edit.setText(str(tmp_path / "nowhere"))
    dialog.output_row.edit.setText(str(tmp_path / "results"))
    assert dialog.start() is None
    assert "not a folder" in dialog.summary_label.text()
