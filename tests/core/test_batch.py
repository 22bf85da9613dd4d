import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from deblurstudio.core import imageio
from deblurstudio.core.batch import MANIFEST_NAME, BatchRequest, batch, find_photos
from deblurstudio.core.cancel import CancelToken
from deblurstudio.core.errors import (
    Cancelled,
    DeblurStudioError,
    ImageReadError,
    ImageWriteError,
)
from deblurstudio.core.pipeline import run
from tests._photos import (
    CAMERA_MAKE,
    SRGB_ICC,
    exif_make,
    icc_profile,
    write_16_bit_png,
    write_camera_jpeg,
    write_corrupt_jpeg,
)


@pytest.fixture
def photos(tmp_path) -> Path:
    """in/a.jpg (EXIF + ICC), in/b_broken.jpg (truncated), in/sub/c.png (16-bit), and a text
    file that is not a photo."""
    folder = tmp_path / "in"
    write_camera_jpeg(folder / "a.jpg")
    write_corrupt_jpeg(folder / "b_broken.jpg")
    write_16_bit_png(folder / "sub" / "c.png")
    (folder / "notes.txt").write_text("not a photo")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_NAME).read_text())["files"]


def run_collecting(request: BatchRequest):
    """Run a batch; return its summary and every progress step."""
    job = batch(request, CancelToken())
    steps = []
    while True:
        try:
            steps.append(next(job))
        except StopIteration as stop:
            return stop.value, steps


def outcomes(steps) -> list[tuple[str, str]]:
    """(file name, status) of each outcome the progress reported, sorted."""
    return sorted((step.path.name, step.status) for step in steps if step.status is not None)


def test_batch_deblurs_every_photo_records_the_broken_one_and_keeps_originals(
    tiny_models, photos, tmp_path
):
    before = snapshot(photos)
    out = tmp_path / "out"
    summary, steps = run_collecting(BatchRequest(photos, out, recursive=True))

    assert (summary.total, summary.done, summary.failed, summary.skipped) == (3, 2, 1, 0)
    # The progress lists each photo's outcome as it completes, and moves steadily to 1.
    assert outcomes(steps) == [("a.jpg", "done"), ("b_broken.jpg", "failed"), ("c.png", "done")]
    fractions = [step.fraction for step in steps]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert {step.total for step in steps} == {3}
    assert snapshot(photos) == before  # originals untouched
    # Same relative paths and formats; metadata and bit depth kept.
    assert exif_make(out / "a.jpg") == CAMERA_MAKE
    assert icc_profile(out / "a.jpg") == SRGB_ICC
    result16 = cv2.imread(str(out / "sub" / "c.png"), cv2.IMREAD_UNCHANGED)
    assert result16.dtype == np.uint16 and result16.shape == (48, 64, 3)
    assert not (out / "b_broken.jpg").exists()
    files = manifest_of(out)
    assert files["a.jpg"]["status"] == "done" and files["sub/c.png"]["status"] == "done"
    assert files["a.jpg"]["seconds"] > 0
    assert files["b_broken.jpg"]["status"] == "failed"
    assert "b_broken.jpg" in files["b_broken.jpg"]["error"]
    assert "notes.txt" not in files


def test_rerun_with_skip_existing_skips_done_photos_and_retries_failed_ones(
    tiny_models, photos, tmp_path
):
    out = tmp_path / "out"
    run(batch(BatchRequest(photos, out, recursive=True), CancelToken()))
    first_results = snapshot(out)
    first_manifest = manifest_of(out)

    summary, steps = run_collecting(BatchRequest(photos, out, recursive=True, skip_existing=True))

    assert (summary.done, summary.failed, summary.skipped) == (0, 1, 2)
    assert outcomes(steps) == [
        ("a.jpg", "skipped"),
        ("b_broken.jpg", "failed"),
        ("c.png", "skipped"),
    ]
    second_results = snapshot(out)
    assert second_results["a.jpg"] == first_results["a.jpg"]
    # The earlier run's records of the photos it deblurred stay, timings included.
    resumed_manifest = manifest_of(out)
    assert resumed_manifest["a.jpg"] == first_manifest["a.jpg"]
    assert resumed_manifest["sub/c.png"] == first_manifest["sub/c.png"]
    assert resumed_manifest["a.jpg"]["status"] == "done"
    assert resumed_manifest["a.jpg"]["seconds"] > 0


@pytest.mark.parametrize("previous", ["[]", "not json {", '{"format": 1, "files": []}'])
def test_a_manifest_that_is_not_one_is_replaced_with_a_warning(
    tiny_models, tmp_path, caplog, previous
):
    photos = tmp_path / "in"
    write_camera_jpeg(photos / "a.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).write_text(previous)

    summary = run(batch(BatchRequest(photos, out, skip_existing=True), CancelToken()))

    assert summary.done == 1
    assert manifest_of(out)["a.jpg"]["status"] == "done"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and MANIFEST_NAME in warnings[0]
    assert "starting a new manifest" in warnings[0]


def test_non_recursive_batch_ignores_subfolders(tiny_models, photos, tmp_path):
    summary = run(batch(BatchRequest(photos, tmp_path / "out"), CancelToken()))
    assert summary.total == 2 and not (tmp_path / "out" / "sub").exists()


def test_output_folder_equal_to_input_is_refused_and_nothing_written(tiny_models, photos):
    before = snapshot(photos)
    with pytest.raises(ImageWriteError, match="input folder"):
        run(batch(BatchRequest(photos, photos / "." / "sub" / ".."), CancelToken()))
    assert snapshot(photos) == before


def test_results_that_would_replace_an_original_are_refused(tiny_models, tmp_path):
    # Input inside output: in/x/a.jpg's result is out/x/a.jpg... = in/a.jpg, an original.
    out = tmp_path / "out"
    write_camera_jpeg(out / "in" / "a.jpg")
    write_camera_jpeg(out / "in" / "in" / "a.jpg")
    before = snapshot(out)
    with pytest.raises(ImageWriteError, match="replace an original"):
        run(batch(BatchRequest(out / "in", out, recursive=True), CancelToken()))
    assert snapshot(out) == before


def test_output_inside_input_is_not_walked_again(tiny_models, photos):
    out = photos / "deblurred"
    run(batch(BatchRequest(photos, out, recursive=True), CancelToken()))
    assert (out / "a.jpg").is_file()
    assert len(find_photos(photos, recursive=True, exclude=out.resolve())) == 3
    summary = run(batch(BatchRequest(photos, out, recursive=True), CancelToken()))
    assert summary.total == 3  # the first run's results are not new inputs
    assert not (out / "deblurred").exists()


def test_missing_or_empty_input_folder_is_an_unreadable_input(tiny_models, tmp_path):
    with pytest.raises(ImageReadError, match="no such folder"):
        run(batch(BatchRequest(tmp_path / "nope", tmp_path / "out"), CancelToken()))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match="no photos"):
        run(batch(BatchRequest(tmp_path / "empty", tmp_path / "out"), CancelToken()))
    assert not (tmp_path / "out").exists()  # a refused batch leaves no empty output folder


def test_cancel_leaves_only_complete_results_and_the_batch_resumes(tiny_models, tmp_path):
    photos = tmp_path / "in"
    for name in ("1.jpg", "2.jpg", "3.jpg"):
        write_camera_jpeg(photos / name)
    out = tmp_path / "out"
    token = CancelToken()
    job = batch(BatchRequest(photos, out), token)
    with pytest.raises(Cancelled):
        for step in job:
            if step.path.name == "2.jpg" and step.stage == "deblurring":
                token.cancel()  # mid-file: photo 1 may still be being written

    # Photo 1 is complete (the pending write was finished), photo 2 left nothing, no temp files.
    assert sorted(p.name for p in out.iterdir()) == ["1.jpg", MANIFEST_NAME]
    assert exif_make(out / "1.jpg") == CAMERA_MAKE
    assert manifest_of(out) == {"1.jpg": manifest_of(out)["1.jpg"]}
    assert manifest_of(out)["1.jpg"]["status"] == "done"

    summary = run(batch(BatchRequest(photos, out, skip_existing=True), CancelToken()))
    assert (summary.done, summary.skipped) == (2, 1)
    assert sorted(p.name for p in out.iterdir()) == ["1.jpg", "2.jpg", "3.jpg", MANIFEST_NAME]


def test_a_broken_model_fails_the_batch_once_before_any_photo(
    tiny_models, photos, tmp_path, monkeypatch
):
    broken = tmp_path / "broken_models"
    broken.mkdir()
    (broken / "bladenet.safetensors").write_bytes(b"not a checkpoint" * 10)
    manifest = {"format": 1, "models": {"bladenet": {
        "file": "bladenet.safetensors", "arch": "bladenet", "task": "deblur"}}}
    (broken / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("DEBLURSTUDIO_MODELS_DIR", f"{broken}{os.pathsep}{tiny_models}")
    out = tmp_path / "out"
    with pytest.raises(DeblurStudioError, match="bladenet.safetensors"):
        run(batch(BatchRequest(photos, out, recursive=True), CancelToken()))
    assert list(out.iterdir()) == []  # no results, no manifest of three identical failures


def test_a_reference_is_used_only_for_the_photos_of_its_scene(tiny_models, tmp_path):
    folder = tmp_path / "in"
    astronaut, coffee = data.astronaut(), data.coffee()
    write_camera_jpeg(folder / "astronaut.jpg", cv2.resize(astronaut, (256, 192)))
    write_camera_jpeg(folder / "coffee.jpg", coffee[:192, :256])
    reference = tmp_path / "sharp.png"
    imageio.write_image(reference, imageio.Photo(pixels=astronaut.astype(np.float32) / 255))
    out = tmp_path / "out"
    summary, steps = run_collecting(BatchRequest(folder, out, reference=reference))

    assert summary.done == 2
    warnings = {step.path.name: step.warning for step in steps if step.status == "done"}
    assert warnings["astronaut.jpg"] is None
    assert "does not show the same scene" in warnings["coffee.jpg"]
    files = manifest_of(out)
    assert files["astronaut.jpg"]["warning"] is None
    assert files["coffee.jpg"]["warning"] == warnings["coffee.jpg"]


def test_a_cmyk_photo_is_done_with_a_warning_in_the_manifest(tiny_models, tmp_path):
    from PIL import Image

    photos = tmp_path / "in"
    photos.mkdir()
    Image.fromarray(np.zeros((48, 64, 4), np.uint8), mode="CMYK").save(photos / "print.jpg")
    run(batch(BatchRequest(photos, tmp_path / "out"), CancelToken()))
    record = manifest_of(tmp_path / "out")["print.jpg"]
    assert record["status"] == "done" and "CMYK" in record["warning"]
